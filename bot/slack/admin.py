"""What admins do from Slack, the same whether a slash command or a Home tab button asks.

Callers check `deps.is_admin` first; these functions start the work and say what happened.
"""

from collections.abc import Callable

from slack_sdk import WebClient

from bot.model_admin import roll_back, use_version, version_lines
from bot.reindex import SourceBusyError
from bot.slack.deps import SlackDeps
from bot.slack.progress import ReindexProgress
from retrieval.errors import AjusteError
from retrieval.indexer import IndexReport

Reply = Callable[[str], None]


def reindex(
    deps: SlackDeps,
    client: WebClient,
    sources: list[str],
    *,
    channel: str,
    private: Reply,
    on_done: Callable[[], None] = lambda: None,
) -> None:
    """Re-index each source in the background, its progress edited into one message."""
    for name in sources:
        busy = deps.reindexer.busy(name)
        if busy:
            private(f"`{name}` {busy}: I'll leave that run to finish.")
            continue
        progress = ReindexProgress(client, channel=channel, source=name, private_reply=private)

        def done(
            report: IndexReport | None, error: str | None, progress: ReindexProgress = progress
        ) -> None:
            progress.done(report, error)
            on_done()

        try:
            deps.reindexer.start(name, on_done=done, on_progress=progress.progress)
        except SourceBusyError as error:
            progress.done(None, str(error))


def model_command(deps: SlackDeps, words: list[str]) -> str:
    """`list`, `use VERSION` or `rollback`, answered in one message."""
    try:
        if words[:1] == ["use"] and len(words) == 2 and words[1].lstrip("v").isdigit():
            return use_version(deps.settings, int(words[1].lstrip("v")))
        if words == ["rollback"]:
            return roll_back(deps.settings)
        if words in ([], ["list"]):
            return "```" + "\n".join(version_lines(deps.settings)) + "```"
    except AjusteError as error:
        return f":warning: {error}"
    return "Usage: `/ajuste model [list | use VERSION | rollback]`."


def start_finetune(
    deps: SlackDeps,
    client: WebClient,
    *,
    channel: str,
    user: str,
    private: Reply,
    run_args: tuple[str, ...] = (),
    on_done: Callable[[], None] = lambda: None,
) -> str:
    """Start the fine-tune job unless one runs; what to tell the admin at once."""
    started = deps.finetune.start(
        client,
        channel=channel,
        private_reply=private,
        user=user,
        run_args=run_args,
        on_done=on_done,
    )
    if not started:
        return "A fine-tune is already running: its progress is in the channel."
    return (
        "Fine-tune started in its own process: dataset, LoRA, GGUF, eval. Progress follows "
        "here; the new version is served only if it scores at least as well."
    )
