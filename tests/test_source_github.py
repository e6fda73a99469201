"""The github kind against a loopback fake of GitHub: real indexer, embeddings and Qdrant."""

import re
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from retrieval.indexer import Indexer
from retrieval.settings import RetrievalSettings
from retrieval.sources.base import GONE, Fetched, SourceError
from retrieval.sources.config import SourceContext, SourcesFileError, load_sources, register_kind
from retrieval.sources.github import KIND, GithubConfig, GithubSource, _settled, build
from retrieval.sources.github_api import graphql_url, web_url
from retrieval.sources.github_wiki import WikiPages
from tests.fake_github import POPULATED, TOKEN_ENV, FakeGitHub, sources_entry
from tests.test_sources import git

REPO = POPULATED
WEB = "https://github.com/acme/handbook"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    served = FakeGitHub()
    monkeypatch.setenv(TOKEN_ENV, served.token)
    yield served
    served.close()


def github(
    fake: FakeGitHub, tmp_path: Path, sleeps: list[float] | None = None, **options: Any
) -> GithubSource:
    """The source as sources.yaml would build it; rate-limit waits recorded, not slept."""
    entry, _ = sources_entry(fake, "gh")
    max_mb = options.pop("max_file_mb", 10.0)
    config = GithubConfig.model_validate({**entry, **options})
    source = build(config, SourceContext(RetrievalSettings(max_file_mb=max_mb), tmp_path / "state"))
    assert isinstance(source, GithubSource)
    source.client.sleep = (sleeps if sleeps is not None else []).append
    return source


def _hit(indexer: Indexer, query: str, location: str) -> Any:
    hits = indexer.store.search(
        indexer.embedder.embed_query(query), limit=5, candidates=20, weights=(1.0, 1.0)
    )
    found = [hit for hit in hits if hit.location == location]
    assert found, f"{location} not among {[hit.location for hit in hits]}"
    return found[0]


def _threads(fake: FakeGitHub) -> None:
    fake.add_issue(REPO, "VPN drops every hour", "The office VPN disconnects.", labels=("bug",))
    fake.comment(REPO, 1, "Workaround: set the keepalive to 25 seconds in the client profile.")
    fake.add_issue(
        REPO, "Printer on floor 3 jams", "The floor 3 printer jams on A3.", state="closed"
    )
    fake.add_issue(
        REPO, "Move deploys to Thursday", "Deploys move from Friday.", pull=True, merged=True
    )
    fake.review(REPO, 3, "Thursday deploys give QA a full day.", "APPROVED")
    fake.review_comment(REPO, 3, "docs/release.md", "Mention the code freeze window here.")
    fake.add_discussion(REPO, "How do I get a new laptop?", "Mine is five years old.")
    fake.discuss(REPO, 4, "Ask your manager first.", user="frank")
    fake.discuss(
        REPO,
        4,
        "File a ticket in the IT portal under Hardware; approval takes two days.",
        answer=True,
        replies=(("dave", "Thanks, that worked."),),
    )
    fake.add_issue(REPO, "Onboarding checklist", "New starters get a badge on day one.")


def test_threads_are_indexed_marked_and_cited_then_kept_fresh(
    fake: FakeGitHub, tmp_path: Path, indexer: Indexer
):
    _threads(fake)
    fake.page_size = 2  # four issues and pull requests: two pages
    first = indexer.index_source(github(fake, tmp_path))
    assert (first.added, first.failed) == (5, 0), first.problems
    assert any(r.startswith("GET /repositories/") and "page=2" in r for r in fake.requests)
    assert not any("/issues/2/comments" in r for r in fake.requests)  # no comments: not asked

    vpn = _hit(indexer, "VPN keepalive workaround", f"{WEB}/issues/1")
    assert vpn.title == "acme/handbook#1 VPN drops every hour"
    printer = _hit(indexer, "floor 3 printer jams", f"{WEB}/issues/2")
    assert printer.title.endswith("(closed)") and "State: closed" in printer.text
    pull = _hit(indexer, "code freeze window release notes", f"{WEB}/pull/3")
    assert pull.title == "acme/handbook#3 Move deploys to Thursday (merged)"
    laptop = _hit(indexer, "new laptop hardware ticket", f"{WEB}/discussions/4")
    assert laptop.title.endswith("(answered)")
    documents = _documents(github(fake, tmp_path))
    assert (
        "bob on " in documents[f"{WEB}/issues/1"] and "Labels: bug" in documents[f"{WEB}/issues/1"]
    )
    assert "carol approved" in documents[f"{WEB}/pull/3"]
    assert "carol on docs/release.md" in documents[f"{WEB}/pull/3"]
    assert re.search(
        r"erin on \S+ \(the accepted answer\):\nFile a ticket", documents[f"{WEB}/discussions/4"]
    )
    assert "Reply by dave" in documents[f"{WEB}/discussions/4"]

    fake.requests.clear()
    second = indexer.index_source(github(fake, tmp_path))
    assert (second.unchanged, second.added, second.updated) == (5, 0, 0)
    assert not any(re.search(r"/(comments|reviews)", r) for r in fake.requests)

    fake.comment(REPO, 1, "Fixed in client 4.2, the workaround is no longer needed.")
    fake.discuss(REPO, 4, "Laptops now ship from the Berlin office.")  # updatedAt stays
    del fake.issues[REPO][5]
    fake.requests.clear()
    third = indexer.index_source(github(fake, tmp_path))
    assert (third.updated, third.deleted, third.unchanged) == (2, 1, 2)
    assert [r for r in fake.requests if "/comments" in r or "/reviews" in r] == [
        "GET /repos/acme/handbook/issues/1/comments?per_page=100"
    ]
    assert (
        "client 4.2" in _hit(indexer, "which client version fixed the VPN", f"{WEB}/issues/1").text
    )
    assert "Berlin" in _hit(indexer, "where do laptops ship from", f"{WEB}/discussions/4").text
    assert f"{WEB}/issues/5" not in {d.location for d in indexer.store.documents("gh").values()}


