"""Builds the services a command needs from settings, each heavy object in one place."""

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType

from bot.engine.answer import AnswerService
from bot.engine.generation import Engine
from bot.engine.llm import load_engine
from bot.settings import Settings
from finetune.registry import ModelRegistry
from retrieval.embeddings import Embedder, load_embedder
from retrieval.errors import AjusteError
from retrieval.indexer import FILES_SOURCE, Indexer, IndexReport, Progress, require_paths
from retrieval.retriever import Retriever
from retrieval.runner import SourceRunner
from retrieval.runs import RunLog
from retrieval.sources.config import SourceConfig, SourceContext, build_source, load_sources
from retrieval.store import ChunkStore, Scope, open_store


class Services(AbstractContextManager["Services"]):
    """The index, the embedder and (on first use) the model, opened for one command or server."""

    def __init__(self, settings: Settings, *, holder: str = "ajuste") -> None:
        self.settings = settings
        self.sources = load_sources(self.sources_file)  # a bad file stops us before the index
        self.embedder: Embedder = load_embedder(settings.embedding, settings.models_dir)
        self.store: ChunkStore = open_store(settings.qdrant, settings.data_dir, holder=holder)
        self._engine: Engine | None = None
        self.runs = RunLog(settings.data_dir)
        self.runner = SourceRunner(
            indexer=self.indexer, runs=self.runs, locks_dir=settings.data_dir / "locks"
        )

    @property
    def sources_file(self) -> Path:
        return self.settings.scheduler.sources_file or self.settings.data_dir / "sources.yaml"

    @property
    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.settings.registry_dir)

    @property
    def source_context(self) -> SourceContext:
        return SourceContext(self.settings.retrieval, self.settings.data_dir / "source-state")

    @property
    def indexer(self) -> Indexer:
        return Indexer(embedder=self.embedder, store=self.store, settings=self.settings.retrieval)

    def index(
        self,
        paths: Sequence[Path],
        *,
        on_problem: Callable[[str], None] | None = None,
        on_progress: Progress | None = None,
    ) -> IndexReport:
        """Index files and folders as the ad-hoc `files` source (what `ajuste index PATH` does)."""
        require_paths(paths)
        return self.runner.run(
            self.indexer.files_source(paths, FILES_SOURCE),
            paths=[str(p.resolve()) for p in paths],
            on_problem=on_problem,
            on_progress=on_progress,
        )

    def source_names(self) -> list[str]:
        """Declared sources, then the ad-hoc `files` source once `ajuste index` has run."""
        names = [config.name for config in self.sources]
        last = self.runs.last(FILES_SOURCE)
        if FILES_SOURCE not in names and last is not None and last.paths:
            names.append(FILES_SOURCE)
        return names

    def source_config(self, name: str) -> SourceConfig | None:
        return next((config for config in self.sources if config.name == name), None)

    def run_source(
        self,
        name: str,
        *,
        on_problem: Callable[[str], None] | None = None,
        on_progress: Progress | None = None,
    ) -> IndexReport:
        """Index one source now: a declared one, or `files` over the paths last indexed."""
        config = self.source_config(name)
        if config is not None:
            return self.runner.run(
                build_source(config, self.source_context),
                on_problem=on_problem,
                on_progress=on_progress,
            )
        last = self.runs.last(name)
        if name == FILES_SOURCE and last is not None and last.paths:
            return self.index(
                [Path(p) for p in last.paths], on_problem=on_problem, on_progress=on_progress
            )
        known = ", ".join(self.source_names()) or f"none: declare some in {self.sources_file}"
        raise AjusteError(f"No source called '{name}'. Known sources: {known}.")

    def channel_scope(self, channel: str | None) -> Scope:
        """What a question asked in `channel` may see (None: outside Slack, the console)."""
        mapped = self.settings.slack.channel_sources.get(channel) if channel else None
        hidden = tuple(
            c.name for c in self.sources if c.visible_in is not None and channel not in c.visible_in
        )
        return Scope(
            sources=tuple(mapped) if mapped is not None else None, hidden=hidden, channel=channel
        )

    def readiness(self) -> dict[str, bool]:
        """For /readyz: the model is loaded (or its server answers) and the index answers."""
        return {
            "model": self._engine is not None and self._engine.ready(),
            "index": self.store.reachable(),
        }

    def load_model(self) -> Engine:
        if self._engine is None:
            self._engine = load_engine(self.settings.llm, self.settings.models_dir, self.registry)
        return self._engine

    @property
    def engine(self) -> Engine:
        return self.load_model()

    @property
    def retriever(self) -> Retriever:
        return Retriever(embedder=self.embedder, store=self.store, settings=self.settings.retrieval)

    @property
    def answers(self) -> AnswerService:
        return AnswerService(
            retriever=self.retriever, engine=self.engine, settings=self.settings.llm
        )

    def close(self) -> None:
        self.store.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
