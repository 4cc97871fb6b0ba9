"""The one error type of the data layer, so callers (scripts, the CLI) can catch "corpus not available" cleanly."""

from __future__ import annotations


class CorpusUnavailableError(OSError):
    """A corpus cannot be loaded here (file missing, Hub unreachable); the message names the fix."""
