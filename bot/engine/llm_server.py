"""The LLM engine over HTTP: OpenAI-compatible llama.cpp servers shared by several bot replicas.

Speaks the chat completions API with streaming to llama-cpp-python's `llama_cpp.server` or
upstream `llama-server`. The server applies the model's chat template; we only need token
counts for the prompt budget, asked of the server's tokenizer (both kinds have one) and
estimated when it has none. Each answer goes to the least busy server; a server that can't
be reached is skipped, and one that stops mid-answer ends that answer with a clear message.
"""

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx

from bot.engine.generation import GenerationStats, Message, favoured_tokens
from bot.engine.turns import Turns
from bot.settings import LlmSettings
from retrieval.errors import AjusteError

log = logging.getLogger(__name__)
RETRY_DOWN_AFTER = 30.0  # seconds a server that refused a connection is tried last
PER_MESSAGE = 8  # tokens a chat template adds around each message (ChatML uses 5)
# (path, request field) of llama-cpp-python's tokenizer, then llama-server's: {"tokens": [ids]}
TOKENIZERS = (("/extras/tokenize", "input"), ("/tokenize", "content"))


class ModelServerError(AjusteError):
    """No model server answers, or one failed mid-answer."""


class ServerEngine:
    """Streams answers from model servers; same interface as the in-process `LlmEngine`."""

    def __init__(self, settings: LlmSettings, *, client: httpx.Client | None = None) -> None:
        self.settings = settings
        self.urls = [str(url).rstrip("/") for url in settings.server_url]
        key = settings.server_api_key
        self._client = client or httpx.Client(
            headers={"Authorization": f"Bearer {key.get_secret_value()}"} if key else None,
            timeout=httpx.Timeout(settings.server_timeout, connect=5.0),
        )
        self.n_ctx = settings.n_ctx
        self.turns = Turns(
            slots=len(self.urls) * settings.server_slots, max_waiting=settings.max_queue
        )
        self._busy = dict.fromkeys(self.urls, 0)
        self._down_until = dict.fromkeys(self.urls, 0.0)  # tried last after failing to connect
        self._lock = threading.Lock()
        self._name: str | None = settings.server_model
        self._tokenizer: dict[str, int | None] = {}  # url → index in TOKENIZERS, None: has none

    @property
    def name(self) -> str:
        if self._name is None:
            self._name = self._discover_name()
        return self._name or f"model at {self.urls[0]}"

    def follow(self) -> None:
        """The servers' operator chooses their model; nothing to follow here."""

    def ready(self) -> bool:
        """At least one server lists its models."""
        return any(self._get(url, "/v1/models") is not None for url in self.urls)

    def prompt_tokens(self, messages: Sequence[Message]) -> int:
        text = "\n".join(message["content"] for message in messages)
        return self._count(text) + PER_MESSAGE * len(messages)

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
        """Yield the answer's text pieces from the least busy server that answers. A server
        samples on its own, so `copy_from` is not enforced here: the figures check still runs
        on the answer."""
        stats = stats if stats is not None else GenerationStats()
        stats.model = self.name
        body: dict[str, object] = {
            "messages": list(messages),
            "max_tokens": max_tokens,
            "temperature": self.settings.temperature,
            "top_p": self.settings.top_p,
            "repeat_penalty": self.settings.repeat_penalty,
            "seed": self.settings.seed,
            "stream": True,
        }
        if self.settings.server_model:
            body["model"] = self.settings.server_model
        if favour and self.settings.focus_bias > 0:
            ids = favoured_tokens(lambda text, **_: self._tokens(text.decode()) or [], favour)
            body["logit_bias"] = {str(token): self.settings.focus_bias for token in ids}
        with self.turns.turn(on_wait):
            failures = []
            for url in self._by_load():
                with self._lock:
                    self._busy[url] += 1
                try:
                    yield from self._stream_from(url, body, stats)
                    return
                except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                    failures.append(f"{url}: {error}")  # nothing was said yet: try the next
                    self._down_until[url] = time.monotonic() + RETRY_DOWN_AFTER
                finally:
                    with self._lock:
                        self._busy[url] -= 1
            raise ModelServerError(
                f"No model server answers ({'; '.join(failures)}): start one, or check "
                "AJUSTE_LLM__SERVER_URL."
            )

    def _stream_from(
        self, url: str, body: dict[str, object], stats: GenerationStats
    ) -> Iterator[str]:
        try:
            with self._client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
                if response.status_code != httpx.codes.OK:
                    response.read()
                    raise ModelServerError(
                        f"The model server at {url} refused the question "
                        f"(HTTP {response.status_code}: {_detail(response)})."
                    )
                finished = None
                for line in response.iter_lines():
                    event = _event(line, url)
                    if event is None:
                        break
                    piece, finished = event[0], event[1] or finished
                    if piece:
                        stats.tokens += 1
                        if stats.first_token_at is None:
                            stats.first_token_at = time.perf_counter()
                        yield piece
                if finished is None:  # llama_cpp.server ends a request when another arrives
                    raise ModelServerError(
                        f"The model server at {url} cut the answer short, likely for another "
                        "request: start llama_cpp.server with --interrupt_requests false, or "
                        "use llama-server."
                    )
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise
        except httpx.HTTPError as error:
            said = "after part of the answer" if stats.tokens else "before answering"
            raise ModelServerError(
                f"The model server at {url} stopped {said} ({error or type(error).__name__}). "
                "Ask again; if it keeps happening, check that server's logs."
            ) from error
        stats.finished_at = time.perf_counter()

    def _by_load(self) -> list[str]:
        """Servers that answered lately first, the least busy first; order breaks ties."""
        now = time.monotonic()
        with self._lock:
            return sorted(self.urls, key=lambda url: (self._down_until[url] > now, self._busy[url]))

    def _count(self, text: str) -> int:
        tokens = self._tokens(text)
        if tokens is None:  # no tokenizer answers: err on the long side
            return len(text.encode("utf-8")) // 3 + 1
        return len(tokens)

    def _tokens(self, text: str) -> list[int] | None:
        """The token ids of `text` from the first server that tokenizes; None: none does."""
        for url in self.urls:
            if url not in self._tokenizer:
                self._tokenizer[url] = self._find_tokenizer(url)
            index = self._tokenizer[url]
            if index is None:
                continue
            try:
                return self._tokenize(url, index, text)
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                continue
        return None

    def _tokenize(self, url: str, index: int, text: str) -> list[int]:
        path, field = TOKENIZERS[index]
        response = self._client.post(url + path, json={field: text})
        response.raise_for_status()
        return [int(token) for token in response.json()["tokens"]]

    def _find_tokenizer(self, url: str) -> int | None:
        for index in range(len(TOKENIZERS)):
            try:
                self._tokenize(url, index, "a")
                return index
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                continue
        log.warning("%s counts no tokens; prompt sizes are estimated", url)
        return None

    def _discover_name(self) -> str | None:
        for url in self.urls:
            listed = self._get(url, "/v1/models")
            if listed and listed.get("data"):
                name = str(listed["data"][0].get("id") or "")
                return name.rsplit("/", 1)[-1] if name.endswith(".gguf") else name or None
        return None

    def _get(self, url: str, path: str) -> dict[str, Any] | None:
        try:
            response = self._client.get(url + path, timeout=5.0)
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError):
            return None
        return body if isinstance(body, dict) else None


def _event(line: str, url: str) -> tuple[str, str | None] | None:
    """One server-sent event line as (text, finish reason); None at the end of the stream."""
    if not line.startswith("data:"):
        return "", None
    data = line[5:].strip()
    if data == "[DONE]":
        return None
    try:
        chunk = json.loads(data)
    except ValueError:
        return "", None
    if chunk.get("error"):
        raise ModelServerError(f"The model server at {url} failed mid-answer: {chunk['error']}")
    choice = (chunk.get("choices") or [{}])[0]
    return (choice.get("delta") or {}).get("content") or "", choice.get("finish_reason")


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", error))
    return str(error or body.get("detail") or body)[:200]
