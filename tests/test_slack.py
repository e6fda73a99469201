"""The real Bolt app in HTTP mode against a fake Slack on loopback, with the real model."""

import json
import shutil
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from slack_bolt import App

from bot.engine.answer import NO_ANSWER
from bot.http import http_server, serve_in_background
from bot.services import Services
from bot.settings import Settings
from bot.slack.answering import APOLOGY, BUSY, VOTE_UP
from bot.slack.app import build_app, socket_mode
from bot.slack.deps import SlackDeps
from bot.slack.finetune_job import FinetuneJob
from bot.slack.state import BotState
from tests.conftest import KNOWLEDGE
from tests.fake_slack import BOT_USER, TEAM, FakeSlack
from tests.fake_socket import FakeSocketMode
from tests.slack_helpers import SECRET, click, command, event, signed_post, ts


@dataclass
class Bot:
    url: str
    app: App
    deps: SlackDeps
    fake: FakeSlack
    knowledge: Path

    @property
    def events(self) -> str:
        return self.url + "/slack/events"


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Bot]:
    root = tmp_path_factory.mktemp("slack")
    (root / "data").mkdir()
    (root / "data" / "models").symlink_to(models_dir)
    knowledge = root / "knowledge"
    shutil.copytree(KNOWLEDGE, knowledge)
    fake = FakeSlack()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=root / "data",
        slack={
            "bot_token": "xoxb-test",
            "app_token": "xapp-test",
            "signing_secret": SECRET,
            "api_url": fake.api_url,
            "admins": ["UADMIN"],
            "update_interval": 0.2,
            "channel_sources": {"CSCOPED": ["nothing-here"]},
        },
        llm={"max_queue": 0},
    )
    services = Services(settings, holder="ajuste test")
    services.index([knowledge])
    state = BotState(settings.data_dir / "bot.sqlite3")
    app, deps = build_app(settings, services, state)
    server = http_server("127.0.0.1", 0, readiness=services.readiness, app=app)
    serve_in_background(server)
    yield Bot(f"http://127.0.0.1:{server.server_port}", app, deps, fake, knowledge)
    server.shutdown()
    server.server_close()
    state.close()
    services.close()
    fake.close()


@pytest.fixture(autouse=True)
def _fresh_calls(request: pytest.FixtureRequest) -> None:
    if "bot" in request.fixturenames:
        request.getfixturevalue("bot").fake.reset()


def finished(fake: FakeSlack) -> bool:
    """The answer settled (stream stopped, or final blocks edited in) and the 👀 is gone."""
    if fake.called("reactions.add") and not fake.called("reactions.remove"):
        return False
    return bool(fake.called("chat.stopStream")) or any(
        call.get("blocks") and "…" not in call.get("text", "")
        for call in fake.called("chat.update")
    )


def mention(bot: Bot, text: str, channel: str = "C1", **kw: object) -> str:
    message_ts = ts()
    status, _ = event(
        bot.events,
        {
            "type": "app_mention",
            "user": "U1",
            "text": f"<@{BOT_USER}> {text}",
            "ts": message_ts,
            "channel": channel,
            "event_ts": message_ts,
        },
        **kw,
    )
    assert status == 200
    return message_ts


def test_a_mention_is_answered_in_its_thread_streamed_with_sources_and_buttons(bot: Bot):
    question_ts = mention(bot, "What is the minimum length of a Kestrel ID password?")
    bot.fake.wait_for(finished)
    fake = bot.fake
    reaction = fake.called("reactions.add")[0]
    assert (reaction["channel"], reaction["timestamp"], reaction["name"]) == (
        "C1",
        question_ts,
        "eyes",
    )
    [start] = fake.called("chat.startStream")
    assert (start["channel"], start["thread_ts"], start["recipient_user_id"]) == (
        "C1",
        question_ts,
        "U1",
    )
    streamed = start["markdown_text"] + "".join(
        call["markdown_text"] for call in fake.called("chat.appendStream")
    )
    [stop] = fake.called("chat.stopStream")
    streamed += stop.get("markdown_text") or ""
    assert "14" in streamed
    evidence, sources, actions = stop["blocks"]
    quote = evidence["text"]["text"]  # the supporting sentence, quoted, with its source
    quoted = [line for line in quote.splitlines() if line.startswith("> ")]
    assert any("14 characters" in line for line in quoted)
    assert "security-policy.md" in quoted[-1]
    assert sources["type"] == "context" and "security-policy.md" in sources["elements"][0]["text"]
    buttons = actions["elements"]
    assert [b["action_id"] for b in buttons] == ["ajuste_vote_up", "ajuste_vote_down"]
    bot.fake.wait_for(lambda f: bool(f.called("reactions.remove")))
    assert bot.deps.answerer.state.in_thread("C1", question_ts)


