"""The App Home tab through the real Bolt app and the fake Slack on loopback: what a user and
an admin see, the review queue (Correct → modal → curated example → dataset; Dismiss), the
admin buttons, and crafted admin actions from a non-admin."""

import json
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main as ajuste
from bot.slack.answering import VOTE_DOWN
from bot.slack.finetune_job import FinetuneJob
from bot.slack.home_blocks import FINETUNE, REINDEX, ROLLBACK, USE_VERSION
from bot.slack.review import CORRECT, CORRECTION_VIEW, DISMISS
from tests.fake_slack import FakeSlack
from tests.slack_helpers import click, home_click, home_opened, submit_view, ts
from tests.test_slack import Bot, bot  # noqa: F401  (the module-scoped bot fixture)

SOURCES = [
    {"n": n, "title": title, "location": f"/k/{title}", "text": text, "cited": n == 1}
    for n, title, text in [
        (1, "it-and-vpn.md", "VPN keys last 90 days."),
        (2, "security-policy.md", "Passwords need 14 characters."),
    ]
]


@pytest.fixture(autouse=True)
def _fresh(bot: Bot) -> None:  # noqa: F811
    bot.fake.reset()


def disliked(bot: Bot, question: str, *, user: str = "U7", thread: str | None = None) -> str:  # noqa: F811
    """An answer recorded as the bot records it, then rated 👎 by two people through Slack."""
    answer_id = bot.deps.answerer.state.record_answer(
        question=question, answer="Passwords need 8 characters [2].", sources=SOURCES,
        model="m", user=user, channel="C1", thread_ts=thread or ts(),
    )  # fmt: skip
    for voter in ("U2", "U3"):
        click(bot.events, VOTE_DOWN, answer_id, user=voter, channel="C1",
              response_url=bot.fake.response_url("v"))  # fmt: skip
    return answer_id


def home(bot: Bot, user: str) -> list[dict[str, Any]]:  # noqa: F811
    """Open the Home tab as `user`; the blocks the bot published for them."""
    bot.fake.reset()
    assert home_opened(bot.events, user)[0] == 200
    bot.fake.wait_for(lambda f: bool(f.called("views.publish")), timeout=20)
    [published] = bot.fake.called("views.publish")
    assert published["user_id"] == user and published["view"]["type"] == "home"
    blocks = published["view"]["blocks"]
    assert len(blocks) <= 100 and all(len(json.dumps(b)) < 4000 for b in blocks)
    return blocks


