"""Texts for /ajuste help and status, and the re-index summary."""

from typing import TYPE_CHECKING, Any

from retrieval.indexer import IndexReport

if TYPE_CHECKING:
    from bot.services import Services


def help_text(admin: bool) -> str:
    lines = [
        "*Ajuste* answers questions from the team's documents, with sources.",
        "• Mention me in a channel, `@Ajuste how do I …?`, and I answer in a thread. Reply in "
        "that thread to follow up; no need to mention me again.",
        "• Send me a direct message, or use my assistant pane.",
        "• `/ask QUESTION` answers privately; `/ask QUESTION --public` answers in the channel.",
        "• 👍/👎 under an answer tells the admins what works.",
        "• `/ajuste status` shows the model, the index and the last re-index.",
        "• My *Home* tab (click Ajuste in the sidebar) lists your recent questions.",
    ]
    if admin:
        lines += [
            "• Admins: `/reindex [SOURCE]` re-indexes now (every source by default).",
            "• Admins: `/ajuste model [list | use VERSION | rollback]` chooses the served model.",
            "• Admins: `/ajuste finetune [steps N]` trains a new version from the curated "
            "examples and 👍 answers, and serves it if it scores at least as well.",
            "• Admins: the Home tab also shows the model, the index, the fine-tunes and the "
            "review queue of 👎 answers, where a correction becomes a training example.",
        ]
    return "\n".join(lines)


def reindex_summary(source: str, report: IndexReport | None, error: str | None) -> str:
    if report is None:
        return f":warning: Re-indexing `{source}` failed: {error}. The previous index is kept."
    text = (
        f":white_check_mark: Re-indexed `{source}` in {report.seconds:.1f} s: "
        f"{report.added} added, {report.updated} updated, {report.deleted} deleted, "
        f"{report.unchanged} unchanged, {report.failed} skipped."
    )
    if report.problems:
        text += "\nSkipped: " + "; ".join(report.problems[:5])
    return text


def status_blocks(services: "Services") -> list[dict[str, Any]]:
    documents = services.store.count_documents()
    chunks = services.store.count_chunks()
    engine = services.engine
    runs = services.runs.all()
    lines = [
        f"*Model:* {engine.name} (context {engine.n_ctx} tokens)",
        f"*Index:* {documents} documents, {chunks} chunks",
        f"*Queue:* {engine.turns.waiting} waiting",
    ]
    for name, run in sorted(runs.items()):
        lines.append(f"*{name}:* {run.summary()}")
    if not runs:
        lines.append("*Sources:* nothing indexed yet")
    return [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}]
