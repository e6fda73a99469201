"""Hybrid search over the sample handbook: keywords, paraphrases, and unrelated questions;
keywords in the team's language."""

from pathlib import Path

import pytest

from bot.settings import Settings
from retrieval.embeddings import load_embedder
from retrieval.errors import AjusteError
from retrieval.indexer import Indexer
from retrieval.retriever import Retriever
from retrieval.settings import EmbeddingSettings, SparseLanguage
from retrieval.store import ChunkStore, open_store


def top_files(retriever: Retriever, folder: Path, query: str, k: int = 3) -> list[str]:
    return [Path(hit.doc_id).name for hit in retriever.search(query, limit=k)]


def test_a_keyword_only_query_finds_its_document(handbook: tuple[Retriever, Path]):
    retriever, folder = handbook
    assert top_files(retriever, folder, "KST-5003")[0] == "support-escalation.md"
    assert top_files(retriever, folder, "tidewatch retention")[0] == "data-retention.txt"


def test_a_paraphrase_without_shared_keywords_finds_its_document(
    handbook: tuple[Retriever, Path],
):
    retriever, folder = handbook
    assert "leave-and-holidays.rst" in top_files(
        retriever, folder, "How long can I stay home after my baby is born?"
    )


def test_hits_carry_source_metadata_and_heading_context(handbook: tuple[Retriever, Path]):
    retriever, folder = handbook
    hit = retriever.search("VPN key rotation procedure", limit=1)[0]
    assert hit.location == str(folder / "it-and-vpn.md")
    assert hit.title == "IT and VPN Access"
    assert hit.heading.startswith("IT and VPN Access › ")
    assert hit.text.startswith(hit.heading + "\n")
    assert hit.source == "files"


def test_fusion_takes_the_best_of_both_rankings(handbook: tuple[Retriever, Path]):
    retriever, _ = handbook

    def first(query: str, mode: str) -> str:
        return Path(retriever.search(query, limit=3, mode=mode)[0].doc_id).name

    paraphrase = "Does the firm chip in for fillings and check-ups at the dentist?"
    assert first(paraphrase, "sparse") != "benefits-and-equipment.md"  # keywords miss it
    assert first(paraphrase, "hybrid") == first(paraphrase, "dense")
    assert first("KST-5003", "sparse") == first("KST-5003", "hybrid") == "support-escalation.md"
    assert retriever.search("KST-5003", limit=1)[0].keyword_coverage == 1.0


def test_an_unrelated_question_retrieves_nothing_related(handbook: tuple[Retriever, Path]):
    retriever, _ = handbook
    assert retriever.search("What is the capital of Mongolia?")  # ranked, yet...
    assert retriever.related("What is the capital of Mongolia?") == []
    assert retriever.related("Recipe for a chocolate cake") == []


def test_keywords_follow_the_teams_language(tmp_path: Path, models_dir: Path) -> None:
    """Spanish stemming and stopwords for a Spanish team; an index made for one language
    refuses the other with what to do, for searches and index runs alike."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "vacaciones.md").write_text(
        "# Vacaciones\n\nCada empleado tiene 25 días de vacaciones al año.\n"
    )
    (docs / "gastos.md").write_text(
        "# Gastos\n\nLos reembolsos de gastos se piden en el portal de la empresa.\n"
    )

    def index(data: str, language: SparseLanguage) -> tuple[Indexer, Retriever, ChunkStore]:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=tmp_path / data,
            embedding=EmbeddingSettings(sparse_language=language),
        )
        embedder = load_embedder(settings.embedding, models_dir)
        store = open_store(settings.qdrant, settings.data_dir)
        indexer = Indexer(embedder=embedder, store=store, settings=settings.retrieval)
        return (
            indexer,
            Retriever(embedder=embedder, store=store, settings=settings.retrieval),
            store,
        )

    indexer, spanish, store = index("es", "spanish")
    indexer.index_paths([docs])
    found = spanish.search("vacación", mode="sparse")  # the singular, stemmed alike
    assert found and found[0].location.endswith("vacaciones.md")
    assert spanish.search("de la", mode="sparse") == []  # function words only
    store.close()

    indexer, english, store = index("es", "english")
    with pytest.raises(AjusteError, match=r"made for spanish .* set it back to spanish"):
        english.search("vacaciones")
    with pytest.raises(AjusteError, match="AJUSTE_EMBEDDING__SPARSE_LANGUAGE"):
        indexer.index_paths([docs])
    store.close()

    indexer, english, store = index("en", "english")  # what the setting is for
    indexer.index_paths([docs])
    assert not any(
        h.location.endswith("vacaciones.md") for h in english.search("vacación", mode="sparse")
    )
    store.close()
