"""A JSON-over-HTTP client for API sources: rate limits waited out, failures named.

Every API source (confluence, gdrive, notion, github) talks through this, so they all answer
a refused token, a missing space and a rate limit the same way. Secrets stay in headers and
never reach an error message.
"""

import email.utils
import time
from collections.abc import Callable
from typing import Any

import httpx

from retrieval.sources.base import SourceError

USER_AGENT = "Ajuste/0.1 (self-hosted team assistant)"
RETRYABLE = {500, 502, 503, 504}


class NotFoundError(SourceError):
    """The API answered 404 or 410: the caller decides (a missing space, or a deleted page)."""


class RestClient:
    def __init__(
        self,
        *,
        source: str,
        base_url: str,
        headers: dict[str, str] | None = None,
        auth: httpx.Auth | None = None,
        timeout: float = 30.0,
        secret_hint: str = "the token",
        max_wait: float = 900.0,
        retries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.source = source
        self.secret_hint = secret_hint
        self.max_wait = max_wait
        self.retries = retries
        self.sleep = sleep
        self.waited = 0.0  # seconds spent waiting out rate limits, for the report and tests
        self.http = httpx.Client(
            base_url=base_url,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})},
            auth=auth,
            timeout=timeout,
            follow_redirects=True,
        )

    def close(self) -> None:
        self.http.close()

    def get_json(self, url: str, **params: Any) -> Any:
        return self.request("GET", url, params=params or None).json()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """The response of a 2xx; waits out 429 and rate-limit 403; retries 5xx a few times."""
        failures = 0
        while True:
            try:
                response = self.http.request(method, url, **kwargs)
            except httpx.TransportError as error:
                failures += 1
                if failures > self.retries:
                    raise SourceError(f"source '{self.source}': {_transport(error)}") from None
                self.sleep(min(8.0, 0.5 * 2**failures))
                continue
            status = response.status_code
            if status < 400:
                return response
            where = f"{response.request.method} {response.request.url.copy_with(query=None)}"
            wait = _rate_limit_wait(response)
            if wait is not None:
                if self.waited + wait > self.max_wait:
                    raise SourceError(
                        f"source '{self.source}': rate limited by {where} for {wait:.0f} s more: "
                        "the next run carries on"
                    )
                self.waited += wait
                self.sleep(wait)
                continue
            if status in RETRYABLE and failures < self.retries:
                failures += 1
                self.sleep(min(8.0, 0.5 * 2**failures))
                continue
            if status in (401, 403):
                raise SourceError(
                    f"source '{self.source}': HTTP {status} from {where}: {self.secret_hint} "
                    "was refused or lacks access"
                )
            if status in (404, 410):
                raise NotFoundError(f"source '{self.source}': HTTP {status} from {where}")
            raise SourceError(f"source '{self.source}': HTTP {status} from {where}")


def _rate_limit_wait(response: httpx.Response) -> float | None:
    """Seconds to wait when the server says we are rate limited, else None."""
    status = response.status_code
    headers = response.headers
    limited = status in (429, 529) or (  # 529: Notion's "service overloaded", with Retry-After
        status == 403 and (headers.get("X-RateLimit-Remaining") == "0" or "Retry-After" in headers)
    )
    if not limited:
        return None
    retry_after = headers.get("Retry-After")
    if retry_after:
        if retry_after.strip().isdigit():
            return float(retry_after)
        when = email.utils.parsedate_to_datetime(retry_after)
        if when is not None:
            return max(0.0, when.timestamp() - time.time())
    reset = headers.get("X-RateLimit-Reset")
    if reset and reset.strip().isdigit():
        return max(0.0, float(reset) - time.time()) + 1.0
    return 60.0  # limited without saying for how long: a minute, as GitHub's docs advise


def _transport(error: httpx.TransportError) -> str:
    if isinstance(error, httpx.TimeoutException):
        return "timed out: kept what was indexed before"
    return f"could not connect ({type(error).__name__}): kept what was indexed before"
