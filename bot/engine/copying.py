"""Commands are copied from the sources, never made up.

Asked "How do I connect to the VPN?", the small model writes a command the way commands
usually look, with flags no page has (`kvpn connect --key <your_vpn_key>`), and a reader
pastes it. While the answer is inside `inline code` or a fenced block, `CodeCopy` lets the
model choose only among its likeliest tokens those that keep the code a verbatim piece of the
sources (or of the question), or that end the code where it stands. Prose is left alone:
figures are checked after the answer instead (`unsupported_figures`), since forcing a figure
the sources hold turns a flagged invention into a plausible wrong one (docs/quality.md,
round 8).
"""

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

FENCE = "```"
CANDIDATES = 64  # the likeliest tokens considered at each step inside code


def open_code(text: str) -> tuple[str, str] | None:
    """Where the answer so far stands: None in prose, else ("inline", the code so far) or
    ("block", the current line of a fenced block so far). A fence's language tag is free."""
    if text.count(FENCE) % 2:
        body = text[text.rfind(FENCE) + len(FENCE) :]
        if "\n" not in body:
            return None  # the language tag ("bash")
        return "block", body[body.rfind("\n") + 1 :]
    prose = text.replace(FENCE, "")
    if prose.count("`") % 2:
        return "inline", prose[prose.rfind("`") + 1 :]
    return None


def keeps_copy(kind: str, code: str, piece: str, source: str) -> bool:
    """Whether writing `piece` next keeps the code a piece of `source`: it continues one, or
    it ends the code (a backtick, or the block's line) after a piece that is one."""
    if kind == "block" and not code and piece.startswith(FENCE):
        return True  # the block ends
    end = piece.find("`" if kind == "inline" else "\n")
    head = piece if end < 0 else piece[:end]
    written = code + head
    if not written:
        return kind == "block"  # an empty line in a block; never an empty inline span
    return written in source


class CodeCopy:
    """A logits processor: inside code, only tokens that copy the sources stay possible.

    `source` is the text the code must come from (the prompt's sources and the question).
    The answer's start is where the first call finds the prompt's end. When none of the
    likeliest tokens copies, the code ends where it stands if it is a copy so far; an empty
    span, or one that is no copy already, is left to the model (single characters of the
    sources nearly always copy, so this is rare).
    """

    def __init__(
        self,
        detokenize: Callable[[list[int]], bytes],
        tokenize: Callable[..., list[int]],
        source: str,
    ) -> None:
        self.detokenize = detokenize
        self.source = source
        self.start: int | None = None
        self.pieces: dict[int, str] = {}
        self.closers = {
            kind: tokenize(end.encode("utf-8"), add_bos=False)[:1]
            for kind, end in (("inline", "`"), ("block", "\n"))
        }

    def _piece(self, token: int) -> str:
        piece = self.pieces.get(token)
        if piece is None:
            piece = self.pieces[token] = self.detokenize([token]).decode("utf-8", "ignore")
        return piece

    def __call__(self, input_ids: npt.NDArray[np.intc], scores: npt.NDArray[np.single]) -> Any:
        if self.start is None:
            self.start = len(input_ids)
        written = [int(token) for token in input_ids[self.start :]]
        where = open_code(self.detokenize(written).decode("utf-8", "ignore") if written else "")
        if where is None:
            return scores
        kind, code = where
        likely = np.argpartition(-scores, CANDIDATES)[:CANDIDATES]
        keep: Sequence[int] = [
            int(token)
            for token in likely
            if np.isfinite(scores[token])
            and keeps_copy(kind, code, self._piece(int(token)), self.source)
        ]
        if not keep:
            if not code or code not in self.source:
                return scores
            keep = self.closers[kind]
        kept = scores[keep].copy()
        scores[:] = -np.inf
        scores[keep] = kept
        return scores
