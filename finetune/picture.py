"""The fine-tune as a picture: the training loss by step, and held-out scores before and after.

Drawn headless with matplotlib's Agg canvas (no display, no pyplot state). matplotlib comes
with the `finetune` extra and is imported only here, so a machine without it still trains;
the report then says why there is no picture.
"""

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from retrieval.errors import AjusteError

PICTURE = "loss-and-scores.png"


class PictureUnavailable(AjusteError):
    """The picture can't be drawn here (matplotlib is missing)."""


def draw_history(
    losses: Sequence[float], scores: Mapping[str, float], path: Path, *, title: str = ""
) -> Path:
    """Loss curve on the left, `scores` (label → held-out score, 0 to 1) as bars on the right."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PictureUnavailable(
            "no loss picture: matplotlib is not installed (pip install 'ajuste[finetune]')"
        ) from None
    figure = Figure(figsize=(8, 3.2), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    loss_axes, score_axes = figure.subplots(1, 2, width_ratios=[2, 1])
    steps = range(1, len(losses) + 1)
    loss_axes.plot(steps, [x if math.isfinite(x) else math.nan for x in losses], color="#2c7fb8")
    loss_axes.set(xlabel="step", ylabel="training loss", title="Loss")
    loss_axes.grid(alpha=0.3)
    labels, values = list(scores), [scores[label] for label in scores]
    colors = ["#999999"] + ["#41ab5d"] * (len(labels) - 1)
    bars = score_axes.bar(labels, values, color=colors)
    score_axes.bar_label(bars, labels=[f"{v:.2f}" for v in values])
    score_axes.set(ylim=(0, 1.1), ylabel="held-out score", title="Before / after")
    if title:
        figure.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