def _documents(source: GithubSource) -> dict[str, str]:
    """Each listed thread's whole text, by location, as the source renders it."""
    texts = {}
    for ref in source.refs():
        fetched = source.fetch(ref, None)
        assert isinstance(fetched, Fetched)
        texts[ref.location] = "\n".join(
            [fetched.title] + [f"{' > '.join(s.headings)}\n{s.text}" for s in fetched.sections]
        )
    return texts


def test_a_refused_token_fails_the_run_and_keeps_what_was_indexed(
    fake: FakeGitHub, tmp_path: Path, indexer: Indexer, monkeypatch: pytest.MonkeyPatch
):
    fake.populate(3, "v1")
    assert indexer.index_source(github(fake, tmp_path)).added == 3
    refused = fake.token
    fake.token = "ghp_rotated"
    with pytest.raises(SourceError) as caught:
        indexer.index_source(github(fake, tmp_path))
    message = str(caught.value)
    assert "source 'gh'" in message and "HTTP 401" in message and f"${TOKEN_ENV}" in message
    assert "\n" not in message and refused not in message
    assert len(indexer.store.documents(source="gh")) == 3

    monkeypatch.delenv(TOKEN_ENV)
    with pytest.raises(SourceError, match=f"source 'gh' needs a token: set {TOKEN_ENV}"):
        github(fake, tmp_path)


def test_a_repository_that_does_not_exist_is_one_clear_line(
    fake: FakeGitHub, tmp_path: Path, indexer: Indexer
):
    fake.populate(2, "v1")
    indexer.index_source(github(fake, tmp_path))
    with pytest.raises(SourceError) as caught:
        indexer.index_source(github(fake, tmp_path, repos=[REPO, "acme/handbok"]))
    message = str(caught.value)
    assert message.startswith("source 'gh': repository acme/handbok not found on 127.0.0.1:")
    assert "check `repos`" in message and "\n" not in message
    assert len(indexer.store.documents(source="gh")) == 2


def test_rate_limits_are_waited_out_in_both_of_githubs_shapes(
    fake: FakeGitHub, tmp_path: Path, indexer: Indexer
):
    fake.populate(3, "v1")
    fake.add_discussion(REPO, "Where is the style guide?", "Looking for the writing style guide.")
    reset = int(time.time()) + 30
    fake.fail(r"GET /repos/acme/handbook/issues\?", 429, {"Retry-After": "3"})  # secondary
    fake.fail(
        r"/issues/2/comments", 403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
    )
    fake.fail(r"POST /graphql", 403, {"Retry-After": "2"})  # secondary, on GraphQL
    sleeps: list[float] = []
    report = indexer.index_source(github(fake, tmp_path, sleeps))
    assert (report.added, report.failed) == (4, 0), report.problems
    assert sleeps[:2] == [3.0, 2.0] and len(sleeps) == 3
    assert 25 <= sleeps[2] <= 32  # until X-RateLimit-Reset, and a second to spare


def test_a_listing_cut_by_a_server_error_fails_and_deletes_nothing(
    fake: FakeGitHub, tmp_path: Path, indexer: Indexer
):
    fake.page_size = 2
    fake.populate(5, "v1")
    assert indexer.index_source(github(fake, tmp_path)).added == 5
    del fake.issues[REPO][5]  # gone, had the listing been complete
    fake.page_size = 1
    fake.fail(r"issues\?.*page=2", 500, times=10)
    with pytest.raises(SourceError, match=r"source 'gh': HTTP 500 from GET .*/issues"):
        indexer.index_source(github(fake, tmp_path))
    assert len(indexer.store.documents(source="gh")) == 5


