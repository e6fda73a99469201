"""Notion pages and database rows shared with an internal integration, as sectioned text.

Every listing (a search, a database query, a listed page) carries each page's last_edited_time,
so an unchanged page costs nothing more. Child pages are documents of their own, remembered per
page version: finding them reads a page's blocks only when it changed. Pages in the trash, or
no longer shared, are not listed and leave the index.
"""

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from retrieval.documents import Section
from retrieval.errors import DocumentError
from retrieval.sources.base import GONE, DocRef, Fetched, Outcome, Source, SourceError
from retrieval.sources.credentials import TokenConfig
from retrieval.sources.registry import SourceContext
from retrieval.sources.rest import NotFoundError, RestClient
from retrieval.store import StoredDocument

KIND = "notion"
NOTION_VERSION = "2022-06-28"  # the last version whose database query takes a database id
SETTLE = timedelta(minutes=5)  # last_edited_time is rounded to the minute: see `settled_version`
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ID_AT_END = re.compile(r"(?:^|[^0-9a-f])([0-9a-f]{32})$")
_NOT_TEXT = {"child_page", "child_database"}  # documents of their own, or rows elsewhere


def notion_id(text: str) -> str:
    """The dashed id in a page or database id (with or without dashes) or a notion.so link."""
    value = text.strip().lower()
    if "/" in value:  # a link: the id ends the last path segment, after the page's slug
        url = value if "://" in value else f"https://{value}"
        value = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    if _UUID.fullmatch(value):
        return value
    match = _ID_AT_END.search(value)
    if not match:
        raise ValueError(
            f"'{text}' is not a Notion id (32 hexadecimal digits) or a notion.so link to a page "
            "or database: copy the link from the page's ··· menu → Copy link"
        )
    hexa = match.group(1)
    return f"{hexa[:8]}-{hexa[8:12]}-{hexa[12:16]}-{hexa[16:20]}-{hexa[20:]}"


