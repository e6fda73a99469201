"""A loopback fake of the Google Drive v3 API and of Google's OAuth token endpoint.

Shapes follow the real service: `files.list` pages joined by `nextPageToken` (a page may hold
fewer files than asked for), partial responses chosen by `fields`, numbers as strings, errors as
`{"error": {"code", "message", "errors": [{"domain", "reason", "message"}]}}`, content through
`export` (Google's formats) or `alt=media` (stored files), shared-drive files only with
`supportsAllDrives`, and a JWT-bearer token grant checked against the test key's public key.
"""

import base64
import csv
import io
import json
import re
import secrets
import shutil
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from html import escape
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import serialization as pem
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt

from tests.loopback import LoopbackServer, QuietHandler

FOLDER = "application/vnd.google-apps.folder"
DOC = "application/vnd.google-apps.document"
SHEET = "application/vnd.google-apps.spreadsheet"
SLIDES = "application/vnd.google-apps.presentation"
ODS = "application/vnd.oasis.opendocument.spreadsheet"
KEY_ENV = "GDRIVE_TEST_KEY_FILE"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # google-auth's, whatever token_uri
_LINKS = {
    DOC: "https://docs.google.com/document/d/{}/edit?usp=drivesdk",
    SHEET: "https://docs.google.com/spreadsheets/d/{}/edit?usp=drivesdk",
    SLIDES: "https://docs.google.com/presentation/d/{}/edit?usp=drivesdk",
    FOLDER: "https://drive.google.com/drive/folders/{}",
}
_DEFAULT_FIELDS = "kind,id,name,mimeType,nextPageToken,files(kind,id,name,mimeType)"


@lru_cache(maxsize=1)
def private_key() -> tuple[str, str]:
    """(private PEM, public PEM) of one RSA key per test process: generating one takes a while."""
    key, encoding = rsa.generate_private_key(public_exponent=65537, key_size=2048), pem.Encoding.PEM
    private = key.private_bytes(encoding, pem.PrivateFormat.PKCS8, pem.NoEncryption())
    public = key.public_key().public_bytes(encoding, pem.PublicFormat.SubjectPublicKeyInfo)
    return private.decode(), public.decode()


@dataclass
class Item:
    """A file or folder. `content`: HTML for a Doc, {sheet: rows} for a Sheet, text for Slides,
    bytes for a stored file."""

    id: str
    name: str
    mime: str
    parent: str
    content: Any = b""
    drive: str | None = None
    version: int = 1
    modified: str = "2024-05-01T09:00:00.000Z"
    trashed: bool = False

    def resource(self) -> dict[str, Any]:
        link = _LINKS.get(self.mime, "https://drive.google.com/file/d/{}/view?usp=drivesdk")
        meta = {
            "kind": "drive#file",
            "id": self.id,
            "name": self.name,
            "mimeType": self.mime,
            "parents": [self.parent],
            "trashed": self.trashed,
            "version": str(self.version),
            "modifiedTime": self.modified,
            "webViewLink": link.format(self.id),
        }
        if self.mime != FOLDER:
            meta["size"] = str(len(self.content if isinstance(self.content, bytes) else b"x" * 99))
        if self.drive:
            meta["driveId"] = self.drive
        return meta


