"""The grounded default model: its training chats, its install from the shipped adapter, and
the answers a new user gets from it on the sample handbook."""

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.engine.answer import AnswerService
from bot.engine.llm import LlmEngine, load_engine
from bot.settings import Settings
from finetune.base import FinetuneError
from finetune.grounded import ADAPTER, DOCUMENTS, FILE, QUESTIONS, grounded_file
from finetune.grounded.corpus import CITE, load_questions, plain
from finetune.grounded.examples import build_examples
from finetune.grounded.install import install, shipped
from retrieval.context import REFUSAL, SYSTEM_PROMPT
from retrieval.embeddings import Embedder
from retrieval.errors import ModelFilesError
from retrieval.evaluation import contains
from retrieval.indexer import Indexer
from retrieval.retriever import Retriever
from retrieval.store import open_store
from tests.conftest import MODELS

SOME = {"a-release-process.md", "b-procurement-approval.md", "c-saas-pricing.md"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Retriever]:
    """Three training documents, indexed by the real indexer as the recipe does."""
    root = tmp_path_factory.mktemp("grounded")
    folder = root / "documents"
    folder.mkdir()
    for name in SOME:
        shutil.copyfile(DOCUMENTS / name, folder / name)
    settings = Settings(_env_file=None, data_dir=root / "data")  # type: ignore[call-arg]
    store = open_store(settings.qdrant, settings.data_dir)
    Indexer(embedder=embedder, store=store, settings=settings.retrieval).index_paths([folder])
    yield Retriever(embedder=embedder, store=store, settings=settings.retrieval)
    store.close()


def test_training_chats_are_the_prompts_ajuste_serves(corpus: Retriever) -> None:
    questions = [q for q in load_questions(QUESTIONS, DOCUMENTS) if q.doc in SOME]
    by_question = {q.answer.question: q for q in questions if q.answer is not None}

    def search(query: str, limit: int) -> list:  # type: ignore[type-arg]
        return corpus.search(query, limit=limit)

    built = build_examples(questions, search, held_out={"c-saas-pricing.md"}, seed=5)
    again = build_examples(questions, search, held_out={"c-saas-pricing.md"}, seed=5)
    assert built.train == again.train and built.eval == again.eval  # seeded
    assert built.counts["answered"] > 50 and built.counts["refused: unanswerable question"] > 5
    chats = built.train + built.eval
    for chat in chats:
        system, *_, user, reply = chat
        assert system == {"role": "system", "content": SYSTEM_PROMPT}
        assert user["content"].startswith("Sources:\n\n[1] ")
        blocks = user["content"].split("\n\n[")
        assert 2 <= len(blocks) <= 5  # two to four chunks, some of one document
        question = user["content"].rsplit("\n\nQuestion: ", 1)[1]
        item = by_question.get(question)
        if reply["content"] == REFUSAL or item is None or item.answer is None:
            continue
        assert CITE not in reply["content"]
        cited = int(reply["content"].split("[", 1)[1].split("]", 1)[0])
        cited_text = next(b for b in blocks if b.lstrip("[").startswith(f"{cited}]"))
        assert plain(item.answer.support) in plain(cited_text)  # the citation is the source
        assert plain(item.answer.reference) in plain(reply["content"])
    held = [chat for chat in built.eval if "Tallyflow" not in chat[-2]["content"]]
    assert len(held) < len(built.eval) and built.eval  # held-out questions stay in eval


def test_a_question_whose_passage_is_not_in_its_document_is_refused(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\nThe fee is EUR 35.\n")
    (tmp_path / "q").mkdir()
    line = {
        "doc": "a.md",
        "question": "Fee?",
        "support": "The fee is EUR 40.",
        "reference": "EUR 40",
        "reply": "EUR 40 [S].",
    }
    (tmp_path / "q" / "x.jsonl").write_text(json.dumps(line) + "\n")
    with pytest.raises(FinetuneError, match=r"x\.jsonl:1: `support` is not a passage"):
        load_questions(tmp_path / "q", tmp_path / "docs")


needs_adapter = pytest.mark.skipif(not shipped(), reason="no adapter in finetune/grounded/")


@needs_adapter
def test_the_shipped_adapter_installs_checked_and_once(tmp_path: Path) -> None:
    """Merge + quantize + probe answer on a fresh models dir; then a verified no-op."""
    base = MODELS / "SmolLM2-135M-Instruct-Q4_1" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    models = tmp_path / "models"
    models.mkdir()
    model, built = install(base, models)
    assert built and model.file == grounded_file(models) and model.file.name == FILE
    assert model.provenance["data_sha256"] and model.provenance["base_sha256"]
    assert install(base, models)[1] is False

    broken = tmp_path / "adapter"
    shutil.copytree(ADAPTER, broken)
    config = json.loads((broken / "adapter_config.json").read_text())
    (broken / "adapter_config.json").write_text(json.dumps(config | {"lora_alpha": 4000}))
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(ModelFilesError, match="failed its check"):
        install(base, other, adapter=broken)
    assert list(other.iterdir()) == []  # nothing half-installed


@needs_adapter
def test_a_new_user_gets_grounded_answers_with_evidence(
    handbook: tuple[Retriever, Path], models_dir: Path
) -> None:
    """First questions through the default model and the real index: right figures, quoted
    with the rule they come from, and a near miss declined."""
    engine = load_engine(Settings(_env_file=None).llm, models_dir)  # type: ignore[call-arg]
    assert isinstance(engine, LlmEngine) and engine.path == grounded_file(models_dir)
    answers = AnswerService(retriever=handbook[0], engine=engine, settings=Settings().llm)
    password = answers.answer("What is the minimum length of a Kestrel ID password?")
    assert contains(password.text, "14 characters"), password.text
    assert contains(" ".join(quote.text for quote in password.evidence), "14 characters")
    dress = answers.answer("Is there a dress code at the Porto office?")  # the handbook is silent
    assert dress.text == REFUSAL and dress.declines, dress.text
    # under "I don't know", at most the one sentence closest to the question, never support
    assert len(dress.evidence) <= 1 and all(quote.focus for quote in dress.evidence)
    for question, rule, figure in [
        ("How many vacation days do I get per year?", "25 working days", "25 working days"),
        ("Can I expense a business class flight?", "business class is allowed only", "6 hours"),
    ]:
        answer = answers.answer(question)  # right since the question's sentence steers it
        assert contains(answer.text, figure), (question, answer.text)
        quoted = " ".join(quote.text for quote in answer.evidence)
        assert contains(quoted, rule), (question, quoted)
    vpn = answers.answer("How do I connect to the VPN?")  # a command is copied, never made up
    blocks = re.findall(r"```[^\n]*\n(.*?)(?:```|$)", vpn.text, flags=re.S)
    prose = re.sub(r"```.*?(?:```|$)", "", vpn.text, flags=re.S)
    commands = re.findall(r"`([^`\n]+)`", prose) + [
        line.strip() for block in blocks for line in block.splitlines() if line.strip()
    ]
    page = (handbook[1] / "it-and-vpn.md").read_text()
    assert commands and all(command in page for command in commands), vpn.text
