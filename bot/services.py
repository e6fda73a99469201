"""Builds the services a command needs from settings, each heavy object in one place."""

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType

from bot.answer import AnswerService
from bot.llm import LlmEngine, load_engine
from bot.settings import Settings
from retrieval.embeddings import Embedder, load_embedder
from retrieval.indexer import FILES_SOURCE, Indexer, IndexReport
from retrieval.retriever import Retriever
from retrieval.runs import RunLog, SourceRun, now
from retrieval.store import ChunkStore, open_store


class Services(AbstractContextManager["Services"]):
    """The index, the embedder and (on first use) the model, opened for one command or server."""

    def __init__(self, settings: Settings, *, holder: str = "ajuste") -> None:
        self.settings = settings
        self.embedder: Embedder = load_embedder(settings.embedding, settings.models_dir)
        self.store: ChunkStore = open_store(settings.qdrant, settings.data_dir, holder=holder)
        self._engine: LlmEngine | None = None
        self.runs = RunLog(settings.data_dir)

    @property
    def indexer(self) -> Indexer:
        return Indexer(embedder=self.embedder, store=self.store, settings=self.settings.retrieval)

    def index(
        self,
        paths: Sequence[Path],
        *,
        source: str = FILES_SOURCE,
        on_problem: Callable[[str], None] | None = None,
    ) -> IndexReport:
        """Index and record the run, whoever asked: the CLI, Slack's /reindex or a schedule."""
        run = SourceRun(source, [str(p.resolve()) for p in paths], started=now())
        self.runs.record(run)
        try:
            report = self.indexer.index_paths(paths, source=source, on_problem=on_problem)
        except Exception as error:
            self.runs.finish(run, None, str(error))
            raise
        self.runs.finish(run, report, None)
        return report

    @property
    def retriever(self) -> Retriever:
        return Retriever(embedder=self.embedder, store=self.store, settings=self.settings.retrieval)

    def load_model(self) -> LlmEngine:
        if self._engine is None:
            self._engine = load_engine(self.settings.llm, self.settings.models_dir)
        return self._engine

    @property
    def engine(self) -> LlmEngine:
        return self.load_model()

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
