"""The notion kind against a loopback fake of the Notion API, through the real indexer."""

import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from retrieval.documents import Section
from retrieval.indexer import Indexer
from retrieval.settings import RetrievalSettings
from retrieval.sources.base import Fetched, SourceError
from retrieval.sources.config import SourceContext, SourcesFileError, load_sources, register_kind
from retrieval.sources.notion import (
    KIND,
    NotionConfig,
    NotionSource,
    build,
    notion_id,
    settled_version,
)
from tests.fake_notion import TOKEN_ENV, FakeNotion, block, paragraph, sources_entry, text


@pytest.fixture
def fake() -> Iterator[FakeNotion]:
    served = FakeNotion()
    yield served
    served.close()


def notion(fake: FakeNotion, tmp_path: Path, sleeps: list | None = None, **options) -> NotionSource:
    """A source as sources.yaml would build it, its token in a secrets file."""
    secret = tmp_path / "notion-token"
    if not secret.exists():
        secret.write_text(fake.token + "\n")
    config = NotionConfig(name="wiki", kind=KIND, api_url=fake.url, secrets_file=secret, **options)
    source = build(config, SourceContext(RetrievalSettings(), tmp_path / "state"))
    assert isinstance(source, NotionSource)
    source.sleep = (sleeps if sleeps is not None else []).append  # never really waits
    return source


def _search(indexer: Indexer, query: str) -> list:
    return indexer.store.search(
        indexer.embedder.embed_query(query), limit=5, candidates=20, weights=(1.0, 1.0)
    )


def test_everything_shared_is_listed_page_by_page_and_kept_fresh(
    fake: FakeNotion, indexer: Indexer, tmp_path: Path
):
    fake.page_limit = 2  # five pages: three pages of search results
    alpha = fake.add_page(
        "Alpha office",
        block("heading_1", "Opening hours"),
        paragraph("The alpha office opens at 07:30 on weekdays."),
    )
    bravo = fake.add_page("Bravo parking", paragraph("Bravo parking costs EUR 4 a day."))
    gone = fake.add_page("Old canteen", paragraph("The old canteen serves soup on Fridays."))
    hidden = fake.add_page("Secret plans", paragraph("The rooftop garden opens in May."))
    fake.add_page("Printers", paragraph("The printer on floor two needs a badge."))

    first = indexer.index_source(notion(fake, tmp_path))
    assert (first.added, first.failed) == (5, 0), first.problems
    cursors = [b.get("start_cursor") for m, p, b in fake.requests if p == "/v1/search"]
    assert len(cursors) == 3 and cursors[0] is None and all(cursors[1:])
    hit = _search(indexer, "alpha office opening time")[0]
    assert hit.title == "Alpha office" and "07:30" in hit.text
    assert hit.location == fake.pages[alpha]["url"]
    assert hit.location.startswith("https://www.notion.so/Alpha-office-")

    fake.edit(bravo, paragraph("Bravo parking is free since March."))
    fake.trash(gone)
    fake.unshare(hidden)
    fake.requests.clear()
    second = indexer.index_source(notion(fake, tmp_path))
    assert (second.updated, second.deleted, second.unchanged, second.added) == (1, 2, 2, 0)
    read = [p for m, p, _ in fake.requests if "/v1/blocks/" in p]
    assert read == [f"/v1/blocks/{bravo}/children"]  # unchanged pages cost only the listing
    assert "free since March" in _search(indexer, "bravo parking price")[0].text
    found = " ".join(h.text for h in _search(indexer, "canteen soup rooftop garden"))
    assert "soup" not in found and "rooftop" not in found


