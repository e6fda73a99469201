"""Several bot replicas sharing their state through Qdrant: one answer per message, shared
threads and votes. Two real Bolt apps on loopback, one fake Slack, one Qdrant collection."""

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from bot.http import http_server, serve_in_background
from bot.services import Services
from bot.settings import Settings
from bot.slack.answering import VOTE_UP
from bot.slack.app import build_app
from bot.slack.shared_state import QdrantBotState
from bot.slack.state import BotState
from bot.slack.states import open_state
from tests.conftest import KNOWLEDGE
from tests.fake_slack import BOT_USER, FakeSlack
from tests.slack_helpers import SECRET, click, command, event, ts
from tests.test_slack import finished


@pytest.fixture
def client() -> Iterator[QdrantClient]:
    client = QdrantClient(location=":memory:")
    yield client
    client.close()


def test_a_key_is_claimed_once_across_replicas(client: QdrantClient):
    first, second = QdrantBotState(client, "t_bot"), QdrantBotState(client, "t_bot")
    assert first.first_sight("event:Ev1", "message:C1:1.0")
    assert not second.first_sight("event:Ev2", "message:C1:1.0")  # same message, other event
    assert not first.first_sight("event:Ev1")
    claims: list[bool] = []
    threads = [
        threading.Thread(target=lambda s=s: claims.append(s.first_sight("message:C1:2.0")))
        for s in (first, second) * 4
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claims) == [False] * 7 + [True]


def test_threads_answers_and_votes_are_shared(client: QdrantClient):
    first, second = QdrantBotState(client, "t_bot"), QdrantBotState(client, "t_bot")
    first.join_thread("C1", "1.0")
    assert second.in_thread("C1", "1.0") and not second.in_thread("C1", "2.0")
    answer_id = first.record_answer(
        question="Q?", answer="A.", sources=[{"n": 1}], model="m", user="U1", channel="C1",
        thread_ts="1.0",
    )  # fmt: skip
    assert second.vote(answer_id, user="U2", channel="C1", vote=1)
    assert second.vote(answer_id, user="U2", channel="C1", vote=-1)  # changed, not added
    assert not second.vote("unknown", user="U2", channel="C1", vote=1)
    [vote] = first.votes()
    assert (vote.question, vote.answer, vote.vote, vote.user) == ("Q?", "A.", -1, "U2")


@pytest.mark.parametrize("kind", ["sqlite", "qdrant"])
def test_the_review_queue_and_fine_tunes_look_the_same_from_every_replica(
    kind: str, client: QdrantClient, tmp_path: Path
):
    """The Home tab's records: one replica reviews, the other sees it (SQLite: one file)."""
    if kind == "qdrant":
        first, second = QdrantBotState(client, "t_bot"), QdrantBotState(client, "t_bot")
    else:
        first, second = BotState(tmp_path / "bot.sqlite3"), BotState(tmp_path / "bot.sqlite3")
    ids = [
        first.record_answer(question=f"Q{n}?", answer="A.", sources=[{"n": 1}], model="m",
                            user="U1" if n < 3 else "U2", channel="C1", thread_ts=f"{n}.0")
        for n in range(4)
    ]  # fmt: skip
    for answer_id, votes in zip(ids, [(-1, -1), (1, -1), (-1,), ()], strict=True):
        for voter, vote in enumerate(votes):
            second.vote(answer_id, user=f"V{voter}", channel="C1", vote=vote)
    assert [r.answer_id for r in second.disliked()] == [ids[2], ids[0]]  # newest first
    assert (second.disliked()[1].up, second.disliked()[1].down) == (0, 2)
    assert [r.question for r in second.answers_by("U1", 2)] == ["Q2?", "Q1?"]
    record = second.answer(ids[1])
    assert record is not None and (record.up, record.down, record.thread_ts) == (1, 1, "1.0")
    assert second.answer("unknown") is None
    assert first.review(ids[2], action="corrected", user="UADMIN", correction="Right.")
    assert not first.review("unknown", action="dismissed", user="UADMIN")
    assert [r.answer_id for r in second.disliked()] == [ids[0]]
    first.record_finetune(report="Fine-tune done.", file_id="F1", user="UADMIN")
    first.record_finetune(report="Fine-tune failed.", file_id=None, user="UADMIN")
    runs = second.finetunes(5)
    assert [(r.report, r.file_id) for r in runs] == [
        ("Fine-tune failed.", None),
        ("Fine-tune done.", "F1"),
    ]
    first.close()
    second.close()


