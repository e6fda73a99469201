"""What every benchmark shares: settings on a scratch data dir, a corpus, result rows."""

import random
import re
import resource
import shutil
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bot.settings import Settings

REPO = Path(__file__).resolve().parent.parent
KNOWLEDGE = REPO / "examples" / "knowledge"


@dataclass
class Row:
    name: str
    ours: str
    bare: str
    ratio: float
    target: str
    ok: bool


def scratch_settings(models_dir: Path) -> tuple[Settings, Path]:
    """Settings on a fresh temporary data dir that reuses the pulled models."""
    root = Path(tempfile.mkdtemp(prefix="ajuste-bench-"))
    (root / "data").mkdir()
    (root / "data" / "models").symlink_to(models_dir.resolve())
    return Settings(_env_file=None, data_dir=root / "data"), root  # type: ignore[call-arg]


def cleanup(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)


def make_corpus(folder: Path, documents: int, seed: int = 7) -> list[Path]:
    """`documents` Markdown files of three handbook paragraphs each, every one distinct."""
    paragraphs = [
        " ".join(part.split())
        for page in sorted(KNOWLEDGE.rglob("*.*"))
        for part in re.split(r"\n\s*\n", page.read_text(encoding="utf-8"))
        if len(part.split()) > 25
    ]
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(documents):
        body = "\n\n".join(rng.sample(paragraphs, 3))
        path = folder / f"doc-{number:04d}.md"
        path.write_text(f"# Document {number}\n\n## Notes\n\n{body}\n", encoding="utf-8")
        paths.append(path)
    return paths


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
