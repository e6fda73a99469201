"""Declared sources: sources.yaml, files globs, web pages, git repositories, the run log."""

import re
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from retrieval.indexer import Indexer
from retrieval.runner import SourceBusyError, SourceRunner
from retrieval.runs import RunLog
from retrieval.settings import RetrievalSettings
from retrieval.sources.base import SourceError
from retrieval.sources.config import (
    SourceContext,
    SourcesFileError,
    build_source,
    load_sources,
)
from retrieval.sources.files import FilesSource
from retrieval.sources.web import WebSource
from retrieval.store import ChunkStore
from tests.loopback import LoopbackServer, QuietHandler

CONTEXT = SourceContext(RetrievalSettings(), Path("/tmp/state"))


def write_sources(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_complete_sources_file_parses(tmp_path: Path):
    (tmp_path / "docs").mkdir()
    path = write_sources(
        tmp_path,
        """
        sources:
          - name: handbook
            kind: files
            paths: [docs]
            include: ["*.md"]
            every: 1h
            visible_in: [C0123]
          - name: site
            kind: web
            urls: [https://example.com/a]
            sitemap: https://example.com/sitemap.xml
            cron: "0 6 * * 1-5"
          - name: repo
            kind: git
            path: .
            url: https://git.example.com/r/blob/main/{path}
        """,
    )
    handbook, site, repo = load_sources(path)
    assert handbook.paths == [tmp_path / "docs"]  # type: ignore[attr-defined]
    assert (handbook.schedule, handbook.visible_in) == ("every 1h", ["C0123"])
    assert site.schedule == "cron 0 6 * * 1-5" and repo.schedule == "manual"
    assert isinstance(build_source(site, CONTEXT), WebSource)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sources:\n  - name: a\n    kind: files\n    paths: [x\n", "line 5: not valid YAML"),
        ("sources:\n  - name: a\n    kind: ftp\n", "line 2: source 'a' has unknown kind 'ftp'"),
        (
            "sources:\n  - name: ok\n    kind: files\n    paths: [x]\n"
            "  - name: nightly\n    kind: files\n    paths: [x]\n    cron: 61 * * * *\n",
            "line 5: source 'nightly': cron: bad cron expression '61 * * * *'",
        ),
        (
            "sources:\n  - name: a\n    kind: files\n    paths: [x]\n    every: 1h\n"
            "    cron: 0 * * * *\n",
            "either `every` or `cron`",
        ),
        ("sources:\n  - name: a\n    kind: web\n", "needs `urls`, a `sitemap`"),
        (
            "sources:\n  - name: a\n    kind: files\n    paths: [x]\n    every: soon\n",
            "not a duration",
        ),
        (
            "sources:\n  - {name: a, kind: files, paths: [x]}\n"
            "  - {name: a, kind: files, paths: [y]}\n",
            "unique: a",
        ),
        ("just: a mapping\n", "top-level `sources:` list"),
    ],
)
def test_a_malformed_sources_file_names_the_line_and_reason(
    tmp_path: Path, text: str, message: str
):
    with pytest.raises(SourcesFileError, match=re.escape(message)):
        load_sources(write_sources(tmp_path, text))


