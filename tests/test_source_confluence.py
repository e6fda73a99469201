"""The confluence kind against a loopback Confluence, through the real indexer and store."""

import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from retrieval.indexer import Indexer
from retrieval.settings import RetrievalSettings
from retrieval.sources.base import SourceError
from retrieval.sources.config import (
    SourceContext,
    SourcesFileError,
    build_source,
    load_sources,
    register_kind,
)
from retrieval.sources.confluence import KIND, ConfluenceConfig, ConfluenceSource, build
from tests.fake_confluence import FakeConfluence, Page, sources_entry

ROLLBACK = """
<h1>Rolling back a deploy</h1>
<p>When a deploy of the tile API goes wrong, roll it back before debugging.</p>
<ac:structured-macro ac:name="code"><ac:parameter ac:name="language">bash</ac:parameter>
<ac:plain-text-body><![CDATA[kubectl rollout undo deployment/tile-api]]></ac:plain-text-body>
</ac:structured-macro>
<h2>Who to tell</h2>
<table><tbody><tr><th>Channel</th><th>When</th></tr><tr><td>#ops</td><td>always</td></tr></tbody>
</table>
"""


@pytest.fixture
def fake() -> Iterator[FakeConfluence]:
    served = FakeConfluence()
    yield served
    served.close()


def source(
    fake: FakeConfluence,
    monkeypatch: pytest.MonkeyPatch,
    sleeps: list[float] | None = None,
    **overrides: object,
) -> ConfluenceSource:
    entry, env = sources_entry(fake, "wiki")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = ConfluenceConfig.model_validate({**entry, **overrides})
    recorded = sleeps if sleeps is not None else []
    return ConfluenceSource(config, max_bytes=2000, sleep=recorded.append)


def wiki(fake: FakeConfluence) -> dict[str, Page]:
    home = fake.add_page("ENG", "Engineering", "<p>How we build and run the map tile service.</p>")
    runbooks = fake.add_page("ENG", "Runbooks", "<p>Runbooks of our services.</p>", parent=home)
    rollback = fake.add_page("ENG", "Rollback", ROLLBACK, parent=runbooks)
    onboarding = fake.add_page(
        "ENG",
        "Onboarding",
        "<h2>First week</h2><p>New engineers pair with a buddy and ship a change by Friday.</p>",
        parent=home,
    )
    old = fake.add_page(
        "ENG", "Old notes", "<p>The legacy tile server ran on a Raspberry Pi.</p>", parent=home
    )
    return {
        "home": home,
        "runbooks": runbooks,
        "rollback": rollback,
        "onboarding": onboarding,
        "old": old,
    }


def _search(indexer: Indexer, query: str) -> list:
    return indexer.store.search(
        indexer.embedder.embed_query(query), limit=5, candidates=20, weights=(1.0, 1.0)
    )


def test_spaces_are_indexed_incrementally_with_their_attachments(
    fake: FakeConfluence, indexer: Indexer, monkeypatch: pytest.MonkeyPatch
):
    pages = wiki(fake)
    rollback = pages["rollback"]
    checklist = b"# Rollback checklist\n\nAgree the rollback with the incident commander first."
    fake.attach(rollback, "checklist.md", "text/markdown", checklist)
    fake.attach(rollback, "dashboard.png", "image/png", b"\x89PNG\r\n\x1a\n")  # left out
    fake.attach(rollback, "budget.xlsx", "application/vnd.ms-excel", b"PK\x03\x04")
    fake.attach(pages["onboarding"], "handbook.pdf", "application/pdf", b"%PDF" + b"x" * 3000)
    fake.page_limit = 2  # 5 pages: three listing requests; 4 attachments: two searches

    first = indexer.index_source(source(fake, monkeypatch))
    assert (first.added, first.failed) == (6, 2)
    problems = "\n".join(first.problems)
    assert ".xlsx attachments are not read" in problems and "over the size limit" in problems
    assert [r.query.get("start", "0") for r in fake.listings()] == ["0", "2", "4"]
    searches = fake.listings("/rest/api/content/search")
    assert len(searches) == 2 and "cursor" in searches[1].query
    assert [d.rsplit("/", 1)[-1] for d in fake.downloads()] == ["checklist.md"]  # pdf: by size

    hit = next(h for h in _search(indexer, "how to roll back a bad deploy") if "kubectl" in h.body)
    assert hit.title == "Engineering / Runbooks / Rollback"
    assert hit.location == f"{fake.url}/spaces/ENG/pages/{rollback.id}/Rollback"
    assert "#ops | always" in " ".join(h.body for h in _search(indexer, "which channel to tell"))
    attached = next(h for h in _search(indexer, "incident commander") if "/att" in h.doc_id)
    assert attached.title == "Engineering / Runbooks / Rollback / checklist.md"
    assert attached.location.startswith(f"{fake.url}/spaces/ENG/pages/{rollback.id}/Rollback?")

    rollback.edit("<h1>Rolling back</h1><p>Roll back with the deploy button in Spinnaker.</p>")
    pages["old"].status = "archived"
    fake.requests.clear()
    second = indexer.index_source(source(fake, monkeypatch))
    assert (second.updated, second.deleted, second.unchanged, second.added) == (1, 1, 4, 0)
    assert fake.body_fetches() == [rollback.id] and fake.downloads() == []
    assert "Spinnaker" in _search(indexer, "how to roll back a bad deploy")[0].body
    assert not any("Raspberry" in h.body for h in _search(indexer, "legacy tile server"))

    pages["runbooks"].title = "Ops runbooks"  # a renamed parent gives its pages a new path
    pages["runbooks"].version += 1
    third = indexer.index_source(source(fake, monkeypatch))
    assert (third.updated, third.unchanged) == (3, 2)  # runbooks, rollback, checklist.md
    assert _search(indexer, "Spinnaker deploy button")[0].title == (
        "Engineering / Ops runbooks / Rollback"
    )


