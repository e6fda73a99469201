"""Web pages: listed URLs and sitemaps, fetched politely with conditional requests.

An unchanged page costs one 304. A page that now answers 404 or 410 leaves the index. The main
text of HTML is extracted with trafilatura (navigation, footers and ads left out), as Markdown
so its headings still give chunks their context.
"""

import threading
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import trafilatura

from retrieval.documents import content_version, decode_text, parse_document, parse_markdown
from retrieval.errors import DocumentError
from retrieval.sources.base import (
    GONE,
    UNCHANGED,
    DocRef,
    Fetched,
    FetchResult,
    Outcome,
    Source,
    SourceError,
)
from retrieval.store import StoredDocument

USER_AGENT = "Ajuste/0.1 (self-hosted team assistant)"
_SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"


class WebSource(Source):
    kind = "web"

    def __init__(
        self,
        name: str,
        *,
        urls: list[str],
        sitemap: str | None,
        max_per_host: int,
        timeout: float,
        max_bytes: int,
    ) -> None:
        super().__init__(name)
        self.urls = urls
        self.sitemap = sitemap
        self.max_per_host = max_per_host
        self.max_bytes = max_bytes
        self.client = httpx.Client(
            timeout=timeout, follow_redirects=True, headers={"User-Agent": USER_AGENT}
        )
        self._hosts: dict[str, threading.Semaphore] = defaultdict(
            lambda: threading.Semaphore(self.max_per_host)
        )
        self._hosts_lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    def refs(self) -> list[DocRef]:
        urls = dict.fromkeys(self.urls)
        if self.sitemap:
            urls.update(dict.fromkeys(self._sitemap_urls(self.sitemap, depth=0)))
        return [DocRef(url, url) for url in urls]

    def _sitemap_urls(self, url: str, depth: int) -> list[str]:
        try:
            response = self.client.get(url)
            response.raise_for_status()
            root = ElementTree.fromstring(response.content)
        except httpx.HTTPError as error:
            raise SourceError(f"sitemap {url} could not be fetched: {_reason(error)}") from error
        except ElementTree.ParseError as error:
            raise SourceError(f"sitemap {url} is not valid XML: {error}") from error
        locations = [(loc.text or "").strip() for loc in root.iter(f"{_SITEMAP_NS}loc")]
        if root.tag == f"{_SITEMAP_NS}sitemapindex" and depth < 2:
            return [page for nested in locations for page in self._sitemap_urls(nested, depth + 1)]
        return [location for location in locations if location]

    def fetch_all(
        self, items: list[tuple[DocRef, StoredDocument | None]]
    ) -> Iterator[tuple[DocRef, FetchResult]]:
        """Fetch concurrently, at most `max_per_host` requests at a time to any one host."""

        def one(item: tuple[DocRef, StoredDocument | None]) -> tuple[DocRef, FetchResult]:
            ref, previous = item
            with self._hosts_lock:
                slot = self._hosts[urlsplit(ref.doc_id).netloc]
            with slot:
                try:
                    return ref, self.fetch(ref, previous)
                except Exception as error:  # reported per page by the indexer
                    return ref, error

        hosts = {urlsplit(ref.doc_id).netloc for ref, _ in items}
        workers = max(1, min(8, self.max_per_host * len(hosts)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"web-{self.name}") as pool:
            yield from pool.map(one, items)

    def fetch(self, ref: DocRef, previous: StoredDocument | None) -> Fetched | Outcome:
        headers = {}
        if previous is not None:
            if previous.meta.get("etag"):
                headers["If-None-Match"] = previous.meta["etag"]
            if previous.meta.get("last_modified"):
                headers["If-Modified-Since"] = previous.meta["last_modified"]
        try:
            response = self.client.get(ref.doc_id, headers=headers)
        except httpx.HTTPError as error:
            raise SourceError(_reason(error)) from error
        if response.status_code == 304 and previous is not None:
            return UNCHANGED
        if response.status_code in (404, 410):
            return GONE
        if response.status_code >= 400:
            raise SourceError(f"HTTP {response.status_code}: kept the indexed copy, if any")
        content = response.content
        if len(content) > self.max_bytes:
            raise DocumentError(f"{len(content) / 1048576:.1f} MB is over the size limit: skipped")
        title, sections = _parse(response, content)
        meta = {
            key: value
            for key, value in {
                "etag": response.headers.get("ETag"),
                "last_modified": response.headers.get("Last-Modified"),
            }.items()
            if value
        }
        return Fetched(title, sections, content_version(content), str(response.url), meta)


def _parse(response: httpx.Response, content: bytes) -> tuple[str, list]:
    kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    path = Path(urlsplit(str(response.url)).path or "/page")
    if kind in ("text/html", "application/xhtml+xml"):
        html = decode_text(content)
        markdown = trafilatura.extract(
            html, output_format="markdown", include_formatting=True, favor_recall=True
        )
        if not markdown:
            raise DocumentError("no main text found in the page: skipped")
        metadata = trafilatura.extract_metadata(html)
        title = (metadata.title if metadata is not None else None) or path.stem or str(response.url)
        return title, parse_markdown(markdown)
    if kind == "application/pdf":
        return parse_document(path.with_suffix(".pdf"), content)
    if kind in ("text/markdown", "text/x-markdown"):
        return parse_document(path.with_suffix(".md"), content)
    if kind.startswith("text/"):
        return parse_document(path.with_suffix(".txt"), content)
    raise DocumentError(f"content type {kind or 'unknown'} is not a document: skipped")


def _reason(error: httpx.HTTPError) -> str:
    if isinstance(error, httpx.TimeoutException):
        return "timed out: kept the indexed copy, if any"
    if isinstance(error, httpx.HTTPStatusError):
        return f"HTTP {error.response.status_code}"
    return f"{type(error).__name__}: {error}"