def test_files_globs_choose_what_is_indexed(tmp_path: Path):
    for name in ("guide.md", "notes.txt", "drafts/wip.md", "api/ref.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("# T\n\ntext")
    source = FilesSource(
        "docs", [tmp_path], include=["*.md", "**/*.md"], exclude=["drafts/*"], max_bytes=10**6
    )
    assert sorted(Path(r.doc_id).relative_to(tmp_path).as_posix() for r in source.refs()) == [
        "api/ref.md",
        "guide.md",
    ]


class Site:
    """A small website on loopback that counts requests and honours conditional requests."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[int, str, str]] = {}  # path → (status, type, body)
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.not_modified = 0
        self.active = 0
        self.most_active = 0
        self.delay = 0.0
        self._lock = threading.Lock()
        site = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                with site._lock:
                    site.requests.append((self.path, dict(self.headers)))
                    site.active += 1
                    site.most_active = max(site.most_active, site.active)
                try:
                    site.serve(self)
                finally:
                    with site._lock:
                        site.active -= 1

        self.server = LoopbackServer(Handler)
        self.url = self.server.url

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path
        if path == "/slow":
            time.sleep(3)
        time.sleep(self.delay)
        if path == "/moved":
            handler.send_response(301)
            handler.send_header("Location", "/c")
            handler.end_headers()
            return
        status, kind, body = self.pages.get(path, (404, "text/plain", "not found"))
        etag = f'"{abs(hash(body))}"'
        modified = formatdate(1_700_000_000, usegmt=True)
        if status == 200 and (
            handler.headers.get("If-None-Match") == etag
            or handler.headers.get("If-Modified-Since") == modified
        ):
            self.not_modified += 1
            handler.send_response(304)
            handler.end_headers()
            return
        payload = body.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(payload)))
        if path == "/b":
            handler.send_header("Last-Modified", modified)
        else:
            handler.send_header("ETag", etag)
        handler.end_headers()
        handler.wfile.write(payload)

    def close(self) -> None:
        self.server.close()


def page(title: str, text: str) -> str:
    return (
        f"<html><head><title>{title}</title></head><body><nav>Home | Blog | Careers</nav>"
        f"<article><h1>{title}</h1><p>{text}</p><h2>Details</h2><p>{text} More detail here "
        f"so the extractor sees a real article with enough words in it.</p></article>"
        "<footer>Copyright Kestrel Cartography</footer></body></html>"
    )


@pytest.fixture
def site() -> Iterator[Site]:
    served = Site()
    yield served
    served.close()


def web_source(site: Site, **overrides: object) -> WebSource:
    options: dict = {
        "urls": [],
        "sitemap": site.url + "/sitemap.xml",
        "max_per_host": 2,
        "timeout": 1.0,
        "max_bytes": 10**6,
    }
    options.update(overrides)
    return WebSource("site", **options)


def test_web_pages_are_fetched_politely_and_kept_fresh(
    site: Site, indexer: Indexer, store: ChunkStore
):
    site.pages = {
        "/a": (200, "text/html", page("Alpha", "The alpha office opens at 07:30 on weekdays.")),
        "/b": (200, "text/html; charset=utf-8", page("Bravo", "Bravo parking costs EUR 4.")),
        "/c": (200, "text/html", page("Charlie", "Charlie moved to the fourth floor.")),
        "/gone": (200, "text/html", page("Gone", "This page will be removed soon.")),
        "/notes.txt": (200, "text/plain", "Plain notes: the wiki password rotates monthly."),
        "/data.bin": (200, "application/octet-stream", "\x00\x01"),
    }
    locations = ["/a", "/b", "/moved", "/gone", "/notes.txt", "/data.bin", "/slow"]
    site.pages["/sitemap.xml"] = (
        200,
        "application/xml",
        '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        + "".join(f"<url><loc>{site.url}{p}</loc></url>" for p in locations)
        + "</urlset>",
    )
    site.delay = 0.2
    first = indexer.index_source(web_source(site))
    assert (first.added, first.failed) == (5, 2)
    problems = "\n".join(first.problems)
    assert "/slow: timed out" in problems and "application/octet-stream" in problems
    assert site.most_active <= 2  # the per-host limit held

    alpha = _search(indexer, "alpha office opening time")[0]
    assert alpha.location == site.url + "/a" and alpha.title == "Alpha"
    assert "Home | Blog" not in alpha.text and "Copyright" not in alpha.text
    moved = next(h for h in _search(indexer, "Charlie fourth floor") if "Charlie" in h.title)
    assert moved.location == site.url + "/c"  # where the redirect led

    site.pages["/gone"] = (410, "text/plain", "gone")
    site.not_modified = 0
    second = indexer.index_source(web_source(site))
    assert (second.unchanged, second.deleted, second.added, second.updated) == (4, 1, 0, 0)
    assert site.not_modified == 4  # a, b (Last-Modified), the redirect target, notes
    conditional = [h for p, h in site.requests if p == "/a"][-1]
    assert "If-None-Match" in conditional
    assert not any("removed soon" in h.text for h in _search(indexer, "page removed soon"))


def test_an_unreachable_sitemap_fails_the_run_and_keeps_the_pages(site: Site, indexer: Indexer):
    site.pages = {
        "/a": (200, "text/html", page("Alpha", "The alpha office opens at 07:30 on weekdays.")),
        "/sitemap.xml": (
            200,
            "application/xml",
            f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"<url><loc>{site.url}/a</loc></url></urlset>",
        ),
    }
    indexer.index_source(web_source(site))
    del site.pages["/sitemap.xml"]
    with pytest.raises(SourceError, match=r"sitemap .* could not be fetched: HTTP 404"):
        indexer.index_source(web_source(site))
    assert _search(indexer, "alpha office")[0].title == "Alpha"


def _search(indexer: Indexer, query: str) -> list:
    return indexer.store.search(
        indexer.embedder.embed_query(query), limit=5, candidates=20, weights=(1.0, 1.0)
    )


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        env={
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@e",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@e",
            "HOME": str(repo),
            "PATH": "/usr/bin:/bin",
        },
    )


def test_git_documentation_at_head(tmp_path: Path, indexer: Indexer):
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    (repo / "README.md").write_text("# Tool\n\nThe tool exports maps as MBTiles.")
    (repo / "docs" / "guide.rst").write_text("Guide\n=====\n\nRun tiles-cli pack.")
    (repo / "main.py").write_text("print('code is not documentation')")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    config = load_sources(
        write_sources(
            tmp_path,
            f"""
        sources:
          - name: repo
            kind: git
            path: {repo}
            url: https://git.example.com/tool/blob/main/{{path}}
        """,
        )
    )[0]
    first = indexer.index_source(build_source(config, CONTEXT))
    assert first.added == 2
    hit = _search(indexer, "export maps MBTiles")[0]
    assert hit.location == "https://git.example.com/tool/blob/main/README.md"

    (repo / "README.md").write_text("# Tool\n\nThe tool exports maps as GeoPackage.")
    (repo / "docs" / "guide.rst").write_text("Guide\n=====\n\nUncommitted edits are ignored.")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "second")
    second = indexer.index_source(build_source(config, CONTEXT))
    assert (second.updated, second.unchanged) == (1, 1)

    config.path = tmp_path / "not-a-repo"  # type: ignore[attr-defined]
    (tmp_path / "not-a-repo").mkdir()
    with pytest.raises(SourceError, match="not a readable git repository"):
        indexer.index_source(build_source(config, CONTEXT))
    assert len(indexer.store.documents(source="repo")) == 2  # kept


def test_runs_never_overlap_and_are_recorded(tmp_path: Path, indexer: Indexer):
    import fcntl

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\nSomething.")
    runs = RunLog(tmp_path / "data")
    runner = SourceRunner(indexer=indexer, runs=runs, locks_dir=tmp_path / "locks")
    source = FilesSource("docs", [tmp_path / "docs"], max_bytes=10**6)
    report = runner.run(source)
    assert report.added == 1
    last = runs.last("docs")
    assert last is not None and last.state == "ok" and last.report["added"] == 1

    (tmp_path / "locks" / "docs.lock").touch()
    with (tmp_path / "locks" / "docs.lock").open("a") as held:  # as another process would
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(SourceBusyError, match="'docs' is already running"):
            runner.run(source)
    assert len(runs.history()["docs"]) == 1

    broken = FilesSource("broken", [tmp_path / "missing"], max_bytes=10**6)
    with pytest.raises(SourceError, match="does not exist"):
        runner.run(broken)
    failed = runs.last("broken")
    assert failed is not None and failed.state == "failed" and failed.error


def test_the_documented_example_parses():
    from bot.kinds import register_source_kinds
    from bot.settings import SlackSettings
    from tests.conftest import REPO

    register_source_kinds(SlackSettings())
    kinds = [c.kind for c in load_sources(REPO / "examples" / "sources.yaml")]
    assert kinds == ["files", "web", "slack", "git", "confluence", "gdrive", "notion", "github"]


def test_api_secrets_are_named_never_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    import json

    from bot.cli import main

    data = tmp_path / "data"
    data.mkdir()
    (data / "key.txt").write_text("ghp_from_a_file_0001\n")
    (data / "sources.yaml").write_text(
        "sources:\n"
        "  - {name: code, kind: github, repos: [acme/handbook]}\n"
        "  - {name: code2, kind: github, repos: [acme/tools], secrets_file: key.txt}\n"
        "  - {name: wiki, kind: notion, token_env: TEAM_NOTION}\n"
    )
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_from_the_environment_0002")
    assert main(["--data-dir", str(data), "sources", "list", "--json"]) == 0
    listed = {row["name"]: row["secret"] for row in json.loads(capsys.readouterr().out)["sources"]}
    assert listed == {
        "code": "$GITHUB_TOKEN (set)",
        "code2": f"file {data / 'key.txt'}",  # relative to sources.yaml's folder
        "wiki": "$TEAM_NOTION (not set)",
    }
    assert main(["--data-dir", str(data), "config", "show"]) == 0
    shown = capsys.readouterr().out
    assert "$GITHUB_TOKEN (set)" in shown and "ghp_from" not in shown

    (data / "sources.yaml").write_text(
        "sources:\n  - {name: code, kind: github, repos: [a/b], token: ghp_inline}\n"
    )
    assert main(["--data-dir", str(data), "sources", "list"]) == 1
    error = capsys.readouterr().err
    assert "`token` does not belong in sources.yaml" in error and "ghp_inline" not in error
