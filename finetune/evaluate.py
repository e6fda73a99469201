"""Before/after evaluation of a GGUF on the held-out set, with the runtime that serves it.

llama.cpp itself scores the file: the mean loss (and perplexity) of the reference answers
given their conversation, and the greedy answer's match with the reference (contains, exact,
token F1, as the answer eval does). `score` (contains) is what `--promote-if-better` compares.
"""

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from llama_cpp import Llama
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from retrieval.errors import AjusteError
from retrieval.evaluation import contains, exact_match, token_f1

Example = list[dict[str, str]]
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


class EvaluationError(AjusteError):
    """A model or held-out set that can't be evaluated."""


@dataclass
class EvalReport:
    model: str
    examples: int
    loss: float
    perplexity: float
    score: float  # share of answers containing the reference
    exact: float
    f1: float
    seconds: float
    answers: list[dict[str, str]] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """What the registry records with the version."""
        return {
            "eval_loss": round(self.loss, 4),
            "eval_perplexity": round(self.perplexity, 3),
            "eval_score": round(self.score, 4),
            "eval_exact": round(self.exact, 4),
            "eval_f1": round(self.f1, 4),
        }

    def line(self) -> str:
        return (
            f"{self.model}: contains {self.score:.2f}, exact {self.exact:.2f}, "
            f"F1 {self.f1:.2f}, loss {self.loss:.3f} (perplexity {self.perplexity:.1f}) "
            f"on {self.examples} held-out examples"
        )


def evaluate_gguf(
    path: Path,
    examples: Sequence[Example],
    *,
    max_tokens: int = 64,
    n_ctx: int = 2048,
    on_example: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """Score `path` on examples whose last message is the reference assistant answer."""
    if not examples:
        raise EvaluationError("The held-out set is empty: rebuild the dataset with more examples.")
    started = time.perf_counter()
    llama = _open(path, n_ctx)
    formatter = Jinja2ChatFormatter(
        template=llama.metadata.get("tokenizer.chat_template") or CHATML,
        eos_token=llama._model.token_get_text(llama.token_eos()),
        bos_token=llama._model.token_get_text(llama.token_bos()),
    )
    losses: list[float] = []
    answers: list[dict[str, str]] = []
    try:
        for number, example in enumerate(examples, 1):
            conversation, reference = list(example[:-1]), example[-1]["content"]
            prompt = formatter(messages=conversation).prompt  # type: ignore[arg-type]
            losses.append(_answer_loss(llama, prompt, reference))
            reply = llama.create_chat_completion(
                conversation,  # type: ignore[arg-type]
                temperature=0.0,
                max_tokens=max_tokens,
                seed=0,
            )
            text = str(reply["choices"][0]["message"]["content"] or "").strip()  # type: ignore[index]
            answers.append({"question": conversation[-1]["content"], "reference": reference,
                            "answer": text})  # fmt: skip
            if on_example is not None:
                on_example(number, len(examples))
    finally:
        llama.close()
    loss = float(np.mean(losses))
    return EvalReport(
        model=path.name,
        examples=len(examples),
        loss=loss,
        perplexity=float(np.exp(loss)),
        score=_mean(contains, answers),
        exact=_mean(exact_match, answers),
        f1=_mean(token_f1, answers),
        seconds=round(time.perf_counter() - started, 2),
        answers=answers,
    )


def save_report(reports: dict[str, EvalReport], path: Path) -> None:
    """The before/after report, kept with the model."""
    path.write_text(json.dumps({k: asdict(r) for k, r in reports.items()}, indent=2))


def _open(path: Path, n_ctx: int) -> Llama:
    try:
        return Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=os.cpu_count() or 1,
            logits_all=True,  # the loss needs every position's logits
            verbose=False,
        )
    except (ValueError, RuntimeError, OSError) as error:
        raise EvaluationError(f"llama.cpp could not load {path} ({error}).") from error


def _answer_loss(llama: Llama, prompt: str, answer: str) -> float:
    """Mean negative log-likelihood of the answer's tokens (and end of turn) after the prompt."""
    context = llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
    target = llama.tokenize(answer.encode("utf-8"), add_bos=False, special=False)
    target.append(llama.token_eos())
    tokens = (context + target)[: llama.n_ctx()]
    if len(tokens) <= len(context):
        raise EvaluationError("A held-out example does not fit the context window.")
    llama.reset()
    llama.eval(tokens)
    logits = np.asarray(llama.scores[len(context) - 1 : len(tokens) - 1], dtype=np.float64)
    peak = logits.max(axis=1, keepdims=True)
    log_norm = peak[:, 0] + np.log(np.exp(logits - peak).sum(axis=1))
    chosen = logits[np.arange(len(logits)), tokens[len(context) :]]
    return float(np.mean(log_norm - chosen))


def _mean(metric: Callable[[str, str], float], answers: Sequence[dict[str, str]]) -> float:
    return sum(metric(a["answer"], a["reference"]) for a in answers) / len(answers)