class FakeDrive:
    def __init__(self, *, page_size: int = 3) -> None:
        self.page_size = page_size  # Drive may return fewer files than pageSize asks for
        self.items: dict[str, Item] = {}
        self.drives: dict[str, str] = {}  # shared drive id (also its root folder's) → name
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, params)
        self.tokens: set[str] = set()
        self.refuse_key = False  # the token endpoint answers invalid_grant
        self.refuse_tokens = False  # the API answers 401 to every token
        self.export_limit = 10 * 1048576
        self.delay = 0.0  # seconds added to each document-content response
        self._faults: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._count = 0
        self.server = LoopbackServer(self._handler())
        self.url = self.server.url
        self.folder = self.add(FOLDER, "Team handbook", parent="root")
        self._dir = Path(tempfile.mkdtemp(prefix="fake-gdrive-"))
        self.key_path = self._dir / "ajuste-indexer.json"
        self.key_path.write_text(json.dumps(self.key_info()))

    def close(self) -> None:
        self.server.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def key_info(self) -> dict[str, str]:
        """A service account key as the Cloud console downloads it, its token_uri on us."""
        return {
            "type": "service_account",
            "project_id": "kestrel-docs",
            "private_key_id": "0f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6",
            "private_key": private_key()[0],
            "client_email": "ajuste-indexer@kestrel-docs.iam.gserviceaccount.com",
            "token_uri": f"{self.url}/token",
            "universe_domain": "googleapis.com",
        }

    def add(self, mime: str, name: str, content: Any = b"", *, parent: str = "") -> Item:
        with self._lock:
            self._count += 1
            item_id = f"1{mime.rsplit('.', 1)[-1][:3]}{self._count:04d}xYz_Fake-Id"
            parent = parent or self.folder.id
            drive = self.items[parent].drive if parent in self.items else None
            drive = drive or (parent if parent in self.drives else None)
            self.items[item_id] = Item(item_id, name, mime, parent, content, drive=drive)
            return self.items[item_id]

    def add_drive(self, name: str) -> str:
        drive_id = f"0AD{len(self.drives):03d}FakeSharedDrive"
        self.drives[drive_id] = name
        return drive_id

    def doc(self, name: str, *paragraphs: str, parent: str = "") -> Item:
        return self.add(DOC, name, doc_html(name, *paragraphs), parent=parent)

    def edit(self, item: Item, content: Any) -> None:
        with self._lock:
            item.content = content
            item.version += 3  # any change moves it on, sometimes by more than one
            item.modified = f"2024-06-{min(28, item.version):02d}T10:00:00.000Z"

    def populate(self, count: int, revision: str) -> None:
        """`count` Docs whose text names `revision`; again with another revision edits them."""
        existing = {item.name: item for item in self.items.values() if item.mime == DOC}
        for i in range(count):
            name = f"Document {i}"
            text = (
                f"Document {i} ({revision}) says the code word is word{i}. It was written for "
                "the indexing tests. Nothing else in it matters. The end is near."
            )
            if name in existing:
                self.edit(existing[name], doc_html(name, text))
            else:
                self.doc(name, text)

    def fail(self, where: str, status: int, *, times: int = 1, **extra: Any) -> None:
        """The next `times` requests whose 'METHOD path?query' contains `where` get `status`;
        `headers=` adds headers, `reason=` the error reason."""
        self._faults.append({"where": where, "status": status, "times": times, **extra})

    def content_requests(self) -> list[str]:
        """Ids of the files whose content was asked for, in order."""
        return [
            path.split("/")[4]
            for method, path, params in self.requests
            if path.endswith("/export") or params.get("alt") == "media"
        ]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                fake._serve(self, b"")

            def do_POST(self) -> None:
                fake._serve(self, self.rfile.read(int(self.headers.get("Content-Length", 0))))

        return Handler

    def _serve(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        split = urlsplit(handler.path)
        params = {k: v[-1] for k, v in parse_qs(split.query).items()}
        with self._lock:
            self.requests.append((handler.command, split.path, params))
            line = f"{handler.command} {handler.path}"
            fault = next((f for f in self._faults if f["where"] in line and f["times"]), None)
            if fault is not None:
                fault["times"] -= 1
        try:
            if fault is not None:
                reason = fault.get("reason", "backendError")
                raise _Answer(fault["status"], reason, "Injected.", headers=fault.get("headers"))
            if split.path == "/token":
                status, kind, payload = self._token(parse_qs(body.decode()))
            else:
                self._authorize(handler.headers.get("Authorization", ""))
                status, kind, payload = self._drive(split.path, params)
            headers: dict[str, str] = {}
        except _Answer as answer:
            status, kind, payload = answer.status, "application/json", answer.body()
            headers = answer.headers
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _token(self, form: dict[str, list[str]]) -> tuple[int, str, bytes]:
        grant = form.get("grant_type", [""])[0]
        assertion = form.get("assertion", [""])[0]
        if grant != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not assertion:
            return _json(400, {"error": "unsupported_grant_type"})
        try:
            claims = jwt.decode(assertion, certs=private_key()[1], audience=GOOGLE_TOKEN_AUDIENCE)
        except ValueError as error:
            return _json(400, {"error": "invalid_grant", "error_description": str(error)})
        if self.refuse_key or "drive.readonly" not in claims.get("scope", ""):
            return _json(
                400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            )
        with self._lock:
            token = f"ya29.fake-{secrets.token_urlsafe(24)}"
            self.tokens.add(token)
        return _json(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def _authorize(self, header: str) -> None:
        if self.refuse_tokens or header.removeprefix("Bearer ") not in self.tokens:
            raise _Answer(401, "authError", "Invalid Credentials", location="Authorization")

    def _drive(self, path: str, params: dict[str, str]) -> tuple[int, str, bytes]:
        if match := re.fullmatch(r"/drive/v3/drives/([\w-]+)", path):
            if match.group(1) not in self.drives:
                raise _Answer(404, "notFound", f"Shared drive not found: {match.group(1)}")
            name = self.drives[match.group(1)]
            resource = {"kind": "drive#drive", "id": match.group(1), "name": name}
            return _json(200, _pick(resource, params.get("fields")))
        if path == "/drive/v3/files":
            return self._list(params)
        match = re.fullmatch(r"/drive/v3/files/([\w-]+)(/export)?", path)
        if not match:
            raise _Answer(404, "notFound", "Not Found")
        item = self.items.get(match.group(1))
        hidden = item and item.drive and params.get("supportsAllDrives") not in ("true", "1")
        if item is None or (hidden and not match.group(2)):  # export takes no supportsAllDrives
            raise _Answer(404, "notFound", f"File not found: {match.group(1)}.", location="fileId")
        if match.group(2):
            return self._export(item, params.get("mimeType", ""))
        if params.get("alt") != "media":
            return _json(200, _pick(item.resource(), params.get("fields")))
        if item.mime.startswith("application/vnd.google-apps."):
            message = "Only files with binary content can be downloaded. Use Export with Docs..."
            raise _Answer(403, "fileNotDownloadable", message)
        time.sleep(self.delay)
        return 200, item.mime, item.content

    def _list(self, params: dict[str, str]) -> tuple[int, str, bytes]:
        query = re.fullmatch(r"'([\w-]+)' in parents and trashed ?= ?false", params.get("q", ""))
        if not query:
            raise _Answer(400, "invalid", "Invalid Value", location="q")
        all_drives = params.get("includeItemsFromAllDrives") == "true"
        if params.get("corpora") == "drive" and not (params.get("driveId") and all_drives):
            raise _Answer(400, "badRequest", "driveId and includeItemsFromAllDrives are required")
        with self._lock:
            children = [
                item
                for item in self.items.values()
                if item.parent == query.group(1)
                and not item.trashed
                and (item.drive is None or all_drives)
                and (params.get("corpora") != "drive" or item.drive == params.get("driveId"))
            ]
        token = params.get("pageToken")
        start = int(base64.urlsafe_b64decode(token).split(b":")[1]) if token else 0
        size = min(self.page_size, int(params.get("pageSize", 100)))
        page: dict[str, Any] = {"kind": "drive#fileList", "incompleteSearch": False}
        if start + size < len(children):
            token = f"{query.group(1)}:{start + size}"
            page["nextPageToken"] = base64.urlsafe_b64encode(token.encode()).decode()
        page["files"] = [item.resource() for item in children[start : start + size]]
        return _json(200, _pick(page, params.get("fields")))

    def _export(self, item: Item, mime: str) -> tuple[int, str, bytes]:
        if not item.mime.startswith("application/vnd.google-apps."):
            raise _Answer(403, "fileNotExportable", "Export only supports Docs Editors files.")
        formats = {DOC: {"text/html"}, SHEET: {ODS, "text/csv"}, SLIDES: {"text/plain"}}
        if mime not in formats.get(item.mime, set()):
            raise _Answer(400, "badRequest", "The requested conversion is not supported.")
        time.sleep(self.delay)
        if item.mime == SHEET:
            first = io.StringIO()
            csv.writer(first).writerows(next(iter(item.content.values())))  # CSV: 1st sheet
            data = _ods(item.content) if mime == ODS else first.getvalue().encode()
        else:
            data = str(item.content).encode()
        if len(data) > self.export_limit:
            raise _Answer(403, "exportSizeLimitExceeded", "This file is too large to be exported.")
        return 200, mime, data


class _Answer(Exception):
    """An error response in Google's shape."""

    def __init__(self, status: int, reason: str, message: str, **extra: Any) -> None:
        self.status, self.headers = status, extra.pop("headers", None) or {}
        domain = "usageLimits" if "RateLimit" in reason else "global"
        error = {"domain": domain, "reason": reason, "message": message, **extra}
        self.error = {"code": status, "message": message, "errors": [error]}

    def body(self) -> bytes:
        return json.dumps({"error": self.error}).encode()


def doc_html(name: str, *paragraphs: str) -> str:
    """A Doc as `export?mimeType=text/html` gives it: styles in the head, spans in the body."""
    body = "".join(f"<p class=c1><span class=c0>{escape(p)}</span></p>" for p in paragraphs)
    return (
        f"<html><head><meta content='text/html; charset=UTF-8'><title>{escape(name)}</title>"
        f"<style>.c0{{color:#000}}</style></head><body class='doc-content'>"
        f"<h1 id='h.x1'><span class=c0>{escape(name)}</span></h1>{body}</body></html>"
    )


def _json(status: int, data: Any) -> tuple[int, str, bytes]:
    return status, "application/json; charset=UTF-8", json.dumps(data).encode()


def _pick(resource: dict[str, Any], fields: str | None) -> dict[str, Any]:
    """A partial response: `fields` like `nextPageToken,files(id,name)`."""
    fields = fields or _DEFAULT_FIELDS
    picked: dict[str, Any] = {}
    for name, inner in re.findall(r"(\w+)(?:\(([^)]*)\))?", fields):
        if name in resource:
            value = resource[name]
            if inner and isinstance(value, list):
                value = [{k: v for k, v in x.items() if k in inner.split(",")} for x in value]
            picked[name] = value
    return picked


def _ods(sheets: dict[str, list[list[str]]]) -> bytes:
    """An OpenDocument spreadsheet as Sheets exports it, blank cells and rows padding it out."""
    pad = "<table:table-cell table:number-columns-repeated='23'/>"
    cell = "<table:table-cell office:value-type='string'><text:p>{}</text:p></table:table-cell>"

    def row(cells: list[str]) -> str:
        return "".join(cell.format(escape(c)) if c else "<table:table-cell/>" for c in cells)

    tables = "".join(
        f"<table:table table:name='{escape(name)}'>"
        + "".join(f"<table:table-row>{row(cells)}{pad}</table:table-row>" for cells in rows)
        + f"<table:table-row table:number-rows-repeated='990'>{pad}</table:table-row></table:table>"
        for name, rows in sheets.items()
    )
    namespaces = " ".join(
        f'xmlns:{n}="urn:oasis:names:tc:opendocument:xmlns:{n}:1.0"'
        for n in ("office", "table", "text")
    )
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {namespaces}>'
        f"<office:body><office:spreadsheet>{tables}</office:spreadsheet></office:body>"
        "</office:document-content>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("mimetype", ODS, compress_type=zipfile.ZIP_STORED)
        archive.writestr("content.xml", content, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def sources_entry(fake: FakeDrive, name: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The sources.yaml entry that indexes the fake's folder, and the environment it needs."""
    entry = {
        "name": name,
        "kind": "gdrive",
        "folders": [fake.folder.id],
        "api_url": fake.url,
        "token_env": KEY_ENV,
    }
    return entry, {KEY_ENV: str(fake.key_path)}
