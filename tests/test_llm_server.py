"""The llama.cpp server backend against a real `llama_cpp.server` on loopback, same GGUF."""

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.engine.answer import AnswerService
from bot.engine.llm import GenerationStats, LlmEngine, load_engine
from bot.engine.llm_server import ModelServerError, ServerEngine
from bot.settings import LlmSettings
from retrieval.context import SYSTEM_PROMPT
from retrieval.retriever import Retriever

QUESTION = [  # the shape Ajuste serves: instructions, numbered sources, the question
    {"role": "system", "content": SYSTEM_PROMPT},
    {
        "role": "user",
        "content": "Sources:\n\n[1] Office\nThe office opens at 08:00 and closes at 19:00.\n\n"
        "Question: When does the office open?",
    },
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(model: Path) -> tuple[subprocess.Popen[bytes], str]:
    """python -m llama_cpp.server on a free loopback port, once it lists its model."""
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--seed", "42"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/v1/models", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            break
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"llama_cpp.server did not start on {url}")


@pytest.fixture(scope="module")
def model_file(default_model: Path) -> Path:
    return default_model  # what the in-process engine serves, so outputs compare


@pytest.fixture(scope="module")
def server(model_file: Path) -> Iterator[str]:
    process, url = start_server(model_file)
    yield url
    process.terminate()
    process.wait(timeout=10)


def remote(*urls: str, **settings: object) -> ServerEngine:
    return ServerEngine(LlmSettings(server_url=list(urls), **settings))  # type: ignore[arg-type]


def test_settings_choose_the_server_backend(server: str, models_dir: Path, model_file: Path):
    engine = load_engine(LlmSettings(server_url=[server]), models_dir)  # type: ignore[list-item]
    assert isinstance(engine, ServerEngine)
    assert engine.ready()
    assert engine.name == model_file.name


def test_the_server_streams_what_the_in_process_model_writes(server: str, models_dir: Path):
    stats = GenerationStats()
    pieces = list(remote(server).stream(QUESTION, max_tokens=40, stats=stats))
    assert len(pieces) > 2
    assert stats.tokens == len(pieces) and stats.first_token_at and stats.finished_at
    # a server has no refusal gate (it needs the logits in this process): compare without it
    ungated = load_engine(LlmSettings(refusal_threshold=0, focus_bias=8), models_dir)
    assert "".join(pieces) == "".join(ungated.stream(QUESTION, max_tokens=40))
    # the focus bias reaches the server as a logit bias on the same tokens
    favour = ["The office closes at 19:00."]
    steered = "".join(remote(server, focus_bias=8).stream(QUESTION, max_tokens=40, favour=favour))
    assert steered != "".join(pieces)
    assert steered == "".join(ungated.stream(QUESTION, max_tokens=40, favour=favour))


def test_prompt_sizes_come_from_the_servers_tokenizer(server: str, engine: LlmEngine):
    counted = remote(server).prompt_tokens(QUESTION)
    exact = engine.prompt_tokens(QUESTION)
    assert exact <= counted <= exact + 16  # the template's tokens are estimated, never short


def test_answers_with_sources_through_the_server(
    server: str, handbook: tuple[Retriever, Path], engine: LlmEngine, model_file: Path
):
    retriever, _ = handbook
    service = AnswerService(retriever=retriever, engine=remote(server), settings=engine.settings)
    streamed: list[str] = []
    answer = service.answer("How many days of annual leave do we get?", on_token=streamed.append)
    assert answer.sources and answer.text
    assert "".join(streamed).strip() == answer.text
    assert answer.model == model_file.name


def test_a_server_that_is_down_is_skipped_and_named_when_none_answers(server: str):
    dead = f"http://127.0.0.1:{free_port()}"
    both = remote(dead, server)
    assert "".join(both.stream(QUESTION, max_tokens=8))
    assert both._by_load() == [server, dead]  # the dead one is tried last for a while
    engine = remote(dead)
    assert not engine.ready()
    with pytest.raises(ModelServerError, match=f"No model server answers \\({dead}"):
        list(engine.stream(QUESTION, max_tokens=8))
    assert engine.prompt_tokens(QUESTION) > 0  # estimated without a tokenizer


def test_answers_spread_over_the_servers(server: str, model_file: Path):
    process, second = start_server(model_file)
    engine = remote(server, second)
    both_generating = threading.Barrier(2, timeout=60)
    results: list[str] = []

    def ask() -> None:
        pieces = engine.stream(QUESTION, max_tokens=16)
        first = next(pieces)
        both_generating.wait()  # one server each: neither waits for the other
        results.append(first + "".join(pieces))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=90)
    finally:
        process.kill()
        process.wait(timeout=10)
    assert len(results) == 2 and results[0] == results[1]
    assert engine.turns.waiting == 0


def test_an_answer_cut_short_by_the_server_is_not_passed_off_as_whole(server: str):
    long_question = [{"role": "user", "content": "Write a long story about a cartographer."}]
    first = remote(server).stream(long_question, max_tokens=1000)
    assert next(first)
    "".join(remote(server).stream(QUESTION, max_tokens=4))  # llama_cpp.server interrupts `first`
    with pytest.raises(ModelServerError, match="--interrupt_requests false"):
        "".join(first)


def test_a_server_that_goes_away_mid_answer_ends_it_with_a_clear_error(model_file: Path):
    process, url = start_server(model_file)
    try:
        long_question = [{"role": "user", "content": "Write a long story about a cartographer."}]
        pieces = remote(url, max_tokens=2000).stream(long_question, max_tokens=2000)
        assert next(pieces)
        process.kill()
        with pytest.raises(ModelServerError, match="stopped after part of the answer"):
            for _ in pieces:
                pass
    finally:
        process.kill()
        process.wait(timeout=10)