def test_listed_pages_bring_their_child_pages_and_database_rows_their_properties(
    fake: FakeNotion, indexer: Indexer, tmp_path: Path
):
    root = fake.add_page(
        "Handbook",
        block("heading_1", "Travel"),
        paragraph("Book trains through the travel desk."),
        block("heading_2", "Checklist"),
        block("to_do", "Passport is valid", checked=True),
        block("to_do", "Insurance card", checked=False),
        block("numbered_list_item", "Ask your lead"),
        block("numbered_list_item", "File the form", block("bulleted_list_item", "in Workday")),
        block("code", "make travel-request", language="shell"),
        block("toggle", "Details", paragraph("Refunds take ten working days.")),
        block(
            "table",
            "",
            block("table_row", cells=[text("City"), text("Per diem")]),
            block("table_row", cells=[text("Lisbon"), text("EUR 55")]),
            table_width=2,
        ),
        block("image", type="external", external={"url": "https://example.com/a.png"}),
    )
    columns = block("column_list", "", block("column", "", paragraph("Left column text.")))
    child = fake.add_page("Visas", columns, parent=root)
    grandchild = fake.add_page("Schengen", paragraph("Schengen visas take 15 days."), parent=child)
    fake.add_page("Unrelated", paragraph("Not listed, not indexed."))
    database = "0c0ffee0-0000-4000-8000-00000000d0b5"
    row = fake.add_page(
        "Laptop refresh",
        paragraph("Laptops are replaced every four years."),
        database=database,
        properties={
            "Status": {"id": "s", "type": "status", "status": {"name": "In progress"}},
            "Tags": {"id": "t", "type": "multi_select", "multi_select": [{"name": "IT"}]},
            "Due": {"id": "d", "type": "date", "date": {"start": "2024-05-01", "end": None}},
            "Budget": {"id": "b", "type": "number", "number": 1200.0},
            "Notes": {"id": "n", "type": "rich_text", "rich_text": []},
        },
    )
    link = f"https://www.notion.so/acme/Handbook-{root.replace('-', '')}?pvs=4"
    options = {"pages": [link], "databases": [database.replace("-", "")]}

    fake.page_limit = 4  # the handbook's blocks come in three pages
    first = indexer.index_source(notion(fake, tmp_path, **options))
    assert (first.added, first.failed) == (4, 0), first.problems
    stored = indexer.store.documents(source="wiki")
    assert set(stored) == {f"notion:{i}" for i in (root, child, grandchild, row)}
    cursors = [q.get("start_cursor") for m, p, q in fake.requests if p.endswith(f"{root}/children")]
    assert len(cursors) == 3 and cursors[0] is None and all(cursors[1:])  # read once, for both

    source = notion(fake, tmp_path, **options)
    refs = {ref.doc_id.removeprefix("notion:"): ref for ref in source.refs()}
    handbook = source.fetch(refs[root], None)
    assert isinstance(handbook, Fetched) and handbook.title == "Handbook"
    by_heading = {s.headings: s.text for s in handbook.sections}
    assert by_heading[("Travel",)] == "Book trains through the travel desk."
    checklist = by_heading[("Travel", "Checklist")]
    for line in (
        "[x] Passport is valid",
        "[ ] Insurance card",
        "1. Ask your lead",
        "2. File the form",
        "  - in Workday",
        "```shell\nmake travel-request\n```",
        "Details\n  Refunds take ten working days.",
        "  City | Per diem\n  Lisbon | EUR 55",
    ):
        assert line in checklist, line
    assert "example.com" not in checklist
    laptop = source.fetch(refs[row], None)
    assert isinstance(laptop, Fetched) and laptop.sections[0] == Section(
        ("Properties",), "Status: In progress\nTags: IT\nDue: 2024-05-01\nBudget: 1200"
    )
    hits = _search(indexer, "laptop refresh status in progress")
    assert any("Laptop refresh › Properties\nStatus: In progress" in h.text for h in hits)
    assert "Left column text." in _search(indexer, "left column")[0].text

    fake.requests.clear()
    again = indexer.index_source(notion(fake, tmp_path, **options))
    assert (again.unchanged, again.added, again.updated) == (4, 0, 0)
    assert fake.count("GET", "/v1/blocks/") == 0  # children remembered per page version

    fake.trash(grandchild)
    alone = indexer.index_source(notion(fake, tmp_path, children=False, **options))
    assert (alone.deleted, alone.unchanged) == (2, 2)


def test_a_refused_token_fails_the_run_in_one_line_and_keeps_the_pages(
    fake: FakeNotion, indexer: Indexer, tmp_path: Path
):
    fake.populate(3, "v1")
    assert indexer.index_source(notion(fake, tmp_path)).added == 3
    fake.token = "secret_rotated"
    with pytest.raises(SourceError) as refused:
        indexer.index_source(notion(fake, tmp_path))
    message = str(refused.value)
    assert "source 'wiki'" in message and "HTTP 401" in message and "\n" not in message
    assert "secret_fake_notion_token" not in message
    assert len(indexer.store.documents(source="wiki")) == 3


@pytest.mark.parametrize("option", ["pages", "databases"])
def test_a_listed_page_or_database_that_is_missing_is_one_clear_line(
    fake: FakeNotion, indexer: Indexer, tmp_path: Path, option: str
):
    fake.populate(2, "v1")
    missing = "5e5e5e5e5e5e4e5e8e5e5e5e5e5e5e5e"
    with pytest.raises(SourceError) as failed:
        indexer.index_source(notion(fake, tmp_path, **{option: [missing]}))
    message = str(failed.value)
    assert "not found or not shared with the integration" in message and "\n" not in message
    assert notion_id(missing) in message and option[:-1] in message


