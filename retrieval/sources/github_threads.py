"""GitHub threads as documents: an issue, pull request or discussion with everything said in it.

The opening section leads with what kind of thread it is and its state, so a closed issue or a
merged pull request reads as settled; comments, reviews and review comments follow, each with
who wrote it and when, review comments with the file they are about.
"""

from typing import Any

from retrieval.documents import Section


def _text(value: Any) -> str:
    return str(value or "").replace("\r\n", "\n").strip()


def _who(item: dict[str, Any], key: str = "user") -> str:
    return str((item.get(key) or {}).get("login") or "ghost")  # ghost: a deleted account


def _day(stamp: Any) -> str:
    return str(stamp or "")[:10]


def _said(header: str, body: str) -> str:
    return f"{header}:\n{body}" if body else header + "."


def thread_state(item: dict[str, Any]) -> str:
    """open, closed, closed as not planned, draft, or merged: as GitHub shows it."""
    merged = (item.get("pull_request") or {}).get("merged_at") or item.get("merged_at")
    if merged:
        return "merged"
    if item.get("state") == "closed":
        return "closed as not planned" if item.get("state_reason") == "not_planned" else "closed"
    return "draft" if item.get("draft") else "open"


def issue_document(
    repo: str,
    item: dict[str, Any],
    comments: list[dict[str, Any]],
    reviews: list[dict[str, Any]] | None = None,
    review_comments: list[dict[str, Any]] | None = None,
) -> tuple[str, list[Section]]:
    """An issue (reviews None) or a pull request, as (title, sections)."""
    pull = reviews is not None
    state = thread_state(item)
    number = item["number"]
    title = f"{repo}#{number} {_text(item.get('title'))}"
    if state != "open":
        title += f" ({'closed' if state.startswith('closed') else state})"
    labels = ", ".join(str(label.get("name")) for label in item.get("labels") or [])
    lead = (
        f"{'Pull request' if pull else 'Issue'} #{number} in {repo}. State: {state}. "
        f"Opened by {_who(item)} on {_day(item.get('created_at'))}."
        + (f" Labels: {labels}." if labels else "")
    )
    body = _text(item.get("body"))
    sections = [Section((), f"{lead}\n\n{body}" if body else lead)]
    said = [
        _said(f"{_who(c)} on {_day(c.get('created_at'))}", _text(c.get("body"))) for c in comments
    ]
    if said:
        sections.append(Section(("Comments",), "\n\n".join(said)))
    verdicts = {"APPROVED": "approved", "CHANGES_REQUESTED": "requested changes"}
    said = [
        _said(
            f"{_who(r)} {verdicts.get(str(r.get('state')), 'reviewed')} on "
            f"{_day(r.get('submitted_at'))}",
            _text(r.get("body")),
        )
        for r in reviews or []
        if _text(r.get("body")) or r.get("state") in verdicts
    ]
    if said:
        sections.append(Section(("Reviews",), "\n\n".join(said)))
    said = [
        _said(
            f"{_who(c)} on {c.get('path', '?')} ({_day(c.get('created_at'))})", _text(c.get("body"))
        )
        for c in review_comments or []
    ]
    if said:
        sections.append(Section(("Review comments",), "\n\n".join(said)))
    return title, sections


def discussion_document(
    repo: str, node: dict[str, Any], comments: list[dict[str, Any]]
) -> tuple[str, list[Section]]:
    """A discussion with its comments and their replies; the accepted answer is marked."""
    answer = (node.get("answer") or {}).get("id")
    title = f"{repo}#{node['number']} {_text(node.get('title'))}" + (
        " (answered)" if answer else ""
    )
    category = (node.get("category") or {}).get("name")
    lead = (
        f"Discussion #{node['number']} in {repo}"
        + (f", category {category}" if category else "")
        + f". State: {'answered' if answer else 'unanswered'}. Started by "
        f"{_who(node, 'author')} on {_day(node.get('createdAt'))}."
    )
    body = _text(node.get("body"))
    sections = [Section((), f"{lead}\n\n{body}" if body else lead)]
    said = []
    for comment in comments:
        mark = " (the accepted answer)" if answer and comment.get("id") == answer else ""
        header = f"{_who(comment, 'author')} on {_day(comment.get('createdAt'))}{mark}"
        said.append(_said(header, _text(comment.get("body"))))
        for reply in (comment.get("replies") or {}).get("nodes") or []:
            header = f"Reply by {_who(reply, 'author')} on {_day(reply.get('createdAt'))}"
            said.append(_said(header, _text(reply.get("body"))))
    if said:
        sections.append(Section(("Comments",), "\n\n".join(said)))
    return title, sections
