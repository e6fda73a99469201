"""Shared fixtures: the real default models, loaded once per session; settings built directly."""

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.engine.llm import LlmEngine, load_engine, resolve_model_path
from bot.models import pull_defaults
from bot.settings import LlmSettings, Settings
from retrieval.embeddings import Embedder, load_embedder
from retrieval.indexer import Indexer
from retrieval.retriever import Retriever
from retrieval.store import ChunkStore, open_store

REPO = Path(__file__).resolve().parent.parent
KNOWLEDGE = REPO / "examples" / "knowledge"
MODELS = Path(os.environ.get("AJUSTE_TEST_MODELS_DIR", REPO / "data" / "models"))


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's AJUSTE_ variables (Bolt's tests clear theirs too)."""
    for name in list(os.environ):
        if name.startswith("AJUSTE_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def models_dir() -> Path:
    pull_defaults(MODELS)  # verified and quick when `make setup` already fetched them
    return MODELS


@pytest.fixture(scope="session")
def default_model(models_dir: Path) -> Path:
    """The GGUF served when nothing else is chosen (the grounded build, once pulled)."""
    return resolve_model_path(LlmSettings(), models_dir)


@pytest.fixture
def make_settings(tmp_path: Path, models_dir: Path) -> Callable[..., Settings]:
    """Settings on a fresh data dir that shares the session's model files."""

    def make(**overrides: Any) -> Settings:
        data_dir = overrides.pop("data_dir", tmp_path / "data")
        data_dir.mkdir(parents=True, exist_ok=True)
        if not (data_dir / "models").exists():
            (data_dir / "models").symlink_to(models_dir)
        return Settings(_env_file=None, data_dir=data_dir, **overrides)  # type: ignore[call-arg]

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture(scope="session")
def embedder(models_dir: Path) -> Embedder:
    return load_embedder(Settings(_env_file=None).embedding, models_dir)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def engine(models_dir: Path) -> LlmEngine:
    return load_engine(Settings(_env_file=None).llm, models_dir)  # type: ignore[call-arg]


@pytest.fixture
def store(settings: Settings) -> Iterator[ChunkStore]:
    opened = open_store(settings.qdrant, settings.data_dir)
    yield opened
    opened.close()


@pytest.fixture
def indexer(embedder: Embedder, store: ChunkStore, settings: Settings) -> Indexer:
    return Indexer(embedder=embedder, store=store, settings=settings.retrieval)


@pytest.fixture(scope="module")
def handbook(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> Iterator[tuple[Retriever, Path]]:
    """The sample knowledge base, indexed once per module; (retriever, copy of the folder)."""
    root = tmp_path_factory.mktemp("handbook")
    folder = root / "knowledge"
    shutil.copytree(KNOWLEDGE, folder)
    settings = Settings(_env_file=None, data_dir=root / "data")  # type: ignore[call-arg]
    store = open_store(settings.qdrant, settings.data_dir)
    Indexer(embedder=embedder, store=store, settings=settings.retrieval).index_paths([folder])
    yield Retriever(embedder=embedder, store=store, settings=settings.retrieval), folder
    store.close()
