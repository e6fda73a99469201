"""Pure pieces of the Slack front end: mrkdwn, long answers, mentions, durable state."""

from pathlib import Path

from bot.console import format_sources
from bot.engine.answer import Answer, SourceRef
from bot.engine.evidence import Evidence
from bot.slack.answering import evidence_block, strip_mentions
from bot.slack.mrkdwn import to_mrkdwn
from bot.slack.reply import SECTION_LIMIT, text_blocks
from bot.slack.state import BotState


def test_markdown_becomes_mrkdwn():
    markdown = (
        "# Rotating keys\n"
        "The **key** is *valid* for ~~60~~ 90 days; see [the guide](https://wiki.example/vpn).\n"
        "- step one\n* step two\n"
        "Compare a < b & c.\n"
        "```bash\nkvpn rotate **literally** <x>\n```\n"
        "Run `kvpn --help`."
    )
    assert to_mrkdwn(markdown) == (
        "*Rotating keys*\n"
        "The *key* is _valid_ for ~60~ 90 days; see <https://wiki.example/vpn|the guide>.\n"
        "• step one\n• step two\n"
        "Compare a &lt; b &amp; c.\n"
        "```\nkvpn rotate **literally** &lt;x&gt;\n```\n"
        "Run `kvpn --help`."
    )


def test_a_long_answer_is_split_into_sections_at_line_breaks():
    paragraph = "word " * 100
    text = "\n\n".join([paragraph.strip()] * 15)
    blocks = text_blocks(text)
    assert len(blocks) > 1
    assert all(len(b["text"]["text"]) <= SECTION_LIMIT for b in blocks)
    assert " ".join(b["text"]["text"] for b in blocks).split() == text.split()


def test_mentions_are_stripped_from_questions():
    assert strip_mentions("<@U123ABC> how do I <@W9|bob> rotate?") == "how do I rotate?"


def test_state_remembers_events_threads_and_votes_across_restarts(tmp_path: Path):
    path = tmp_path / "bot.sqlite3"
    state = BotState(path)
    assert state.first_sight("event:Ev1", "message:C1:1.1")
    assert not state.first_sight("event:Ev1")  # a retry
    assert not state.first_sight("event:Ev2", "message:C1:1.1")  # same message, other event
    state.join_thread("C1", "1.1")
    answer = state.record_answer(
        question="q",
        answer="a",
        sources=[{"n": 1}],
        model="m",
        user="U1",
        channel="C1",
        thread_ts="1.1",
    )
    assert state.vote(answer, user="U2", channel="C1", vote=1)
    assert state.vote(answer, user="U2", channel="C1", vote=-1)  # changed their mind
    assert not state.vote("unknown", user="U2", channel="C1", vote=1)
    state.close()

    reopened = BotState(path)
    assert reopened.in_thread("C1", "1.1") and not reopened.in_thread("C1", "2.2")
    assert not reopened.first_sight("event:Ev1")
    [vote] = reopened.votes()
    assert (vote.question, vote.answer, vote.vote, vote.sources) == ("q", "a", -1, [{"n": 1}])


def quoting_on_call(
    question: str, text: str, unsupported: tuple[str, ...] = (), disputed: tuple[str, ...] = ()
) -> Answer:
    """An answer quoting the secondary's pay row (its support) and the primary's (the closest)."""
    support = Evidence(1, "On-call", "/kb/oncall.md", "| Secondary on-call | EUR 120 per week |")
    row = "| Primary on-call | EUR 250 per week |"
    closest = Evidence(1, "On-call", "/kb/oncall.md", row, focus=True)
    source = SourceRef(1, "On-call", "/kb/oncall.md")
    return Answer(
        question,
        text,
        [source],
        "model",
        evidence=[support, closest],
        unsupported=list(unsupported),
        disputed=list(disputed),
    )


def test_figures_the_quotes_do_not_hold_are_flagged_in_slack_and_the_console():
    answer = quoting_on_call(
        "How much is the primary on-call paid?",
        "EUR 120 per week, plus 2 days off [1].",
        unsupported=("2",),
        disputed=("120",),
    )
    block = evidence_block(answer)
    assert block is not None
    slack = block["text"]["text"]
    assert ":warning: *2* is not in the sources" in slack
    assert "The sentence closest to your question (marked) doesn't say *120*" in slack
    # the closest sentence is marked, so the reader knows which of the two quotes is meant
    link = "> — [1] On-call — `/kb/oncall.md`"
    assert f"> | Secondary on-call | EUR 120 per week |\n{link}\n" in slack
    assert slack.endswith(
        f"> | Primary on-call | EUR 250 per week |\n{link} · _closest to your question_"
    )
    console = format_sources(answer)
    assert "Check this: 2 is not in the sources." in console
    assert "Check this: the sentence closest to the question (marked) doesn't say 120." in console
    assert '  [1] "| Secondary on-call | EUR 120 per week |"\n' in console
    assert '"| Primary on-call | EUR 250 per week |" ← closest to the question' in console
    answer.unsupported = answer.disputed = []
    assert "Check this" not in format_sources(answer)
    assert "closest" not in format_sources(answer)  # no mark without a warning
    assert "closest" not in evidence_block(answer)["text"]["text"]
    assert "Evidence:" in format_sources(answer)
    answer.evidence[1] = Evidence(2, "Pay", "/kb/pay.md", "Paid monthly.", focus=True)
    sources = format_sources(answer).split("Sources:\n")[1]  # [2] is quoted, not cited
    assert sources == "  [1] On-call — /kb/oncall.md\n  [2] Pay — /kb/pay.md (quoted, not cited)"


def test_under_a_refusal_the_quote_is_labelled_the_closest_the_sources_come():
    refusal = quoting_on_call(
        "How much is weekend standby paid?", "I don't know: the sources don't say."
    )
    assert refusal.declines
    refusal.evidence = refusal.evidence[1:]  # under a refusal, the closest sentence alone
    block = evidence_block(refusal)
    assert block is not None
    assert block["text"]["text"].startswith("The closest the sources come:\n> | Primary on-call")
    console = format_sources(refusal)
    assert "Closest in the sources:" in console and "Evidence:" not in console
