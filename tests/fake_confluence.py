"""Confluence's REST API v1 on loopback, shaped like the real one, recording every request.

Served under a context path (/wiki, as Cloud is), so links relative to `_links.base` are
exercised. Content listings paginate by start + `_links.next` and CQL search by an opaque
cursor, both capped at `page_limit` items a request whatever `limit` asks, as real servers cap.
"""

import base64
import re
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, urlencode, urlsplit

from tests.loopback import LoopbackServer, QuietHandler, send_json

CONTEXT = "/wiki"
TOKEN_ENV = "CONFLUENCE_TEST_TOKEN"


@dataclass
class Page:
    id: str
    space: str
    title: str
    body: str  # storage format
    parent: str | None = None
    labels: list[str] = field(default_factory=list)
    version: int = 1
    status: str = "current"  # "archived" and "trashed" pages are not listed

    def edit(self, body: str) -> None:
        self.body, self.version = body, self.version + 1


@dataclass
class Attachment:
    id: str
    page: str
    filename: str
    media_type: str
    data: bytes
    version: int = 1


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the context path, e.g. /rest/api/content/1001
    query: dict[str, str]
    authorization: str


class FakeConfluence:
    def __init__(self, *, token: str = "pat-7f3c9e21", email: str | None = None) -> None:
        self.token = token
        self.email = email  # when set, only Basic email:token is accepted (as Cloud)
        self.spaces: dict[str, str] = {}  # key → name
        self.pages: dict[str, Page] = {}
        self.attachments: dict[str, Attachment] = {}
        self.requests: list[Request] = []
        self.page_limit = 25
        self.delay = 0.0  # seconds added to each page body and attachment download
        self.refuse = False  # answer 401 to everything, as for a revoked token
        self.rate_limited = 0  # answer this many next requests 429 Retry-After
        self.retry_after = "1"
        self.fail_listing_from: int | None = None  # content listing start >= this → 500
        self._lock = threading.Lock()
        self._ids = 1000
        fake = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                fake._serve(self)

        self.server = LoopbackServer(Handler)
        self.url = self.server.url + CONTEXT

    def close(self) -> None:
        self.server.close()

    # -- content -------------------------------------------------------------------------

    def add_page(
        self, space: str, title: str, body: str, *, parent: Page | None = None, **more: Any
    ) -> Page:
        self.spaces.setdefault(space, space.title())
        page = Page(self._next_id(), space, title, body, parent.id if parent else None, **more)
        self.pages[page.id] = page
        return page

    def attach(self, page: Page, filename: str, media_type: str, data: bytes) -> Attachment:
        attachment = Attachment(f"att{self._next_id()}", page.id, filename, media_type, data)
        self.attachments[attachment.id] = attachment
        return attachment

    def populate(self, count: int, revision: str) -> None:
        """`count` pages in space DOCS; calling again with a new revision edits them all."""
        self.spaces.setdefault("DOCS", "Documents")
        for i in range(count):
            body = (
                f"<h1>Document {i}</h1><p>Document {i} ({revision}) says the code word is "
                f"word{i}.</p><p>It was written for the {revision} edition of the handbook. "
                f"Nothing else in it matters much.</p><p>Ask the docs team about document {i}.</p>"
            )
            page_id = str(100_000 + i)
            if page_id not in self.pages:
                self.pages[page_id] = Page(page_id, "DOCS", f"Document {i}", body)
            elif self.pages[page_id].body != body:
                self.pages[page_id].edit(body)

    def body_fetches(self) -> list[str]:
        """Ids of the pages whose body was requested, in order."""
        found = (re.fullmatch(r"/rest/api/content/(\d+)", r.path) for r in self.requests)
        return [match.group(1) for match in found if match]

    def downloads(self) -> list[str]:
        return [r.path for r in self.requests if r.path.startswith("/download/")]

    def listings(self, path: str = "/rest/api/content") -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def _next_id(self) -> str:
        self._ids += 1
        return str(self._ids)

    # -- HTTP ----------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        path = parts.path.removeprefix(CONTEXT)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        authorization = handler.headers.get("Authorization", "")
        with self._lock:
            self.requests.append(Request("GET", path, query, authorization))
            limited = self.rate_limited > 0
            self.rate_limited -= int(limited)
        if limited:
            return _send(
                handler, 429, _error(429, "Rate limit exceeded"), {"Retry-After": self.retry_after}
            )
        if self.refuse or not self._authorised(authorization):
            return _send(handler, 401, _error(401, "This request requires authentication"))
        routes = [
            (r"/rest/api/space/([^/]+)", self._space),
            (r"/rest/api/content", self._listing),
            (r"/rest/api/content/search", self._search),
            (r"/rest/api/content/(\d+)", self._content),
            (r"/download/attachments/(\d+)/([^/]+)", self._download),
        ]
        for pattern, route in routes:
            match = re.fullmatch(pattern, path)
            if match:
                return route(handler, query, *match.groups())
        _send(handler, 404, _error(404, f"No resource at {path}"))

    def _authorised(self, authorization: str) -> bool:
        if self.email is not None:
            basic = base64.b64encode(f"{self.email}:{self.token}".encode()).decode()
            return authorization == f"Basic {basic}"
        return authorization == f"Bearer {self.token}"

    def _space(self, handler: BaseHTTPRequestHandler, query: dict[str, str], key: str) -> None:
        if key not in self.spaces:
            return _send(handler, 404, _error(404, f"No space with key : {key}"))
        _send(
            handler,
            200,
            {
                "id": 98000 + sorted(self.spaces).index(key),
                "key": key,
                "name": self.spaces[key],
                "type": "global",
                "status": "current",
                "_links": {"webui": f"/spaces/{key}", "self": f"{self.url}/rest/api/space/{key}"},
                "_expandable": {"homepage": "", "description": "", "metadata": "", "icon": ""},
            },
        )

    def _listing(self, handler: BaseHTTPRequestHandler, query: dict[str, str]) -> None:
        start = int(query.get("start", 0))
        if self.fail_listing_from is not None and start >= self.fail_listing_from:
            return _send(handler, 500, _error(500, "java.lang.IllegalStateException"))
        pages = [
            p
            for p in list(self.pages.values())
            if p.space == query.get("spaceKey")
            and p.status == query.get("status", "current")
            and query.get("type", "page") == "page"
        ]
        expand = set(query.get("expand", "").split(","))
        self._page_of(handler, query, [self._content_json(p, expand) for p in pages], start, None)

    def _search(self, handler: BaseHTTPRequestHandler, query: dict[str, str]) -> None:
        match = re.fullmatch(
            r'\s*type\s*=\s*attachment\s+and\s+space\s*=\s*"?([^"\s]+)"?\s*',
            query.get("cql", ""),
            re.IGNORECASE,
        )
        if not match:
            return _send(handler, 400, _error(400, "Could not parse cql"))
        start = int(base64.urlsafe_b64decode(query["cursor"]).decode()) if "cursor" in query else 0
        expand = set(query.get("expand", "").split(","))
        found = [
            self._attachment_json(a, expand)
            for a in list(self.attachments.values())
            if self.pages[a.page].space == match.group(1) and self.pages[a.page].status != "trashed"
        ]
        self._page_of(handler, query, found, start, "cursor")

    def _page_of(
        self,
        handler: BaseHTTPRequestHandler,
        query: dict[str, str],
        items: list[dict[str, Any]],
        start: int,
        cursor: str | None,
    ) -> None:
        limit = min(int(query.get("limit", 25)), self.page_limit)
        chunk = items[start : start + limit]
        path = urlsplit(handler.path).path.removeprefix(CONTEXT)
        links = {"base": self.url, "context": CONTEXT, "self": self.url + path}
        if start + limit < len(items):
            following = {k: v for k, v in query.items() if k not in ("start", "cursor")}
            following["limit"] = str(limit)
            if cursor:
                following.update(
                    next="true",
                    cursor=base64.urlsafe_b64encode(str(start + limit).encode()).decode(),
                )
            else:
                following["start"] = str(start + limit)
            links["next"] = f"{path}?{urlencode(following)}"
        body = {"results": chunk, "start": start, "limit": limit, "size": len(chunk)}
        _send(handler, 200, {**body, "_links": links})

    def _content(self, handler: BaseHTTPRequestHandler, query: dict[str, str], id: str) -> None:
        time.sleep(self.delay)
        page = self.pages.get(id)
        if page is None or page.status == "trashed":
            return _send(
                handler, 404, _error(404, f"No content found with id : ContentId{{id={id}}}")
            )
        expand = set(query.get("expand", "").split(","))
        _send(
            handler,
            200,
            {
                **self._content_json(page, expand),
                "_links": {**self._links(page), "base": self.url, "context": CONTEXT},
            },
        )

    def _download(
        self, handler: BaseHTTPRequestHandler, query: dict[str, str], page_id: str, name: str
    ) -> None:
        time.sleep(self.delay)
        for attachment in self.attachments.values():
            if attachment.page == page_id and quote(attachment.filename) == name:
                handler.send_response(200)
                handler.send_header("Content-Type", attachment.media_type)
                handler.send_header("Content-Length", str(len(attachment.data)))
                handler.end_headers()
                handler.wfile.write(attachment.data)
                return
        _send(handler, 404, _error(404, "Attachment not found"))

    # -- JSON shapes ---------------------------------------------------------------------

    def _links(self, page: Page) -> dict[str, str]:
        return {
            "webui": f"/spaces/{page.space}/pages/{page.id}/{quote_plus(page.title)}",
            "edit": f"/pages/resumedraft.action?draftId={page.id}",
            "tinyui": f"/x/{base64.b64encode(page.id.encode()).decode().rstrip('=')}",
            "self": f"{self.url}/rest/api/content/{page.id}",
        }

    def _summary(self, page: Page) -> dict[str, Any]:
        return {
            "id": page.id,
            "type": "page",
            "status": page.status,
            "title": page.title,
            "_links": self._links(page),
        }

    def _content_json(self, page: Page, expand: set[str]) -> dict[str, Any]:
        item: dict[str, Any] = {**self._summary(page), "extensions": {"position": 0}}
        if "version" in expand:
            item["version"] = _version(page.version)
        if "ancestors" in expand:
            chain, parent = [], page.parent
            while parent is not None:
                chain.insert(0, self._summary(self.pages[parent]))
                parent = self.pages[parent].parent
            item["ancestors"] = chain
        if "metadata.labels" in expand:
            labels = [
                {"prefix": "global", "name": n, "id": str(9000 + i), "label": n}
                for i, n in enumerate(page.labels)
            ]
            item["metadata"] = {
                "labels": {"results": labels, "start": 0, "limit": 200, "size": len(labels)}
            }
        if "body.storage" in expand:
            item["body"] = {
                "storage": {"value": page.body, "representation": "storage", "embeddedContent": []}
            }
        item["_expandable"] = {
            "children": f"/rest/api/content/{page.id}/child",
            "space": f"/rest/api/space/{page.space}",
        }
        return item

    def _attachment_json(self, attachment: Attachment, expand: set[str]) -> dict[str, Any]:
        page = self.pages[attachment.page]
        name = quote(attachment.filename)
        item: dict[str, Any] = {
            "id": attachment.id,
            "type": "attachment",
            "status": "current",
            "title": attachment.filename,
            "metadata": {"mediaType": attachment.media_type},
            "extensions": {
                "mediaType": attachment.media_type,
                "fileSize": len(attachment.data),
                "comment": "",
            },
            "_links": {
                "webui": f"{self._links(page)['webui']}?preview=%2F{page.id}%2F"
                f"{attachment.id}%2F{name}",
                "download": f"/download/attachments/{page.id}/{name}"
                f"?version={attachment.version}&modificationDate=1746450330544&api=v2",
                "self": f"{self.url}/rest/api/content/{attachment.id}",
            },
        }
        if "version" in expand:
            item["version"] = _version(attachment.version)
        if "container" in expand:
            item["container"] = self._summary(page)
        return item


def _version(number: int) -> dict[str, Any]:
    return {
        "number": number,
        "when": "2025-05-05T15:05:30.544+02:00",
        "minorEdit": False,
        "by": {"type": "known", "displayName": "Dana Ops"},
    }


def _error(status: int, message: str) -> dict[str, Any]:
    reasons = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests"}
    return {
        "statusCode": status,
        "message": message,
        "reason": reasons.get(status, "Error"),
        "data": {"authorized": status != 401, "valid": True, "errors": [], "successful": False},
    }


_send = partial(send_json, content_type="application/json;charset=UTF-8")


def sources_entry(fake: FakeConfluence, name: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The sources.yaml entry that indexes every space of `fake`, and the env it needs."""
    entry: dict[str, Any] = {
        "name": name,
        "kind": "confluence",
        "url": fake.url,
        "spaces": sorted(fake.spaces),
        "token_env": TOKEN_ENV,
    }
    if fake.email is not None:
        entry["email"] = fake.email
    return entry, {TOKEN_ENV: fake.token}
