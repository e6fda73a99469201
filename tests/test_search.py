"""Hybrid search over the sample handbook: keywords, paraphrases, and unrelated questions."""

from pathlib import Path

from retrieval.retriever import Retriever


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
