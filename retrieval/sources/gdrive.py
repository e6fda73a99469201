"""Google Drive: the documents of shared folders and shared drives, read with a service account.

The listing carries each file's version, so an unchanged file costs only its share of the
listing. Google Docs are exported as HTML (headings kept), Sheets as OpenDocument (every sheet,
each row under its column names), Slides as text; PDFs and text files are downloaded as stored.
"""

import csv
import io
import json
import os
import random
import re
import threading
import time
import zipfile
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from xml.etree import ElementTree

import httpx
from google.auth import exceptions as google_errors
from google.auth.transport.requests import Request as TokenRequest
from google.oauth2 import service_account
from pydantic import Field, field_validator, model_validator

from retrieval.documents import SUPPORTED, Section, decode_text, parse_document, parse_html
from retrieval.errors import DocumentError
from retrieval.sources.base import GONE, DocRef, Fetched, Outcome, Source, SourceError
from retrieval.sources.credentials import TokenConfig
from retrieval.sources.registry import SourceContext
from retrieval.sources.rest import NotFoundError, RestClient
from retrieval.store import StoredDocument

KIND = "gdrive"
SCOPE = "https://www.googleapis.com/auth/drive.readonly"
FOLDER = "application/vnd.google-apps.folder"
DOC = "application/vnd.google-apps.document"
SHEET = "application/vnd.google-apps.spreadsheet"
SLIDES = "application/vnd.google-apps.presentation"
ODS = "application/vnd.oasis.opendocument.spreadsheet"
EXPORTS = {DOC: "text/html", SHEET: ODS, SLIDES: "text/plain"}  # Google's formats → export as
SUFFIXES = {"application/pdf": ".pdf", "text/markdown": ".md", "text/x-markdown": ".md"}
SUFFIXES |= {"text/html": ".html", "text/plain": ".txt", "text/x-rst": ".rst", "text/csv": ".csv"}
READABLE = SUPPORTED | {".csv"}
FIELDS = "id,name,mimeType,modifiedTime,version,webViewLink,size"
LISTED = f"nextPageToken,incompleteSearch,files({FIELDS})"
ALL_DRIVES = {"supportsAllDrives": "true"}
RATE_LIMITED = {"userRateLimitExceeded", "rateLimitExceeded"}  # 403s to back off from
TRIES = 5
REFUSED = {  # Drive's reasons behind a 403 that no retry or other file will change
    "accessNotConfigured": "the Google Drive API is not enabled in the service account's "
    "Cloud project: enable it in the Google Cloud console",
}
UNREADABLE = {  # Drive's reasons behind a 403 that concern one file, not our access
    "exportSizeLimitExceeded": "over Google Drive's 10 MB export limit",
    "cannotDownloadFile": "its owner does not let viewers download it",
    "cannotExportFile": "its owner does not let viewers export it",
    "cannotDownloadAbusiveFile": "Google Drive flagged it as abusive",
}
_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
_TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
_TABLE_CHARS = 300  # rows per section: one default chunk, so each chunk has the header row


