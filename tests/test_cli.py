"""The `ajuste` command: JSON shapes in-process (models stay loaded), errors as real processes."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.cli import build_parser, main
from bot.settings import Settings
from tests.conftest import KNOWLEDGE, REPO

AJUSTE = [sys.executable, "-m", "bot.cli"]


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def data_dir(make_settings: Callable[..., Settings]) -> str:
    return str(make_settings().data_dir)


def test_index_search_and_ask_print_the_documented_json(
    capsys: pytest.CaptureFixture[str], data_dir: str
):
    report = run_json(capsys, "--data-dir", data_dir, "index", str(KNOWLEDGE), "--json")
    assert {"added", "updated", "deleted", "unchanged", "chunks_embedded", "seconds"} <= set(report)
    assert report["added"] == len(list(KNOWLEDGE.rglob("*.*"))) and report["chunks_embedded"] > 0

    again = run_json(capsys, "--data-dir", data_dir, "index", str(KNOWLEDGE), "--json")
    assert (again["added"], again["unchanged"], again["chunks_embedded"]) == (0, report["added"], 0)

    found = run_json(capsys, "--data-dir", data_dir, "search", "VPN key", "--limit", "3", "--json")
    assert len(found["results"]) == 3
    first = found["results"][0]
    assert {"score", "text", "source", "title", "location", "chunk"} <= set(first)
    assert first["title"] == "IT and VPN Access" and first["location"].endswith("it-and-vpn.md")

    answer = run_json(
        capsys, "--data-dir", data_dir, "ask", "How many days is a VPN key valid?", "--json"
    )
    assert set(answer) == {
        "answer",
        "sources",
        "evidence",
        "unsupported",
        "disputed",
        "model",
        "timings",
    }
    assert set(answer["timings"]) == {"retrieve_s", "first_token_s", "total_s", "tokens"}
    assert answer["sources"][0] == {
        "n": 1,
        "title": "IT and VPN Access",
        "location": str(KNOWLEDGE / "it-and-vpn.md"),
    }
    assert "90 days" in answer["answer"]
    [quote, *_] = answer["evidence"]
    assert set(quote) == {"source", "title", "location", "text", "closest_to_question"}
    assert "90 days" in quote["text"]
    assert [q["closest_to_question"] for q in answer["evidence"]].count(True) <= 1
    assert quote["text"] in (KNOWLEDGE / "it-and-vpn.md").read_text()  # verbatim


def test_ask_streams_then_lists_sources(capsys: pytest.CaptureFixture[str], data_dir: str):
    assert main(["--data-dir", data_dir, "index", str(KNOWLEDGE)]) == 0
    capsys.readouterr()
    assert main(["--data-dir", data_dir, "ask", "What is the minimum password length?"]) == 0
    out = capsys.readouterr().out
    assert "\nSources:\n  [" in out and "security-policy.md" in out


def test_models_list_shows_the_pulled_defaults(capsys: pytest.CaptureFixture[str], data_dir: str):
    rows = run_json(capsys, "--data-dir", data_dir, "models", "list", "--json")["models"]
    assert {(r["name"], r["kind"], r["status"], r["in_use"]) for r in rows} == {
        ("ajuste-grounded", "chat", "ready", "yes"),  # built from the next row by `pull`
        ("SmolLM2-135M-Instruct-Q4_1", "base", "ready", "no"),
        ("all-MiniLM-L6-v2", "dense", "ready", "yes"),
        ("bm25", "sparse", "ready", "yes"),
    }


def test_models_pull_registers_the_grounded_model_with_its_provenance(
    capsys: pytest.CaptureFixture[str], data_dir: str
):
    assert main(["--data-dir", data_dir, "models", "pull"]) == 0
    out = capsys.readouterr().out
    assert "ajuste-grounded: already in place (verified)" in out
    assert "Registered v1 ajuste-grounded (active)" in out
    listed = run_json(capsys, "--data-dir", data_dir, "model", "list", "--json")
    [version] = listed["versions"]
    assert listed["active"] == 1 and version["quantization"] == "Q8_0"
    provenance = version["provenance"]
    assert provenance["base_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert {"base_sha256", "adapter_sha256", "data_sha256", "corpus_sha256", "steps"} <= set(
        provenance
    )
    assert main(["--data-dir", data_dir, "models", "pull"]) == 0  # a second pull adds nothing
    assert "Registered" not in capsys.readouterr().out


def test_every_subcommand_has_help(capsys: pytest.CaptureFixture[str]):
    commands = [
        ["index"],
        ["search"],
        ["ask"],
        ["chat"],
        ["serve"],
        ["models", "pull"],
        ["models", "list"],
        ["config", "show"],
        ["config", "example"],
        ["finetune", "dataset", "build"],
        ["finetune", "run"],
        ["finetune", "eval"],
        ["model", "use"],
    ]
    for command in [[], *commands]:
        with pytest.raises(SystemExit) as done:
            build_parser().parse_args([*command, "--help"])
        assert done.value.code == 0
        assert "usage: ajuste" in capsys.readouterr().out


def _run(*argv: str, env: dict[str, str] | None = None, **kwargs: object):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AJUSTE_")}
    return subprocess.run(
        [*AJUSTE, *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=clean | (env or {}),
        timeout=120,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("AJUSTE_RETRIEVAL__TOP_K", "-3", "AJUSTE_RETRIEVAL__TOP_K"),
        ("AJUSTE_QDRANT__URL", "not a url", "AJUSTE_QDRANT__URL"),
        ("AJUSTE_LLM__MODEL_PATH", "/no/such/model.gguf", "AJUSTE_LLM__MODEL_PATH"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(variable: str, value: str, named: str, tmp_path):
    done = _run("--data-dir", str(tmp_path), "search", "x", env={variable: value})
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"ajuste: Bad setting {named}")


def test_an_unanswered_qdrant_url_is_one_clear_line(tmp_path: Path, data_dir: str):
    env = {"AJUSTE_QDRANT__URL": "http://127.0.0.1:9", "AJUSTE_QDRANT__TIMEOUT": "2"}
    done = _run("--data-dir", data_dir, "search", "x", env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "Qdrant server at http://127.0.0.1:9" in done.stderr and "did not answer" in done.stderr


def test_missing_models_say_how_to_get_them(tmp_path: Path):
    done = _run("--data-dir", str(tmp_path), "search", "x")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "ajuste models pull" in done.stderr


def test_an_embedding_folder_missing_a_file_is_named(tmp_path: Path, models_dir: Path):
    broken = tmp_path / "minilm"
    broken.mkdir()
    for name in ("model.onnx", "tokenizer_config.json", "config.json"):
        (broken / name).symlink_to(models_dir / "all-MiniLM-L6-v2" / name)
    done = _run(
        "--data-dir",
        str(tmp_path),
        "search",
        "x",
        env={"AJUSTE_EMBEDDING__MODEL_PATH": str(broken)},
    )
    assert done.returncode == 1 and "lacks tokenizer.json" in done.stderr


def test_index_while_chat_holds_the_index_says_what_to_do(data_dir: str):
    chat = subprocess.Popen(
        [*AJUSTE, "--data-dir", data_dir, "chat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert chat.stdout is not None
        assert "Ajuste — local chat" in chat.stdout.readline()  # the index is open now
        done = _run("--data-dir", data_dir, "index", str(KNOWLEDGE))
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert "open in another Ajuste process (`ajuste chat`" in done.stderr
        assert "AJUSTE_QDRANT__URL" in done.stderr
    finally:
        chat.communicate("/quit\n", timeout=60)
    assert chat.returncode == 0
    started = time.monotonic()
    done = _run("--data-dir", data_dir, "index", str(KNOWLEDGE), "--json")
    assert done.returncode == 0, done.stderr  # free again once chat has left
    assert time.monotonic() - started < 120


def test_serve_with_an_unreachable_slack_says_what_to_check(data_dir: str):
    env = {
        "AJUSTE_SLACK__BOT_TOKEN": "xoxb-x",
        "AJUSTE_SLACK__APP_TOKEN": "xapp-x",
        "AJUSTE_SLACK__API_URL": "http://127.0.0.1:9/api/",
    }
    done = _run("--data-dir", data_dir, "serve", env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "Slack did not accept the bot token" in done.stderr
    assert "AJUSTE_SLACK__API_URL" in done.stderr


def test_http_mode_needs_a_signing_secret(data_dir: str):
    done = _run("--data-dir", data_dir, "serve", "--http", env={"AJUSTE_SLACK__BOT_TOKEN": "x"})
    assert done.returncode == 1 and "AJUSTE_SLACK__SIGNING_SECRET" in done.stderr


def test_eval_retrieval_prints_every_mode(capsys: pytest.CaptureFixture[str], data_dir: str):
    assert main(["--data-dir", data_dir, "index", str(KNOWLEDGE)]) == 0
    capsys.readouterr()
    qa = str(REPO / "examples" / "eval" / "handbook.jsonl")
    report = run_json(capsys, "--data-dir", data_dir, "eval", "retrieval", "--qa", qa, "--json")
    assert set(report["modes"]) == {"hybrid", "dense", "sparse"}
    assert set(report["modes"]["hybrid"]) == {
        "questions",
        "recall@1",
        "recall@5",
        "recall@10",
        "mrr@10",
        "ndcg@10",
    }
    assert "paraphrase" in report["by_kind"]


def test_migrate_to_a_server_nobody_answers_is_one_line(data_dir: str):
    done = _run(
        "--data-dir",
        data_dir,
        "index",
        "migrate",
        "--to",
        "http://127.0.0.1:9",
        env={"AJUSTE_QDRANT__TIMEOUT": "2"},
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "Qdrant server at http://127.0.0.1:9" in done.stderr
    bad = _run("--data-dir", data_dir, "index", "migrate", "--to", "not a url")
    assert bad.returncode == 1 and "not a URL like http://qdrant:6333" in bad.stderr


def test_finetune_input_errors_are_one_line_each(data_dir: str, tmp_path: Path):
    curated = tmp_path / "mine.jsonl"
    curated.write_text('{"question": "Q?", "answer": "A."}\n{"question": "no answer"}\n')
    built = _run("--data-dir", data_dir, "finetune", "dataset", "build", "--curated", str(curated))
    assert built.returncode == 1 and f"{curated}:2:" in built.stderr
    assert "--skip-bad" in built.stderr and "Traceback" not in built.stderr
    skipped = _run("--data-dir", data_dir, "finetune", "dataset", "build", "--curated",
                   str(curated), "--skip-bad", "--eval-fraction", "0.5")  # fmt: skip
    assert skipped.returncode == 0 and "1 bad lines skipped" in skipped.stdout
    ran = _run("--data-dir", data_dir, "finetune", "run", "--data", str(tmp_path / "nothing"))
    assert ran.returncode == 1 and "ajuste finetune dataset build" in ran.stderr
    assert "Traceback" not in ran.stderr
