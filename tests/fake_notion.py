"""A loopback fake of the Notion REST API (version 2022-06-28) that records every request.

It answers what the notion source uses, in the real shapes: POST /v1/search, GET /v1/pages/{id},
POST /v1/databases/{id}/query and GET /v1/blocks/{id}/children, paginated by start_cursor /
next_cursor / has_more, with Notion's error objects. `page_limit` caps a page of results (the
real API may return fewer than page_size), so pagination shows with a handful of pages.
"""

import json
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.loopback import LoopbackServer, QuietHandler, send_json

TOKEN_ENV = "NOTION_FAKE_TOKEN"
EPOCH = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def text(content: str) -> list[dict[str, Any]]:
    """Rich text as the API returns it."""
    return [
        {
            "type": "text",
            "text": {"content": content, "link": None},
            "annotations": {"bold": False, "italic": False, "code": False, "color": "default"},
            "plain_text": content,
            "href": None,
        }
    ]


def block(kind: str, content: str = "", *children: dict[str, Any], **fields: Any) -> dict:
    """A block of any type; rich text in `content`, nested blocks as further arguments."""
    body: dict[str, Any] = {"rich_text": text(content)} if content else {}
    body.update(fields)
    return {
        "object": "block",
        "id": str(uuid.uuid4()),
        "type": kind,
        kind: body,
        "has_children": bool(children),
        "archived": False,
        "in_trash": False,
        "_children": list(children),  # the fake's own: served by /v1/blocks/{id}/children
    }


def paragraph(content: str) -> dict[str, Any]:
    return block("paragraph", content)


@dataclass
class Failure:
    path: str  # a part of the request path, e.g. "/v1/search"
    status: int
    times: int = 1
    retry_after: int | None = None
    paged_only: bool = False  # only requests carrying a start_cursor


