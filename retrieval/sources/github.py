"""The `github` source kind: issues, pull requests, discussions and wikis of repositories.

One document per thread, its comments, reviews and answers included, cited at its page on
GitHub. Closed and merged threads stay in the index, marked so. The listing carries each
thread's update time, so an unchanged thread costs nothing beyond the listing.
"""

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from retrieval.documents import Section
from retrieval.errors import DocumentError
from retrieval.sources.base import GONE, DocRef, Fetched, Outcome, Source, SourceError
from retrieval.sources.credentials import TokenConfig
from retrieval.sources.github_api import GithubApi, updated_since, web_url
from retrieval.sources.github_discussions import (
    discussion_comments,
    discussion_version,
    list_discussions,
)
from retrieval.sources.github_threads import discussion_document, issue_document
from retrieval.sources.github_wiki import WikiPages
from retrieval.sources.registry import SourceContext, parse_duration
from retrieval.sources.rest import NotFoundError
from retrieval.store import StoredDocument

KIND = "github"
log = logging.getLogger(__name__)

_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+$")
_WORKERS = 4  # threads fetched at once: well inside GitHub's advice against bursts


class GithubConfig(TokenConfig):
    """`kind: github`: which repositories, and which of their threads."""

    default_env: ClassVar[str] = "GITHUB_TOKEN"

    repos: list[str] = Field(min_length=1)  # owner/name of each repository
    issues: bool = True
    pulls: bool = True
    discussions: bool = True  # skipped, with a note in the log, where a repo has them off
    wiki: bool = False
    since: str | None = None  # "365d": only threads updated within it (older ones leave)
    api_url: str = "https://api.github.com"  # Enterprise Server: https://HOST/api/v3
    wiki_url: str | None = None  # clone URL or path, with {owner} and {name}; default derived
    timeout: float = Field(30.0, gt=0)

    @field_validator("repos")
    @classmethod
    def _owner_name(cls, value: list[str]) -> list[str]:
        for repo in value:
            if not _REPO.match(repo):
                raise ValueError(f"'{repo}' is not owner/name, e.g. octo-org/handbook")
        return list(dict.fromkeys(value))

    @field_validator("since")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("api_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(
                f"'{value}' is not an http(s) URL, e.g. https://github.example.com/api/v3"
            )
        return value.rstrip("/")

    @field_validator("wiki_url")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                value.format(owner="o", name="n")
            except (KeyError, IndexError, ValueError):
                raise ValueError("wiki_url may only use {owner} and {name}") from None
        return value

    @model_validator(mode="after")
    def _something_to_read(self) -> "GithubConfig":
        if not (self.issues or self.pulls or self.discussions or self.wiki):
            raise ValueError("turn on at least one of issues, pulls, discussions, wiki")
        return self


@dataclass(frozen=True)
class _Thread:
    kind: str  # issue, pull or discussion
    repo: str
    data: dict[str, Any]  # as the listing gave it


