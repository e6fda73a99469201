"""A fake Slack on loopback: the Web API over HTTP and Socket Mode over a websocket.

Like Bolt's own test suite, it answers the methods the bot calls, records every call, and lets
a test script failures (an error for a method, a 429 with Retry-After).
"""

import itertools
import json
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from tests.loopback import LoopbackServer, QuietHandler, send_json

BOT_USER = "UBOT"
TEAM = "T0TEAM"


class FakeSlack:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.errors: dict[str, str] = {}  # method → Slack error to answer with
        self.rate_limited: dict[str, int] = {}  # method → 429s to answer before succeeding
        self.replies: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.history: dict[str, list[dict[str, Any]]] = {}  # channel → messages, newest first
        self.channels: dict[str, dict[str, Any]] = {}  # channel → conversations.info
        self.users: dict[str, str] = {}  # user → real name
        self.uploads: dict[str, bytes] = {}  # file id → the bytes sent to its upload URL
        self.page_size = 1000  # a test lowers it to exercise pagination
        self.socket_url = ""
        self._ts = itertools.count(1)
        self._condition = threading.Condition()
        handler = type("Handler", (_Handler,), {"fake": self})
        self.server = LoopbackServer(handler)
        self.url = self.server.url

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    def response_url(self, name: str) -> str:
        return f"{self.url}/response/{name}"

    def close(self) -> None:
        self.server.close()

    def record(self, method: str, params: dict[str, Any]) -> None:
        with self._condition:
            self.calls.append((method, params))
            self._condition.notify_all()

    def reset(self) -> None:
        with self._condition:
            self.calls.clear()
        self.errors.clear()
        self.rate_limited.clear()

    def called(self, method: str) -> list[dict[str, Any]]:
        with self._condition:
            return [params for name, params in self.calls if name == method]

    def wait_for(self, predicate: Callable[["FakeSlack"], bool], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        with self._condition:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    names = [name for name, _ in self.calls]
                    raise AssertionError(f"timed out; calls so far: {names}")
                self._condition.wait(min(left, 0.5))

    def _page(self, items: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
        """Cursor pagination, as Slack's history methods do."""
        start = int(params.get("cursor") or 0)
        end = start + min(self.page_size, int(params.get("limit") or 100))
        cursor = str(end) if end < len(items) else ""
        return {
            "ok": True,
            "messages": items[start:end],
            "has_more": bool(cursor),
            "response_metadata": {"next_cursor": cursor},
        }

    def answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method in self.errors:
            return {"ok": False, "error": self.errors[method]}
        if method == "auth.test":
            return {
                "ok": True,
                "user_id": BOT_USER,
                "bot_id": "BBOT",
                "team_id": TEAM,
                "user": "ajuste",
                "team": "Kestrel",
                "url": "https://kestrel.slack.com/",
            }
        if method in ("chat.postMessage", "chat.startStream"):
            return {
                "ok": True,
                "channel": params.get("channel"),
                "ts": f"1700.{next(self._ts):06d}",
            }
        if method == "conversations.replies":
            key = (params.get("channel", ""), params.get("ts", ""))
            return self._page(self.replies.get(key, []), params)
        if method == "conversations.history":
            oldest = float(params.get("oldest") or 0)
            messages = [
                m for m in self.history.get(params["channel"], []) if float(m["ts"]) > oldest
            ]
            return self._page(messages, params)
        if method == "conversations.info":
            info = self.channels.get(params["channel"])
            return (
                {"ok": True, "channel": info}
                if info
                else {"ok": False, "error": "channel_not_found"}
            )
        if method == "users.info":
            name = self.users.get(params["user"])
            if name is None:
                return {"ok": False, "error": "user_not_found"}
            return {
                "ok": True,
                "user": {"id": params["user"], "name": name.lower(), "real_name": name},
            }
        if method == "files.getUploadURLExternal":
            file_id = f"F{next(self._ts):06d}"
            return {"ok": True, "file_id": file_id, "upload_url": f"{self.url}/upload/{file_id}"}
        if method == "files.completeUploadExternal":
            files = [
                {**f, "permalink": f"https://kestrel.slack.com/files/{BOT_USER}/{f['id']}/picture"}
                for f in params["files"]
            ]
            return {"ok": True, "files": files}
        if method in ("views.publish", "views.open"):
            return {"ok": True, "view": {"id": f"V{next(self._ts):06d}", **params["view"]}}
        if method == "apps.connections.open":
            return {"ok": True, "url": self.socket_url}
        return {"ok": True}


class _Handler(QuietHandler):
    fake: FakeSlack

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/upload/"):  # files_upload_v2's second step: the bytes
            file_id = self.path.rsplit("/", 1)[1]
            self.fake.uploads[file_id] = raw
            self.fake.record("upload", {"file_id": file_id, "length": len(raw)})
            self._reply(200, {"ok": True})
            return
        body = raw.decode()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            params = json.loads(body or "{}")
        else:
            params = dict(parse_qsl(body))
        for key in ("blocks", "prompts", "view", "files"):
            if isinstance(params.get(key), str):
                params[key] = json.loads(params[key])
        if self.path.startswith("/response/"):
            self.fake.record("response_url:" + self.path.rsplit("/", 1)[1], params)
            self._reply(200, {"ok": True})
            return
        method = self.path.removeprefix("/api/")
        if self.fake.rate_limited.get(method):
            self.fake.rate_limited[method] -= 1
            self.fake.record(method + ":429", params)
            self._reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"})
            return
        answer = self.fake.answer(method, params)
        if "ts" in answer:
            params["_ts"] = answer["ts"]  # the new message's ts, for tests to follow it
        self.fake.record(method, params)
        self._reply(200, answer)

    def _reply(self, status: int, data: dict[str, Any], headers: dict[str, str] | None = None):
        send_json(self, status, data, headers, content_type="application/json")