def test_an_oversized_thread_is_skipped_with_a_reason_and_the_rest_indexed(
    fake: FakeGitHub, tmp_path: Path, indexer: Indexer
):
    fake.populate(2, "v1")
    fake.add_issue(REPO, "Log dump", "Stack trace line. " * 400)  # about 7 KB
    report = indexer.index_source(github(fake, tmp_path, max_file_mb=0.004))
    assert (report.added, report.failed) == (2, 1)
    (problem,) = report.problems
    assert problem.startswith(f"{WEB}/issues/3: ") and problem.endswith(
        "over the size limit: skipped"
    )
    assert _hit(indexer, "code word word1", f"{WEB}/issues/2").title == "acme/handbook#2 Note 1"


def test_discussions_page_their_comments_or_are_skipped_where_turned_off(
    fake: FakeGitHub, tmp_path: Path, indexer: Indexer
):
    fake.page_size = 2
    fake.add_discussion(REPO, "Parking", "Where can visitors park?")
    for text in ("Behind the building.", "Only with a permit.", "Reception hands out permits."):
        fake.discuss(REPO, 1, text, answer=text.startswith("Reception"))
    text = _documents(github(fake, tmp_path))[f"{WEB}/discussions/1"]
    assert "Behind the building" in text and "(the accepted answer):\nReception" in text
    assert sum("POST /graphql" in r for r in fake.requests) == 2  # the listing, then page two

    fake.graphql_errors = [{"type": "FORBIDDEN", "message": "Resource not accessible by token"}]
    with pytest.raises(
        SourceError,
        match="GitHub GraphQL refused the discussions of acme/handbook: Resource not accessible",
    ):
        indexer.index_source(github(fake, tmp_path))

    fake.repo(REPO, has_discussions=False)
    fake.requests.clear()
    assert indexer.index_source(github(fake, tmp_path)).added == 0
    assert not any("graphql" in r for r in fake.requests)


def test_since_keeps_only_recently_updated_threads(
    fake: FakeGitHub, tmp_path: Path, indexer: Indexer
):
    fake.add_issue(REPO, "Ancient migration", "We moved mail servers in 2019.", age_days=400)
    fake.add_issue(REPO, "Current rota", "The on-call rota changes on Mondays.")
    report = indexer.index_source(github(fake, tmp_path, since="365d"))
    assert report.added == 1
    listing = next(r for r in fake.requests if "/issues?" in r)
    assert "since=" in listing and "sort=updated" in listing and "state=all" in listing
    assert {d.location for d in indexer.store.documents("gh").values()} == {f"{WEB}/issues/2"}


def test_pull_requests_are_listed_on_their_own_where_issues_are_off(
    fake: FakeGitHub, tmp_path: Path
):
    fake.add_issue(REPO, "Typo in README", "Fix spelling.")
    fake.add_issue(REPO, "Bump the linter", "Newer ruff.", pull=True, merged=True)
    fake.comment(REPO, 2, "Merged after the release.")
    fake.repo(REPO, has_issues=False)
    source = github(fake, tmp_path, discussions=False)
    texts = _documents(source)
    assert list(texts) == [f"{WEB}/pull/2"]
    assert "State: merged" in texts[f"{WEB}/pull/2"] and "Merged after" in texts[f"{WEB}/pull/2"]
    assert any(r.startswith("GET /repos/acme/handbook/pulls?") for r in fake.requests)


def test_a_thread_deleted_after_the_listing_is_gone(fake: FakeGitHub, tmp_path: Path):
    fake.populate(2, "v1")
    source = github(fake, tmp_path)
    (first,) = [ref for ref in source.refs() if ref.location == f"{WEB}/issues/1"]
    del fake.issues[REPO][1]
    assert source.fetch(first, None) is GONE


def test_a_listing_that_shifted_while_read_is_read_again():
    listings = iter(
        [
            [{"number": 2}, {"number": 1}, {"number": 1}],
            [{"number": 3}, {"number": 2}, {"number": 1}],
        ]
    )
    assert sorted(item["number"] for item in _settled(lambda: next(listings))) == [1, 2, 3]