def test_a_retried_event_gets_one_answer(bot: Bot):
    message_ts = ts()
    payload = {
        "type": "app_mention",
        "user": "U1",
        "text": f"<@{BOT_USER}> How long is a VPN key valid?",
        "ts": message_ts,
        "channel": "C1",
        "event_ts": message_ts,
    }
    assert event(bot.events, payload, event_id="EvRetry")[0] == 200
    for attempt in (1, 2):
        retry = {"X-Slack-Retry-Num": str(attempt), "X-Slack-Retry-Reason": "http_timeout"}
        assert event(bot.events, payload, event_id="EvRetry", headers=retry)[0] == 200
    # The same message delivered as a plain channel message event, too.
    assert event(bot.events, {**payload, "type": "message", "channel_type": "channel"})[0] == 200
    bot.fake.wait_for(finished)
    assert len(bot.fake.called("chat.startStream")) == 1
    assert len(bot.fake.called("reactions.add")) == 1


def test_bad_or_stale_signatures_are_rejected(bot: Bot):
    body = json.dumps({"type": "event_callback", "event": {"type": "app_mention"}})
    assert signed_post(bot.events, body, "application/json", secret="wrong")[0] == 401
    assert signed_post(bot.events, body, "application/json", age=600)[0] == 401
    assert bot.fake.calls == []


def test_health_readiness_and_metrics(bot: Bot):
    with urllib.request.urlopen(bot.url + "/healthz", timeout=5) as response:
        assert response.status == 200 and json.loads(response.read()) == {"ok": True}
    bot.deps.services.load_model()
    with urllib.request.urlopen(bot.url + "/readyz", timeout=5) as response:
        assert json.loads(response.read()) == {"ready": True, "model": True, "index": True}
    with urllib.request.urlopen(bot.url + "/metrics", timeout=5) as response:
        metrics = response.read().decode()
    for name in (
        "ajuste_questions_total",
        "ajuste_answer_seconds_bucket",
        "ajuste_first_token_seconds",
        "ajuste_queue_depth",
        "ajuste_reindex_runs_total",
        "ajuste_feedback_votes_total",
    ):
        assert name in metrics


def test_a_follow_up_in_an_answered_thread_needs_no_mention(bot: Bot):
    root = mention(bot, "When does the on-call rotation change hands?")
    bot.fake.wait_for(finished)
    bot.fake.reset()
    follow_up = ts()
    bot.fake.replies[("C1", root)] = [
        {
            "user": "U1",
            "text": f"<@{BOT_USER}> When does the on-call rotation change hands?",
            "ts": root,
        },
        {"user": BOT_USER, "bot_id": "BBOT", "text": "Every Monday at 10:00.", "ts": root + "1"},
        {"user": "U1", "text": "Who is paged first?", "ts": follow_up, "thread_ts": root},
    ]
    status, _ = event(
        bot.events,
        {
            "type": "message",
            "channel_type": "channel",
            "user": "U1",
            "text": "Who is paged first?",
            "ts": follow_up,
            "thread_ts": root,
            "channel": "C1",
        },
    )
    assert status == 200
    bot.fake.wait_for(finished)
    assert bot.fake.called("conversations.replies")[0]["ts"] == root
    assert bot.fake.called("chat.startStream")[0]["thread_ts"] == root


def test_messages_that_are_not_questions_are_ignored(bot: Bot):
    unknown_thread = ts()
    for payload in [
        {
            "type": "message",
            "channel_type": "channel",
            "user": "U1",
            "text": "chatter",
            "ts": ts(),
            "channel": "C1",
        },
        {
            "type": "message",
            "channel_type": "channel",
            "user": "U1",
            "text": "in someone's thread",
            "ts": ts(),
            "thread_ts": unknown_thread,
            "channel": "C1",
        },
        {
            "type": "message",
            "channel_type": "im",
            "bot_id": "BOTHER",
            "text": "I am a bot",
            "ts": ts(),
            "channel": "D1",
        },
        {
            "type": "message",
            "subtype": "message_changed",
            "channel_type": "im",
            "channel": "D1",
            "ts": ts(),
            "message": {"user": "U1", "text": "edited"},
        },
        {
            "type": "message",
            "subtype": "message_deleted",
            "channel_type": "im",
            "channel": "D1",
            "ts": ts(),
            "previous_message": {"user": "U1", "text": "gone"},
        },
        {
            "type": "app_mention",
            "user": BOT_USER,
            "bot_id": "BBOT",
            "text": f"<@{BOT_USER}> me",
            "ts": ts(),
            "channel": "C1",
        },
    ]:
        assert event(bot.events, payload)[0] == 200
    assert not bot.fake.called("chat.postMessage") and not bot.fake.called("chat.startStream")
    assert not bot.fake.called("reactions.add")


