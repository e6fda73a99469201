"""Files → sections with heading paths, for each supported format."""

from pathlib import Path

import pytest

from retrieval.documents import Section, parse_document
from retrieval.errors import DocumentError


def parse(name: str, text: str | bytes) -> tuple[str, list[Section]]:
    data = text.encode() if isinstance(text, str) else text
    return parse_document(Path(name), data)


def test_markdown_keeps_the_heading_path_and_ignores_code_fences():
    title, sections = parse(
        "guide.md",
        "# Guide\n\nIntro.\n\n## Setup\n\nStep one.\n\n```sh\n# not a heading\n```\n\n"
        "### Linux\n\nUse apt.\n\n## Usage\n\nRun it.\n\nSetext\n------\n\nUnderlined.",
    )
    assert title == "Guide"
    assert [s.headings for s in sections] == [
        ("Guide",),
        ("Guide", "Setup"),
        ("Guide", "Setup", "Linux"),
        ("Guide", "Usage"),
        ("Guide", "Setext"),
    ]
    assert "# not a heading" in sections[1].text


def test_restructuredtext_levels_follow_first_use_of_each_adornment():
    title, sections = parse(
        "leave.rst",
        "=====\nLeave\n=====\n\nIntro.\n\nAnnual\n------\n\n25 days.\n\nCarry over\n~~~~~~~~~~\n\n"
        "Five days.\n\nSick\n----\n\nSelf-certify.",
    )
    assert title == "Leave"
    assert [s.headings for s in sections] == [
        ("Leave",),
        ("Leave", "Annual"),
        ("Leave", "Annual", "Carry over"),
        ("Leave", "Sick"),
    ]


def test_html_uses_the_title_headings_and_skips_scripts_and_navigation():
    title, sections = parse(
        "offices.html",
        "<html><head><title>Offices</title><script>var x = 1;</script></head><body>"
        "<nav>Home | About</nav><h1>Porto</h1><p>Rua &amp; Co, 4th floor.</p>"
        "<h2>Wifi</h2><ul><li>Network: kestrel</li><li>Guest: visitors</li></ul></body></html>",
    )
    assert title == "Offices"
    assert sections[0] == Section(("Porto",), "Rua & Co, 4th floor.")
    assert sections[1].headings == ("Porto", "Wifi")
    assert "- Network: kestrel" in sections[1].text
    assert "var x" not in str(sections) and "About" not in str(sections)


def test_plain_text_and_unknown_suffixes_are_one_section_titled_by_file_name():
    title, sections = parse("release-notes.txt", "Line one.\nLine two.\n")
    assert title == "Release notes"
    assert sections == [Section((), "Line one.\nLine two.")]


def _pdf_with_text(text: str) -> bytes:
    """A minimal one-page PDF showing `text` in Helvetica, with a correct xref table."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def test_pdf_pages_become_sections():
    title, sections = parse("handbook.pdf", _pdf_with_text("Badges are green on Fridays."))
    assert title == "Handbook"
    assert sections == [Section(("Handbook", "page 1"), "Badges are green on Fridays.")]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("image.md", b"\x89PNG\r\n\x1a\n\x00\x00", "binary"),
        ("bad.txt", b"\x81\x8d\x8f\x90\x9d" * 3, "UTF-8"),
        ("broken.pdf", b"%PDF-1.4 garbage", "PDF"),
        ("blank.md", b"\n\n  \n", "no text"),
    ],
)
def test_unreadable_documents_raise_a_clear_error(name: str, data: bytes, message: str):
    with pytest.raises(DocumentError, match=message):
        parse(name, data)