def test_the_wiki_is_mirrored_with_git_and_cited_at_its_pages(
    fake: FakeGitHub, tmp_path: Path, indexer: Indexer, monkeypatch: pytest.MonkeyPatch
):
    work = tmp_path / "work"
    work.mkdir()
    (work / "Home.md").write_text("Welcome to the handbook wiki. Start with the setup guide.")
    (work / "Setup-Guide.md").write_text("## Laptop\n\nInstall the VPN client version 4.2 first.")
    (work / "_Sidebar.md").write_text("* [Home](Home)")
    (work / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (work / "Diagram.md").write_bytes(b"\x00\x01binary")
    git(work, "init", "-q", "-b", "master")
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "pages")
    bare = tmp_path / "wikis" / "acme" / "handbook.wiki.git"
    bare.parent.mkdir(parents=True)
    git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    fake.repo(REPO)
    runs: list[tuple[list[str], dict[str, str]]] = []
    real_run = subprocess.run

    def recording_run(args: list[str], **kwargs: Any) -> Any:
        runs.append((args, kwargs.get("env") or {}))
        return real_run(args, **kwargs)

    monkeypatch.setattr("retrieval.sources.github_wiki.subprocess.run", recording_run)
    options = {
        "issues": False,
        "pulls": False,
        "discussions": False,
        "wiki": True,
        "wiki_url": str(tmp_path / "wikis" / "{owner}" / "{name}.wiki.git"),
    }
    first = indexer.index_source(github(fake, tmp_path, **options))
    assert (first.added, first.failed) == (2, 1)
    assert first.problems[0].endswith(
        "/acme/handbook/wiki/Diagram: a binary file, not text: skipped"
    )
    hit = _hit(
        indexer, "which VPN client version to install", f"{fake.url}/acme/handbook/wiki/Setup-Guide"
    )
    assert hit.title == "acme/handbook wiki: Setup Guide"
    assert (tmp_path / "state" / "gh" / "acme" / "handbook.wiki" / "HEAD").is_file()
    assert runs and all(fake.token not in " ".join(args) for args, _ in runs)

    (work / "Setup-Guide.md").write_text("## Laptop\n\nInstall the VPN client version 5.0 first.")
    git(work, "commit", "-q", "-am", "newer client")
    git(work, "push", "-q", str(bare), "master")
    second = indexer.index_source(github(fake, tmp_path, **options))
    assert (second.updated, second.unchanged) == (1, 1)
    hit = _hit(
        indexer, "which VPN client version to install", f"{fake.url}/acme/handbook/wiki/Setup-Guide"
    )
    assert "5.0" in hit.text


def test_the_wiki_token_travels_in_git_config_env_and_only_to_github(tmp_path: Path):
    def env(clone_url: str) -> dict[str, str]:
        wiki = WikiPages(
            "gh",
            repo=REPO,
            clone_url=clone_url,
            folder=tmp_path,
            web="https://github.com",
            doc_prefix="github:github.com/acme/handbook/wiki",
            token="ghp_s3cret",
            max_bytes=1,
        )
        return wiki._env()

    to_github = env("https://github.com/acme/handbook.wiki.git")
    headers = [v for k, v in to_github.items() if k.startswith("GIT_CONFIG_VALUE_")]
    assert headers == ["Authorization: Basic eC1hY2Nlc3MtdG9rZW46Z2hwX3MzY3JldA=="]
    assert to_github["GIT_TERMINAL_PROMPT"] == "0"
    elsewhere = env("https://git.example.com/acme/handbook.wiki.git")
    assert "Authorization" not in " ".join(elsewhere.values())


def test_enterprise_server_urls_are_derived_from_api_url():
    assert web_url("https://api.github.com") == "https://github.com"
    assert graphql_url("https://api.github.com") == "https://api.github.com/graphql"
    assert web_url("https://ghe.example.com/api/v3/") == "https://ghe.example.com"
    assert graphql_url("https://ghe.example.com/api/v3") == "https://ghe.example.com/api/graphql"


def test_a_sources_yaml_entry_parses_and_refuses_an_inline_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    register_kind(KIND, GithubConfig, build)
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_from_the_environment")
    path = tmp_path / "sources.yaml"
    path.write_text(
        textwrap.dedent(
            """
            sources:
              - name: eng
                kind: github
                repos: [acme/handbook, acme/infra]
                since: 365d
                wiki: true
                every: 6h
            """
        )
    )
    (config,) = load_sources(path)
    assert isinstance(config, GithubConfig)
    assert (config.repos, config.issues, config.wiki, config.api_url) == (
        ["acme/handbook", "acme/infra"],
        True,
        True,
        "https://api.github.com",
    )
    assert config.secret().get_secret_value() == "ghp_from_the_environment"
    assert "ghp_from_the_environment" not in repr(config) + str(config.model_dump())

    for extra, message in [
        ("token: ghp_inline", "`token` does not belong in sources.yaml"),
        ("since: soon", "not a duration"),
        ("issues: false\n    pulls: false\n    discussions: false", "turn on at least one"),
    ]:
        path.write_text(
            f"sources:\n  - name: eng\n    kind: github\n    repos: [a/b]\n    {extra}\n"
        )
        with pytest.raises(SourcesFileError, match=re.escape(message)):
            load_sources(path)
    path.write_text("sources:\n  - {name: eng, kind: github, repos: [handbook]}\n")
    with pytest.raises(SourcesFileError, match="'handbook' is not owner/name"):
        load_sources(path)