def test_a_direct_message_is_answered(bot: Bot):
    message_ts = ts()
    event(
        bot.events,
        {
            "type": "message",
            "channel_type": "im",
            "user": "U2",
            "channel": "D2",
            "text": "How long is parental leave for the primary caregiver?",
            "ts": message_ts,
        },
    )
    bot.fake.wait_for(finished)
    assert bot.fake.called("chat.startStream")[0]["thread_ts"] == message_ts


def test_without_streaming_the_answer_is_posted_then_edited(bot: Bot):
    bot.fake.errors["chat.startStream"] = "not_allowed_token_type"
    try:
        question_ts = mention(bot, "How many days is a VPN key valid?")
        bot.fake.wait_for(finished)
    finally:
        bot.deps.answerer.streaming.enabled = True
    [posted] = bot.fake.called("chat.postMessage")
    assert posted["thread_ts"] == question_ts
    final = bot.fake.called("chat.update")[-1]
    assert (
        final["ts"] == bot.fake.called("chat.postMessage")[0]["channel"] or final["channel"] == "C1"
    )
    kinds = [block["type"] for block in final["blocks"]]
    assert kinds[0] == "section" and kinds[-2:] == ["context", "actions"]
    assert "it-and-vpn.md" in final["blocks"][-2]["elements"][0]["text"]


def test_rate_limited_calls_are_retried_after_retry_after(bot: Bot):
    bot.fake.rate_limited["reactions.add"] = 1
    mention(bot, "What is the minimum length of a Kestrel ID password?")
    bot.fake.wait_for(finished)
    assert len(bot.fake.called("reactions.add:429")) == 1
    assert len(bot.fake.called("reactions.add")) == 1


def test_channel_scoping_limits_the_sources(bot: Bot):
    mention(bot, "What is the minimum length of a Kestrel ID password?", channel="CSCOPED")
    bot.fake.wait_for(lambda f: bool(f.called("chat.postMessage")) or finished(f))
    texts = [
        c.get("text", "")
        for c in bot.fake.called("chat.postMessage") + bot.fake.called("chat.update")
    ]
    streamed = [c.get("markdown_text", "") for c in bot.fake.called("chat.startStream")]
    assert any(NO_ANSWER.split(",")[0] in t for t in texts + streamed)


def test_a_failure_is_an_apology_in_the_thread(bot: Bot, monkeypatch: pytest.MonkeyPatch):
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("qdrant fell over")

    monkeypatch.setattr(bot.deps.answerer.answers, "related_hits", broken)
    question_ts = mention(bot, "Anything?")
    bot.fake.wait_for(
        lambda f: any(APOLOGY in c.get("text", "") for c in f.called("chat.postMessage"))
    )
    assert bot.fake.called("chat.postMessage")[0]["thread_ts"] == question_ts


def test_a_full_queue_says_busy(bot: Bot):
    turns = bot.deps.services.engine.turns
    with turns.turn():  # someone is generating; max_queue=0 lets nobody wait
        mention(bot, "How long is a VPN key valid?")
        bot.fake.wait_for(
            lambda f: any(BUSY in c.get("text", "") for c in f.called("chat.postMessage"))
        )


