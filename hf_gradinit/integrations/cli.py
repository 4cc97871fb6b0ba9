"""`hf-gradinit`: make a GradInit-initialised checkpoint, push it to the Hub, report its scales.

    hf-gradinit init --output_dir out/tiny-gradinit --model tiny --source toy [--push_to_hub user/tiny-gradinit]
    hf-gradinit push out/tiny-gradinit user/tiny-gradinit [--private] [--revision BRANCH]
    hf-gradinit report out/tiny-gradinit [--plot scales.png | --no_plot]

A thin layer over `init_checkpoint`, `push_checkpoint` and `load_gradinit_result`: `init`'s arguments are the
dataclasses `InitCheckpointArguments`,
`TranslationDataArguments` (the data arguments of `train_mt.py`) and `GradInitArguments` (every `--gradinit_*`).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any, get_type_hints

from transformers import HfArgumentParser

from ..result import PLOT_FILE
from ..translation import TranslationDataArguments
from .arguments import GradInitArguments
from .checkpoint import OutputDirectoryExistsError, check_output_dir, format_scale_table, load_gradinit_result
from .hub import push_checkpoint
from .init_checkpoint import InitCheckpointArguments, init_checkpoint

# `init` always runs GradInit on a fresh model: the switches of a training integration do not apply.
_NOT_FOR_INIT = ("gradinit", "gradinit_force")
_GRADINIT_TYPES = get_type_hints(GradInitArguments)
_INIT_HELP = {  # what the batch size means here: `init` batches by tokens (`gradinit_batches`), as train_mt.py
    "gradinit_batch_size": {
        "help": "At most this many sentence pairs per GradInit batch, on top of the --max_tokens budget. Default: "
        "no limit but --max_tokens."
    }
}
_InitGradInitArguments = dataclasses.make_dataclass(
    "_InitGradInitArguments",
    [
        (
            f.name,
            _GRADINIT_TYPES[f.name],
            dataclasses.field(default=f.default, metadata=_INIT_HELP.get(f.name, f.metadata)),
        )
        for f in dataclasses.fields(GradInitArguments)
        if f.name not in _NOT_FOR_INIT
    ],
    namespace={"_argument_group_name": "GradInit (GradInitArguments; default: follows --optimizer, --lr, --max_steps)"},
)


# Subclasses only to title the argument groups of `init --help`; parsed values build the library's own classes.
class _OutputGroup(InitCheckpointArguments):
    _argument_group_name = "model, output and Hub (InitCheckpointArguments)"


class _DataGroup(TranslationDataArguments):
    _argument_group_name = "data (TranslationDataArguments, as in examples/translation/train_mt.py)"


_INIT_ARGUMENTS = {
    _OutputGroup: InitCheckpointArguments,
    _DataGroup: TranslationDataArguments,
    _InitGradInitArguments: lambda **kwargs: GradInitArguments(gradinit=True, **kwargs),
}


def build_parser() -> argparse.ArgumentParser:
    """The `hf-gradinit` parser: subcommands `init`, `push`, `report`."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="hf-gradinit",
        description="GradInit (Zhu et al., NeurIPS 2021) checkpoints for the Hugging Face stack: initialise a model "
        "so it trains without learning-rate warmup, write it as a checkpoint that loads with plain transformers "
        "(with a model card), push it to the Hub, and report its learned per-layer scales.",
        epilog="Run `hf-gradinit COMMAND --help` for the arguments of each command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=HfArgumentParser)

    init = commands.add_parser(
        "init",
        dataclass_types=list(_INIT_ARGUMENTS),
        help="Build a model, run GradInit on training data, write (and optionally push) the checkpoint.",
        description="Build a model (a Post-LN preset or a seq2seq config), load training data and a tokenizer as "
        "train_mt.py does, run GradInit, and write a checkpoint directory: model.safetensors, config.json (with "
        "config.gradinit), the tokenizer, gradinit_scales.json, gradinit_scales.png and a README.md model card. The "
        "directory appears only once complete; with --push_to_hub it is then uploaded.",
    )
    init.set_defaults(handler=_run_init, command_parser=init)

    push = commands.add_parser(
        "push",
        formatter_class=argparse.HelpFormatter,
        help="Upload a checkpoint directory written by `init` to a Hub model repo.",
        description="Upload a checkpoint directory (as written by `hf-gradinit init`) to a Hub model repo, as one "
        "commit; the repo (and --revision branch) is created if missing. Uses your `hf auth login` token or HF_TOKEN.",
    )
    push.add_argument("output_dir", metavar="DIR", help="The checkpoint directory.")
    push.add_argument("repo_id", metavar="REPO_ID", help="Hub repo id, e.g. user/tiny-gradinit.")
    push.add_argument("--private", action="store_true", help="Create the repo as private (if it does not exist).")
    push.add_argument("--revision", default=None, help="Branch to push to (created if missing). Default: main.")
    push.add_argument("--commit_message", default=None, help="Commit message. Default: names hf-gradinit's version.")
    push.set_defaults(handler=_run_push, command_parser=push)

    report = commands.add_parser(
        "report",
        formatter_class=argparse.HelpFormatter,
        help="Print the per-layer scale table of a saved GradInit result and redraw its plot.",
        description="Print one line per parameter block (name, kind, learned scale), the run's summary and its "
        "settings, from a checkpoint directory (its gradinit_scales.json, else the config.json `gradinit` record), a "
        "gradinit_scales.json file or a config.json file; and redraw the scale plot.",
    )
    report.add_argument("path", metavar="PATH", help="Checkpoint directory, gradinit_scales.json or config.json.")
    report.add_argument(
        "--plot",
        metavar="IMAGE",
        default=None,
        help="Where to draw the plot. Default: gradinit_scales.png in the checkpoint directory (next to the file).",
    )
    report.add_argument("--no_plot", action="store_true", help="Only print the table; draw nothing.")
    report.set_defaults(handler=_run_report, command_parser=report)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `hf-gradinit` console script; returns the exit status (argument errors exit with 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s | %(name)s | %(message)s", datefmt="%H:%M:%S", level=logging.WARNING)
    logging.getLogger("hf_gradinit").setLevel(logging.INFO)
    try:
        return args.handler(args, args.command_parser)
    except KeyboardInterrupt:
        print(f"hf-gradinit {args.command}: interrupted; no checkpoint was written or changed.", file=sys.stderr)
        return 130
    except (OSError, ValueError, RuntimeError, FloatingPointError) as error:  # HubPushError, missing corpus...
        print(f"hf-gradinit {args.command}: error: {error}", file=sys.stderr)
        return 1


def _dataclasses_from(args: argparse.Namespace, subparser: HfArgumentParser) -> list[Any]:
    """The parsed `init` arguments as the library's dataclasses; invalid values are argparse errors (exit 2)."""
    values = vars(args)
    parsed = []
    try:
        for dtype in subparser.dataclass_types:
            kwargs = {f.name: values[f.name] for f in dataclasses.fields(dtype) if f.init}
            parsed.append(_INIT_ARGUMENTS[dtype](**kwargs))
    except ValueError as error:
        subparser.error(str(error))
    return parsed


def _run_init(args: argparse.Namespace, subparser: HfArgumentParser) -> int:
    import datasets

    init_args, data_args, gradinit_args = _dataclasses_from(args, subparser)
    try:
        check_output_dir(init_args.output_dir, overwrite=init_args.overwrite)
    except OutputDirectoryExistsError as error:
        subparser.error(str(error))
    datasets.disable_progress_bars()
    output = init_checkpoint(init_args, data_args, gradinit_args)
    print(f"Wrote {output.path}")
    if output.commit_url is not None or init_args.push_to_hub:
        print(f"Pushed to {init_args.push_to_hub}" + (f": {output.commit_url}" if output.commit_url else ""))
    return 0


def _run_push(args: argparse.Namespace, subparser: argparse.ArgumentParser) -> int:
    if not Path(args.output_dir).is_dir():
        subparser.error(f"{args.output_dir} is not a directory.")
    url = push_checkpoint(
        args.output_dir, args.repo_id, private=args.private, revision=args.revision, commit_message=args.commit_message
    )
    print(f"Pushed {args.output_dir} to {args.repo_id}" + (f": {url}" if url else ""))
    return 0


def _run_report(args: argparse.Namespace, subparser: argparse.ArgumentParser) -> int:
    if args.plot and args.no_plot:
        subparser.error("--plot and --no_plot exclude each other.")
    if not Path(args.path).exists():
        subparser.error(f"{args.path} does not exist.")
    result, source = load_gradinit_result(args.path)
    print(f"GradInit result from {source}" + ("" if result.history else " (a record without per-iteration history)"))
    print(format_scale_table(result))
    if not args.no_plot:
        plot = Path(args.plot) if args.plot else source.parent / PLOT_FILE
        result.plot(plot)
        print(f"Plot: {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
