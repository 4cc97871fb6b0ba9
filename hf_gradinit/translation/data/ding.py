"""Sentence pairs from the Ding German-English dictionary (Debian package `trans-de-en`), extracted at run time.

The dictionary (Frank Richter, TU Chemnitz) is GPL-licensed, so it is never shipped with this package: the user
installs it (`apt-get install trans-de-en`) and the pairs are extracted from `/usr/share/trans/de-en` on demand.
Besides headwords it holds ~17k real example sentences with translations, enough for a small real-text MT task.

Line format: ``German :: English``; each side is a ``" | "``-separated list of aligned slots (slot i of one side
translates slot i of the other), ``";"`` separates alternatives inside a slot, and ``{}``, ``[]``, ``()``, ``<>``
hold annotations (gender, domain, register, explanations); ``#`` starts a comment line.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import CorpusUnavailableError

DING_PATH = Path("/usr/share/trans/de-en")

_ANNOTATION = re.compile(r"\{[^{}]*\}|\[[^\[\]]*\]|\([^()]*\)|<[^<>]*>")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?])")
# Placeholders of dictionary phrase templates ("jdm. etw. geben", "to give sb. sth."): not real sentences.
_PLACEHOLDER = re.compile(
    r"(?<![\w-])(etw|jd[mnrs]?|sth|sb|so|jds|js|o\.\s?ä|u\.\s?a|usw|etc|z\.\s?B|e\.\s?g|i\.\s?e)\.(?!\w)",
    re.IGNORECASE,
)
_FINAL = re.compile(r"[.!?][\"'»«“”’]?$")
# A slot that is a dictionary template or an elided form rather than a full sentence.
_REJECT_CHARS = ("/", "…", "...", "=", "~", "+", "::")
_MIN_WORDS = 3
_MAX_WORDS = 60


def strip_annotations(text: str) -> str:
    """Remove ``{}``/``[]``/``()``/``<>`` annotations (nested ones too) and normalise whitespace."""
    previous = None
    while previous != text:
        previous, text = text, _ANNOTATION.sub(" ", text)
    text = " ".join(text.split())
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text)


def is_sentence(text: str) -> bool:
    """Whether an (annotation-free) alternative looks like an example sentence, not a headword or template.

    Rules: starts with an upper-case letter, digit or quote; 3-60 words; ends with ``.``, ``!`` or ``?`` (optionally
    followed by a closing quote); no unbalanced annotation brackets; no slash alternatives (``argue/quarrel``),
    ellipses or placeholders (``etw.``, ``jdm.``, ``sth.``, ``sb.``) that mark dictionary templates.
    """
    if not text or not (text[0].isupper() or text[0].isdigit() or text[0] in "\"'„»“"):
        return False
    if not _FINAL.search(text):
        return False
    words = text.split()
    if not _MIN_WORDS <= len(words) <= _MAX_WORDS:
        return False
    if any(ch in text for ch in "{}[]()<>") or any(mark in text for mark in _REJECT_CHARS):
        return False
    return _PLACEHOLDER.search(text) is None


def _first_sentence(slot: str) -> str | None:
    """The first alternative of a slot that is a sentence, annotations removed."""
    for alternative in _split_alternatives(slot):
        cleaned = strip_annotations(alternative)
        if is_sentence(cleaned):
            return cleaned
    return None


def _split_alternatives(slot: str) -> list[str]:
    """Split a slot on ``;`` outside brackets (annotations may contain ``;``)."""
    parts, depth, current = [], 0, []
    for ch in slot:
        if ch in "{[(<":
            depth += 1
        elif ch in "}])>" and depth:
            depth -= 1
        if ch == ";" and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def parse_ding_line(line: str) -> list[tuple[str, str]]:
    """Sentence pairs of one dictionary line: for every aligned slot pair, the first sentence-like alternative of
    each side. Lines whose sides have different slot counts are skipped (the alignment is unknown)."""
    line = unicodedata.normalize("NFC", line.strip())
    if not line or line.startswith("#") or " :: " not in line:
        return []
    german, english = line.split(" :: ", 1)
    de_slots, en_slots = german.split(" | "), english.split(" | ")
    if len(de_slots) != len(en_slots):
        return []
    pairs = []
    for de_slot, en_slot in zip(de_slots, en_slots):
        de, en = _first_sentence(de_slot), _first_sentence(en_slot)
        if de is not None and en is not None:
            pairs.append((de, en))
    return pairs


def iter_ding_pairs(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(German, English) sentence pairs of dictionary lines, in file order, exact duplicates removed."""
    seen: set[tuple[str, str]] = set()
    for line in lines:
        for pair in parse_ding_line(line):
            if pair not in seen:
                seen.add(pair)
                yield pair


def extract_ding_pairs(path: str | Path = DING_PATH) -> list[tuple[str, str]]:
    """All (German, English) example-sentence pairs of the Ding dictionary file at `path`, deduplicated."""
    path = Path(path)
    if not path.is_file():
        raise CorpusUnavailableError(
            f"The Ding dictionary file {str(path)!r} does not exist. Install it with "
            "`sudo apt-get install trans-de-en` (Debian/Ubuntu; GPL, not shipped with hf_gradinit), pass its path, "
            "or use the generated corpus `toy` instead."
        )
    with path.open(encoding="utf-8", errors="replace") as handle:
        return list(iter_ding_pairs(handle))
