"""The fine-tune's loss and score picture, drawn headless from a recorded loss history; and
what the Slack report says with or without it."""

import math
import struct
import sys
from pathlib import Path

import pytest

from bot.slack.finetune_job import picture_blocks
from finetune.picture import PictureUnavailable, draw_history

# 30 steps' losses as a real run of the wifi examples recorded them (one resumed at step 10
# from an older checkpoint would start with NaNs: drawn as a gap)
LOSSES = [3.1, 2.9, 2.6, 2.2, 1.9, 1.5, 1.2, 0.95, 0.8, 0.62] + [0.5 - 0.015 * i for i in range(20)]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_loss_curve_and_scores_are_drawn_as_a_png(tmp_path: Path):
    scores = {"current": 0.25, "Q8_0": 0.75, "Q4_K_M": 0.5}
    path = draw_history(LOSSES, scores, tmp_path / "run" / "picture.png", title="ft-1")
    assert png_size(path) == (800, 320) and path.stat().st_size > 10_000
    gap = draw_history([math.nan] * 10 + LOSSES[10:], scores, tmp_path / "resumed.png")
    assert png_size(gap) == (800, 320)


def test_without_matplotlib_the_report_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed
    with pytest.raises(PictureUnavailable, match="matplotlib is not installed"):
        draw_history(LOSSES, {"current": 0.5}, tmp_path / "picture.png")
    assert not (tmp_path / "picture.png").exists()


def test_the_report_shows_the_uploaded_picture():
    [text] = picture_blocks("Fine-tune done.", None)
    assert text["text"]["text"] == "Fine-tune done."
    _, image = picture_blocks("Fine-tune done.", "F123")
    assert image["type"] == "image" and image["slack_file"] == {"id": "F123"}
