"""Confluence pages of chosen spaces, and the documents attached to them, over REST API v1.

The same endpoints serve Cloud (email + API token) and Data Center (personal access token).
The listing carries each page's version number, so an unchanged page costs only its share of
the listing; a page archived, deleted or stripped of its label is no longer listed and leaves
the index. Attachments come from one CQL search per space rather than one request per page.
"""

import hashlib
import html
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from pydantic import Field, field_validator, model_validator

from retrieval.documents import SUPPORTED, content_version, parse_document, parse_html
from retrieval.errors import DocumentError
from retrieval.sources.base import GONE, DocRef, Fetched, Outcome, Source, SourceError
from retrieval.sources.credentials import TokenConfig
from retrieval.sources.registry import SourceContext
from retrieval.sources.rest import NotFoundError, RestClient
from retrieval.store import StoredDocument

KIND = "confluence"
_LIMIT = 100  # per listing request; the server may cap it lower and we follow `_links.next`
_WORKERS = 4  # page bodies fetched at once
_MEDIA = ("image/", "video/", "audio/")  # illustrations of pages, not documents: left out


class ConfluenceConfig(TokenConfig):
    """A `kind: confluence` entry of sources.yaml."""

    default_env: ClassVar[str] = "CONFLUENCE_TOKEN"

    # https://<site>.atlassian.net/wiki (Cloud) or the Data Center base URL
    url: str
    spaces: list[str] = Field(min_length=1)  # space keys, e.g. [ENG, OPS]
    email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+$")  # Cloud: the token's account
    labels_include: list[str] = Field(default_factory=list)  # keep pages with any of these
    labels_exclude: list[str] = Field(default_factory=list)  # and none of these
    attachments: bool = True  # also index attached pdf, md, txt, html and rst files
    timeout: float = Field(30.0, gt=0)

    @field_validator("url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"'{value}' is not an http(s) URL")
        parts = urlsplit(value)
        if parts.path.endswith("/rest/api"):
            raise ValueError(f"give the site's address, without /rest/api: {value[:-9]}")
        if (parts.hostname or "").endswith(".atlassian.net") and parts.path != "/wiki":
            raise ValueError(f"a Confluence Cloud url ends in /wiki: https://{parts.hostname}/wiki")
        return value

    @field_validator("spaces")
    @classmethod
    def _space_keys(cls, value: list[str]) -> list[str]:
        for key in value:
            if not re.fullmatch(r"[^\s\"'\\]+", key):
                raise ValueError(f"'{key}' is not a space key (as in /spaces/KEY/ in page links)")
        return list(dict.fromkeys(value))

    @field_validator("labels_include", "labels_exclude")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        return [label.strip().lower() for label in value if label.strip()]

    @model_validator(mode="after")
    def _cloud_signs_in_with_email(self) -> "ConfluenceConfig":
        if (urlsplit(self.url).hostname or "").endswith(".atlassian.net") and not self.email:
            raise ValueError(
                "Confluence Cloud API tokens sign in with the account's address: add `email`"
            )
        return self


@dataclass(frozen=True)
class _Listed:
    """What the listing told us about a document, for its fetch."""

    content_id: str  # the page's id, or the attachment's
    title: str  # "Ancestor / Parent / Page", or "... / Page / file.pdf"
    filename: str | None = None  # attachments only, from here on
    download: str = ""  # the download link, relative to the site
    size: int | None = None  # bytes, as listed


class ConfluenceSource(Source):
    kind = KIND
    workers = _WORKERS

    def __init__(
        self,
        config: ConfluenceConfig,
        *,
        max_bytes: int,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(config.name)
        self.config = config
        self.max_bytes = max_bytes
        self.sleep = sleep
        self.site = urlsplit(config.url).netloc
        self._rest: RestClient | None = None
        self._listed: dict[str, _Listed] = {}

    @property
    def client(self) -> RestClient:
        """Made on first use, so a missing token fails the run (and is recorded), not the build."""
        if self._rest is None:
            token = self.config.secret().get_secret_value()
            auth = httpx.BasicAuth(self.config.email, token) if self.config.email else None
            self._rest = RestClient(
                source=self.name,
                base_url=self.config.url,
                headers=None if auth else {"Authorization": f"Bearer {token}"},
                auth=auth,
                timeout=self.config.timeout,
                secret_hint="the API token" if auth else "the personal access token",
                sleep=self.sleep,
            )
        return self._rest

    def close(self) -> None:
        if self._rest is not None:
            self._rest.close()

    def refs(self) -> list[DocRef]:
        self._listed.clear()
        try:
            return self._list()
        except (KeyError, TypeError, AttributeError, ValueError) as error:  # not Confluence?
            raise SourceError(
                f"confluence source '{self.name}': unexpected answer from {self.config.url} "
                f"({type(error).__name__}: {error}): is it a Confluence site?"
            ) from None

    def _list(self) -> list[DocRef]:
        refs: list[DocRef] = []
        pages: dict[str, tuple[str, str]] = {}  # page id → (title path, location)
        for key in self.config.spaces:
            self._check_space(key)
            listing = self._paginate(
                "/rest/api/content",
                spaceKey=key,
                type="page",
                status="current",
                expand="version,ancestors,metadata.labels",
                limit=_LIMIT,
            )
            for page, base in listing:
                if not self._wanted(page):
                    continue
                path = " / ".join(
                    [a.get("title", "") for a in page.get("ancestors") or []] + [page["title"]]
                )
                location = _link(base, page, f"/pages/viewpage.action?pageId={page['id']}")
                pages[str(page["id"])] = (path, location)
                doc_id = f"confluence:{self.site}/{page['id']}"
                self._listed[doc_id] = _Listed(str(page["id"]), path)
                refs.append(DocRef(doc_id, location, _version(page, path)))
        if self.config.attachments:
            for key in self.config.spaces:
                refs.extend(self._attachments(key, pages))
        return refs

    def _check_space(self, key: str) -> None:
        try:
            self.client.get_json(f"/rest/api/space/{key}")
        except NotFoundError:
            raise SourceError(
                f"confluence source '{self.name}': space {key} does not exist or the token "
                "cannot see it"
            ) from None

    def _wanted(self, page: dict[str, Any]) -> bool:
        labels = page.get("metadata", {}).get("labels", {}).get("results") or []
        names = {str(label.get("name", "")).lower() for label in labels}
        if self.config.labels_include and not names & set(self.config.labels_include):
            return False
        return not names & set(self.config.labels_exclude)

    def _attachments(self, key: str, pages: dict[str, tuple[str, str]]) -> list[DocRef]:
        """Attachments of the listed pages of one space, from one paginated CQL search."""
        refs = []
        listing = self._paginate(
            "/rest/api/content/search",
            cql=f'type = attachment AND space = "{key}"',
            expand="version,container",
            limit=_LIMIT,
        )
        for attachment, base in listing:
            page_id = str((attachment.get("container") or {}).get("id", ""))
            links = attachment.get("_links") or {}
            media = _media_type(attachment)
            if page_id not in pages or media.startswith(_MEDIA) or not links.get("download"):
                continue
            page_path, page_location = pages[page_id]
            title = f"{page_path} / {attachment['title']}"
            doc_id = f"confluence:{self.site}/{page_id}/{attachment['id']}"
            self._listed[doc_id] = _Listed(
                str(attachment["id"]),
                title,
                filename=str(attachment["title"]),
                download=links["download"],
                size=(attachment.get("extensions") or {}).get("fileSize"),
            )
            location = _link(base, attachment, "") if links.get("webui") else page_location
            refs.append(DocRef(doc_id, location, _version(attachment, title)))
        return refs

    def _paginate(self, path: str, **params: Any) -> Iterator[tuple[dict[str, Any], str]]:
        """Every item of a listing with the site's base URL; SourceError if any page fails."""
        url: str | None = path
        seen: set[str] = set()
        while url:
            answer = self.client.get_json(url, **params)
            links = answer.get("_links") or {}
            fresh = [item for item in answer["results"] if str(item.get("id")) not in seen]
            if not fresh:  # an empty page, or a server repeating itself past the end
                return
            base = str(links.get("base") or self.config.url).rstrip("/")
            for item in fresh:
                seen.add(str(item.get("id")))
                yield item, base
            url, params = _relative(links.get("next"), links.get("context")), {}

    def fetch(self, ref: DocRef, previous: StoredDocument | None) -> Fetched | Outcome:
        listed = self._listed[ref.doc_id]
        if listed.filename is not None:
            return self._fetch_attachment(ref, listed)
        try:
            page = self.client.get_json(
                f"/rest/api/content/{listed.content_id}", expand="body.storage,version"
            )
        except NotFoundError:
            return GONE  # deleted since the listing
        storage = page["body"]["storage"]["value"]
        _check_size(len(storage.encode()), self.max_bytes)
        try:
            _, sections = parse_html(storage_to_html(storage), fallback_title=listed.title)
        except DocumentError:
            raise DocumentError("no text (only macros, images or links): skipped") from None
        version = ref.version or content_version(storage.encode())
        return Fetched(listed.title, sections, version, ref.location)

    def _fetch_attachment(self, ref: DocRef, listed: _Listed) -> Fetched | Outcome:
        name = Path(listed.filename or "")
        if name.suffix.lower() not in SUPPORTED:
            raise DocumentError(
                f"{name.suffix or 'extensionless'} attachments are not read "
                "(pdf, md, txt, html and rst are): skipped"
            )
        if listed.size is not None:
            _check_size(int(listed.size), self.max_bytes)
        try:
            response = self.client.request("GET", listed.download, headers={"Accept": "*/*"})
        except NotFoundError:
            return GONE
        _check_size(len(response.content), self.max_bytes)
        _, sections = parse_document(name, response.content)
        version = ref.version or content_version(response.content)
        return Fetched(listed.title, sections, version, ref.location)


def _version(content: dict[str, Any], title: str) -> str | None:
    """The version number and a digest of the title path, so a moved page gets its new path.

    None (fetch every run, compare content) if a server leaves the number out.
    """
    number = (content.get("version") or {}).get("number")
    if number is None:
        return None
    return f"{number}:{hashlib.sha256(title.encode()).hexdigest()[:8]}"


def _link(base: str, content: dict[str, Any], fallback: str) -> str:
    webui = (content.get("_links") or {}).get("webui") or fallback
    return webui if webui.startswith("http") else base + webui


def _relative(link: str | None, context: str | None) -> str | None:
    """A `_links.next` is relative to the site's base URL; some carry the context path too."""
    if not link:
        return None
    if context and link.startswith(context.rstrip("/") + "/rest/"):
        return link[len(context.rstrip("/")) :]
    return link


def _media_type(attachment: dict[str, Any]) -> str:
    extensions = attachment.get("extensions") or {}
    metadata = attachment.get("metadata") or {}
    return str(extensions.get("mediaType") or metadata.get("mediaType") or "").lower()


def _check_size(size: int, limit: int) -> None:
    if size > limit:
        raise DocumentError(f"{size / 1048576:.1f} MB is over the size limit: skipped")


_DROPPED = re.compile(  # macro settings, editor hints, task bookkeeping, Cloud's duplicates
    r"<(ac:parameter|ac:placeholder|ac:task-id|ac:task-uuid|ac:task-status|ac:adf-fallback"
    r"|ac:adf-attribute)\b[^>]*?(/>|>.*?</\1>)",
    re.DOTALL,
)
_BLOCKS = re.compile(
    r"<(/?)ac:(?:structured-macro|rich-text-body|plain-text-body|task|task-body|adf-node"
    r"|adf-content|layout-section|layout-cell)\b[^>]*?(/?)>"
)


def storage_to_html(storage: str) -> str:
    """Confluence's storage format (XHTML with ac:/ri: macros) as HTML parse_html reads well.

    Code blocks keep their text (CDATA), macro settings and editor placeholders are dropped,
    macros become blocks, dates and page links show as text, table cells are kept apart.
    """
    text = re.sub(r"<!\[CDATA\[(.*?)\]\]>", lambda m: html.escape(m.group(1)), storage, flags=re.S)
    text = _DROPPED.sub("", text)
    text = re.sub(r'<time\b[^>]*\bdatetime="([^"]*)"[^>]*>', r" \1 ", text)
    text = re.sub(
        r'<ac:link\b[^>]*>\s*<ri:page\b[^>]*\bri:content-title="([^"]*)"[^>]*/>\s*</ac:link>',
        r" \1 ",
        text,
    )
    text = _BLOCKS.sub(lambda m: "" if m.group(2) else f"<{m.group(1)}div>", text)
    return re.sub(r"(</t[dh]>)\s*(<t[dh]\b)", r"\1 | \2", text)


def build(config: ConfluenceConfig, context: SourceContext) -> Source:
    return ConfluenceSource(config, max_bytes=context.max_bytes)