def test_labels_choose_pages_and_cloud_signs_in_with_email(monkeypatch: pytest.MonkeyPatch):
    fake = FakeConfluence(email="ops@example.com")
    try:
        keep = fake.add_page("ENG", "Public", "<p>a</p>", labels=["public"])
        fake.add_page("ENG", "Draft", "<p>b</p>", labels=["public", "draft"])
        fake.add_page("ENG", "Unlabelled", "<p>c</p>")
        listed = source(fake, monkeypatch, labels_include=["Public"], labels_exclude=["draft"])
        assert [ref.doc_id for ref in listed.refs()] == [f"confluence:{listed.site}/{keep.id}"]
        assert all(r.authorization.startswith("Basic ") for r in fake.requests)
    finally:
        fake.close()


def test_a_refused_token_fails_the_run_and_keeps_what_was_indexed(
    fake: FakeConfluence, indexer: Indexer, monkeypatch: pytest.MonkeyPatch
):
    wiki(fake)
    wanted = source(fake, monkeypatch, attachments=False)
    assert indexer.index_source(wanted).added == 5
    fake.refuse = True
    with pytest.raises(SourceError) as refused:
        indexer.index_source(source(fake, monkeypatch))
    message = str(refused.value)
    assert "source 'wiki'" in message and "HTTP 401" in message and "\n" not in message
    assert len(indexer.store.documents(source="wiki")) == 5
    assert _search(indexer, "buddy first week")[0].title == "Engineering / Onboarding"

    monkeypatch.delenv("CONFLUENCE_TEST_TOKEN")
    with pytest.raises(SourceError, match="set CONFLUENCE_TEST_TOKEN") as missing:
        indexer.index_source(ConfluenceSource(wanted.config, max_bytes=2000))
    for text in (message, str(missing.value), repr(wanted.config), str(wanted.config)):
        assert fake.token not in text


def test_a_space_that_does_not_exist_is_named(
    fake: FakeConfluence, indexer: Indexer, monkeypatch: pytest.MonkeyPatch
):
    wiki(fake)
    with pytest.raises(SourceError) as missing:
        indexer.index_source(source(fake, monkeypatch, spaces=["ENG", "NOPE"]))
    assert str(missing.value) == (
        "confluence source 'wiki': space NOPE does not exist or the token cannot see it"
    )


def test_rate_limits_are_waited_out(
    fake: FakeConfluence, indexer: Indexer, monkeypatch: pytest.MonkeyPatch
):
    fake.add_page("ENG", "Parking", "<p>Parking in the basement costs EUR 4 a day.</p>")
    fake.rate_limited, fake.retry_after = 2, "7"
    sleeps: list[float] = []
    report = indexer.index_source(source(fake, monkeypatch, sleeps))
    assert report.added == 1 and sleeps == [7.0, 7.0]


def test_a_listing_cut_short_by_a_server_error_deletes_nothing(
    fake: FakeConfluence, indexer: Indexer, monkeypatch: pytest.MonkeyPatch
):
    pages = wiki(fake)
    fake.page_limit = 2
    assert indexer.index_source(source(fake, monkeypatch, attachments=False)).added == 5
    pages["old"].status = "trashed"
    fake.fail_listing_from = 2  # the second listing request fails, retries included
    sleeps: list[float] = []
    with pytest.raises(SourceError, match=r"source 'wiki': HTTP 500 from GET .*/rest/api/content$"):
        indexer.index_source(source(fake, monkeypatch, sleeps))
    assert len(sleeps) == 3  # the client's retries, not waited for real
    assert len(indexer.store.documents(source="wiki")) == 5


CONTEXT = SourceContext(RetrievalSettings(), Path("/tmp/state"))


def test_a_sources_file_entry_parses_and_refuses_an_inline_token(tmp_path: Path):
    register_kind(KIND, ConfluenceConfig, build)
    path = tmp_path / "sources.yaml"
    path.write_text(
        textwrap.dedent(
            """
            sources:
              - name: wiki
                kind: confluence
                url: https://kestrel.atlassian.net/wiki/
                email: ops@kestrel.example
                spaces: [ENG, OPS]
                labels_exclude: [Draft]
                every: 1h
            """
        )
    )
    [config] = load_sources(path)
    assert isinstance(config, ConfluenceConfig)
    assert (config.url, config.spaces, config.labels_exclude, config.attachments) == (
        "https://kestrel.atlassian.net/wiki",
        ["ENG", "OPS"],
        ["draft"],
        True,
    )
    assert config.secret_origin.startswith("$CONFLUENCE_TOKEN")
    assert isinstance(build_source(config, CONTEXT), ConfluenceSource)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("url: https://c.example\n    spaces: [ENG]\n    token: abc", "`token` does not belong"),
        ("url: https://k.atlassian.net\n    email: a@b.c\n    spaces: [ENG]", "ends in /wiki"),
        ("url: https://k.atlassian.net/wiki\n    spaces: [ENG]", "add `email`"),
        ("url: https://c.example/rest/api\n    spaces: [ENG]", "without /rest/api"),
        ("url: https://c.example\n    spaces: []", "spaces: List should have at least 1"),
    ],
)
def test_a_malformed_entry_is_refused_with_its_reason(tmp_path: Path, lines: str, message: str):
    register_kind(KIND, ConfluenceConfig, build)
    path = tmp_path / "sources.yaml"
    path.write_text(f"sources:\n  - name: wiki\n    kind: confluence\n    {lines}\n")
    with pytest.raises(SourcesFileError, match=re.escape(message)):
        load_sources(path)
