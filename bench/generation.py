"""Generation speed of `ajuste ask` against a bare llama-cpp-python loop on the same prompt,
and of the grounded default model against the stock one it was built from."""

import time
from pathlib import Path
from typing import Any

from bench.common import KNOWLEDGE, Row, cleanup, median, scratch_settings
from bot.engine.llm import SMOLLM2, open_gguf
from bot.engine.prompt import plan_prompt
from bot.services import Services
from bot.settings import Settings
from finetune.grounded import grounded_file

QUESTIONS = [
    "What is the minimum length of a Kestrel ID password?",
    "When does the on-call rotation change hands?",
    "How do I rotate my VPN key?",
]


def run(models_dir: Path, rounds: int = 3) -> list[Row]:
    settings, root = scratch_settings(models_dir)
    ours_rates: list[float] = []
    bare_rates: list[float] = []
    ours_ttft: list[float] = []
    bare_ttft: list[float] = []
    try:
        with Services(settings, holder="ajuste bench") as services:
            services.indexer.index_paths([KNOWLEDGE])
            answers, engine = services.answers, services.engine
            llama = engine.llama
            for _ in range(rounds):
                for question in QUESTIONS:
                    llama.reset()  # no prompt-prefix reuse on either side
                    answer = answers.answer(question)
                    timings = answer.timings
                    ours_ttft.append(timings.first_token_s - timings.retrieve_s)
                    ours_rates.append(
                        (timings.tokens - 1) / (timings.total_s - timings.first_token_s)
                    )

                    hits = answers.related_hits(question, [])
                    plan = plan_prompt(
                        question,
                        hits,
                        [],
                        count=engine.prompt_tokens,
                        n_ctx=engine.n_ctx,
                        answer_tokens=settings.llm.max_tokens,
                    )
                    prompt, stop = engine.render(plan.messages)
                    ttft, rate = _bare_stream(llama, prompt, stop, settings)
                    bare_ttft.append(ttft)
                    bare_rates.append(rate)
    finally:
        cleanup(root)
    rate = median(ours_rates) / median(bare_rates)
    return [
        Row(
            "generation tokens/s, `ajuste ask` vs bare llama-cpp-python",
            f"{median(ours_rates):.0f} tok/s",
            f"{median(bare_rates):.0f} tok/s",
            rate,
            ">= 0.95",
            rate >= 0.95,
        ),
        Row(
            "time to first token after retrieval (prompt processing)",
            f"{median(ours_ttft):.2f} s",
            f"{median(bare_ttft):.2f} s",
            median(ours_ttft) / median(bare_ttft),
            "report",
            True,
        ),
    ]


def _bare_stream(
    llama: Any, prompt: str, stop: list[str], settings: Settings
) -> tuple[float, float]:
    """(time to first token, tokens/s after it) of one bare llama-cpp-python completion."""
    llama.reset()
    started = time.perf_counter()
    first, tokens = None, 0
    for _piece in llama.create_completion(
        prompt,
        max_tokens=settings.llm.max_tokens,
        temperature=settings.llm.temperature,
        top_p=settings.llm.top_p,
        repeat_penalty=settings.llm.repeat_penalty,
        seed=settings.llm.seed,
        stop=stop,
        stream=True,
    ):
        tokens += 1
        first = first or time.perf_counter()
    assert first is not None
    return first - started, (tokens - 1) / max(time.perf_counter() - first, 1e-9)


def model_rows(models_dir: Path, rounds: int = 3) -> list[Row]:
    """The grounded default against the stock SmolLM2 it was built from, on the same prompts."""
    settings, root = scratch_settings(models_dir)
    stock_path = SMOLLM2.folder(models_dir) / SMOLLM2.files[0].name
    grounded_path = grounded_file(models_dir)
    measured: dict[str, tuple[list[float], list[float]]] = {"grounded": ([], []), "stock": ([], [])}
    try:
        with Services(settings, holder="ajuste bench") as services:
            services.indexer.index_paths([KNOWLEDGE])
            engine = services.engine
            prompts = []
            for question in QUESTIONS:
                plan = plan_prompt(
                    question,
                    services.answers.related_hits(question, []),
                    [],
                    count=engine.prompt_tokens,
                    n_ctx=engine.n_ctx,
                    answer_tokens=settings.llm.max_tokens,
                )
                prompts.append(engine.render(plan.messages))
            models = {"grounded": grounded_path, "stock": stock_path}
            llamas = {name: open_gguf(path, settings.llm) for name, path in models.items()}
            for _ in range(rounds):
                for prompt, stop in prompts:
                    for name, llama in llamas.items():  # interleaved: same load on both
                        ttft, rate = _bare_stream(llama, prompt, stop, settings)
                        measured[name][0].append(ttft)
                        measured[name][1].append(rate)
    finally:
        cleanup(root)
    ttft = {name: median(values[0]) for name, values in measured.items()}
    rate = {name: median(values[1]) for name, values in measured.items()}
    return [
        Row(
            "generation tokens/s, grounded Q8_0 vs stock Q4_1 (bare llama.cpp, same prompts)",
            f"{rate['grounded']:.0f} tok/s",
            f"{rate['stock']:.0f} tok/s",
            rate["grounded"] / rate["stock"],
            ">= 0.95",
            rate["grounded"] / rate["stock"] >= 0.95,
        ),
        Row(
            "time to first token, grounded vs stock (same prompts)",
            f"{ttft['grounded']:.2f} s",
            f"{ttft['stock']:.2f} s",
            ttft["grounded"] / ttft["stock"],
            "<= 1.05",
            ttft["grounded"] / ttft["stock"] <= 1.05,
        ),
    ]
