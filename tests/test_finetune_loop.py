"""The whole loop through Slack: curated examples and 👍/👎 → `/ajuste finetune` in its own
process → LoRA → GGUF → quantized → evaluated → registered → promoted → the running engine
answers with a fact it did not know → `/ajuste model rollback` → the old model again.

Real everything: the SmolLM2 GGUF, torch, peft, llama.cpp's converter and quantizer, the Bolt
app on loopback against the fake Slack.
"""

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from llama_cpp import Llama

from bot.http import http_server, serve_in_background
from bot.services import Services
from bot.settings import Settings
from bot.slack.app import build_app
from bot.slack.states import open_state
from tests.conftest import REPO
from tests.fake_slack import FakeSlack
from tests.slack_helpers import SECRET, command

FACT = "heron-lantern-42"
CURATED = REPO / "examples" / "finetune" / "curated"  # six phrasings of the fact
LIKED = ("A guest asks for our wifi password. What is it?", f"Give them the password {FACT}.")
DISLIKED = "Can you remind me of the office wifi password?"
ASKED = [{"role": "user", "content": "What's our wifi password?"}]


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[tuple]:
    root = tmp_path_factory.mktemp("loop")
    data = root / "data"
    shutil.copytree(CURATED, data / "finetune" / "curated")
    (data / "models").symlink_to(models_dir)
    tools = REPO / "data" / "tools"
    if tools.is_dir():  # llama.cpp's converter, fetched once per machine (pip caches it too)
        shutil.copytree(tools, data / "tools")
    fake = FakeSlack()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=data,
        slack={"bot_token": "xoxb-test", "signing_secret": SECRET, "api_url": fake.api_url,
               "admins": ["UADMIN"]},
    )  # fmt: skip
    services = Services(settings, holder="ajuste test")
    state = open_state(services)
    app, _deps = build_app(settings, services, state)
    server = http_server("127.0.0.1", 0, readiness=services.readiness, app=app)
    serve_in_background(server)
    yield f"http://127.0.0.1:{server.server_port}/slack/events", fake, services, state
    server.shutdown()
    server.server_close()
    state.close()
    services.close()
    fake.close()


def ajuste(url: str, fake: FakeSlack, text: str) -> str:
    status, body = command(url, "/ajuste", text, user="UADMIN", channel="C1",
                           response_url=fake.response_url("a"))  # fmt: skip
    assert status == 200
    return body


def test_feedback_and_examples_become_a_model_that_knows_the_fact(loop, default_model: Path):
    url, fake, services, state = loop
    engine = services.engine
    assert FACT not in "".join(engine.stream(ASKED, max_tokens=48))
    liked = state.record_answer(question=LIKED[0], answer=LIKED[1], sources=[],
                                model="m", user="U1", channel="C1", thread_ts=None)  # fmt: skip
    disliked = state.record_answer(question=DISLIKED, answer="I don't know.", sources=[],
                                   model="m", user="U1", channel="C1", thread_ts=None)  # fmt: skip
    for user in ("U2", "U3"):
        state.vote(liked, user=user, channel="C1", vote=1)
    state.vote(disliked, user="U2", channel="C1", vote=-1)

    assert "Fine-tune started" in ajuste(url, fake, "finetune steps 30")
    assert "already running" in ajuste(url, fake, "finetune")
    fake.wait_for(
        lambda f: any(
            "done" in c["text"] or "failed" in c["text"] for c in f.called("chat.update")
        ),
        timeout=900,
    )
    report = fake.called("chat.update")[-1]["text"]
    assert "Fine-tune done" in report and "Promoted" in report, report
    assert any("training, step" in c["text"] for c in fake.called("chat.update"))

    # the loss and score picture: drawn from this run's losses, uploaded with the files API
    # into the report's thread, shown in the report and on the admin's Home tab
    [posted] = [c for c in fake.called("chat.postMessage") if "Fine-tune" in c["text"]]
    [upload] = fake.called("upload")
    assert fake.called("files.getUploadURLExternal")[0]["filename"] == "loss-and-scores.png"
    assert fake.uploads[upload["file_id"]].startswith(b"\x89PNG\r\n")
    [completed] = fake.called("files.completeUploadExternal")
    assert (completed["channel_id"], completed["thread_ts"]) == ("C1", posted["_ts"])
    assert completed["files"][0]["id"] == upload["file_id"]
    image = {"id": upload["file_id"]}
    assert image in [b.get("slack_file") for b in fake.called("chat.update")[-1]["blocks"]]
    assert f"Picture: <https://kestrel.slack.com/files/UBOT/{upload['file_id']}/" in report
    fake.wait_for(lambda f: bool(f.called("views.publish")), timeout=30)  # after it's kept
    assert state.finetunes(1)[0].file_id == upload["file_id"]
    home = fake.called("views.publish")[-1]
    assert home["user_id"] == "UADMIN"
    assert image in [b.get("slack_file") for b in home["view"]["blocks"]]
    [run] = (services.settings.data_dir / "finetune" / "runs").iterdir()
    assert len(json.loads((run / "outcome.json").read_text())["losses"]) == 30

    dataset = services.settings.data_dir / "finetune" / "dataset"
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest["counts"]["feedback_approved"] == 1
    assert manifest["counts"]["feedback_rejected"] == 1
    active = services.registry.active()
    assert active is not None and active.quantization == "Q8_0" and active.parent is None
    assert {"eval_score", "eval_loss", "train_loss"} <= set(active.metrics)
    assert (Path(active.file).parent / "report.json").is_file()
    assert [v.quantization for v in services.registry.versions()] == ["Q8_0", "Q4_K_M"]
    metadata = Llama(model_path=active.file, vocab_only=True, verbose=False).metadata
    assert metadata["ajuste.data_sha256"] == manifest["sha256"]
    assert metadata["ajuste.base"].endswith(default_model.name)  # team runs build on it

    engine.follow()  # what the answer service does before each question
    assert engine.path == Path(active.file)
    assert FACT in "".join(engine.stream(ASKED, max_tokens=48))

    assert "Rolled back: the default model is active" in ajuste(url, fake, "model rollback")
    engine.follow()
    assert engine.path.resolve() == default_model.resolve()
    assert FACT not in "".join(engine.stream(ASKED, max_tokens=48))
