"""The LLM engine on the real SmolLM2 GGUF: template, streaming, fair turns, bad files."""

import threading
import time
from pathlib import Path

import pytest

from bot.engine.llm import GenerationStats, LlmEngine, load_engine
from bot.engine.turns import QueueFullError, Turns
from bot.settings import LlmSettings
from retrieval.context import SYSTEM_PROMPT
from retrieval.errors import ModelFilesError

QUESTION = [  # the shape Ajuste serves: instructions, numbered sources, the question
    {"role": "system", "content": SYSTEM_PROMPT},
    {
        "role": "user",
        "content": "Sources:\n\n[1] Office\nThe office opens at 08:00 and closes at 19:00.\n\n"
        "Question: When does the office open?",
    },
]


def test_the_prompt_is_the_models_own_chatml_template(engine: LlmEngine):
    prompt, stop = engine.render(QUESTION)
    assert prompt.startswith(f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n")
    assert prompt.endswith("<|im_start|>assistant\n")
    assert "<|im_end|>" in stop
    assert engine.prompt_tokens(QUESTION) == engine.count(prompt)


def test_streaming_yields_pieces_and_counts_tokens(engine: LlmEngine):
    stats = GenerationStats()
    pieces = list(engine.stream(QUESTION, max_tokens=40, stats=stats))
    assert len(pieces) > 2
    assert "08:00" in "".join(pieces)
    assert 0 < stats.tokens <= 40
    assert stats.first_token_at is not None and stats.finished_at is not None
    assert "<|im_end|>" not in "".join(pieces)


def test_same_settings_give_the_same_answer(engine: LlmEngine):
    first = "".join(engine.stream(QUESTION, max_tokens=24))
    second = "".join(engine.stream(QUESTION, max_tokens=24))
    assert first == second


def test_the_model_is_loaded_once_per_process(engine: LlmEngine, models_dir: Path):
    assert load_engine(LlmSettings(), models_dir) is engine
    other = load_engine(LlmSettings(temperature=0.0, focus_bias=0), models_dir)
    assert other is not engine and other.settings.focus_bias == 0  # its own settings…
    assert other.llama is engine.llama and other.turns is engine.turns  # …on the same model


def test_turns_are_served_in_arrival_order_and_report_positions():
    turns = Turns()
    order: list[str] = []
    positions: dict[str, list[int]] = {"b": [], "c": []}
    holding = threading.Event()
    release = threading.Event()

    def first() -> None:
        with turns.turn():
            holding.set()
            release.wait(5)
            order.append("a")

    def later(name: str) -> None:
        with turns.turn(positions[name].append):
            order.append(name)
            deadline = time.monotonic() + 5
            while name == "b" and positions["c"][-1] != 1 and time.monotonic() < deadline:
                time.sleep(0.01)  # hold b's turn until c has heard it moved up

    threads = [threading.Thread(target=first)]
    threads[0].start()
    holding.wait(5)
    for name in ("b", "c"):
        thread = threading.Thread(target=later, args=(name,))
        thread.start()
        threads.append(thread)
        while turns.waiting < len(threads) - 1:
            time.sleep(0.01)
    release.set()
    for thread in threads:
        thread.join(5)
    assert order == ["a", "b", "c"]
    assert positions["b"] == [1]
    assert positions["c"][0] == 2 and positions["c"][-1] == 1


def test_a_full_queue_refuses_at_once():
    turns = Turns(max_waiting=0)
    with turns.turn(), pytest.raises(QueueFullError), turns.turn():
        pass


def test_a_missing_model_file_says_to_pull(tmp_path: Path):
    with pytest.raises(ModelFilesError, match="ajuste models pull"):
        load_engine(LlmSettings(), tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"<html>not a model</html>", "not a GGUF"),
        (b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64, "truncated, corrupt"),
    ],
)
def test_a_corrupt_model_file_is_refused_clearly(tmp_path: Path, content: bytes, message: str):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(content)
    with pytest.raises(ModelFilesError, match=message):
        load_engine(LlmSettings(model_path=bad), tmp_path)


def test_the_refusal_gate_sets_aside_an_unsure_refusal_only(engine: LlmEngine):
    import numpy as np

    from bot.engine.llm import RefusalGate

    gate = RefusalGate(engine.llama, 0.65)
    assert gate.active
    scores = np.zeros(engine.llama.n_vocab(), dtype=np.single)
    scores[gate.token] = 5.0  # likely, but far from sure among 49k tokens at 0
    assert np.isneginf(gate(np.array([], dtype=np.intc), scores.copy())[gate.token])
    sure = RefusalGate(engine.llama, 0.65)
    scores[gate.token] = 30.0
    assert sure(np.array([], dtype=np.intc), scores.copy())[gate.token] == 30.0
    later = sure(np.array([], dtype=np.intc), np.zeros_like(scores))  # only the first token
    assert later[gate.token] == 0.0
    assert not RefusalGate(engine.llama, 0.0).active


