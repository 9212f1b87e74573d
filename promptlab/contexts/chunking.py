"""Split document text into overlapping chunks (pure).

Chunks are at most ``chunk_size`` characters and end at the best natural boundary available
(paragraph, line, sentence, word, in that order of preference), so retrieved passages read
as whole sentences where possible. Consecutive chunks share about ``overlap`` characters, so a
fact that straddles a boundary is whole in at least one chunk.

>>> [c.text for c in chunk_text("First sentence. Second one here.", chunk_size=20, overlap=0)]
['First sentence.', 'Second one here.']
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError

# Preferred break points, best first. Each is searched for in the last part of the window.
_SEPARATORS = ("\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ")
_SPACE = re.compile(r"\s")


@dataclass(frozen=True)
class Chunk:
    text: str
    start: int  # offsets into the document text
    end: int


def check_chunking(chunk_size: int, overlap: int) -> None:
    """Raise ConfigError unless ``0 <= overlap < chunk_size``."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 20:
        raise ConfigError(f"chunk_size must be an integer >= 20 (characters), got {chunk_size!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < chunk_size:
        raise ConfigError(f"overlap must be an integer with 0 <= overlap < chunk_size "
                          f"({chunk_size}), got {overlap!r}")


def chunk_text(text: str, chunk_size: int = 800, overlap: int = 100) -> list[Chunk]:
    """The chunks of ``text``; an empty or blank text has none."""
    check_chunking(chunk_size, overlap)
    n = len(text)
    chunks: list[Chunk] = []
    pos = _skip_space(text, 0)
    while pos < n:
        end = min(pos + chunk_size, n)
        if end < n:
            end = _break_point(text, pos, end, chunk_size)
        piece = text[pos:end]
        stripped = piece.strip()
        if stripped:
            lead = len(piece) - len(piece.lstrip())
            chunks.append(Chunk(stripped, pos + lead, pos + lead + len(stripped)))
        if end >= n:
            break
        pos = _next_start(text, pos, end, overlap)
    return chunks


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _break_point(text: str, start: int, end: int, chunk_size: int) -> int:
    # Only break in the second half of the window: a break near the start would make a tiny
    # chunk and many more chunks overall.
    floor = start + chunk_size // 2
    for separator in _SEPARATORS:
        at = text.rfind(separator, floor, end)
        if at != -1:
            return at + len(separator.rstrip()) if separator.strip() else at + len(separator)
    return end  # one very long word: cut it


def _next_start(text: str, start: int, end: int, overlap: int) -> int:
    if overlap == 0:
        return _skip_space(text, end)
    candidate = max(end - overlap, start + 1)
    # Start the overlap at a word boundary rather than mid-word.
    if candidate > 0 and not text[candidate - 1].isspace():
        match = _SPACE.search(text, candidate, end)
        candidate = match.end() if match else end
    return _skip_space(text, candidate)


__all__ = ["Chunk", "chunk_text", "check_chunking"]