def test_reindex_is_for_admins_and_reports_counts(bot: Bot):
    refused = command(
        bot.events,
        "/reindex",
        "",
        user="U1",
        channel="C1",
        response_url=bot.fake.response_url("r1"),
    )
    assert refused[0] == 200 and "Only Ajuste admins" in refused[1]

    (bot.knowledge / "new-page.md").write_text("# New page\n\nThe canteen opens at 11:45.")
    started = command(
        bot.events,
        "/reindex",
        "",
        user="UADMIN",
        channel="C1",
        response_url=bot.fake.response_url("r2"),
    )
    assert started[0] == 200 and "Re-indexing `files`" in started[1]

    def summarised(fake: FakeSlack) -> bool:
        return any("Re-indexed `files`" in c.get("text", "") for c in fake.called("chat.update"))

    bot.fake.wait_for(summarised)
    [posted] = bot.fake.called("chat.postMessage")
    assert posted["channel"] == "C1" and "Re-indexing `files`" in posted["text"]
    summary = bot.fake.called("chat.update")[-1]
    assert summary["ts"] == posted["_ts"]
    assert "1 added" in summary["text"] and "0 deleted" in summary["text"]

    unknown = command(
        bot.events,
        "/reindex",
        "wiki",
        user="UADMIN",
        channel="C1",
        response_url=bot.fake.response_url("r3"),
    )
    assert "don't know a source called `wiki`" in unknown[1] and "`files`" in unknown[1]


def test_ask_answers_privately_or_publicly(bot: Bot):
    status, body = command(
        bot.events,
        "/ask",
        "How long is a VPN key valid?",
        user="U1",
        channel="C1",
        response_url=bot.fake.response_url("a1"),
    )
    assert status == 200 and "Looking into" in body
    bot.fake.wait_for(lambda f: bool(f.called("response_url:a1")))
    private = bot.fake.called("response_url:a1")[0]
    assert private["response_type"] == "ephemeral"
    assert any(b["type"] == "actions" for b in private["blocks"])

    command(
        bot.events,
        "/ask",
        "--public How long is a VPN key valid?",
        user="U1",
        channel="C1",
        response_url=bot.fake.response_url("a2"),
    )
    bot.fake.wait_for(lambda f: bool(f.called("response_url:a2")))
    public = bot.fake.called("response_url:a2")[0]
    assert public["response_type"] == "in_channel"
    assert "<@U1> asked" in public["blocks"][0]["elements"][0]["text"]


def test_feedback_is_stored_with_the_answer(bot: Bot):
    command(
        bot.events,
        "/ask",
        "What is the minimum length of a Kestrel ID password?",
        user="U1",
        channel="C1",
        response_url=bot.fake.response_url("f1"),
    )
    bot.fake.wait_for(lambda f: bool(f.called("response_url:f1")))
    actions = [b for b in bot.fake.called("response_url:f1")[0]["blocks"] if b["type"] == "actions"]
    answer_id = actions[0]["elements"][0]["value"]
    status, _ = click(
        bot.events,
        VOTE_UP,
        answer_id,
        user="U3",
        channel="C1",
        response_url=bot.fake.response_url("f2"),
    )
    assert status == 200
    bot.fake.wait_for(lambda f: bool(f.called("response_url:f2")))
    [vote] = [v for v in bot.deps.answerer.state.votes() if v.answer_id == answer_id]
    assert (vote.vote, vote.user, vote.channel) == (1, "U3", "C1")
    assert vote.question == "What is the minimum length of a Kestrel ID password?"
    assert vote.model == bot.deps.answerer.answers.engine.name and vote.sources
    # every source the model read is kept with its text, for a fine-tune in the served shape
    assert all({"n", "title", "location", "text", "cited"} <= set(s) for s in vote.sources)
    assert any("14 characters" in str(s["text"]) and s["cited"] for s in vote.sources)
    assert "feedback was recorded" in bot.fake.called("response_url:f2")[0]["text"]


def test_help_and_status(bot: Bot):
    status, body = command(
        bot.events,
        "/ajuste",
        "help",
        user="U1",
        channel="C1",
        response_url=bot.fake.response_url("h"),
    )
    assert status == 200 and "/ask QUESTION" in body and "/reindex" not in body
    status, body = command(
        bot.events,
        "/ajuste",
        "status",
        user="UADMIN",
        channel="C1",
        response_url=bot.fake.response_url("s"),
    )
    text = json.loads(body)["blocks"][0]["text"]["text"]
    assert (
        bot.deps.answerer.answers.engine.name in text
        and "documents" in text
        and "*files:* ok at" in text
    )


def test_the_assistant_pane_greets_and_answers(bot: Bot):
    thread = ts()
    event(
        bot.events,
        {
            "type": "assistant_thread_started",
            "assistant_thread": {
                "user_id": "U4",
                "context": {},
                "channel_id": "D4",
                "thread_ts": thread,
            },
            "event_ts": ts(),
        },
    )
    bot.fake.wait_for(lambda f: bool(f.called("assistant.threads.setSuggestedPrompts")))
    assert bot.fake.called("chat.postMessage")[0]["thread_ts"] == thread
    bot.fake.reset()
    question = ts()
    event(
        bot.events,
        {
            "type": "message",
            "channel_type": "im",
            "user": "U4",
            "channel": "D4",
            "text": "How long is a VPN key valid?",
            "ts": question,
            "thread_ts": thread,
        },
    )
    bot.fake.wait_for(finished)
    assert bot.fake.called("assistant.threads.setStatus")[0]["thread_ts"] == thread
    assert bot.fake.called("chat.startStream")[0]["thread_ts"] == thread
    assert not bot.fake.called("reactions.add")