def test_favoured_sentences_steer_the_answer(engine: LlmEngine, monkeypatch: pytest.MonkeyPatch):
    """The sentence the question is most about gets a logit bonus while the model writes."""
    from bot.engine.generation import favoured_tokens

    favour = ["The office closes at 19:00."]
    plain = "".join(engine.stream(QUESTION, max_tokens=24))
    strong = engine.settings.model_copy(update={"focus_bias": 8.0})
    monkeypatch.setattr(engine, "settings", strong)
    steered = "".join(engine.stream(QUESTION, max_tokens=24, favour=favour))
    assert steered != plain
    written = engine.llama.tokenize(steered.encode(), add_bos=False)
    favoured = set(favoured_tokens(engine.llama.tokenize, favour))
    assert sum(token in favoured for token in written) >= 0.7 * len(written)
    monkeypatch.setattr(engine, "settings", strong.model_copy(update={"focus_bias": 0}))
    assert "".join(engine.stream(QUESTION, max_tokens=24, favour=favour)) == plain  # off


def test_the_focus_bias_leaves_a_refusal_the_gate_let_through(engine: LlmEngine):
    import numpy as np

    from bot.engine.generation import favoured_tokens
    from bot.engine.llm import FocusBias, RefusalGate

    ids = favoured_tokens(engine.llama.tokenize, ["Primary on-call | EUR 250 per week"])
    token = RefusalGate(engine.llama, 0.85).token
    assert ids and token not in ids
    bias = FocusBias(ids, 2.0, token)
    scores = np.zeros(engine.llama.n_vocab(), dtype=np.single)
    scores[token] = 30.0  # a sure refusal as the first token
    assert (bias(np.array([], dtype=np.intc), scores.copy()) == scores).all()
    later = bias(np.array([], dtype=np.intc), np.zeros_like(scores))
    assert (later[ids] == 2.0).all() and later.sum() == 2.0 * len(ids)
    unsure = FocusBias(ids, 2.0, token)  # the gate took the refusal off: biased from the start
    assert (unsure(np.array([], dtype=np.intc), np.zeros_like(scores))[ids] == 2.0).all()


@pytest.mark.parametrize(
    ("written", "where"),
    [
        ("Run it [1].", None),
        ("Run `kvpn con", ("inline", "kvpn con")),
        ("Run `kvpn connect` again", None),
        ("Run:\n```bash", None),  # a fence's language tag is free
        ("```bash\nkvpn status\nkvpn con", ("block", "kvpn con")),
        ("```bash\nkvpn status\n```\nthen `kv", ("inline", "kv")),
    ],
)
def test_the_answer_so_far_is_in_prose_or_in_code(written: str, where: tuple[str, str] | None):
    from bot.engine.copying import open_code

    assert open_code(written) == where


def test_code_in_an_answer_is_copied_from_its_sources(engine: LlmEngine):
    """Inside code the model may only continue a piece of the sources, or end the code."""
    import numpy as np

    from bot.engine.copying import CodeCopy, keeps_copy

    source = "Reconnect with `kvpn connect` after a rotation."
    assert keeps_copy("inline", "kvpn", " connect", source)
    assert keeps_copy("inline", "kvpn connect", "`.", source)  # ends the span after a copy
    assert not keeps_copy("inline", "kvpn connect", " --", source)
    assert not keeps_copy("inline", "", "`", source)  # never an empty span
    assert keeps_copy("block", "", "```", source)  # the block ends
    llama = engine.llama
    guard = CodeCopy(llama.detokenize, llama.tokenize, source)
    prompt = llama.tokenize(b"How do I connect?", add_bos=False)
    invented, close = (llama.tokenize(text, add_bos=False)[0] for text in (b" --", b"`"))
    scores = np.zeros(llama.n_vocab(), dtype=np.single)
    scores[invented], scores[close] = 9.0, 4.0
    assert guard(np.array(prompt, dtype=np.intc), scores.copy())[invented] == 9.0  # prose: free
    code = prompt + llama.tokenize(b"Run `kvpn connect", add_bos=False)
    steered = guard(np.array(code, dtype=np.intc), scores.copy())
    assert np.isneginf(steered[invented]) and int(steered.argmax()) == close
