"""Files → documents: text split into sections, each with its heading path.

Markdown, reStructuredText, HTML, plain text and PDF. Structure is kept so chunks can carry
the headings they sit under as context.
"""

import hashlib
import io
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from retrieval.errors import DocumentError

MARKDOWN = {".md", ".markdown", ".mdx"}
RST = {".rst"}
HTML = {".html", ".htm"}
TEXT = {".txt", ".text"}
PDF = {".pdf"}
SUPPORTED = MARKDOWN | RST | HTML | TEXT | PDF


@dataclass(frozen=True)
class Section:
    headings: tuple[str, ...]
    text: str


@dataclass
class Document:
    """One indexable unit: a file now, later a web page or a Slack thread."""

    doc_id: str  # stable across versions: an absolute path or a URL
    location: str  # what users see and follow
    title: str
    version: str  # content hash: a change means re-embedding
    sections: list[Section] = field(default_factory=list)


def content_version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_text(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise DocumentError("a binary file, not text: skipped")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise DocumentError("neither UTF-8 nor Windows-1252 text: skipped")


def parse_document(path: Path, data: bytes) -> tuple[str, list[Section]]:
    """(title, sections) of a file's bytes, chosen by its suffix; unknown suffixes read as text."""
    suffix = path.suffix.lower()
    if suffix in PDF:
        return _parse_pdf(path, data)
    text = decode_text(data)
    if suffix in MARKDOWN:
        sections = parse_markdown(text)
    elif suffix in RST:
        sections = parse_rst(text)
    elif suffix in HTML:
        return parse_html(text, fallback_title=path.stem)
    else:
        sections = [Section((), text.strip())] if text.strip() else []
    if not sections:
        raise DocumentError("no text: skipped")
    title = sections[0].headings[0] if sections[0].headings else _titled(path.stem)
    return title, sections


def _titled(stem: str) -> str:
    return re.sub(r"[-_]+", " ", stem).strip().capitalize() or stem


def _sections_from_lines(blocks: list[tuple[int, str] | str]) -> list[Section]:
    """Blocks are (level, heading) pairs or lines of text, in document order."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []

    def flush() -> None:
        body = "\n".join(lines).strip()
        if body:
            sections.append(Section(tuple(h for _, h in path), body))
        lines.clear()

    for block in blocks:
        if isinstance(block, tuple):
            flush()
            level, heading = block
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, heading))
        else:
            lines.append(block)
    flush()
    if not sections and path:  # headings and nothing else still make a findable document
        sections.append(Section(tuple(h for _, h in path), ""))
    return sections


_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def parse_markdown(text: str) -> list[Section]:
    blocks: list[tuple[int, str] | str] = []
    in_fence = False
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence:
            match = _MD_HEADING.match(line)
            if match:
                blocks.append((len(match.group(1)), match.group(2)))
                continue
            following = lines[index + 1] if index + 1 < len(lines) else ""
            if line.strip() and re.fullmatch(r"=+\s*|-+\s*", following) and len(following) > 2:
                blocks.append((1 if following.startswith("=") else 2, line.strip()))
                continue
            if blocks and isinstance(blocks[-1], tuple) and re.fullmatch(r"[=-]{3,}\s*", line):
                continue  # the underline of a setext heading
        blocks.append(line)
    return _sections_from_lines(blocks)


_RST_ADORNMENT = re.compile(r"^([=\-`:'\"~^_*+#<>.])\1{2,}\s*$")


def parse_rst(text: str) -> list[Section]:
    """Headings are lines underlined (and maybe overlined) with punctuation; levels by first use."""
    lines = text.splitlines()
    styles: list[str] = []
    blocks: list[tuple[int, str] | str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        nxt = lines[index + 1] if index + 1 < len(lines) else ""
        after = lines[index + 2] if index + 2 < len(lines) else ""
        if _RST_ADORNMENT.match(line) and nxt.strip() and _RST_ADORNMENT.match(after):
            style, title, skip = "over" + line[0], nxt.strip(), 3  # overlined title
        elif line.strip() and _RST_ADORNMENT.match(nxt) and len(nxt.rstrip()) >= len(line.rstrip()):
            style, title, skip = nxt[0], line.strip(), 2
        else:
            blocks.append(line)
            index += 1
            continue
        if style not in styles:
            styles.append(style)
        blocks.append((styles.index(style) + 1, title))
        index += skip
    return _sections_from_lines(blocks)


class _HtmlSections(HTMLParser):
    SKIP = frozenset("script style nav footer header noscript svg template form".split())
    BLOCK = frozenset("p div li br tr section article pre blockquote dd dt".split())

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[int, str] | str] = []
        self.title = ""
        self._skip_depth = 0
        self._heading: int | None = None
        self._in_title = False
        self._buffer: list[str] = []

    def _flush(self) -> None:
        text = " ".join("".join(self._buffer).split())
        self._buffer.clear()
        if not text:
            return
        if self._heading is not None:
            self.blocks.append((self._heading, text))
        else:
            self.blocks.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skip_depth += 1
        elif tag == "title":
            self._in_title = True
        elif re.fullmatch(r"h[1-6]", tag):
            self._flush()
            self._heading = int(tag[1])
        elif tag in self.BLOCK:
            self._flush()
            if tag == "li":
                self._buffer.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag == "title":
            self._in_title = False
        elif re.fullmatch(r"h[1-6]", tag):
            self._flush()
            self._heading = None
        elif tag in self.BLOCK:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip_depth:
            self._buffer.append(data)


def parse_html(text: str, *, fallback_title: str) -> tuple[str, list[Section]]:
    parser = _HtmlSections()
    parser.feed(text)
    parser.close()
    parser._flush()
    sections = _sections_from_lines(parser.blocks)
    if not sections:
        raise DocumentError("no text: skipped")
    title = " ".join(parser.title.split())
    if not title:
        title = sections[0].headings[0] if sections[0].headings else _titled(fallback_title)
    return title, sections


def _parse_pdf(path: Path, data: bytes) -> tuple[str, list[Section]]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except (PdfReadError, ValueError, KeyError, TypeError) as error:
        raise DocumentError(f"not a readable PDF ({error}): skipped") from error
    title = meta_title.strip() or _titled(path.stem)
    sections = [
        Section((title, f"page {number}"), text.strip())
        for number, text in enumerate(pages, start=1)
        if text.strip()
    ]
    if not sections:
        raise DocumentError("no extractable text (a scanned PDF?): skipped")
    return title, sections
