"""The deployment files only set settings that exist, and the container checks the right port."""

import re

import yaml

from bot.settings import Settings, env_name
from tests.conftest import REPO

DEPLOY = REPO / "deploy"


def known_variables() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        sub_fields = getattr(annotation, "model_fields", None)
        if sub_fields:
            names |= {env_name((name, sub)) for sub in sub_fields}
        else:
            names.add(env_name((name,)))
    return names


def test_every_ajuste_variable_in_the_deploy_files_is_a_setting():
    known = known_variables()
    texts = [p.read_text() for p in DEPLOY.rglob("*") if p.is_file()]
    used = {v for text in texts for v in re.findall(r"\bAJUSTE_[A-Z0-9_]+", text)}
    assert used and used <= known, sorted(used - known)


def test_compose_and_kubernetes_parse_and_agree_on_the_port():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    bot = compose["services"]["ajuste"]
    assert bot["environment"]["AJUSTE_QDRANT__URL"] == "http://qdrant:6333"
    assert bot["ports"] == ["3000:3000"]
    llm = compose["services"]["llm"]  # the optional shared model server
    assert llm["profiles"] == ["llm-server"] and llm["healthcheck"]
    slots = llm["command"][llm["command"].index("--parallel") + 1]
    assert bot["environment"]["AJUSTE_LLM__SERVER_SLOTS"] == slots
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "ajuste.yaml").read_text()))
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert (
        container["ports"][0]["containerPort"]
        == Settings.model_fields["slack"].default_factory().port
    )  # type: ignore[misc]
    assert "127.0.0.1:3000/healthz" in (DEPLOY / "Dockerfile").read_text()
