"""Settings from the environment and .env, errors that name the variable, and .env.example."""

from pathlib import Path

import pytest

from bot.settings import load_settings, render_env_example
from retrieval.errors import AjusteError
from tests.conftest import REPO


def test_nested_groups_come_from_prefixed_variables(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AJUSTE_RETRIEVAL__TOP_K", "7")
    monkeypatch.setenv("AJUSTE_LLM__N_CTX", "4096")
    monkeypatch.setenv("AJUSTE_SLACK__ADMINS", "U01, U02")
    monkeypatch.setenv("AJUSTE_QDRANT__URL", "http://qdrant:6333")
    settings = load_settings(data_dir=Path("elsewhere"))
    assert settings.retrieval.top_k == 7
    assert settings.llm.n_ctx == 4096
    assert settings.slack.admins == ["U01", "U02"]
    assert str(settings.qdrant.url) == "http://qdrant:6333/"
    assert settings.data_dir == Path("elsewhere")
    assert settings.models_dir == Path("elsewhere/models")


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / ".env").write_text("AJUSTE_DATA_DIR=from-dotenv\nAJUSTE_LLM__MAX_TOKENS=99\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AJUSTE_LLM__MAX_TOKENS", "120")
    settings = load_settings()
    assert settings.data_dir == Path("from-dotenv")
    assert settings.llm.max_tokens == 120


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("AJUSTE_RETRIEVAL__TOP_K", "-1", "AJUSTE_RETRIEVAL__TOP_K='-1': Input should be greater"),
        ("AJUSTE_QDRANT__URL", "nope", "AJUSTE_QDRANT__URL='nope': Input should be a valid URL"),
        ("AJUSTE_EMBEDDING__MODEL_PATH", "/missing", "AJUSTE_EMBEDDING__MODEL_PATH='/missing'"),
        ("AJUSTE_LOG_LEVEL", "LOUD", "AJUSTE_LOG_LEVEL='LOUD': must be DEBUG"),
        ("AJUSTE_RETRIEVAL__CHUNK_OVERLAP", "150", "AJUSTE_RETRIEVAL: chunk_overlap (150)"),
        ("AJUSTE_EMBEDDING__SPARSE_LANGUAGE", "klingon", "AJUSTE_EMBEDDING__SPARSE_LANGUAGE="),
    ],
)
def test_a_bad_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
):
    monkeypatch.setenv(variable, value)
    with pytest.raises(AjusteError) as error:
        load_settings()
    assert str(error.value).startswith("Bad setting " + expected)
    assert "\n" not in str(error.value)


def test_secrets_are_masked_when_settings_are_shown(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AJUSTE_SLACK__BOT_TOKEN", "xoxb-secret")
    monkeypatch.setenv("AJUSTE_QDRANT__API_KEY", "qdrant-secret")
    settings = load_settings()
    assert settings.slack.bot_token is not None
    assert settings.slack.bot_token.get_secret_value() == "xoxb-secret"
    shown = settings.model_dump_json()
    assert "xoxb-secret" not in shown and "qdrant-secret" not in shown


def test_env_example_lists_every_setting_and_is_current():
    example = (REPO / ".env.example").read_text()
    assert example == render_env_example(), "run `ajuste config example > .env.example`"
    for group in ("llm", "embedding", "qdrant", "retrieval", "slack", "scheduler", "finetune"):
        assert f"# --- {group} ---" in example


def test_json_logs_are_one_object_a_line(capsys: pytest.CaptureFixture[str]):
    import json
    import logging

    from bot.logs import configure_logging

    configure_logging("INFO", "json")
    try:
        logging.getLogger("ajuste.test").info("indexed %d documents", 3)
        line = capsys.readouterr().err.strip().splitlines()[-1]
        entry = json.loads(line)
        assert (entry["level"], entry["logger"], entry["message"]) == (
            "INFO",
            "ajuste.test",
            "indexed 3 documents",
        )
    finally:
        configure_logging("WARNING", "text")
