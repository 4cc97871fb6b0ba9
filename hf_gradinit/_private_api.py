"""Every private API of transformers, accelerate and torch this package relies on, in one place.

Each entry: the module, the name inside it (`Class.attribute`, or a name its source must contain for attributes
set at run time), and what we use it for. `tests/test_private_api.py` checks every entry against the installed
versions, so a release that drops one fails there, loudly, instead of somewhere in a run. Checked on:
transformers 5.18.0 and 5.24.0, accelerate 1.10.0 and 1.16.0, torch 2.13.0 (both ends of the ranges in
pyproject.toml, the two passes of `.ci/run`).
"""

PRIVATE_APIS: tuple[tuple[str, str, str], ...] = (
    # transformers
    ("transformers.trainer", "Trainer._prepare_for_training",
     "GradInitTrainer runs GradInit in it, between loading a resumed checkpoint and wrapping the model"),
    ("transformers.trainer", "source:self._train_batch_size",
     "GradInitTrainer borrows the training dataloader at GradInit's batch size"),
    ("transformers.trainer", "source:self.optimizer_cls_and_kwargs",
     "GradInitTrainer reads the optimizer a user passed as a class and kwargs"),
    ("transformers.modelcard", "TrainingSummary.from_trainer",
     "GradInitTrainer.create_model_card keeps what Trainer puts in its card"),
    ("transformers.models.auto.modeling_auto", "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
     "hf-gradinit init infers the task of a config"),
    ("transformers.modeling_layers", "source:_gradient_checkpointing_func",
     "isolation: a layer that checkpoints activations in training checkpoints them during the search"),
    ("transformers.modeling_layers", "source:_can_checkpoint_with_cache",
     "isolation: which checkpointed layers may keep a KV cache"),
    ("transformers.configuration_utils", "source:_attn_implementation",
     "the double-backward check names the attention implementation in its error"),
    ("transformers.models.marian.modeling_marian", "MarianSinusoidalPositionalEmbedding",
     "blocks: fixed tables are recognised by the class name 'Sinusoidal'"),
    # accelerate
    ("accelerate.accelerator", "source:_original_forward",
     "isolation: the forward before accelerator.prepare wrapped it in autocast"),
    ("accelerate.data_loader", "DataLoaderStateMixin.end",
     "GradInitTrainer ends the dataloader GradInit stopped mid-epoch"),
    # torch
    ("torch.nn.modules.module", "source:_compiled_call_impl", "isolation: Module.compile() is bypassed"),
    ("torch._dynamo.eval_frame", "OptimizedModule._orig_mod", "unwrap_model: the module inside torch.compile"),
    ("torch.nn.modules.batchnorm", "_BatchNorm", "isolation: BatchNorm keeps batch statistics"),
    ("torch.nn.modules.batchnorm", "_NormBase", "blocks: BatchNorm and InstanceNorm weights are norm weights"),
    ("torch", "_foreach_mul_", "core: the per-tensor arithmetic of an iteration, as optimizers do it"),
)  # fmt: skip