def test_a_rate_limit_is_waited_out(fake: FakeNotion, indexer: Indexer, tmp_path: Path):
    fake.populate(2, "v1")
    fake.fail("/v1/search", 429, retry_after=1)
    fake.fail("/children", 429, retry_after=1)
    sleeps: list[float] = []
    report = indexer.index_source(notion(fake, tmp_path, sleeps))
    assert (report.added, report.failed) == (2, 0)
    assert sleeps == [1.0, 1.0]


def test_a_listing_cut_short_by_server_errors_fails_and_deletes_nothing(
    fake: FakeNotion, indexer: Indexer, tmp_path: Path
):
    fake.page_limit = 2
    fake.populate(5, "v1")
    assert indexer.index_source(notion(fake, tmp_path)).added == 5
    fake.fail("/v1/search", 500, times=10, paged_only=True)
    with pytest.raises(SourceError, match=r"HTTP 500 from POST .*/v1/search"):
        indexer.index_source(notion(fake, tmp_path))
    assert len(indexer.store.documents(source="wiki")) == 5


def test_pages_too_big_or_without_text_are_skipped_with_a_reason(
    fake: FakeNotion, indexer: Indexer, tmp_path: Path
):
    fake.add_page("Welcome", paragraph("Welcome to the team, the coffee is on floor three."))
    fake.add_page("Huge", *[paragraph(f"Line {n} " + "x" * 200) for n in range(30)])
    fake.add_page("Gallery", block("image", type="external", external={"url": "https://a/b"}))
    source = notion(fake, tmp_path)
    source.max_bytes = 4000
    report = indexer.index_source(source)
    assert (report.added, report.failed) == (1, 2)
    problems = "\n".join(report.problems)
    assert "over the size limit: skipped" in problems and "no text to index" in problems
    assert "Huge" in problems or "www.notion.so/Huge-" in problems


def test_a_page_edited_moments_ago_is_read_again_next_time():
    sections = [Section((), "text")]
    assert settled_version("2024-03-01T09:01:00.000Z", sections) == "2024-03-01T09:01:00.000Z"
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:00.000Z")
    recent = settled_version(now, sections)
    assert recent.startswith(now + " ") and recent != settled_version(now, [Section((), "new")])


def test_notion_sources_parse_from_sources_yaml_and_never_hold_the_token(
    fake: FakeNotion, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    register_kind(KIND, NotionConfig, build)
    entry, env = sources_entry(fake, "all-notion")
    path = tmp_path / "sources.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            sources:
              - name: {entry["name"]}
                kind: notion
                api_url: {entry["api_url"]}
                token_env: {entry["token_env"]}
              - name: handbook
                kind: notion
                pages:
                  - https://www.notion.so/acme/Team-Handbook-0123456789abcdef0123456789ABCDEF?pvs=4
                  - 01234567-89ab-cdef-0123-456789abcdee
                databases: ["notion.so/acme/fedcba9876543210fedcba9876543210?v=1111111111111111"]
                children: false
                every: 1h
            """
        )
    )
    everything, handbook = load_sources(path)
    assert isinstance(handbook, NotionConfig) and handbook.children is False
    assert handbook.pages == [
        "01234567-89ab-cdef-0123-456789abcdef",
        "01234567-89ab-cdef-0123-456789abcdee",
    ]
    assert handbook.databases == ["fedcba98-7654-3210-fedc-ba9876543210"]
    assert isinstance(everything, NotionConfig) and everything.pages == []
    monkeypatch.setenv(TOKEN_ENV, env[TOKEN_ENV])
    assert everything.secret().get_secret_value() == fake.token
    assert fake.token not in repr(everything) and fake.token not in str(everything.model_dump())

    inline = "sources:\n  - {name: n, kind: notion, token: secret_abc}\n"
    path.write_text(inline)
    with pytest.raises(SourcesFileError, match=r"`token` does not belong in sources\.yaml") as bad:
        load_sources(path)
    assert "secret_abc" not in str(bad.value)
    path.write_text("sources:\n  - {name: n, kind: notion, pages: [My Page]}\n")
    with pytest.raises(SourcesFileError, match=r"pages: 'My Page' is not a Notion id"):
        load_sources(path)