class NotionConfig(TokenConfig):
    """Pages and databases shared with a Notion internal integration; none listed: all of them."""

    default_env: ClassVar[str] = "NOTION_TOKEN"

    pages: list[str] = Field(default_factory=list, description="page ids or notion.so links")
    databases: list[str] = Field(default_factory=list, description="database ids or links")
    children: bool = Field(True, description="also index the child pages of the listed pages")
    api_url: str = "https://api.notion.com"
    timeout: float = Field(30.0, gt=0)

    @field_validator("pages", "databases")
    @classmethod
    def _ids(cls, values: list[str]) -> list[str]:
        return list(dict.fromkeys(notion_id(value) for value in values))

    @field_validator("api_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"'{value}' is not an http(s) URL")
        return value.rstrip("/")


Walked = list[tuple[int, dict[str, Any]]]  # (nesting depth, block) in reading order


class NotionSource(Source):
    kind = KIND

    def __init__(
        self,
        config: NotionConfig,
        *,
        max_bytes: int,
        state_file: Path,
        sleep: Callable[[float], None] = time.sleep,
        workers: int = 3,  # Notion allows about three requests a second per integration
    ) -> None:
        super().__init__(config.name)
        self.config = config
        self.max_bytes = max_bytes
        self.state_file = state_file
        self.sleep = sleep
        self.workers = workers
        self._listed: dict[str, dict[str, Any]] = {}  # doc id → page object from the listing
        self._walked: dict[str, Walked] = {}  # page id → blocks already read while listing

    @cached_property
    def client(self) -> RestClient:
        """Made on first use, so a missing token fails a run, not the whole configuration."""
        token = self.config.secret().get_secret_value()
        return RestClient(
            source=self.name,
            base_url=self.config.api_url,
            headers={"Authorization": f"Bearer {token}", "Notion-Version": NOTION_VERSION},
            timeout=self.config.timeout,
            secret_hint="the Notion integration token",
            sleep=self.sleep,
        )

    def close(self) -> None:
        self._walked = {}
        if (client := self.__dict__.pop("client", None)) is not None:  # the next run makes one
            client.close()

    def refs(self) -> list[DocRef]:
        pages: dict[str, dict[str, Any]] = {}
        self._walked = {}
        if not self.config.pages and not self.config.databases:  # all that is shared
            only_pages = {"filter": {"property": "object", "value": "page"}}
            for page in self._paginate("POST", "/v1/search", only_pages):
                _keep(pages, page)
        for database in self.config.databases:
            try:
                for page in self._paginate("POST", f"/v1/databases/{database}/query", {}):
                    _keep(pages, page)
            except NotFoundError:
                raise self._missing("database", database) from None
        self._list_pages(pages)
        self._listed = {f"{KIND}:{page_id}": page for page_id, page in pages.items()}
        return [
            DocRef(doc_id, web_url(page), page.get("last_edited_time"))
            for doc_id, page in self._listed.items()
        ]

    def _list_pages(self, pages: dict[str, dict[str, Any]]) -> None:
        """The listed pages and, with `children`, their child pages at every depth."""
        known = self._known_children()
        remembered: dict[str, dict[str, Any]] = {}
        queue = [(page_id, True) for page_id in self.config.pages]
        seen: set[str] = set()
        while queue:
            page_id, listed = queue.pop(0)
            if page_id in seen:
                continue
            seen.add(page_id)
            try:
                page = self._json("GET", f"/v1/pages/{page_id}")
            except NotFoundError:
                if listed:
                    raise self._missing("page", page_id) from None
                continue  # a child page deleted or unshared since: it leaves the index
            if not _keep(pages, page) or not self.config.children:
                continue
            version = page.get("last_edited_time")
            entry = known.get(page_id)
            if entry is None or entry.get("version") != version:
                blocks: Walked = []
                with contextlib.suppress(NotFoundError):  # gone since: no children either
                    blocks = self._walk(page_id)
                self._walked[page_id] = blocks
                children = [b["id"] for _, b in blocks if b.get("type") == "child_page"]
                entry = {"version": version, "children": children}
            remembered[page_id] = entry
            queue.extend((child, False) for child in entry["children"])
        if self.config.pages and self.config.children:
            self._remember_children(remembered)

    def fetch(self, ref: DocRef, previous: StoredDocument | None) -> Fetched | Outcome:
        page_id = ref.doc_id.removeprefix(f"{KIND}:")
        try:
            page = self._listed.get(ref.doc_id) or self._json("GET", f"/v1/pages/{page_id}")
            walked = self._walked.pop(page_id, None)  # read while listing, if it was
            blocks = self._walk(page_id) if walked is None else walked
        except NotFoundError:
            return GONE  # deleted or unshared since the listing
        sections = page_sections(page, blocks)
        size = sum(len(section.text.encode()) for section in sections)
        if size > self.max_bytes:
            raise DocumentError(f"{size / 1048576:.1f} MB of text is over the size limit: skipped")
        if not any(section.text for section in sections):
            raise DocumentError("no text to index (only images, files or embeds?): skipped")
        version = settled_version(page.get("last_edited_time") or "", sections)
        return Fetched(page_title(page), sections, version, web_url(page))

    def _walk(self, block_id: str, depth: int = 0) -> Walked:
        """Every block under a page or block, nested ones after their parent; not child pages."""
        walked: Walked = []
        for block in self._paginate("GET", f"/v1/blocks/{block_id}/children"):
            walked.append((depth, block))
            if block.get("has_children") and block.get("type") not in _NOT_TEXT:
                with contextlib.suppress(NotFoundError):  # e.g. a synced block not shared
                    walked.extend(self._walk(block["id"], depth + 1))
        return walked

    def _paginate(self, method: str, path: str, body: dict | None = None) -> Iterator[dict]:
        """Every result of a paginated endpoint, following next_cursor while has_more."""
        cursor: str | None = None
        while True:
            page = {"page_size": 100, **({"start_cursor": cursor} if cursor else {})}
            if method == "GET":  # GET takes the cursor in the query, POST in the body
                data = self._json(method, path, params=page)
            else:
                data = self._json(method, path, json={**(body or {}), **page})
            yield from data.get("results") or []
            cursor = data.get("next_cursor")
            if not data.get("has_more") or not cursor:
                return

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            data = self.client.request(method, path, **kwargs).json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise SourceError(f"source '{self.name}': {method} {path} did not answer with JSON")
        return data

    def _missing(self, what: str, notion: str) -> SourceError:
        return SourceError(
            f"source '{self.name}': {what} {notion} not found or not shared with the integration "
            f"(share it via ··· → Connections in Notion, or remove it from sources.yaml)"
        )

    def _known_children(self) -> dict[str, dict[str, Any]]:
        try:  # none on a first run, or when lost: the listing then walks the pages again
            known = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            known = {}
        return known if isinstance(known, dict) else {}

    def _remember_children(self, known: dict[str, dict[str, Any]]) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self.state_file.with_suffix(".partial")
        partial.write_text(json.dumps(known), encoding="utf-8")
        partial.replace(self.state_file)


def _keep(pages: dict[str, dict[str, Any]], page: dict[str, Any]) -> bool:
    if page.get("object") != "page" or page.get("archived") or page.get("in_trash"):
        return False
    pages[page["id"]] = page
    return True


def settled_version(edited: str, sections: list[Section]) -> str:
    """last_edited_time; for a page edited minutes ago also a content hash, as a second edit
    within the same minute keeps the same time: the next run then fetches the page again."""
    with contextlib.suppress(ValueError):
        if datetime.now(UTC) - datetime.fromisoformat(edited.replace("Z", "+00:00")) > SETTLE:
            return edited
    text = "\n".join(f"{s.headings}\n{s.text}" for s in sections)
    return f"{edited} {hashlib.sha256(text.encode()).hexdigest()[:16]}"


def web_url(page: dict[str, Any]) -> str:
    """Where people read the page: its notion.so link."""
    return page.get("url") or f"https://www.notion.so/{page['id'].replace('-', '')}"


def rich(items: list[dict[str, Any]] | None) -> str:
    return "".join(item.get("plain_text", "") for item in items or [])


def page_title(page: dict[str, Any]) -> str:
    props = (page.get("properties") or {}).values()
    titles = [property_text(prop) for prop in props if prop.get("type") == "title"]
    return next(filter(None, titles), "Untitled")


def page_sections(page: dict[str, Any], blocks: Walked) -> list[Section]:
    """A Properties section (database rows), then the blocks, split at their headings."""
    sections: list[Section] = []
    properties = [
        f"{name}: {text}"
        for name, prop in (page.get("properties") or {}).items()
        if prop.get("type") != "title" and (text := property_text(prop))
    ]
    if properties:
        sections.append(Section(("Properties",), "\n".join(properties)))
    path: list[tuple[int, str]] = []
    lines: list[str] = []
    numbers: dict[int, int] = {}

    def flush() -> None:
        if "".join(lines).strip():
            sections.append(Section(tuple(h for _, h in path), "\n".join(lines).strip()))
        lines.clear()

    for depth, block in blocks:
        kind = block.get("type", "")
        going_on = kind == "numbered_list_item"  # numbering restarts after anything else
        numbers = {d: n for d, n in numbers.items() if d < depth or (d == depth and going_on)}
        if kind in ("heading_1", "heading_2", "heading_3"):
            flush()
            level = int(kind[-1])
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, rich((block.get(kind) or {}).get("rich_text")).strip()))
            continue
        if kind == "numbered_list_item":
            numbers[depth] = numbers.get(depth, 0) + 1
        text = block_text(block, numbers.get(depth, 0))
        if text:
            lines.append("  " * depth + text)
    flush()
    return sections


