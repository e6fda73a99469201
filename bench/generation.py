"""Generation speed of `ajuste ask` against a bare llama-cpp-python loop on the same prompt."""

import time
from pathlib import Path

from bench.common import KNOWLEDGE, Row, cleanup, median, scratch_settings
from bot.prompt import plan_prompt
from bot.services import Services

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
                    llama.reset()
                    started = time.perf_counter()
                    first = None
                    tokens = 0
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
                    done = time.perf_counter()
                    assert first is not None
                    bare_ttft.append(first - started)
                    bare_rates.append((tokens - 1) / (done - first))
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
