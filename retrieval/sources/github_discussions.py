"""GitHub Discussions, which only GraphQL serves: the listing, later comments, the version.

The listing carries each discussion with its first 50 comments (and their first 50 replies), so
a discussion with fewer costs no request beyond the listing even when it changed.
"""

import hashlib
import json
from datetime import datetime
from typing import Any

from retrieval.sources.github_api import GithubApi, updated_since
from retrieval.sources.rest import NotFoundError

_COMMENT = """
fragment CommentParts on DiscussionComment {
  id body createdAt author { login }
  replies(first: 50) { nodes { body createdAt author { login } } }
}"""
DISCUSSIONS_QUERY = (
    """
query($owner: String!, $name: String!, $cursor: String) {
  repository(owner: $owner, name: $name) {
    discussions(first: 50, after: $cursor, orderBy: {field: UPDATED_AT, direction: DESC}) {
      pageInfo { hasNextPage endCursor }
      nodes {
        number title url updatedAt createdAt body
        author { login } category { name } answer { id }
        comments(first: 50) {
          totalCount pageInfo { hasNextPage endCursor } nodes { ...CommentParts }
        }
      }
    }
  }
}"""
    + _COMMENT
)
MORE_COMMENTS_QUERY = (
    """
query($owner: String!, $name: String!, $number: Int!, $cursor: String) {
  repository(owner: $owner, name: $name) {
    discussion(number: $number) {
      comments(first: 50, after: $cursor) {
        pageInfo { hasNextPage endCursor } nodes { ...CommentParts }
      }
    }
  }
}"""
    + _COMMENT
)


def list_discussions(api: GithubApi, repo: str, cutoff: datetime | None) -> list[dict[str, Any]]:
    """Every discussion updated since `cutoff` (all when None), most recently updated first."""
    owner, name = repo.split("/")
    nodes: list[dict[str, Any]] = []
    cursor = None
    while True:
        data = api.graphql(
            DISCUSSIONS_QUERY,
            {"owner": owner, "name": name, "cursor": cursor},
            f"the discussions of {repo}",
        )
        connection = (data.get("repository") or {}).get("discussions") or {}
        page = [node for node in connection.get("nodes") or [] if node]
        fresh = [node for node in page if updated_since(node["updatedAt"], cutoff)]
        nodes += fresh
        more = connection.get("pageInfo") or {}
        if len(fresh) < len(page) or not more.get("hasNextPage"):
            return nodes
        cursor = more.get("endCursor")


def discussion_comments(api: GithubApi, repo: str, node: dict[str, Any]) -> list[dict[str, Any]]:
    """The comments the listing carried, and any beyond its first page."""
    connection = node.get("comments") or {}
    comments = [c for c in connection.get("nodes") or [] if c]
    more = connection.get("pageInfo") or {}
    owner, name = repo.split("/")
    while more.get("hasNextPage"):
        data = api.graphql(
            MORE_COMMENTS_QUERY,
            {"owner": owner, "name": name, "number": node["number"], "cursor": more["endCursor"]},
            f"the comments of discussion #{node['number']} in {repo}",
        )
        discussion = (data.get("repository") or {}).get("discussion")
        if discussion is None:
            raise NotFoundError(f"discussion #{node['number']} in {repo} is gone")
        connection = discussion.get("comments") or {}
        comments += [c for c in connection.get("nodes") or [] if c]
        more = connection.get("pageInfo") or {}
    return comments


def discussion_version(node: dict[str, Any]) -> str:
    """updatedAt, and a digest of the listed comments: a new reply may not move updatedAt."""
    comments = json.dumps(node.get("comments"), sort_keys=True).encode()
    return f"{node['updatedAt']}/{hashlib.sha256(comments).hexdigest()[:12]}"