def texts(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def action_ids(blocks: list[dict[str, Any]]) -> list[str]:
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


def messages_to(fake: FakeSlack, user: str) -> list[str]:
    return [c["text"] for c in fake.called("chat.postMessage") if c["channel"] == user]


def test_a_user_sees_what_ajuste_does_and_their_own_questions(bot: Bot):  # noqa: F811
    mine = bot.deps.answerer.state.record_answer(
        question="How long is a VPN key valid?", answer="90 days [1].", sources=SOURCES,
        model="m", user="U7", channel="C1", thread_ts="1700000001.000100",
    )  # fmt: skip
    assert mine
    blocks = home(bot, "U7")
    shown = texts(blocks)
    assert "/ask QUESTION" in shown and "Your recent questions" in shown
    link = "<https://kestrel.slack.com/archives/C1/p1700000001000100|How long is a VPN key valid?>"
    assert link in shown
    assert "Review queue" not in shown and "/reindex" not in shown
    assert not {REINDEX, FINETUNE, CORRECT, DISMISS} & set(action_ids(blocks))


def test_an_admin_sees_the_model_the_index_the_queue_and_the_fine_tunes(bot: Bot):  # noqa: F811
    answer_id = disliked(bot, "What is the minimum password length?", thread="1700000002.000200")
    blocks = home(bot, "UADMIN")
    shown = texts(blocks)
    for title in ("Model", "Index", "Review queue", "Fine-tunes"):
        assert {"type": "header", "text": {"type": "plain_text", "text": title}} in blocks or (
            f'"{title} (' in shown
        )
    assert "the default model (grounded)" in shown
    assert "documents" in shown and "*files:* ok at" in shown
    assert "What is the minimum password length?" in shown and "👎 2 · 👍 0" in shown
    assert "[1] it-and-vpn.md, [2] security-policy.md" in shown
    assert "archives/C1/p1700000002000200|thread" in shown
    [review] = [b for b in blocks if b.get("block_id") == f"review_{answer_id}"]
    assert [(e["action_id"], e["value"]) for e in review["elements"]] == [
        (CORRECT, answer_id),
        (DISMISS, answer_id),
    ]
    assert {REINDEX, FINETUNE} <= set(action_ids(blocks))


def test_a_long_queue_stays_inside_slacks_limits(bot: Bot):  # noqa: F811
    for number in range(14):
        disliked(bot, f"Question number {number}? " + "x" * 4000)
    blocks = home(bot, "UADMIN")
    assert any("… and" in texts([b]) and "more" in texts([b]) for b in blocks)
    for block in blocks:
        text = (block.get("text") or {}).get("text", "")
        assert len(text) <= 3000
    for answer_id in [r.answer_id for r in bot.deps.answerer.state.disliked()]:
        bot.deps.answerer.state.review(answer_id, action="dismissed", user="UADMIN")


def test_correct_becomes_a_curated_example_in_the_next_dataset_build(bot: Bot):  # noqa: F811
    thread = ts()
    answer_id = disliked(bot, "How many characters must a password have?", thread=thread)
    assert home_click(bot.events, CORRECT, answer_id, user="UADMIN")[0] == 200
    bot.fake.wait_for(lambda f: bool(f.called("views.open")), timeout=20)
    [opened] = bot.fake.called("views.open")
    modal = opened["view"]
    assert modal["callback_id"] == CORRECTION_VIEW and modal["private_metadata"] == answer_id
    assert opened["trigger_id"].startswith("tr")
    [sources] = [b for b in modal["blocks"] if b.get("block_id") == "sources"]
    assert [o["value"] for o in sources["element"]["options"]] == ["1", "2"]

    def submit(text: str, view: dict[str, Any] = modal, **more: Any) -> tuple[int, str]:
        values = {"correction": {"text": {"type": "plain_text_input", "value": text}}, **more}
        return submit_view(bot.events, view, values, user="UADMIN")

    for bad, said in [
        ("   ", "Write the right answer"),
        ("x" * 4001, "4,001 characters: keep it under 4,000"),
    ]:
        status, body = submit(bad)
        assert status == 200 and json.loads(body) == {
            "response_action": "errors",
            "errors": {"correction": json.loads(body)["errors"]["correction"]},
        }
        assert said in json.loads(body)["errors"]["correction"]
    status, body = submit("Fourteen.", {**modal, "private_metadata": "no-such-answer"})
    assert "no longer exists" in json.loads(body)["errors"]["correction"]
    curated = bot.deps.settings.data_dir / "finetune" / "curated" / "corrections.jsonl"
    assert not curated.exists()

    picked = {"picked": {"type": "checkboxes", "selected_options": [{"value": "2"}]}}
    posted = {"post": {"type": "checkboxes", "selected_options": [{"value": "yes"}]}}
    right = "A password needs at least 14 characters [1]."
    status, body = submit(right, sources=picked, post=posted)
    assert status == 200 and body == ""
    bot.fake.wait_for(lambda f: bool(f.called("views.publish")), timeout=20)
    [line] = curated.read_text().splitlines()
    assert json.loads(line) == {
        "question": "How many characters must a password have?",
        "answer": right,
        "sources": [{"title": "security-policy.md", "text": "Passwords need 14 characters."}],
    }
    [in_thread] = [c for c in bot.fake.called("chat.postMessage") if c.get("thread_ts") == thread]
    assert in_thread["channel"] == "C1" and "Correction* by <@UADMIN>" in in_thread["text"]
    assert right in in_thread["text"]
    assert answer_id not in {r.answer_id for r in bot.deps.answerer.state.disliked()}
    assert answer_id not in texts(bot.fake.called("views.publish")[-1]["view"]["blocks"])

    data = bot.deps.settings.data_dir
    assert ajuste(["--data-dir", str(data), "finetune", "dataset", "build"]) == 0
    dataset = data / "finetune" / "dataset"
    chats = [
        json.loads(line)["messages"]
        for name in ("train.jsonl", "eval.jsonl")
        for line in (dataset / name).read_text().splitlines()
    ]
    [chat] = [c for c in chats if c[-1]["content"] == right]
    assert chat[-2]["content"] == (
        "Sources:\n\n[1] security-policy.md\nPasswords need 14 characters.\n\n"
        "Question: How many characters must a password have?"
    )


def test_dismiss_takes_an_answer_off_the_queue(bot: Bot):  # noqa: F811
    answer_id = disliked(bot, "Is the office open on Sundays?")
    assert answer_id in {r.answer_id for r in bot.deps.answerer.state.disliked()}
    home_click(bot.events, DISMISS, answer_id, user="UADMIN")
    bot.fake.wait_for(lambda f: bool(f.called("views.publish")), timeout=20)
    assert answer_id not in {r.answer_id for r in bot.deps.answerer.state.disliked()}
    assert answer_id not in texts(bot.fake.called("views.publish")[-1]["view"]["blocks"])
    home_click(bot.events, CORRECT, "no-such-answer", user="UADMIN")
    bot.fake.wait_for(lambda f: bool(messages_to(f, "UADMIN")), timeout=20)
    assert "no longer exists" in messages_to(bot.fake, "UADMIN")[0]
    assert not bot.fake.called("views.open")


def test_crafted_admin_actions_from_a_non_admin_change_nothing(bot: Bot):  # noqa: F811
    answer_id = disliked(bot, "Who approves expenses?")
    registry = bot.deps.settings.registry_dir / "registry.json"
    before = registry.read_text() if registry.exists() else None
    clicks = [(REINDEX, ""), (FINETUNE, ""), (ROLLBACK, ""), (CORRECT, answer_id),
              (DISMISS, answer_id)]  # fmt: skip
    for action_id, value in clicks:
        assert home_click(bot.events, action_id, value, user="U1")[0] == 200
    assert home_click(bot.events, USE_VERSION, user="U1", selected="1")[0] == 200
    bot.fake.wait_for(lambda f: len(messages_to(f, "U1")) == 6, timeout=20)
    assert all(text.startswith("Only Ajuste admins can") for text in messages_to(bot.fake, "U1"))
    view = {"callback_id": CORRECTION_VIEW, "private_metadata": answer_id, "type": "modal"}
    values = {"correction": {"text": {"type": "plain_text_input", "value": "Nobody."}}}
    status, body = submit_view(bot.events, view, values, user="U1")
    assert status == 200 and "Only Ajuste admins" in json.loads(body)["errors"]["correction"]
    assert answer_id in {r.answer_id for r in bot.deps.answerer.state.disliked()}
    curated = bot.deps.settings.data_dir / "finetune" / "curated" / "corrections.jsonl"
    assert "Nobody." not in (curated.read_text() if curated.exists() else "")
    assert not bot.fake.called("views.open") and not bot.fake.called("views.publish")
    assert not bot.deps.finetune.running and not bot.deps.reindexer.busy("files")
    assert (registry.read_text() if registry.exists() else None) == before
    assert not [c for c in bot.fake.called("chat.postMessage") if c["channel"] != "U1"]


def test_admin_buttons_take_the_slash_command_paths(bot: Bot, tmp_path: Path):  # noqa: F811
    home_click(bot.events, ROLLBACK, user="UADMIN")
    home_click(bot.events, USE_VERSION, user="UADMIN", selected="9")
    bot.fake.wait_for(lambda f: len(messages_to(f, "UADMIN")) == 2, timeout=20)
    said = " ".join(messages_to(bot.fake, "UADMIN"))
    assert "Nothing to roll back" in said and "No model version 9" in said

    bot.fake.reset()
    home_click(bot.events, REINDEX, user="UADMIN")

    def summarised(fake: FakeSlack) -> bool:
        return any("Re-indexed `files`" in c.get("text", "") for c in fake.called("chat.update"))

    bot.fake.wait_for(summarised, timeout=60)
    [posted] = [c for c in bot.fake.called("chat.postMessage") if "Re-indexing" in c["text"]]
    assert posted["channel"] == "UADMIN"  # the admin's Messages tab with the bot
    bot.fake.wait_for(lambda f: bool(f.called("views.publish")), timeout=20)

    job = bot.deps.finetune
    bot.deps.finetune = FinetuneJob(tmp_path, bot.deps.answerer.state)  # no examples: it fails
    try:
        bot.fake.reset()
        home_click(bot.events, FINETUNE, user="UADMIN")
        bot.fake.wait_for(lambda f: any("failed" in c["text"] for c in f.called("chat.update")))
        bot.fake.wait_for(
            lambda f: any(
                "No training examples" in texts(c["view"]["blocks"])
                for c in f.called("views.publish")
            ),
            timeout=20,
        )
    finally:
        bot.deps.finetune = job
    assert any("Fine-tune started" in text for text in messages_to(bot.fake, "UADMIN"))
    [run] = bot.deps.answerer.state.finetunes(1)
    assert "No training examples" in run.report and run.user == "UADMIN"
    after = bot.fake.called("views.publish")[-1]["view"]["blocks"]
    assert "No training examples" in texts(after)
    assert FINETUNE in action_ids(after)  # the job is over: the button is back
