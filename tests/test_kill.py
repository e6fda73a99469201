"""Declared sources from the command line, and a run killed mid-way with a real SIGKILL."""

import json
import os
import subprocess
import sys
from pathlib import Path

from retrieval.embeddings import Embedder
from retrieval.settings import QdrantSettings
from retrieval.store import open_store
from tests.conftest import REPO
from tests.processes import kill_mid_run

AJUSTE = [sys.executable, "-m", "bot.cli"]


def ajuste(data: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AJUSTE_")}
    return subprocess.run(
        [*AJUSTE, "--data-dir", str(data), *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )


def corpus(folder: Path, version: str, documents: int = 60) -> None:
    folder.mkdir(exist_ok=True)
    for n in range(documents):
        paragraphs = [
            f"Document {n}, {version}, paragraph {p}: "
            + " ".join(f"fact{n}x{p}x{w}" for w in range(12))
            for p in range(6)
        ]
        (folder / f"doc-{n:03d}.md").write_text(f"# Doc {n}\n\n" + "\n\n".join(paragraphs))


def test_sources_from_the_command_line(tmp_path: Path, models_dir: Path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "models").symlink_to(models_dir)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("# Notes\n\nThe demo day is on Thursday.")
    (data / "sources.yaml").write_text(
        f"sources:\n  - name: notes\n    kind: files\n    paths: [{tmp_path / 'notes'}]\n"
        "    every: 1h\n    visible_in: [C1]\n"
    )
    listed = json.loads(ajuste(data, "sources", "list", "--json").stdout)
    assert listed["sources"] == [
        {"name": "notes", "kind": "files", "schedule": "every 1h", "visible_in": ["C1"]}
    ]
    assert json.loads(ajuste(data, "sources", "status", "--json").stdout)["sources"] == [
        {"name": "notes", "state": "never run"}
    ]
    done = ajuste(data, "index", "--source", "notes", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["added"] == 1
    [status] = json.loads(ajuste(data, "sources", "status", "--json").stdout)["sources"]
    assert status["state"] == "ok" and status["report"]["added"] == 1

    unknown = ajuste(data, "index", "--source", "wiki")
    assert (
        unknown.returncode == 1
        and "No source called 'wiki'. Known sources: notes" in unknown.stderr
    )

    (data / "sources.yaml").write_text("sources:\n  - name: x\n    kind: ftp\n")
    bad = ajuste(data, "sources", "list")
    assert bad.returncode == 1 and "line 2: source 'x' has unknown kind 'ftp'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_a_killed_run_loses_nothing_and_the_next_run_finishes(
    tmp_path: Path, models_dir: Path, embedder: Embedder
):
    data = tmp_path / "data"
    data.mkdir()
    (data / "models").symlink_to(models_dir)
    docs = tmp_path / "docs"
    corpus(docs, "version one")
    (data / "sources.yaml").write_text(
        f"sources:\n  - name: docs\n    kind: files\n    paths: [{docs}]\n"
    )
    first = ajuste(data, "index", "--source", "docs", "--json")
    assert json.loads(first.stdout)["added"] == 60

    corpus(docs, "version two")
    run = subprocess.Popen(
        [*AJUSTE, "--data-dir", str(data), "index", "--source", "docs"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    kill_mid_run(run, data, "docs", after=2.5)  # into the embedding and writing

    store = open_store(QdrantSettings(), data)
    try:
        stored = store.documents(source="docs")
        assert len(stored) == 60
        for doc in stored.values():  # every document still has a complete, visible version
            assert any(not version.pending for version in doc.versions.values())
        hits = store.search(
            embedder.embed_query("Document 7 paragraph 1"),
            limit=20,
            candidates=100,
            weights=(1.0, 1.0),
        )
        seen: dict[str, set[str]] = {}
        for hit in hits:  # a document never shows a mix of its old and new chunks
            assert "version one" in hit.body or "version two" in hit.body
            seen.setdefault(hit.doc_id, set()).add("two" if "version two" in hit.body else "one")
        assert hits and all(len(versions) == 1 for versions in seen.values())
    finally:
        store.close()

    again = ajuste(data, "index", "--source", "docs", "--json")
    report = json.loads(again.stdout)
    assert report["updated"] + report["unchanged"] == 60 and report["deleted"] == 0
    store = open_store(QdrantSettings(), data)
    try:
        stored = store.documents(source="docs")
        assert all(len(doc.versions) == 1 for doc in stored.values())
        hits = store.search(
            embedder.embed_query("Document 7 version two"),
            limit=10,
            candidates=50,
            weights=(1.0, 1.0),
        )
        assert all("version two" in hit.body for hit in hits)
    finally:
        store.close()
