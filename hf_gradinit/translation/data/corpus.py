"""Translation corpora as a `datasets.DatasetDict` with `train`/`validation`/`test` splits, one entry point.

Every row is ``{"translation": {src_lang: str, tgt_lang: str}}``, the convention of the Hub WMT datasets, so the
rest of the pipeline (tokenisation, batching, BLEU) does not care where the text came from.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
from datasets import Dataset, DatasetDict

from .ding import DING_PATH, extract_ding_pairs
from .errors import CorpusUnavailableError
from .toy import generate_toy_pairs

SPLITS = ("train", "validation", "test")
BUILTIN_SOURCES = ("ding", "toy", "auto")
# Split names found in the wild, mapped to ours.
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
}
_LOCAL_SUFFIXES = (".jsonl", ".json", ".tsv", ".txt", ".parquet")


def load_translation_corpus(
    source: str,
    *,
    src_lang: str = "de",
    tgt_lang: str = "en",
    config_name: str | None = None,
    revision: str | None = None,
    split_seed: int = 0,
    valid_size: int | float | None = None,
    test_size: int | float | None = None,
    max_pairs: int | None = None,
    toy_size: int = 50_000,
    toy_seed: int = 0,
    ding_path: str | os.PathLike[str] = DING_PATH,
) -> tuple[DatasetDict, str]:
    """Load a parallel corpus and return ``(DatasetDict with train/validation/test, description of the source)``.

    `source` is one of:

    - ``"ding"``: example sentences of the Ding dictionary (`apt-get install trans-de-en`, GPL, read at run time
      from `ding_path`), about 17.5k de-en pairs.
    - ``"toy"``: `toy_size` pairs of a generated German-English grammar (`toy_seed`), always available.
    - ``"auto"``: ``"ding"`` when `ding_path` exists, else ``"toy"``.
    - a local file or directory: JSONL (``{"translation": {...}}`` or flat ``{src_lang: ..., tgt_lang: ...}`` rows),
      TSV (``src<TAB>tgt``, no header) or parquet (a ``translation`` column or the two language columns). A
      directory holds ``train.*``/``validation.*`` (or ``valid``/``dev``)/``test.*`` files.
    - a Hub dataset id, loaded with `config_name`/`revision`, e.g. ``"wmt/wmt14"`` with ``config_name="de-en"``, or
      ``"bbaaaa/iwslt14-de-en"`` with ``revision="refs/convert/parquet"``. Needs network access (or the HF cache).

    Sources with a single split are split with `split_seed` into test, validation and train; `valid_size` and
    `test_size` are pair counts (int) or fractions (float), by default ``min(1000, 5%)`` each. Missing validation or
    test splits of a multi-split source are carved out of its train split the same way. `max_pairs` keeps a seeded
    subset of at most that many *training* pairs (evaluation splits stay whole, so scores stay comparable).
    """
    if src_lang == tgt_lang:
        raise ValueError(f"src_lang and tgt_lang must differ, both are {src_lang!r}.")
    if source == "auto":
        source = "ding" if Path(ding_path).is_file() else "toy"
    if source in ("ding", "toy"):
        if {src_lang, tgt_lang} != {"de", "en"}:
            raise ValueError(f"The {source!r} corpus is German-English: use src_lang/tgt_lang 'de' and 'en'.")
        if source == "ding":
            pairs = extract_ding_pairs(ding_path)
            description = f"Ding dictionary example sentences from {os.fspath(ding_path)} ({len(pairs)} pairs)"
        else:
            pairs = generate_toy_pairs(toy_size, seed=toy_seed)
            description = f"generated toy German-English grammar ({len(pairs)} pairs, seed {toy_seed})"
        rows = [{"de": de, "en": en} for de, en in pairs]
        splits: dict[str, Dataset] = {"train": _to_dataset(rows, src_lang, tgt_lang)}
    elif Path(source).exists():
        splits = _load_local(Path(source), src_lang, tgt_lang)
        description = f"local corpus {source} (splits: {', '.join(sorted(splits))})"
    elif _looks_like_path(source):
        raise CorpusUnavailableError(
            f"Local corpus {source!r} does not exist. Pass an existing JSONL/TSV/parquet file or directory, a Hub "
            "dataset id, or one of the built-in corpora 'ding', 'toy', 'auto'."
        )
    else:
        splits = _load_hub(source, config_name, revision, src_lang, tgt_lang)
        description = f"Hub dataset {source}" + (f" ({config_name})" if config_name else "")
        description += f" at revision {revision}" if revision else ""

    corpus = _complete_splits(splits, split_seed, valid_size, test_size)
    if max_pairs is not None and len(corpus["train"]) > max_pairs:
        corpus["train"] = corpus["train"].shuffle(seed=split_seed).select(range(max_pairs))
        description += f", train capped at {max_pairs} pairs"
    sizes = ", ".join(f"{name} {len(corpus[name])}" for name in SPLITS)
    return corpus, f"{description}; {src_lang}->{tgt_lang}; {sizes}"


def _looks_like_path(source: str) -> bool:
    """Hub ids are ``name`` or ``owner/name``; anything else path-like is a (missing) local corpus."""
    return (
        source.startswith((".", "/", "~"))
        or "\\" in source
        or source.count("/") > 1
        or source.lower().endswith(_LOCAL_SUFFIXES)
    )


def _to_dataset(rows: Sequence[dict[str, str]], src_lang: str, tgt_lang: str) -> Dataset:
    return Dataset.from_dict({"translation": [{src_lang: row[src_lang], tgt_lang: row[tgt_lang]} for row in rows]})


def _split_size(size: int | float | None, total: int) -> int:
    if size is None:
        return min(1000, max(1, round(0.05 * total)))
    if isinstance(size, float):
        if not 0.0 <= size < 1.0:
            raise ValueError(f"A fractional split size must be in [0, 1), got {size}.")
        return round(size * total)
    return int(size)


def _complete_splits(
    splits: dict[str, Dataset], seed: int, valid_size: int | float | None, test_size: int | float | None
) -> DatasetDict:
    """Carve missing validation/test splits out of train with a fixed seed (test first, then validation)."""
    if "train" not in splits:
        raise ValueError(f"The corpus has no train split (found: {sorted(splits)}).")
    train = splits["train"]
    missing = [name for name in ("test", "validation") if name not in splits]
    if missing:
        sizes = {"test": _split_size(test_size, len(train)), "validation": _split_size(valid_size, len(train))}
        needed = sum(sizes[name] for name in missing)
        if needed >= len(train):
            raise ValueError(
                f"Cannot carve {needed} evaluation pairs out of {len(train)} training pairs: "
                "lower valid_size/test_size."
            )
        train = train.shuffle(seed=seed)
        start = 0
        for name in missing:
            splits[name] = train.select(range(start, start + sizes[name]))
            start += sizes[name]
        splits["train"] = train.select(range(start, len(train)))
    return DatasetDict({name: splits[name] for name in SPLITS})


def _split_name(path: Path) -> str | None:
    name = path.name.split(".", 1)[0].lower()
    return _SPLIT_ALIASES.get(name)


def _load_local(path: Path, src_lang: str, tgt_lang: str) -> dict[str, Dataset]:
    if path.is_file():
        return {"train": _read_file(path, src_lang, tgt_lang)}
    files = {}
    for child in sorted(path.iterdir()):
        split = _split_name(child)
        if child.is_file() and child.suffix.lower() in _LOCAL_SUFFIXES and split is not None:
            if split in files:
                raise ValueError(f"Two files for split {split!r} in {path}: {files[split].name} and {child.name}.")
            files[split] = child
    if not files:
        raise CorpusUnavailableError(
            f"No train/validation/test JSONL, TSV or parquet files in directory {path} (expected names like "
            "train.jsonl, valid.tsv, test.parquet)."
        )
    return {split: _read_file(file, src_lang, tgt_lang) for split, file in files.items()}


def _read_file(path: Path, src_lang: str, tgt_lang: str) -> Dataset:
    """Read one JSONL/TSV/parquet file into a Dataset of ``translation`` rows."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        table = Dataset.from_parquet(str(path))
        assert isinstance(table, Dataset)
        return _normalise_columns(table, src_lang, tgt_lang, str(path))
    rows: list[dict[str, str]] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            if suffix in (".jsonl", ".json"):
                rows.append(_json_row(line, src_lang, tgt_lang, f"{path}:{number}"))
            else:
                fields = line.rstrip("\n").rstrip("\r").split("\t")
                if len(fields) != 2:
                    raise ValueError(
                        f"{path}:{number}: expected 2 tab-separated columns (src<TAB>tgt), got {len(fields)}."
                    )
                rows.append({src_lang: fields[0].strip(), tgt_lang: fields[1].strip()})
    if not rows:
        raise ValueError(f"{path} holds no sentence pairs.")
    return _to_dataset(rows, src_lang, tgt_lang)