def test_queued_questions_wait_in_order(bot: Bot):
    turns = bot.deps.services.engine.turns
    turns._max_waiting = 5
    hold = threading.Event()
    holder = threading.Thread(target=lambda: _hold(turns, hold))
    holder.start()
    try:
        while not turns._queue:
            time.sleep(0.01)
        mention(bot, "How long is a VPN key valid?")
        bot.fake.wait_for(
            lambda f: any(
                "In line for the model: 1 question ahead" in c.get("text", "")
                for c in f.called("chat.postMessage")
            )
        )
    finally:
        hold.set()
        holder.join()
        turns._max_waiting = 0
    bot.fake.wait_for(finished)


def _hold(turns: object, release: threading.Event) -> None:
    with turns.turn():  # type: ignore[attr-defined]
        release.wait(60)


def test_socket_mode_delivers_events_and_commands(bot: Bot):
    socket = FakeSocketMode()
    bot.fake.socket_url = socket.url
    handler = socket_mode(bot.app, bot.deps.settings)
    handler.connect()
    try:
        question_ts = ts()
        envelope = socket.send(
            "events_api",
            {
                "team_id": TEAM,
                "api_app_id": "A0APP",
                "type": "event_callback",
                "event_id": "EvSocket1",
                "event_time": int(time.time()),
                "event": {
                    "type": "app_mention",
                    "user": "U1",
                    "channel": "C9",
                    "ts": question_ts,
                    "text": f"<@{BOT_USER}> How long is a VPN key valid?",
                },
            },
        )
        assert socket.ack_for(envelope)["envelope_id"] == envelope
        bot.fake.wait_for(finished)
        assert bot.fake.called("apps.connections.open")
        assert bot.fake.called("chat.startStream")[0]["thread_ts"] == question_ts

        helped = socket.send(
            "slash_commands",
            {
                "command": "/ajuste",
                "text": "help",
                "user_id": "U1",
                "channel_id": "C9",
                "team_id": TEAM,
                "response_url": bot.fake.response_url("sock"),
                "trigger_id": "t1",
            },
        )
        assert "/ask QUESTION" in socket.ack_for(helped)["payload"]["text"]
    finally:
        handler.close()
        socket.close()


def test_admins_choose_the_model_in_slack(bot: Bot):
    def ajuste(text: str, user: str = "UADMIN") -> str:
        status, body = command(bot.events, "/ajuste", text, user=user, channel="C1",
                               response_url=bot.fake.response_url("m"))  # fmt: skip
        assert status == 200
        return body

    assert "Only Ajuste admins" in ajuste("model", user="U1")
    assert "No registered versions" in ajuste("model list")
    assert "No model version 9" in ajuste("model use 9")
    assert "Nothing to roll back" in ajuste("model rollback")
    assert "Usage: `/ajuste model" in ajuste("model frobnicate")
    assert "/ajuste finetune" in ajuste("help") and "/ajuste finetune" not in ajuste("help", "U1")


def test_a_finetune_job_reports_its_failure_in_the_channel(bot: Bot, tmp_path: Path):
    job = bot.deps.finetune
    bot.deps.finetune = FinetuneJob(tmp_path, bot.deps.answerer.state)  # no examples, no votes
    try:
        status, body = command(bot.events, "/ajuste", "finetune", user="UADMIN", channel="C1",
                               response_url=bot.fake.response_url("ft"))  # fmt: skip
        assert status == 200 and "Fine-tune started in its own process" in body
        bot.fake.wait_for(lambda f: any("failed" in c["text"] for c in f.called("chat.update")))
    finally:
        bot.deps.finetune = job
    [posted] = [c for c in bot.fake.called("chat.postMessage") if "Fine-tune" in c["text"]]
    assert "building the dataset" in posted["text"]
    [failed] = [c for c in bot.fake.called("chat.update") if "failed" in c["text"]]
    assert "No training examples" in failed["text"]  # the CLI's own one-line error