class GdriveConfig(TokenConfig):
    default_env: ClassVar[str] = "GOOGLE_APPLICATION_CREDENTIALS"  # holds the key file's PATH

    folders: list[str] = Field(default_factory=list)  # folder ids or folder URLs
    shared_drives: list[str] = Field(default_factory=list)  # shared drive ids or URLs
    recursive: bool = True  # subfolders too
    api_url: str = "https://www.googleapis.com"
    timeout: float = Field(30.0, gt=0)

    @field_validator("folders", "shared_drives", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> Any:
        """A folder URL copied from the browser stands for the folder's id."""
        if not isinstance(value, list):
            return value  # pydantic says what is wrong
        ids = [re.sub(r".*/folders/([\w-]+).*", r"\1", str(v).strip()) for v in value]
        for bad in (id for id in ids if not re.fullmatch(r"[\w-]+", id)):
            raise ValueError(f"'{bad}' is neither a Drive folder id nor a folder URL")
        return ids

    @model_validator(mode="after")
    def _something_to_list(self) -> "GdriveConfig":
        if not self.folders and not self.shared_drives:
            raise ValueError("a gdrive source needs `folders`, `shared_drives`, or both")
        return self

    def credentials(self) -> service_account.Credentials:
        """From the service account's JSON key. By Google's convention the variable holds the
        key file's path (the key itself is accepted too); `secrets_file` is the key file."""
        env = self.token_env or self.default_env
        if self.secrets_file is None and not os.environ.get(env, "").strip():
            raise SourceError(
                f"source '{self.name}' needs a Google service account key: set {env} to the "
                "path of its JSON key file, or name that file in `secrets_file`"
            )
        text = self.secret().get_secret_value()
        where = f"secrets_file {self.secrets_file}" if self.secrets_file else f"${env}"
        try:
            if not text.startswith("{"):
                where = f"{where} ({text})"
                text = Path(text).expanduser().read_text(encoding="utf-8")
            info = json.loads(text)
            if not isinstance(info, dict) or info.get("type") != "service_account":
                kind = info.get("type") if isinstance(info, dict) else type(info).__name__
                raise ValueError(f"a '{kind}' file")
            return service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
        except (OSError, ValueError) as error:
            why = (error.strerror if isinstance(error, OSError) else None) or str(error)
            raise SourceError(
                f"source '{self.name}': {where} is unusable ({why.split('. ')[0][:160]}): it "
                "must be a service account's JSON key, as the Google Cloud console creates"
            ) from None


@dataclass(frozen=True)
class _File:
    id: str
    name: str
    mime: str
    link: str
    version: str
    size: int | None  # from the listing; for Google's formats not the export's size
    suffix: str | None  # how a stored file is read (None: an export, or not a document)
    title: str  # the name users see in Drive, a stored file's extension left off


class GdriveSource(Source):
    kind = KIND

    def __init__(
        self,
        config: GdriveConfig,
        *,
        max_bytes: int,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(config.name)
        self.config = config
        self.max_bytes = max_bytes
        self.sleep = sleep
        self.email = "the service account"
        self._api: RestClient | None = None
        self._files: dict[str, _File] = {}

    def close(self) -> None:
        if self._api is not None:
            self._api.close()

    @property
    def api(self) -> RestClient:
        """Built on first use, so a bad key fails the run (and is recorded) rather than setup."""
        if self._api is None:
            credentials = self.config.credentials()
            self.email = credentials.service_account_email
            self._api = RestClient(
                source=self.name,
                base_url=self.config.api_url,
                auth=_ServiceAccountAuth(self.name, credentials, sleep=self.sleep),
                timeout=self.config.timeout,
                secret_hint=f"the key of {self.email}",
                sleep=self.sleep,
            )
        return self._api

    def refs(self) -> list[DocRef]:
        """Every file under the folders and drives, listed completely before any is used."""
        roots = [(f, self._root(f, shared=False)) for f in self.config.folders]
        roots += [(d, self._root(d, shared=True)) for d in self.config.shared_drives]
        files: dict[str, _File] = {}
        for root, drive in roots:
            pending, seen = [root], {root}
            while pending:
                for item in self._children(pending.pop(), drive):
                    if item["mimeType"] != FOLDER:
                        files[f"gdrive:{item['id']}"] = _file(item)
                    elif self.config.recursive and item["id"] not in seen:
                        seen.add(item["id"])
                        pending.append(item["id"])
        self._files = files
        return [DocRef(doc_id, f.link, f.version) for doc_id, f in files.items()]

    def _root(self, id: str, *, shared: bool) -> str | None:
        """The shared drive a root is in (None: My Drive); a missing one stops the run."""
        what, fix = ("shared drive", "add it as a member") if shared else ("folder", "share it")
        try:
            if shared:
                return str(self.api.get_json(f"/drive/v3/drives/{id}", fields="id")["id"])
            fields = "name,mimeType,driveId,trashed"
            meta = self.api.get_json(f"/drive/v3/files/{id}", fields=fields, **ALL_DRIVES)
        except NotFoundError:
            raise SourceError(
                f"source '{self.name}': Google Drive has no {what} {id}, or it is not shared "
                f"with {self.email}: check the id, and {fix} with that address"
            ) from None
        if meta.get("mimeType") != FOLDER or meta.get("trashed"):
            raise SourceError(
                f"source '{self.name}': {id} ('{meta.get('name')}') is "
                f"{'in the trash' if meta.get('trashed') else 'a file, not a folder'}: "
                "fix `folders` in sources.yaml (its documents are kept until then)"
            )
        return meta.get("driveId")

    def _children(self, folder: str, drive: str | None) -> Iterator[dict[str, Any]]:
        params = {
            "q": f"'{folder}' in parents and trashed = false",
            "fields": LISTED,
            "pageSize": "1000",
            "supportsAllDrives": "true",
            "includeItemsFromAllDrives": "true",
            **({"corpora": "drive", "driveId": drive} if drive else {}),
        }
        while True:
            page = self.api.get_json("/drive/v3/files", **params)
            if page.get("incompleteSearch"):
                raise SourceError(f"source '{self.name}': Google Drive listed {folder} partially")
            yield from page.get("files", [])
            if not page.get("nextPageToken"):
                return
            params["pageToken"] = page["nextPageToken"]

    def fetch(self, ref: DocRef, previous: StoredDocument | None) -> Fetched | Outcome:
        file = self._files[ref.doc_id]  # from the listing refs() just made
        if file.mime in EXPORTS:
            url, params = f"/drive/v3/files/{file.id}/export", {"mimeType": EXPORTS[file.mime]}
        elif file.suffix is None:
            raise DocumentError(f"skipped: {file.mime} is not a document")
        elif file.size is not None and file.size > self.max_bytes:
            raise DocumentError(_too_big(file.size))  # known from the listing: not downloaded
        else:
            url, params = f"/drive/v3/files/{file.id}", {"alt": "media", **ALL_DRIVES}
        try:
            data = self.api.request("GET", url, params=params).content
        except NotFoundError:
            return GONE  # deleted since the listing
        if len(data) > self.max_bytes:
            raise DocumentError(_too_big(len(data)))
        return Fetched(file.title, _sections(file, data, self.max_bytes), file.version, file.link)


def _too_big(size: int) -> str:
    return f"{size / 1048576:.1f} MB is over the size limit: skipped"


def _file(item: dict[str, Any]) -> _File:
    name, mime, size = item.get("name") or item["id"], item.get("mimeType", ""), item.get("size")
    own = Path(name).suffix.lower()
    suffix = None if mime in EXPORTS else own if own in READABLE else SUFFIXES.get(mime)
    return _File(
        id=item["id"],
        name=name,
        mime=mime,
        link=item.get("webViewLink") or f"https://drive.google.com/open?id={item['id']}",
        version=str(item.get("version") or item.get("modifiedTime") or ""),
        size=int(size) if size is not None else None,
        suffix=suffix,
        title=Path(name).stem if suffix and own == suffix and Path(name).stem else name,
    )


def _sections(file: _File, data: bytes, max_bytes: int) -> list[Section]:
    if file.mime == DOC:
        sections = parse_html(decode_text(data), fallback_title=file.name)[1]
    elif file.mime == SHEET:
        sheets = _ods_sheets(data, unpacked_limit=8 * max_bytes)
        sections = [s for name, rows in sheets for s in _table(rows, (name,) if name else ())]
    elif file.suffix == ".csv":
        sections = _table(list(csv.reader(io.StringIO(decode_text(data)))), ())
    else:  # Slides' text, PDFs, Markdown, HTML, text
        path = Path(file.title.replace("/", "-") + (file.suffix or ".txt"))
        sections = parse_document(path, data)[1]
    if not sections:
        raise DocumentError("no text: skipped")
    return sections


def _ods_sheets(data: bytes, *, unpacked_limit: int) -> list[tuple[str, list[list[str]]]]:
    """(sheet name, rows of cell texts) of an OpenDocument spreadsheet."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = archive.getinfo("content.xml")
            if info.file_size > unpacked_limit:
                raise DocumentError("the spreadsheet is too large once unpacked: skipped")
            root = ElementTree.fromstring(archive.read(info))
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError) as error:
        raise DocumentError(f"the spreadsheet export is unreadable ({error}): skipped") from None
    sheets = []
    for table in root.iter(f"{_TABLE}table"):
        rows = []
        for row in table.iter(f"{_TABLE}table-row"):
            cells: list[str] = []
            for cell in row:
                text = " ".join(" ".join(p.itertext()) for p in cell.iter(f"{_TEXT}p"))
                repeat = int(cell.get(f"{_TABLE}number-columns-repeated", "1"))
                cells += [" ".join(text.split())] * min(repeat, 256)  # blank runs can be huge
            rows.append(cells)
        sheets.append((table.get(f"{_TABLE}name", ""), rows))
    return sheets


def _table(rows: list[list[str]], headings: tuple[str, ...]) -> list[Section]:
    """A Markdown table cut into sections of a few rows, each under the header row."""
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        return []
    width = max(max((n for n, c in enumerate(row, 1) if c.strip()), default=0) for row in rows)

    def line(cells: list[str]) -> str:
        cells = [" ".join(c.split()).replace("|", "\\|") for c in cells + [""] * width]
        return "| " + " | ".join(cells[:width]) + " |"

    names = [cell.strip() or f"column {n}" for n, cell in enumerate(rows[0] + [""] * width, 1)]
    header = line(names[:width]) + "\n|" + " --- |" * width
    sections: list[Section] = []
    group: list[str] = []
    for body in (line(row) for row in rows[1:]):
        if group and sum(map(len, group)) + len(body) > _TABLE_CHARS:
            sections.append(Section(headings, "\n".join([header, *group])))
            group = []
        group.append(body)
    sections.append(Section(headings, "\n".join([header, *group])))
    return sections


class _ServiceAccountAuth(httpx.Auth):
    """Bearer tokens from the key, renewed before they run out; also reads the reason Drive
    gives with a 403, which tells a rate limit or an unexportable file from a refusal."""

    requires_response_body = True

    def __init__(
        self,
        source: str,
        credentials: service_account.Credentials,
        *,
        sleep: Callable[[float], None],
    ) -> None:
        self.source = source
        self.credentials = credentials
        self.sleep = sleep
        self._lock = threading.Lock()

    def token(self, *, renew: bool = False) -> str:
        with self._lock:
            if renew or not self.credentials.valid:
                try:
                    self.credentials.refresh(TokenRequest())
                except google_errors.GoogleAuthError as error:
                    why = " ".join(str(error.args[0] if error.args else error).split())[:160]
                    raise SourceError(
                        f"source '{self.source}': no access token for "
                        f"{self.credentials.service_account_email} ({why}): if the key was "
                        "deleted or disabled, create a new one"
                    ) from None
            return str(self.credentials.token)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        response = yield request
        if response.status_code == 401:  # revoked or expired early: one new token, one more try
            request.headers["Authorization"] = f"Bearer {self.token(renew=True)}"
            response = yield request
        for attempt in range(TRIES):  # Drive's advice: truncated exponential backoff
            if _reason(response) not in RATE_LIMITED:
                break
            self.sleep(min(32.0, 2.0**attempt) + random.random())
            response = yield request
        reason = _reason(response)
        if reason in RATE_LIMITED:
            raise SourceError(
                f"source '{self.source}': Google Drive still answers {reason} after {TRIES} "
                "tries: the next run carries on"
            )
        if reason in REFUSED:
            raise SourceError(f"source '{self.source}': {REFUSED[reason]}")
        if reason in UNREADABLE:
            raise DocumentError(f"{UNREADABLE[reason]}: skipped")


def _reason(response: httpx.Response) -> str:
    """The `reason` of a Drive 403's error body ('' for anything else)."""
    if response.status_code != 403:
        return ""
    try:
        return str(response.json()["error"]["errors"][0]["reason"])
    except (ValueError, LookupError, TypeError):
        return ""


def build(config: GdriveConfig, context: SourceContext) -> Source:
    return GdriveSource(config, max_bytes=context.max_bytes)
