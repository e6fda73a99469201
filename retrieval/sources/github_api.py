"""GitHub's two APIs over RestClient: REST pages followed by `Link`, GraphQL with errors named.

GitHub.com serves REST at api.github.com and GraphQL at api.github.com/graphql; Enterprise
Server serves them at HOST/api/v3 and HOST/api/graphql, and its pages at HOST. All three are
derived from `api_url` so one setting points a source at either.
"""

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from retrieval.sources.base import SourceError
from retrieval.sources.rest import RestClient

API_VERSION = "2022-11-28"


def graphql_url(api_url: str) -> str:
    base = api_url.rstrip("/")
    return base.removesuffix("/v3") + "/graphql" if base.endswith("/api/v3") else base + "/graphql"


def web_url(api_url: str) -> str:
    """Where people read the repositories: github.com for api.github.com, HOST for HOST/api/v3."""
    parts = urlsplit(api_url.rstrip("/"))
    host = parts.netloc.removeprefix("api.")
    path = parts.path.removesuffix("/api/v3")
    return f"{parts.scheme}://{host}{path}"


def updated_since(stamp: str, cutoff: datetime | None) -> bool:
    return cutoff is None or datetime.fromisoformat(stamp) >= cutoff


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class GithubApi:
    def __init__(
        self, *, source: str, api_url: str, token: str, timeout: float, secret_hint: str
    ) -> None:
        self.source = source
        self.api_url = api_url.rstrip("/")
        self.graphql_url = graphql_url(api_url)
        self.rest = RestClient(
            source=source,
            base_url=self.api_url,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
            },
            timeout=timeout,
            secret_hint=secret_hint,
        )

    def close(self) -> None:
        self.rest.close()

    def get(self, path: str, **params: Any) -> Any:
        return self.rest.get_json(self.api_url + path, **params)

    def pages(self, path: str, **params: Any) -> Iterator[list[dict[str, Any]]]:
        """Each page of a REST listing, following `Link: <…>; rel="next"` as GitHub gives it."""
        url: str | None = self.api_url + path
        query: dict[str, Any] | None = params
        while url is not None:
            response = self.rest.request("GET", url, params=query)
            yield list(response.json())
            url = response.links.get("next", {}).get("url")
            query = None  # the next link carries the query
            if url is not None and _origin(url) != _origin(self.api_url):
                raise SourceError(
                    f"source '{self.source}': GitHub's next page points to another host ({url}): "
                    "check `api_url`"
                )

    def all(self, path: str, **params: Any) -> list[dict[str, Any]]:
        return [item for page in self.pages(path, per_page=100, **params) for item in page]

    def graphql(self, query: str, variables: dict[str, Any], what: str) -> dict[str, Any]:
        """The `data` of a GraphQL answer; errors (which come with HTTP 200) raise SourceError."""
        while True:
            response = self.rest.request(
                "POST", self.graphql_url, json={"query": query, "variables": variables}
            )
            answer = response.json()
            errors = answer.get("errors") or []
            if not errors:
                return dict(answer.get("data") or {})
            if any(error.get("type") == "RATE_LIMITED" for error in errors):
                self._wait_out(response, what)
                continue
            reasons = "; ".join(str(error.get("message", error)) for error in errors[:3])
            raise SourceError(f"source '{self.source}': GitHub GraphQL refused {what}: {reasons}")

    def _wait_out(self, response: httpx.Response, what: str) -> None:
        """GraphQL's primary rate limit answers 200 with RATE_LIMITED: wait for the reset."""
        reset = response.headers.get("X-RateLimit-Reset", "")
        wait = max(0.0, float(reset) - time.time()) + 1.0 if reset.isdigit() else 60.0
        rest = self.rest
        if rest.waited + wait > rest.max_wait:
            raise SourceError(
                f"source '{self.source}': GraphQL rate limited for {wait:.0f} s more while "
                f"reading {what}: the next run carries on"
            )
        rest.waited += wait
        rest.sleep(wait)
