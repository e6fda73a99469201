"""Sections → chunks sized in embedding-model tokens, each carrying its heading path.

Chunks break at paragraph, then sentence, then token boundaries, and neighbouring chunks of
one section share `overlap` tokens so a fact split across a boundary is still found whole.
"""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from retrieval.documents import Section

CountTokens = Callable[[Sequence[str]], list[int]]
SplitTokens = Callable[[str, int], list[str]]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])|\n")


@dataclass(frozen=True)
class Chunk:
    heading: str  # "Title › Section › Subsection"
    body: str

    @property
    def text(self) -> str:
        """What is embedded and what the model reads: heading context, then the body."""
        return f"{self.heading}\n{self.body}" if self.heading else self.body


def heading_path(title: str, headings: tuple[str, ...]) -> str:
    parts = list(headings)
    if not parts or parts[0] != title:
        parts.insert(0, title)
    return " › ".join(part for part in parts if part)


@dataclass(frozen=True)
class _Piece:
    text: str
    tokens: int
    joiner: str  # what goes before it when it follows another piece: paragraph, line or space


def _sentences(body: str) -> list[tuple[str, str]]:
    """(sentence, joiner) in order; the joiner keeps paragraph and line breaks."""
    out: list[tuple[str, str]] = []
    for paragraph in re.split(r"\n\s*\n", body):
        for line_number, line in enumerate(paragraph.splitlines()):
            sentences = [s.strip() for s in _SENTENCE_END.split(line) if s.strip()]
            for number, sentence in enumerate(sentences):
                joiner = " " if number else ("\n" if line_number else "\n\n")
                out.append((sentence, joiner))
    return out


def sentences(body: str) -> list[str]:
    """The sentences of a text, list items and table rows each on their own."""
    return [sentence for sentence, _ in _sentences(body)]


def chunk_document(
    title: str,
    sections: Sequence[Section],
    *,
    count_tokens: CountTokens,
    split_tokens: SplitTokens,
    size: int,
    overlap: int,
) -> list[Chunk]:
    chunks: list[Chunk] = []
    for section in sections:
        heading = heading_path(title, section.headings)
        budget = max(16, size - count_tokens([heading])[0] - 1)
        pieces = _fit(_sentences(section.text), budget, count_tokens, split_tokens)
        if not pieces:
            chunks.append(Chunk(heading, ""))
            continue
        chunks.extend(Chunk(heading, body) for body in _pack(pieces, budget, overlap))
    return chunks


def _fit(
    sentences: list[tuple[str, str]],
    budget: int,
    count_tokens: CountTokens,
    split_tokens: SplitTokens,
) -> list[_Piece]:
    """Pieces none of which is over budget; an over-long sentence is cut at token windows."""
    pieces: list[_Piece] = []
    counts = count_tokens([text for text, _ in sentences]) if sentences else []
    for (text, joiner), tokens in zip(sentences, counts, strict=True):
        if tokens <= budget:
            pieces.append(_Piece(text, tokens, joiner))
            continue
        windows = split_tokens(text, budget)
        for number, (window, window_tokens) in enumerate(
            zip(windows, count_tokens(windows), strict=True)
        ):
            pieces.append(_Piece(window, window_tokens, joiner if number == 0 else " "))
    return pieces


def _join(pieces: list[_Piece]) -> str:
    return pieces[0].text + "".join(piece.joiner + piece.text for piece in pieces[1:])


def _pack(pieces: list[_Piece], budget: int, overlap: int) -> list[str]:
    """Greedy packing; a new chunk starts with the previous one's tail up to `overlap` tokens."""
    bodies: list[str] = []
    current: list[_Piece] = []
    used = 0
    for piece in pieces:
        if current and used + piece.tokens > budget:
            bodies.append(_join(current))
            tail: list[_Piece] = []
            for previous in reversed(current):
                carried = sum(p.tokens for p in tail) + previous.tokens
                if carried > overlap or carried + piece.tokens > budget:
                    break
                tail.insert(0, previous)
            current = tail
            used = sum(p.tokens for p in tail)
        current.append(piece)
        used += piece.tokens
    if current:
        bodies.append(_join(current))
    return bodies
