"""The API source kinds through `ajuste index --source`, killed mid-run with a real SIGKILL:
nothing indexed before is lost, no document shows half of two versions, the next run finishes."""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from retrieval.embeddings import Embedder
from retrieval.settings import QdrantSettings
from retrieval.store import open_store
from tests.conftest import REPO
from tests.processes import kill_mid_run

DOCUMENTS = 24
FAKES = {
    "confluence": ("tests.fake_confluence", "FakeConfluence"),
    "gdrive": ("tests.fake_gdrive", "FakeDrive"),
    "notion": ("tests.fake_notion", "FakeNotion"),
    "github": ("tests.fake_github", "FakeGitHub"),
}


def _ajuste(data: Path, env: dict[str, str], *argv: str, wait: bool = True) -> Any:
    command = [sys.executable, "-m", "bot.cli", "--data-dir", str(data), *argv]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AJUSTE_")} | env
    if not wait:
        return subprocess.Popen(
            command, cwd=REPO, env=clean, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    return subprocess.run(command, cwd=REPO, env=clean, capture_output=True, text=True, timeout=300)


def _revisions(data: Path, embedder: Embedder, name: str) -> dict[str, set[str]]:
    """Each document's visible revisions, as search shows them."""
    store = open_store(QdrantSettings(), data)
    try:
        stored = store.documents(source=name)
        assert len(stored) == DOCUMENTS
        for doc in stored.values():  # every document still has a complete, visible version
            assert any(not version.pending for version in doc.versions.values())
        hits = store.search(
            embedder.embed_query("the code word is"),
            limit=DOCUMENTS * 3,
            candidates=DOCUMENTS * 6,
            weights=(1.0, 1.0),
        )
        seen: dict[str, set[str]] = {}
        for hit in hits:
            for revision in ("one", "two"):
                if f"({revision})" in hit.body:
                    seen.setdefault(hit.doc_id, set()).add(revision)
        return seen
    finally:
        store.close()


@pytest.mark.parametrize("kind", sorted(FAKES))
def test_a_killed_api_source_run_loses_nothing(
    kind: str, tmp_path: Path, models_dir: Path, embedder: Embedder
):
    module = importlib.import_module(FAKES[kind][0])
    fake = getattr(module, FAKES[kind][1])()
    try:
        if hasattr(fake, "page_size"):
            fake.page_size = 10
        data = tmp_path / "data"
        data.mkdir()
        (data / "models").symlink_to(models_dir)
        fake.populate(DOCUMENTS, "one")
        entry, env = module.sources_entry(fake, "team")
        (data / "sources.yaml").write_text(yaml.safe_dump({"sources": [entry]}))
        first = _ajuste(data, env, "index", "--source", "team", "--json")
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["added"] == DOCUMENTS

        fake.populate(DOCUMENTS, "two")
        fake.delay = 1.0  # a few documents a second, so the kill lands mid-run
        run = _ajuste(data, env, "index", "--source", "team", wait=False)
        kill_mid_run(run, data, "team", after=3.0)  # into the fetching and writing
        seen = _revisions(data, embedder, "team")
        assert seen and all(len(revisions) == 1 for revisions in seen.values())

        fake.delay = 0.0
        again = _ajuste(data, env, "index", "--source", "team", "--json")
        assert again.returncode == 0, again.stderr
        report = json.loads(again.stdout)
        assert report["updated"] + report["unchanged"] == DOCUMENTS and report["deleted"] == 0
        assert report["updated"] > 0  # the kill came before the run was done
        seen = _revisions(data, embedder, "team")
        assert len(seen) == DOCUMENTS and all(r == {"two"} for r in seen.values())
    finally:
        fake.close()
