"""The bot's durable state: one SQLite file under the data dir (one replica), or the Qdrant
server (`shared_state`, several replicas), chosen by AJUSTE_SLACK__STATE (`states.open_state`).

- seen: event ids and message keys already handled, so Slack's retries get one answer;
- threads: threads the bot has answered in, where follow-ups need no mention;
- answers and votes: every answer with its question, sources and model, and 👍/👎 on it,
  kept for the fine-tune dataset (`finetune` reads this file by its schema, not this code);
- reviews: answers an admin corrected or dismissed from the Home tab's review queue;
- finetunes: the fine-tunes run from Slack, with their reports and pictures.
"""

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS threads (
    channel TEXT NOT NULL, thread_ts TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (channel, thread_ts)
);
CREATE TABLE IF NOT EXISTS answers (
    id TEXT PRIMARY KEY, question TEXT NOT NULL, answer TEXT NOT NULL,
    sources TEXT NOT NULL, model TEXT NOT NULL, user TEXT NOT NULL, channel TEXT NOT NULL,
    thread_ts TEXT, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS votes (
    answer_id TEXT NOT NULL REFERENCES answers(id), user TEXT NOT NULL,
    vote INTEGER NOT NULL CHECK (vote IN (-1, 1)), channel TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (answer_id, user)
);
CREATE TABLE IF NOT EXISTS reviews (
    answer_id TEXT PRIMARY KEY REFERENCES answers(id), action TEXT NOT NULL,
    user TEXT NOT NULL, correction TEXT NOT NULL, at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS finetunes (
    id TEXT PRIMARY KEY, report TEXT NOT NULL, file_id TEXT, user TEXT NOT NULL,
    at REAL NOT NULL
);
"""
_ANSWERS = (
    "SELECT a.id, a.question, a.answer, a.sources, a.model, a.user, a.channel, a.thread_ts, "
    "a.at, COALESCE(SUM(v.vote = 1), 0), COALESCE(SUM(v.vote = -1), 0) "
    "FROM answers a LEFT JOIN votes v ON v.answer_id = a.id "
)
SEEN_DAYS = 2  # Slack retries for minutes; two days covers any redelivery


@dataclass(frozen=True)
class Vote:
    answer_id: str
    question: str
    answer: str
    sources: list[dict[str, object]]
    model: str
    user: str
    channel: str
    vote: int
    at: float


@dataclass(frozen=True)
class AnswerRecord:
    """One recorded answer with its 👍/👎 tally, for the Home tab and the review queue."""

    answer_id: str
    question: str
    answer: str
    sources: list[dict[str, object]]
    model: str
    user: str
    channel: str
    thread_ts: str | None
    at: float
    up: int = 0
    down: int = 0


@dataclass(frozen=True)
class FinetuneRun:
    """A fine-tune started from Slack: its report and picture (a Slack file id), and who."""

    report: str
    file_id: str | None
    user: str
    at: float


class State(Protocol):
    """The bot's records, in SQLite (one replica) or in Qdrant (shared by replicas)."""

    def close(self) -> None: ...

    def first_sight(self, *keys: str) -> bool: ...

    def join_thread(self, channel: str, thread_ts: str) -> None: ...

    def in_thread(self, channel: str, thread_ts: str) -> bool: ...

    def record_answer(
        self,
        *,
        question: str,
        answer: str,
        sources: Sequence[dict[str, object]],
        model: str,
        user: str,
        channel: str,
        thread_ts: str | None,
    ) -> str: ...

    def vote(self, answer_id: str, *, user: str, channel: str, vote: int) -> bool: ...

    def votes(self) -> list[Vote]: ...

    def answer(self, answer_id: str) -> AnswerRecord | None: ...

    def answers_by(self, user: str, limit: int) -> list[AnswerRecord]: ...

    def disliked(self) -> list[AnswerRecord]:
        """The review queue: more 👎 than 👍, not yet corrected or dismissed, newest first."""
        ...

    def review(self, answer_id: str, *, action: str, user: str, correction: str = "") -> bool:
        """Take an answer off the review queue; False when the answer is unknown."""
        ...

    def record_finetune(self, *, report: str, file_id: str | None, user: str) -> None: ...

    def finetunes(self, limit: int) -> list[FinetuneRun]: ...


class BotState:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._db.execute("DELETE FROM seen WHERE at < ?", (time.time() - SEEN_DAYS * 86400,))

    def close(self) -> None:
        self._db.close()

    def first_sight(self, *keys: str) -> bool:
        """Record the keys; True only if none of them was seen before (atomic)."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                marks = ",".join("?" * len(keys))
                found = self._db.execute(
                    f"SELECT 1 FROM seen WHERE key IN ({marks})", keys
                ).fetchone()
                self._db.executemany(
                    "INSERT OR IGNORE INTO seen VALUES (?, ?)", [(k, now) for k in keys]
                )
            finally:
                self._db.execute("COMMIT")
        return found is None

    def join_thread(self, channel: str, thread_ts: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO threads VALUES (?, ?, ?)", (channel, thread_ts, time.time())
            )

    def in_thread(self, channel: str, thread_ts: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM threads WHERE channel = ? AND thread_ts = ?", (channel, thread_ts)
            ).fetchone()
        return row is not None

    def record_answer(
        self,
        *,
        question: str,
        answer: str,
        sources: Sequence[dict[str, object]],
        model: str,
        user: str,
        channel: str,
        thread_ts: str | None,
    ) -> str:
        answer_id = uuid.uuid4().hex
        with self._lock:
            self._db.execute(
                "INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    answer_id,
                    question,
                    answer,
                    json.dumps(list(sources)),
                    model,
                    user,
                    channel,
                    thread_ts,
                    time.time(),
                ),
            )
        return answer_id

    def vote(self, answer_id: str, *, user: str, channel: str, vote: int) -> bool:
        """Record or change a user's vote; False when the answer is unknown."""
        with self._lock:
            if not self._db.execute("SELECT 1 FROM answers WHERE id = ?", (answer_id,)).fetchone():
                return False
            self._db.execute(
                "INSERT INTO votes VALUES (?, ?, ?, ?, ?) ON CONFLICT (answer_id, user) "
                "DO UPDATE SET vote = excluded.vote, at = excluded.at",
                (answer_id, user, vote, channel, time.time()),
            )
        return True

    def votes(self) -> list[Vote]:
        with self._lock:
            rows = self._db.execute(
                "SELECT a.id, a.question, a.answer, a.sources, a.model, v.user, v.channel, "
                "v.vote, v.at FROM votes v JOIN answers a ON a.id = v.answer_id ORDER BY v.at"
            ).fetchall()
        return [
            Vote(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6], r[7], r[8]) for r in rows
        ]

    def answer(self, answer_id: str) -> AnswerRecord | None:
        rows = self._answers("WHERE a.id = ? GROUP BY a.id", (answer_id,))
        return rows[0] if rows else None

    def answers_by(self, user: str, limit: int) -> list[AnswerRecord]:
        return self._answers(
            "WHERE a.user = ? GROUP BY a.id ORDER BY a.at DESC LIMIT ?", (user, limit)
        )

    def disliked(self) -> list[AnswerRecord]:
        return self._answers(
            "WHERE a.id NOT IN (SELECT answer_id FROM reviews) GROUP BY a.id "
            "HAVING SUM(v.vote) < 0 ORDER BY a.at DESC",
            (),
        )

    def review(self, answer_id: str, *, action: str, user: str, correction: str = "") -> bool:
        with self._lock:
            if not self._db.execute("SELECT 1 FROM answers WHERE id = ?", (answer_id,)).fetchone():
                return False
            self._db.execute(
                "INSERT OR REPLACE INTO reviews VALUES (?, ?, ?, ?, ?)",
                (answer_id, action, user, correction, time.time()),
            )
        return True

    def record_finetune(self, *, report: str, file_id: str | None, user: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO finetunes VALUES (?, ?, ?, ?, ?)",
                (uuid.uuid4().hex, report, file_id, user, time.time()),
            )

    def finetunes(self, limit: int) -> list[FinetuneRun]:
        with self._lock:
            rows = self._db.execute(
                "SELECT report, file_id, user, at FROM finetunes ORDER BY at DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [FinetuneRun(*row) for row in rows]

    def _answers(self, where: str, arguments: tuple[object, ...]) -> list[AnswerRecord]:
        with self._lock:
            rows = self._db.execute(_ANSWERS + where, arguments).fetchall()
        return [
            AnswerRecord(
                r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6], r[7], r[8], r[9], r[10]
            )
            for r in rows
        ]