def test_the_setting_picks_the_state(make_settings) -> None:
    for kind, expected in (("sqlite", BotState), ("qdrant", QdrantBotState)):
        settings = make_settings(slack={"state": kind})
        with Services(settings) as services:
            state = open_state(services)
            assert isinstance(state, expected)
            state.close()


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, models_dir: Path):
    """Two Bolt apps, each with its own HTTP server and state object, sharing the index."""
    root = tmp_path_factory.mktemp("replicas")
    (root / "data").mkdir()
    (root / "data" / "models").symlink_to(models_dir)
    fake = FakeSlack()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=root / "data",
        slack={
            "bot_token": "xoxb-test",
            "signing_secret": SECRET,
            "api_url": fake.api_url,
            "update_interval": 0.2,
            "state": "qdrant",
        },
    )
    services = Services(settings, holder="ajuste test")
    services.index([KNOWLEDGE])
    urls, servers = [], []
    for _ in range(2):
        app, _deps = build_app(settings, services, open_state(services))
        server = http_server("127.0.0.1", 0, readiness=services.readiness, app=app)
        serve_in_background(server)
        servers.append(server)
        urls.append(f"http://127.0.0.1:{server.server_port}/slack/events")
    yield urls, fake
    for server in servers:
        server.shutdown()
        server.server_close()
    services.close()
    fake.close()


def test_one_message_delivered_to_two_replicas_is_answered_once(replicas):
    (first, second), fake = replicas
    fake.reset()
    message_ts = ts()
    payload = {
        "user": "U1",
        "text": f"<@{BOT_USER}> How long is a VPN key valid?",
        "ts": message_ts,
        "channel": "C1",
        "event_ts": message_ts,
    }
    deliveries = [  # Slack sends a mention as two events, which may reach different replicas
        threading.Thread(target=event, args=(first, {**payload, "type": "app_mention"})),
        threading.Thread(
            target=event,
            args=(second, {**payload, "type": "message", "channel_type": "channel"}),
        ),
    ]
    for delivery in deliveries:
        delivery.start()
    for delivery in deliveries:
        delivery.join()
    fake.wait_for(finished)
    assert len(fake.called("reactions.add")) == 1
    assert len(fake.called("chat.startStream")) == 1


def test_a_vote_and_a_follow_up_reach_another_replica(replicas):
    (first, second), fake = replicas
    fake.reset()
    command(first, "/ask", "What is the minimum length of a Kestrel ID password?",
            user="U1", channel="C1", response_url=fake.response_url("r1"))  # fmt: skip
    fake.wait_for(lambda f: bool(f.called("response_url:r1")))
    actions = [b for b in fake.called("response_url:r1")[0]["blocks"] if b["type"] == "actions"]
    answer_id = actions[0]["elements"][0]["value"]
    click(second, VOTE_UP, answer_id, user="U3", channel="C1", response_url=fake.response_url("r2"))
    fake.wait_for(lambda f: bool(f.called("response_url:r2")))
    assert "feedback was recorded" in fake.called("response_url:r2")[0]["text"]

    root = ts()
    question = f"<@{BOT_USER}> When does the on-call rotation change hands?"
    event(first, {"type": "app_mention", "user": "U1", "channel": "C1", "ts": root,
                  "text": question})  # fmt: skip
    fake.wait_for(finished)
    fake.reset()
    follow_up = ts()
    event(second, {"type": "message", "channel_type": "channel", "user": "U1", "channel": "C1",
                   "text": "Who is paged first?", "ts": follow_up, "thread_ts": root})  # fmt: skip
    fake.wait_for(finished)
    assert fake.called("chat.startStream")[0]["thread_ts"] == root