def block_text(block: dict[str, Any], number: int = 0) -> str:
    """One block as a line of Markdown-like text; "" for blocks with nothing to index."""
    kind = block.get("type", "")
    value = block.get(kind) or {}
    if kind in _NOT_TEXT or not isinstance(value, dict):
        return ""
    text = rich(value.get("rich_text")).strip()
    if kind == "code":
        code = rich(value.get("rich_text"))  # kept as written: indentation matters
        return f"```{value.get('language', '')}\n{code}\n```" if text else ""
    if kind == "table_row":
        return " | ".join(rich(cell).strip() for cell in value.get("cells") or [])
    if kind == "equation":
        return value.get("expression", "")
    if kind in ("image", "video", "audio", "file", "pdf", "bookmark", "embed"):
        return rich(value.get("caption")).strip()  # only a caption says anything
    if not text:
        return ""
    prefix = {
        "bulleted_list_item": "- ",
        "numbered_list_item": f"{number}. ",
        "to_do": "[x] " if value.get("checked") else "[ ] ",
        "quote": "> ",
        "callout": f"{(value.get('icon') or {}).get('emoji', '')} ".lstrip(),
    }.get(kind, "")
    return prefix + text


def property_text(prop: dict[str, Any]) -> str:
    """A database property's value as text; "" for empty ones and ids with no meaning."""
    kind = prop.get("type", "")
    value = prop.get(kind)
    if value is None or value == [] or value == "":
        return ""
    if kind in ("title", "rich_text"):
        return rich(value).strip()
    if kind in ("select", "status"):
        return str(value.get("name", ""))
    if kind == "multi_select":
        return ", ".join(option.get("name", "") for option in value)
    if kind == "people":
        return ", ".join(person["name"] for person in value if person.get("name"))
    if kind == "date":
        end = value.get("end")
        return f"{value.get('start', '')} → {end}" if end else str(value.get("start", ""))
    if kind in ("checkbox", "boolean"):  # a boolean is what a formula may yield
        return "yes" if value else "no"
    if kind == "number":
        return str(int(value)) if float(value).is_integer() else str(value)
    if kind in ("url", "email", "phone_number", "string"):
        return str(value)
    if kind in ("formula", "rollup"):
        inner = value.get(value.get("type", ""))
        if isinstance(inner, list):
            return ", ".join(filter(None, (property_text(item) for item in inner)))
        return property_text({"type": value.get("type"), value.get("type"): inner})
    if kind == "unique_id":
        prefix = value.get("prefix")
        return f"{prefix}-{value.get('number')}" if prefix else str(value.get("number", ""))
    if kind == "files":
        return ", ".join(item.get("name", "") for item in value)
    return ""  # relation, created_by, created_time, verification…: nothing to read


def build(config: NotionConfig, context: SourceContext) -> Source:
    return NotionSource(
        config, max_bytes=context.max_bytes, state_file=context.state_dir / f"{config.name}.json"
    )