def _json_row(line: str, src_lang: str, tgt_lang: str, where: str) -> dict[str, str]:
    record: Any = json.loads(line)
    pair = record.get("translation", record) if isinstance(record, dict) else None
    if not isinstance(pair, dict) or src_lang not in pair or tgt_lang not in pair:
        raise ValueError(
            f"{where}: expected {{'translation': {{'{src_lang}': ..., '{tgt_lang}': ...}}}} or flat "
            f"{{'{src_lang}': ..., '{tgt_lang}': ...}}, got {line.strip()[:120]!r}."
        )
    return {src_lang: str(pair[src_lang]), tgt_lang: str(pair[tgt_lang])}


def _normalise_columns(table: Dataset, src_lang: str, tgt_lang: str, where: str) -> Dataset:
    """Bring a Dataset with a ``translation`` column or flat language columns to ``translation`` rows only."""
    columns = table.column_names
    if "translation" in columns:
        first = table[0]["translation"] if len(table) else {src_lang: "", tgt_lang: ""}
        if src_lang not in first or tgt_lang not in first:
            raise ValueError(
                f"{where}: the translation column has keys {sorted(first)}, not {src_lang!r}/{tgt_lang!r}."
            )
        if columns == ["translation"] and set(first) == {src_lang, tgt_lang}:
            return table  # already in shape: no rewrite of a multi-million-row corpus

        def pick(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
            return {"translation": [{src_lang: t[src_lang], tgt_lang: t[tgt_lang]} for t in batch["translation"]]}

        return table.map(pick, batched=True, remove_columns=columns)
    if src_lang in columns and tgt_lang in columns:

        def join(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
            return {"translation": [{src_lang: s, tgt_lang: t} for s, t in zip(batch[src_lang], batch[tgt_lang])]}

        return table.map(join, batched=True, remove_columns=columns)
    raise ValueError(
        f"{where}: expected a 'translation' column or columns {src_lang!r} and {tgt_lang!r}, got {columns}."
    )


def _load_hub(
    dataset_id: str, config_name: str | None, revision: str | None, src_lang: str, tgt_lang: str
) -> dict[str, Dataset]:
    """Load a Hub dataset, turning any failure to fetch it into an error that names the offline alternatives."""
    try:
        loaded = datasets.load_dataset(dataset_id, config_name, revision=revision)
    except Exception as error:  # noqa: BLE001 - any failure here means "not available", re-raised with the fix
        offline = os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = " (offline mode is on: HF_DATASETS_OFFLINE/HF_HUB_OFFLINE=1)" if offline else ""
        raise CorpusUnavailableError(
            f"Could not load Hub dataset {dataset_id!r}"
            + (f" config {config_name!r}" if config_name else "")
            + (f" revision {revision!r}" if revision else "")
            + f"{hint}: {type(error).__name__}: {error}. Without network access use a local JSONL/TSV/parquet file, "
            "or the built-in corpora 'ding' (after `apt-get install trans-de-en`) or 'toy' ('auto' picks one)."
        ) from error
    if not isinstance(loaded, DatasetDict):
        raise ValueError(f"Hub dataset {dataset_id!r} did not load as a DatasetDict of splits.")
    splits: dict[str, Dataset] = {}
    for name, split in loaded.items():
        ours = _SPLIT_ALIASES.get(name.lower())
        if ours is not None and ours not in splits:
            splits[ours] = _normalise_columns(split, src_lang, tgt_lang, f"{dataset_id}[{name}]")
    return splits