class GithubSource(Source):
    kind = KIND
    workers = _WORKERS

    def __init__(
        self, config: GithubConfig, *, token: str, max_bytes: int, state_dir: Path
    ) -> None:
        super().__init__(config.name)
        self.config = config
        self.max_bytes = max_bytes
        self.state_dir = state_dir
        where = (
            f"{config.secrets_file}"
            if config.secrets_file
            else f"${config.token_env or config.default_env}"
        )
        self.api = GithubApi(
            source=config.name,
            api_url=config.api_url,
            token=token,
            timeout=config.timeout,
            secret_hint=f"the token in {where}",
        )
        self.client = self.api.rest  # where rate limits are waited out (tests record the sleeps)
        self.web = web_url(config.api_url)
        self.host = urlsplit(self.web).netloc
        self._token = token
        self._threads: dict[str, _Thread] = {}
        self._wikis: dict[str, WikiPages] = {}  # doc id of a wiki page → its wiki

    def close(self) -> None:
        self.api.close()

    def refs(self) -> list[DocRef]:
        since = self.config.since
        cutoff = datetime.now(UTC) - parse_duration(since) if since else None
        refs: list[DocRef] = []
        for repo in self.config.repos:
            info = self._repository(repo)
            if self.config.issues or self.config.pulls:
                refs += self._issue_refs(repo, info, cutoff)
            if self.config.discussions:
                refs += self._discussion_refs(repo, info, cutoff)
            if self.config.wiki:
                refs += self._wiki_refs(repo, info)
        return refs

    def _repository(self, repo: str) -> dict[str, Any]:
        try:
            return dict(self.api.get(f"/repos/{repo}"))
        except NotFoundError:
            raise SourceError(
                f"source '{self.name}': repository {repo} not found on {self.host}: check "
                "`repos` and that the token may read it (GitHub answers 404 for hidden ones)"
            ) from None

    def _issue_refs(self, repo: str, info: dict[str, Any], cutoff: datetime | None) -> list[DocRef]:
        params: dict[str, Any] = {"state": "all", "sort": "updated", "direction": "desc"}
        if info.get("has_issues", True):
            path = f"/repos/{repo}/issues"  # pull requests too, with a `pull_request` key
            if cutoff is not None:
                params["since"] = cutoff.strftime("%Y-%m-%dT%H:%M:%SZ")
        elif self.config.pulls:
            log.info("source '%s': %s has issues turned off: pull requests only", self.name, repo)
            path = f"/repos/{repo}/pulls"
        else:
            log.info("source '%s': %s has issues turned off: skipped", self.name, repo)
            return []
        refs = []
        for item in _settled(lambda: self._listed(path, params, cutoff)):
            pull = "pull_request" in item or path.endswith("/pulls")
            if not (self.config.pulls if pull else self.config.issues):
                continue
            doc_id = f"github:{self.host}/{repo}/{'pull' if pull else 'issues'}/{item['number']}"
            self._threads[doc_id] = _Thread("pull" if pull else "issue", repo, item)
            refs.append(DocRef(doc_id, item["html_url"], version=item["updated_at"]))
        return refs

    def _listed(
        self, path: str, params: dict[str, Any], cutoff: datetime | None
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in self.api.pages(path, per_page=100, **params):
            fresh = [item for item in page if updated_since(item["updated_at"], cutoff)]
            items += fresh
            if len(fresh) < len(page):  # newest first: the rest is older still
                break
        return items

    def _discussion_refs(
        self, repo: str, info: dict[str, Any], cutoff: datetime | None
    ) -> list[DocRef]:
        if info.get("has_discussions") is False:
            log.info("source '%s': %s has discussions turned off: skipped", self.name, repo)
            return []
        refs = []
        for node in _settled(lambda: list_discussions(self.api, repo, cutoff)):
            doc_id = f"github:{self.host}/{repo}/discussions/{node['number']}"
            self._threads[doc_id] = _Thread("discussion", repo, node)
            refs.append(DocRef(doc_id, node["url"], version=discussion_version(node)))
        return refs

    def _wiki_refs(self, repo: str, info: dict[str, Any]) -> list[DocRef]:
        if info.get("has_wiki") is False:
            log.info("source '%s': %s has its wiki turned off: skipped", self.name, repo)
            return []
        owner, name = repo.split("/")
        template = self.config.wiki_url or self.web + "/{owner}/{name}.wiki.git"
        wiki = WikiPages(
            self.name,
            repo=repo,
            clone_url=template.format(owner=owner, name=name),
            folder=self.state_dir / self.name / owner / f"{name}.wiki",
            web=self.web,
            doc_prefix=f"github:{self.host}/{repo}/wiki",
            token=self._token,
            max_bytes=self.max_bytes,
        )
        if not wiki.sync():
            return []
        refs = wiki.refs()
        self._wikis.update((ref.doc_id, wiki) for ref in refs)
        return refs

    def fetch(self, ref: DocRef, previous: StoredDocument | None) -> Fetched | Outcome:
        wiki = self._wikis.get(ref.doc_id)
        if wiki is not None:
            return wiki.fetch(ref, previous)
        try:
            title, sections = self._document(self._threads[ref.doc_id])
        except NotFoundError:
            return GONE  # deleted or transferred since the listing
        size = sum(len(section.text.encode()) for section in sections)
        if size > self.max_bytes:
            raise DocumentError(f"{size / 1048576:.1f} MB of text is over the size limit: skipped")
        return Fetched(title, sections, ref.version or "", ref.location)

    def _document(self, thread: _Thread) -> tuple[str, list[Section]]:
        repo, item = thread.repo, thread.data
        if thread.kind == "discussion":
            return discussion_document(repo, item, discussion_comments(self.api, repo, item))
        number = item["number"]
        # the issue listing counts comments; the pulls listing does not (then: ask)
        comments = (
            self.api.all(f"/repos/{repo}/issues/{number}/comments")
            if item.get("comments", 1)
            else []
        )
        if thread.kind == "issue":
            return issue_document(repo, item, comments)
        reviews = self.api.all(f"/repos/{repo}/pulls/{number}/reviews")
        review_comments = self.api.all(f"/repos/{repo}/pulls/{number}/comments")
        return issue_document(repo, item, comments, reviews, review_comments)


def _settled(list_once: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """A listing sorted by update time shifts when a thread changes while it is read, which
    shows as a thread listed twice and may hide another: then list once more. Each thread once."""
    items = list_once()
    if len({item["number"] for item in items}) < len(items):
        items = list_once()
    unique: dict[int, dict[str, Any]] = {}
    for item in items:
        unique.setdefault(item["number"], item)
    return list(unique.values())


def build(config: GithubConfig, context: SourceContext) -> Source:
    return GithubSource(
        config,
        token=config.secret().get_secret_value(),
        max_bytes=context.max_bytes,
        state_dir=context.state_dir,
    )
