"""The Hugging Face integration: `GradInitTrainer` and its arguments, model cards, the checkpoint writer, the Hub
push and the `hf-gradinit` CLI. Built on the method (`hf_gradinit.core` and friends) and, for `hf-gradinit init`,
the translation toolkit; nothing below imports it. Its public names are exported by `hf_gradinit` itself."""
