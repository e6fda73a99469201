"""A repository's wiki: a git mirror in the source's state folder, read the way GitSource reads.

The token reaches git through GIT_CONFIG_* environment variables (an `http.extraHeader`), so it
never appears on a command line that `ps` shows, in the mirror's config, or in a message; and it
goes only to the host that `api_url` names.
"""

import base64
import logging
import os
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urlsplit

from retrieval.errors import DocumentError
from retrieval.sources.base import DocRef, Fetched, SourceError
from retrieval.sources.git import GitSource
from retrieval.store import StoredDocument

log = logging.getLogger(__name__)

# The markups a GitHub wiki renders; anything else in its repository is an attachment.
WIKI_PAGES = [
    f"*.{suffix}"
    for suffix in (
        "md markdown mdown mkdn mkd rst txt textile rdoc org creole mediawiki wiki asciidoc adoc "
        "pod"
    ).split()
]


class WikiPages(GitSource):
    def __init__(
        self,
        name: str,
        *,
        repo: str,
        clone_url: str,
        folder: Path,
        web: str,
        doc_prefix: str,
        token: str,
        max_bytes: int,
    ) -> None:
        super().__init__(name, folder, include=WIKI_PAGES, url=None)
        self.repo = repo
        self.clone_url = clone_url
        self.web = web
        self.doc_prefix = doc_prefix
        self.max_bytes = max_bytes
        self._token = token

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_TRACE")}
        env["GIT_TERMINAL_PROMPT"] = "0"
        if urlsplit(self.clone_url).netloc.lower() == urlsplit(self.web).netloc.lower():
            index = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
            basic = base64.b64encode(f"x-access-token:{self._token}".encode()).decode()
            env["GIT_CONFIG_COUNT"] = str(index + 1)
            env[f"GIT_CONFIG_KEY_{index}"] = "http.extraHeader"
            env[f"GIT_CONFIG_VALUE_{index}"] = f"Authorization: Basic {basic}"
        return env

    def _remote(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(
                ["git", *args], capture_output=True, check=False, timeout=600, env=self._env()
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise SourceError(f"source '{self.name}': git could not run: {error}") from None

    def sync(self) -> bool:
        """Clone or update the mirror; False when the repository has no wiki pages yet."""
        if (self.path / "HEAD").is_file():
            self._remote("-C", str(self.path), "remote", "set-url", "origin", self.clone_url)
            done = self._remote("-C", str(self.path), "fetch", "--prune", "--quiet", "origin")
        else:
            partial = self.path.with_name(self.path.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.parent.mkdir(parents=True, exist_ok=True)
            done = self._remote("clone", "--mirror", "--quiet", self.clone_url, str(partial))
            if done.returncode == 0:
                partial.rename(self.path)
        if done.returncode == 0:
            return True
        reason = done.stderr.decode(errors="replace").replace(self._token, "***").strip()
        if "not found" in reason.lower():
            log.info("source '%s': %s has no wiki pages yet: skipped", self.name, self.repo)
            return False
        last = reason.splitlines()[-1] if reason else f"git exited with {done.returncode}"
        raise SourceError(
            f"source '{self.name}': the wiki of {self.repo} could not be read: {last}"
        )

    def refs(self) -> list[DocRef]:
        """Pages at the wiki's HEAD, cited at github.com/OWNER/NAME/wiki/Page-Name."""
        refs = []
        for ref in super().refs():
            name = self._names.pop(ref.doc_id)
            page = PurePosixPath(name)
            if page.name.startswith("_"):  # _Sidebar, _Footer: navigation, not content
                continue
            doc_id = f"{self.doc_prefix}/{name}"
            self._names[doc_id] = name
            location = f"{self.web}/{self.repo}/wiki/{quote(page.stem)}"
            refs.append(DocRef(doc_id, location, version=ref.version))
        return refs

    def fetch(self, ref: DocRef, previous: StoredDocument | None) -> Fetched:
        size = int(self._git("cat-file", "-s", ref.version or f"HEAD:{self._names[ref.doc_id]}"))
        if size > self.max_bytes:
            raise DocumentError(f"{size / 1048576:.1f} MB is over the size limit: skipped")
        fetched = super().fetch(ref, previous)
        page = PurePosixPath(self._names[ref.doc_id]).stem.replace("-", " ")
        fetched.title = f"{self.repo} wiki: {page}"
        return fetched
