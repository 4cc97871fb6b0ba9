"""The machine-translation toolkit: Post-LN encoder-decoder presets on stock Marian and their initialisations,
parallel data (Ding, a toy grammar, local files, Hub datasets), a joint BPE tokenizer, `--max-tokens` batching,
the training loss and optimizer, and evaluation (BLEU / chrF). `examples/translation/train_mt.py` and
`hf-gradinit init` are built from these pieces. Names load their modules on first use.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(
        (
            "POST_LN_PRESETS",
            "post_ln_config",
            "fairseq_init_",
            "tfixup_init_",
            "deepnet_init_",
            "freeze_sinusoidal_positions_",
        ),
        ".presets",
    ),
    **dict.fromkeys(("TRANSLATION_INITS", "apply_translation_init_", "build_translation_model"), ".modeling"),
    **dict.fromkeys(("TranslationDataArguments", "load_translation_data"), ".arguments"),
    **dict.fromkeys(
        ("TrainingDivergedError", "translation_loss", "build_optimizer", "max_tokens_loader", "gradinit_batches"),
        ".training",
    ),
    **dict.fromkeys(
        ("shard_translation_model", "full_state_dict", "save_sharded_state", "load_sharded_state"), ".sharding"
    ),
    **dict.fromkeys(("evaluate_translation", "average_checkpoints", "plot_training_curves"), ".evaluation"),
    **dict.fromkeys(
        (
            "BUILTIN_SOURCES",
            "DING_PATH",
            "TARGET_TOKENIZER_DIR",
            "CorpusUnavailableError",
            "MaxTokensBatchSampler",
            "example_lengths",
            "generate_toy_pairs",
            "load_tokenizer",
            "load_tokenizers",
            "load_translation_corpus",
            "restrict_bpe_vocabulary",
            "tokenize_translation",
            "train_joint_bpe",
            "train_separate_bpe",
            "translation_collator",
        ),
        ".data",
    ),
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # what type checkers and IDEs see; tests/test_architecture.py checks it matches _EXPORTS
    from .arguments import TranslationDataArguments, load_translation_data
    from .data import (
        BUILTIN_SOURCES,
        DING_PATH,
        TARGET_TOKENIZER_DIR,
        CorpusUnavailableError,
        MaxTokensBatchSampler,
        example_lengths,
        generate_toy_pairs,
        load_tokenizer,
        load_tokenizers,
        load_translation_corpus,
        restrict_bpe_vocabulary,
        tokenize_translation,
        train_joint_bpe,
        train_separate_bpe,
        translation_collator,
    )
    from .evaluation import average_checkpoints, evaluate_translation, plot_training_curves
    from .modeling import TRANSLATION_INITS, apply_translation_init_, build_translation_model
    from .presets import (
        POST_LN_PRESETS,
        deepnet_init_,
        fairseq_init_,
        freeze_sinusoidal_positions_,
        post_ln_config,
        tfixup_init_,
    )
    from .sharding import full_state_dict, load_sharded_state, save_sharded_state, shard_translation_model
    from .training import (
        TrainingDivergedError,
        build_optimizer,
        gradinit_batches,
        max_tokens_loader,
        translation_loss,
    )
