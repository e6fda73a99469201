"""A loopback fake of GitHub's REST and GraphQL APIs, shaped like the real answers.

Listings page by `per_page` (capped at `page_size`, 100 on GitHub) and link the next page the
way GitHub does, through `/repositories/{id}/…` URLs in a `Link` header; GraphQL pages by cursor
and reports errors with HTTP 200. Every request is recorded; `fail()` makes chosen ones fail.
"""

import base64
import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.loopback import LoopbackServer, QuietHandler, send_json

TOKEN_ENV = "FAKE_GITHUB_TOKEN"
POPULATED = "acme/handbook"
NOT_FOUND = {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}


@dataclass
class Fault:
    pattern: str  # regex searched in "METHOD /path?query"
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1


def _user(login: str) -> dict[str, Any]:
    return {"login": login, "id": sum(map(ord, login)), "type": "User"}


class FakeGitHub:
    def __init__(self, token: str = "ghp_fake_secret_0123456789") -> None:
        self.token = token
        self.page_size = 100
        self.delay = 0.0  # seconds added to each response that carries document content
        self.requests: list[str] = []  # "METHOD /path?query"
        self.faults: list[Fault] = []
        self.graphql_errors: list[dict[str, Any]] = []
        self.repos: dict[str, dict[str, Any]] = {}
        self.issues: dict[str, dict[int, dict[str, Any]]] = {}  # pull requests too, as GitHub
        self.discussions: dict[str, dict[int, dict[str, Any]]] = {}
        self.notes: dict[tuple[str, str, int], list[dict[str, Any]]] = {}  # (table, repo, n)
        self._clock = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
        self._ids = iter(range(1000, 10**9))
        self._lock = threading.Lock()
        fake = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                fake._serve(self, "GET")

            def do_POST(self) -> None:
                fake._serve(self, "POST")

        self.server = LoopbackServer(Handler)
        self.url = self.server.url
        self.web = "https://github.com"

    def close(self) -> None:
        self.server.close()

    # ---- the data ------------------------------------------------------------------------

    def tick(self, days_ago: float = 0) -> str:
        """A later timestamp than any before (an update), or one `days_ago` before now."""
        with self._lock:
            self._clock += timedelta(seconds=1)
            return (self._clock - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def repo(self, full_name: str, **flags: bool) -> dict[str, Any]:
        if full_name not in self.repos:
            owner, name = full_name.split("/")
            self.repos[full_name] = {
                "id": next(self._ids), "name": name, "full_name": full_name,
                "owner": _user(owner), "private": True, "html_url": f"{self.web}/{full_name}",
                "default_branch": "main", "has_issues": True, "has_wiki": True,
                "has_discussions": True, "updated_at": self.tick(),
            }  # fmt: skip
            self.issues[full_name] = {}
            self.discussions[full_name] = {}
        self.repos[full_name].update(flags)
        return self.repos[full_name]

    def _number(self, repo: str) -> int:
        self.repo(repo)
        return len(self.issues[repo]) + len(self.discussions[repo]) + 1  # one numbering

    def add_issue(
        self, repo: str, title: str, body: str, *, user: str = "alice",
        labels: tuple[str, ...] = (), state: str = "open", pull: bool = False,
        merged: bool = False, age_days: float = 0,
    ) -> dict[str, Any]:  # fmt: skip
        number = self._number(repo)
        html_url = f"{self.web}/{repo}/{'pull' if pull else 'issues'}/{number}"
        stamp = self.tick(age_days)
        item: dict[str, Any] = {
            "url": f"{self.url}/repos/{repo}/issues/{number}", "html_url": html_url,
            "id": next(self._ids), "number": number, "title": title, "user": _user(user),
            "labels": [{"id": next(self._ids), "name": n, "color": "ededed"} for n in labels],
            "state": state, "locked": False, "comments": 0, "created_at": stamp,
            "updated_at": stamp, "closed_at": stamp if state == "closed" else None,
            "state_reason": "completed" if state == "closed" and not pull else None,
            "author_association": "MEMBER", "body": body,
        }  # fmt: skip
        if pull:
            item["draft"] = False
            item["pull_request"] = {
                "url": f"{self.url}/repos/{repo}/pulls/{number}", "html_url": html_url,
                "merged_at": stamp if merged else None,
            }  # fmt: skip
        self.issues[repo][number] = item
        return item

    def _note(self, table: str, repo: str, number: int, **fields: Any) -> None:
        item = self.issues[repo][number]
        stamp = self.tick()
        notes = self.notes.setdefault((table, repo, number), [])
        notes.append({"id": next(self._ids), "created_at": stamp, "updated_at": stamp, **fields})
        item["updated_at"] = stamp
        item["comments"] += table == "comments"

    def comment(self, repo: str, number: int, body: str, user: str = "bob") -> None:
        self._note("comments", repo, number, user=_user(user), body=body)

    def review(self, repo: str, number: int, body: str, state: str, user: str = "carol") -> None:
        self._note(
            "reviews", repo, number, user=_user(user), body=body, state=state,
            submitted_at=self.tick(), commit_id="a" * 40,
        )  # fmt: skip

    def review_comment(
        self, repo: str, number: int, path: str, body: str, user: str = "carol"
    ) -> None:
        self._note(
            "review_comments", repo, number, user=_user(user), body=body, path=path,
            diff_hunk="@@ -1,3 +1,4 @@", line=3, side="RIGHT",
        )  # fmt: skip

    def edit(self, repo: str, number: int, **changes: Any) -> None:
        self.issues[repo][number].update(changes, updated_at=self.tick())

    def add_discussion(self, repo: str, title: str, body: str, user: str = "dave") -> None:
        number = self._number(repo)
        stamp = self.tick()
        self.discussions[repo][number] = {
            "id": f"D_kwDO{number}", "number": number, "title": title, "body": body,
            "url": f"{self.web}/{repo}/discussions/{number}", "createdAt": stamp,
            "updatedAt": stamp, "author": {"login": user}, "category": {"name": "Q&A"},
            "answer": None, "comments": [],  # stored whole, served as a connection
        }  # fmt: skip

    def discuss(
        self, repo: str, number: int, body: str, *, user: str = "erin", answer: bool = False,
        replies: tuple[tuple[str, str], ...] = (),
    ) -> None:  # fmt: skip
        node = self.discussions[repo][number]
        stamp = self.tick()
        said = [
            {"body": text, "createdAt": stamp, "author": {"login": who}} for who, text in replies
        ]
        comment = {
            "id": f"DC_kwDO{next(self._ids)}", "body": body, "createdAt": stamp,
            "author": {"login": user}, "replies": {"nodes": said},
        }  # fmt: skip
        node["comments"].append(comment)
        if answer:  # marking an answer updates the discussion; a plain comment need not
            node["answer"] = {"id": comment["id"]}
            node["updatedAt"] = stamp

    def populate(self, count: int, revision: str) -> None:
        """`count` issues in acme/handbook, issue i+1 saying word{i}; a new revision edits them."""
        self.repo(POPULATED)
        issues = self.issues[POPULATED]
        for i in range(count):
            body = (
                f"Document {i} ({revision}) says the code word is word{i}. The team keeps this "
                "note so that the handbook answers questions about it. It was written during "
                "the spring planning week. Ask the platform group when in doubt."
            )
            if i + 1 not in issues:
                self.add_issue(POPULATED, f"Note {i}", body)
                self.comment(POPULATED, i + 1, f"Thanks, filed under note {i}.")
            elif issues[i + 1]["body"] != body:
                self.edit(POPULATED, i + 1, body=body)
        for number in [n for n in issues if n > count]:
            del issues[number]

    def fail(
        self, pattern: str, status: int, headers: dict[str, str] | None = None, times: int = 1
    ) -> None:
        self.faults.append(Fault(pattern, status, headers or {}, times))

    # ---- serving ---------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        line = f"{method} {handler.path}"
        with self._lock:
            self.requests.append(line)
            fault = next((f for f in self.faults if f.times and re.search(f.pattern, line)), None)
            if fault is not None:
                fault.times -= 1
        if fault is not None:
            text = "API rate limit exceeded" if fault.status in (403, 429) else "Server Error"
            return self._send(handler, fault.status, {"message": text}, fault.headers)
        if handler.headers.get("Authorization") != f"Bearer {self.token}":
            return self._send(handler, 401, {"message": "Bad credentials", "status": "401"})
        parts = urlsplit(handler.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        if method == "POST" and parts.path == "/graphql":
            body = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
            return self._send(handler, 200, self._graphql(json.loads(body)))
        match = re.fullmatch(r"/repos/([^/]+/[^/]+)(/.*)?", self._canonical(parts.path))
        if method != "GET" or match is None or match.group(1) not in self.repos:
            return self._send(handler, 404, NOT_FOUND)
        repo, rest = match.group(1), match.group(2) or ""
        listed = sorted(
            self.issues[repo].values(), key=lambda i: (i["updated_at"], i["number"]), reverse=True
        )
        if not rest:
            return self._send(handler, 200, self.repos[repo])
        if rest == "/issues":
            listed = [i for i in listed if i["updated_at"] >= query.get("since", "")]
            return self._page(handler, parts.path, query, listed)
        if rest == "/pulls":  # pull request objects: merged_at on top, no comment count
            pulls = [
                {**{k: v for k, v in i.items() if k not in ("pull_request", "comments")},
                 "merged_at": i["pull_request"]["merged_at"]}
                for i in listed if "pull_request" in i
            ]  # fmt: skip
            return self._page(handler, parts.path, query, pulls)
        found = re.fullmatch(r"/(issues|pulls)/(\d+)/(comments|reviews)", rest)
        tables = {
            ("issues", "comments"): "comments",
            ("pulls", "reviews"): "reviews",
            ("pulls", "comments"): "review_comments",
        }
        table = tables.get(found.groups()[::2]) if found else None
        if found is None or table is None or int(found.group(2)) not in self.issues[repo]:
            return self._send(handler, 404, NOT_FOUND)
        time.sleep(self.delay)
        notes = self.notes.get((table, repo, int(found.group(2))), [])
        return self._page(handler, parts.path, query, notes)

    def _canonical(self, path: str) -> str:
        """/repositories/{id}/… (what GitHub's next links use) → /repos/{owner}/{name}/…"""
        found = re.fullmatch(r"/repositories/(\d+)(/.*)?", path)
        for name, repo in self.repos.items():
            if found is not None and str(repo["id"]) == found.group(1):
                return f"/repos/{name}{found.group(2) or ''}"
        return path

    def _page(
        self, handler: BaseHTTPRequestHandler, path: str, query: dict[str, str], items: list[Any]
    ) -> None:
        size = min(int(query.get("per_page", 30)), self.page_size)
        page = int(query.get("page", 1))
        last = max(1, -(-len(items) // size))
        match = re.fullmatch(r"/repos/([^/]+/[^/]+)(/.*)", path)
        if match is not None:
            path = f"/repositories/{self.repos[match.group(1)]['id']}{match.group(2)}"
        links = [
            f'<{self.url}{path}?{urlencode({**query, "page": number})}>; rel="{rel}"'
            for rel, number in (("prev", page - 1), ("next", page + 1), ("last", last))
            if 1 <= number <= last and number != page
        ]
        headers = {"Link": ", ".join(links)} if links else {}
        self._send(handler, 200, items[(page - 1) * size : page * size], headers)

    def _graphql(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.graphql_errors:
            return {"data": None, "errors": self.graphql_errors}
        variables = request.get("variables") or {}
        repo = f"{variables.get('owner')}/{variables.get('name')}"
        if repo not in self.repos:
            message = f"Could not resolve to a Repository with the name '{repo}'."
            error = {"type": "NOT_FOUND", "path": ["repository"], "message": message}
            return {"data": {"repository": None}, "errors": [error]}
        if "discussions(" in request.get("query", ""):
            nodes = sorted(
                self.discussions[repo].values(), key=lambda n: n["updatedAt"], reverse=True
            )
            connection = self._connection(nodes, variables.get("cursor"))
            connection["nodes"] = [
                {**node, "comments": self._connection(node["comments"], None)}
                for node in connection["nodes"]
            ]
            return {"data": {"repository": {"discussions": connection}}}
        time.sleep(self.delay)
        node = self.discussions[repo].get(variables.get("number", 0))
        if node is None:
            return {"data": {"repository": {"discussion": None}}}
        comments = self._connection(node["comments"], variables.get("cursor"))
        return {"data": {"repository": {"discussion": {"comments": comments}}}}

    def _connection(self, items: list[Any], cursor: str | None) -> dict[str, Any]:
        start = int(base64.b64decode(cursor).decode().split(":")[1]) + 1 if cursor else 0
        chunk = items[start : start + min(50, self.page_size)]  # the queries ask for 50
        end = base64.b64encode(f"cursor:{start + len(chunk) - 1}".encode()).decode()
        more = start + len(chunk) < len(items)
        return {
            "totalCount": len(items),
            "pageInfo": {"hasNextPage": more, "endCursor": end if chunk else None},
            "nodes": chunk,
        }

    _send = staticmethod(send_json)


def sources_entry(fake: FakeGitHub, name: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The sources.yaml entry that indexes what `populate` made, and the environment it needs."""
    entry = {"name": name, "kind": "github", "repos": [POPULATED], "api_url": fake.url}
    return {**entry, "token_env": TOKEN_ENV}, {TOKEN_ENV: fake.token}
