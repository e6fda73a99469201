"""The grounded model Ajuste ships: SmolLM2 fine-tuned to answer from numbered sources.

`corpus` reads the hand-written training documents and questions kept here, `examples` turns
them into the exact prompts Ajuste serves (real chunks, real retrieval, distractors,
follow-ups, questions the sources can't answer) and `merge` folds the trained adapter into
the base GGUF at `ajuste models pull`.
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent
DOCUMENTS = HERE / "documents"
QUESTIONS = HERE / "questions"
ADAPTER = HERE / "adapter"  # the committed LoRA adapter (a few MB)
PROVENANCE = "provenance.json"  # beside the adapter: its base, data, run and scores
NAME = "ajuste-grounded"
FILE = "ajuste-grounded.Q8_0.gguf"


def grounded_file(models_dir: Path) -> Path:
    """Where `ajuste models pull` puts the merged model."""
    return models_dir / NAME / FILE
