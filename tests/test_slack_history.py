"""The `slack` source kind against the fake Slack: pagination, threads, 429s, private channels."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.kinds import register_source_kinds
from bot.settings import SlackSettings
from bot.slack.history_config import SlackConfig
from retrieval.indexer import Indexer, IndexReport
from retrieval.settings import RetrievalSettings
from retrieval.sources.base import Source
from retrieval.sources.config import SourceContext, build_source
from retrieval.store import Scope
from tests.fake_slack import FakeSlack


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    served = FakeSlack()
    served.page_size = 2
    served.channels = {
        "CPUB": {"id": "CPUB", "name": "eng", "is_private": False},
        "CPRIV": {"id": "CPRIV", "name": "leadership", "is_private": True},
    }
    served.users = {"U1": "Ana Silva", "U2": "Mart Tamm"}
    served.history = {
        "CPUB": [
            {
                "ts": "1700000300.000100",
                "user": "U1",
                "text": "The staging database moves to Ebb-3 on Friday.",
            },
            {
                "ts": "1700000200.000100",
                "user": "U2",
                "text": "Who owns the tile cache?",
                "reply_count": 2,
                "latest_reply": "1700000260.000100",
            },
            {"ts": "1700000150.000100", "subtype": "channel_join", "user": "U2", "text": "joined"},
            {"ts": "1700000100.000100", "user": "U1", "text": "Deploy freeze starts 20 December."},
        ],
        "CPRIV": [
            {
                "ts": "1700000400.000100",
                "user": "U1",
                "text": "The reorganisation codename is Bluefin.",
            },
        ],
    }
    served.replies = {
        ("CPUB", "1700000200.000100"): [
            {"ts": "1700000200.000100", "user": "U2", "text": "Who owns the tile cache?"},
            {
                "ts": "1700000230.000100",
                "user": "U1",
                "text": "Team Halyard owns the tile cache.",
                "thread_ts": "1700000200.000100",
            },
            {
                "ts": "1700000260.000100",
                "user": "U2",
                "text": "Thanks!",
                "thread_ts": "1700000200.000100",
            },
        ]
    }
    served.rate_limited["conversations.history"] = 1
    yield served
    served.close()


def index(indexer: Indexer, source: Source) -> IndexReport:
    """As the runner does: index, then close (which records a finished full pass)."""
    try:
        return indexer.index_source(source)
    finally:
        source.close()


def slack_source(fake: FakeSlack, tmp_path: Path, **config: object) -> Source:
    register_source_kinds(SlackSettings(bot_token="xoxb-test", api_url=fake.api_url))
    settings = SlackConfig(name="chat", kind="slack", channels=["CPUB", "CPRIV"], **config)
    return build_source(settings, SourceContext(RetrievalSettings(), tmp_path / "state"))


def test_history_becomes_one_document_per_thread(fake: FakeSlack, tmp_path: Path, indexer: Indexer):
    report = index(indexer, slack_source(fake, tmp_path))
    assert (report.added, report.failed) == (4, 0)  # 3 public threads + 1 private; no join
    assert fake.called("conversations.history:429")  # retried after Retry-After
    assert len(fake.called("conversations.history")) >= 3  # paginated
    search = indexer.store.search
    embed = indexer.embedder.embed_query

    [thread] = [
        h
        for h in search(
            embed("who owns the tile cache"), limit=3, candidates=20, weights=(1.0, 1.0)
        )
        if "tile cache" in h.title
    ]
    assert "Ana Silva (2023-11-14 22:17 UTC): Team Halyard owns the tile cache." in thread.body
    assert thread.location == "https://kestrel.slack.com/archives/CPUB/p1700000200000100"
    assert thread.title.startswith("#eng: Who owns the tile cache?")

    def bluefin(scope: Scope) -> bool:
        hits = search(
            embed("reorganisation codename"),
            limit=5,
            candidates=20,
            weights=(1.0, 1.0),
            scope=scope,
        )
        return any("Bluefin" in h.body for h in hits)

    assert bluefin(Scope(channel="CPRIV"))
    assert not bluefin(Scope(channel="CPUB"))
    assert not bluefin(Scope())  # the console and the CLI see no private content


def test_a_normal_run_rereads_only_changed_threads(
    fake: FakeSlack, tmp_path: Path, indexer: Indexer
):
    index(indexer, slack_source(fake, tmp_path))  # first run: a full pass
    fake.reset()
    thread = fake.history["CPUB"][1]
    thread["latest_reply"] = "1700000290.000100"
    fake.replies[("CPUB", thread["ts"])].append(
        {
            "ts": "1700000290.000100",
            "user": "U1",
            "text": "Update: Team Ebb took it over.",
            "thread_ts": thread["ts"],
        }
    )
    report = index(indexer, slack_source(fake, tmp_path, lookback="10000d"))
    assert (report.updated, report.unchanged, report.deleted) == (1, 3, 0)
    assert {call["ts"] for call in fake.called("conversations.replies")} == {thread["ts"]}


def test_a_refused_token_fails_the_run_and_keeps_documents(
    fake: FakeSlack, tmp_path: Path, indexer: Indexer
):
    index(indexer, slack_source(fake, tmp_path))
    fake.errors["conversations.history"] = "invalid_auth"
    with pytest.raises(Exception, match="invalid_auth"):
        index(indexer, slack_source(fake, tmp_path, full_pass_every="1s"))
    assert len(indexer.store.documents(source="chat")) == 4


def test_a_full_pass_picks_up_edited_and_deleted_messages(
    fake: FakeSlack, tmp_path: Path, indexer: Indexer
):
    index(indexer, slack_source(fake, tmp_path))
    replies = fake.replies[("CPUB", "1700000200.000100")]
    replies[1] = {**replies[1], "text": "Team Ebb owns the tile cache now."}  # an edited reply
    del fake.history["CPUB"][0]  # a deleted message
    normal = index(indexer, slack_source(fake, tmp_path, lookback="10000d"))
    assert (normal.updated, normal.deleted, normal.unchanged) == (0, 0, 3)  # not seen yet
    (tmp_path / "state" / "chat.json").write_text('{"full_pass_at": 0}')  # a day has passed
    full = index(indexer, slack_source(fake, tmp_path))
    assert (full.updated, full.deleted, full.unchanged) == (1, 1, 2)