class FakeNotion:
    def __init__(self, token: str = "secret_fake_notion_token") -> None:
        self.token = token
        self.pages: dict[str, dict[str, Any]] = {}  # shared pages: id → page object
        self.blocks: dict[str, list[dict[str, Any]]] = {}  # page or block id → children
        self.databases: dict[str, list[str]] = {}  # database id → row page ids
        self.requests: list[tuple[str, str, dict[str, Any]]] = []  # (method, path, body/query)
        self.failures: list[Failure] = []
        self.page_limit = 100
        self.delay = 0.0  # seconds added to each page-content (block children) response
        self._clock = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                fake._serve(self, "GET")

            def do_POST(self) -> None:
                fake._serve(self, "POST")

        self.server = LoopbackServer(Handler)
        self.url = self.server.url

    def close(self) -> None:
        self.server.close()

    # --- the workspace -------------------------------------------------------------------

    def _tick(self) -> str:
        self._clock += 1
        when = EPOCH + timedelta(minutes=self._clock)
        return when.strftime("%Y-%m-%dT%H:%M:00.000Z")

    def add_page(
        self,
        title: str,
        *blocks: dict[str, Any],
        parent: str | None = None,
        database: str | None = None,
        properties: dict[str, Any] | None = None,
        page_id: str | None = None,
    ) -> str:
        """A shared page (a row when `database` is given); a child page when `parent` is."""
        page_id = page_id or str(uuid.uuid4())
        edited = self._tick()
        where = (
            {"type": "database_id", "database_id": database}
            if database
            else {"type": "page_id", "page_id": parent}
            if parent
            else {"type": "workspace", "workspace": True}
        )
        title_key = "Name" if database else "title"
        props = {title_key: {"id": "title", "type": "title", "title": text(title)}}
        props.update(properties or {})
        slug = "-".join(title.split()) or "Untitled"
        self.pages[page_id] = {
            "object": "page",
            "id": page_id,
            "created_time": edited,
            "last_edited_time": edited,
            "created_by": {"object": "user", "id": "u1"},
            "last_edited_by": {"object": "user", "id": "u1"},
            "cover": None,
            "icon": None,
            "parent": where,
            "archived": False,
            "in_trash": False,
            "properties": props,
            "url": f"https://www.notion.so/{slug}-{page_id.replace('-', '')}",
            "public_url": None,
        }
        self._store_blocks(page_id, list(blocks))
        if database:
            self.databases.setdefault(database, []).append(page_id)
        if parent:
            child = block("child_page", title=title)
            child["id"] = page_id
            self.blocks.setdefault(parent, []).append(child)
            self.touch(parent)
        return page_id

    def _store_blocks(self, parent: str, blocks: list[dict[str, Any]]) -> None:
        self.blocks[parent] = blocks
        for child in blocks:
            if child.get("_children"):
                self._store_blocks(child["id"], child["_children"])

    def touch(self, page_id: str) -> None:
        self.pages[page_id]["last_edited_time"] = self._tick()

    def edit(self, page_id: str, *blocks: dict[str, Any]) -> None:
        """New content; last_edited_time moves on, as in Notion."""
        children = [b for b in self.blocks.get(page_id, []) if b["type"] == "child_page"]
        self._store_blocks(page_id, [*blocks, *children])
        self.touch(page_id)

    def trash(self, page_id: str) -> None:
        page = self.pages[page_id]
        page["archived"] = page["in_trash"] = True
        self.touch(page_id)

    def unshare(self, page_id: str) -> None:
        """The integration loses access: the page answers 404 and leaves searches."""
        del self.pages[page_id]

    def populate(self, count: int, revision: str) -> None:
        """`count` simple pages; a new revision edits their text (and last_edited_time)."""
        for i in range(count):
            page_id = str(uuid.UUID(int=i + 1))
            blocks = [
                block("heading_1", f"Document {i}"),
                paragraph(f"Document {i} ({revision}) says the code word is word{i}."),
                paragraph(f"It was written for revision {revision} of the handbook."),
                block("bulleted_list_item", f"Its number is {i}, and nothing else matters here."),
            ]
            if page_id in self.pages:
                self.edit(page_id, *blocks)
            else:
                self.add_page(f"Document {i}", *blocks, page_id=page_id)

    def fail(self, path: str, status: int, **options: Any) -> None:
        self.failures.append(Failure(path, status, **options))

    def count(self, method: str, path_part: str) -> int:
        return sum(1 for m, p, _ in self.requests if m == method and path_part in p)

    # --- the API -------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(handler.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length) or b"{}") if method == "POST" else query
        with self._lock:
            self.requests.append((method, url.path, body))
        if handler.headers.get("Authorization") != f"Bearer {self.token}":
            return _send(handler, *_error(401, "unauthorized", "API token is invalid."))
        if not handler.headers.get("Notion-Version"):
            return _send(handler, *_error(400, "missing_version", "Notion-Version is missing."))
        failure = self._failure(url.path, body)
        if failure is not None:
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else {}
            code = "rate_limited" if failure.status == 429 else "internal_server_error"
            return _send(handler, *_error(failure.status, code, "Injected failure."), headers)
        parts = url.path.strip("/").split("/")
        if method == "POST" and parts == ["v1", "search"]:
            pages = [p for p in self.pages.values() if not p["in_trash"]]
            return _send(handler, 200, self._list(pages, body))
        if method == "GET" and parts[:2] == ["v1", "pages"] and len(parts) == 3:
            page = self.pages.get(parts[2])
            if page is None:
                return _send(handler, *_not_found("page", parts[2]))
            return _send(handler, 200, page)
        if method == "POST" and parts[:2] == ["v1", "databases"] and parts[3:] == ["query"]:
            if parts[2] not in self.databases:
                return _send(handler, *_not_found("database", parts[2]))
            ids = self.databases[parts[2]]
            rows = [self.pages[i] for i in ids if i in self.pages and not self.pages[i]["in_trash"]]
            return _send(handler, 200, self._list(rows, body))
        if method == "GET" and parts[:2] == ["v1", "blocks"] and parts[3:] == ["children"]:
            if parts[2] not in self.blocks or (
                parts[2] not in self.pages and self._page_of(parts[2]) is None
            ):
                return _send(handler, *_not_found("block", parts[2]))
            time.sleep(self.delay)
            shown = [
                {k: v for k, v in b.items() if k != "_children"} for b in self.blocks[parts[2]]
            ]
            return _send(handler, 200, self._list(shown, query, kind="block"))
        return _send(handler, *_error(400, "invalid_request_url", "Invalid request URL."))

    def _failure(self, path: str, body: dict[str, Any]) -> Failure | None:
        with self._lock:
            for failure in self.failures:
                if failure.path in path and failure.times > 0:
                    if failure.paged_only and not body.get("start_cursor"):
                        continue
                    failure.times -= 1
                    return failure
        return None

    def _page_of(self, block_id: str) -> str | None:
        """The shared page a block sits in, if any."""
        for parent, children in list(self.blocks.items()):
            if any(child["id"] == block_id for child in children):
                return parent if parent in self.pages else self._page_of(parent)
        return None

    def _list(self, items: list[dict], request: dict, kind: str = "page_or_database") -> dict:
        """A page of results; the cursor is the id of the first result of the next page."""
        size = min(int(request.get("page_size") or 100), 100, self.page_limit)
        start = 0
        cursor = request.get("start_cursor")
        if cursor:
            start = next((n for n, item in enumerate(items) if item["id"] == cursor), len(items))
        shown = items[start : start + size]
        more = start + size < len(items)
        return {
            "object": "list",
            "results": shown,
            "next_cursor": items[start + size]["id"] if more else None,
            "has_more": more,
            "type": kind,
            kind: {},
            "request_id": str(uuid.uuid4()),
        }


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"object": "error", "status": status, "code": code, "message": message}


def _not_found(what: str, notion: str) -> tuple[int, dict[str, Any]]:
    return _error(
        404,
        "object_not_found",
        f"Could not find {what} with ID: {notion}. Make sure the relevant pages and databases "
        "are shared with your integration.",
    )


_send = send_json


def sources_entry(fake: FakeNotion, name: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The sources.yaml entry indexing everything shared in `fake`, and the env it needs."""
    entry = {"name": name, "kind": "notion", "api_url": fake.url, "token_env": TOKEN_ENV}
    return entry, {TOKEN_ENV: fake.token}
