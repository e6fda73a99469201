"""The bot's state in the Qdrant server, shared by several replicas (AJUSTE_SLACK__STATE=qdrant).

The same records as the SQLite file (`bot.state`), as payload-only points of one small
collection next to the index. A message is claimed with an insert-only write of the claim's
owner, then read back: Qdrant keeps the first write of a point id, so exactly one replica
finds its own name there and answers, however the events and retries were spread. (Within a
process a lock does the same, as the embedded Qdrant applies writes without one.)
"""

import threading
import time
import uuid
import warnings
from collections.abc import Sequence
from typing import Any

from qdrant_client import QdrantClient, models

from bot.slack.state import SEEN_DAYS, AnswerRecord, FinetuneRun, Vote

_CLAIMING = threading.Lock()
NAMESPACE = uuid.UUID("5d0a3c59-8f2e-4c34-9d0b-8b7f6c1f2a10")  # ids from keys, same everywhere


def _id(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "\x1f".join(parts)))


class QdrantBotState:
    """Handled events, followed threads, answers, votes, reviews and fine-tunes in the
    collection `<index>_bot`."""

    def __init__(self, client: QdrantClient, collection: str) -> None:
        self.client = client
        self.collection = collection
        if not client.collection_exists(collection):
            client.create_collection(collection, vectors_config={})
            with warnings.catch_warnings():  # the embedded Qdrant ignores indexes, and says so
                warnings.simplefilter("ignore", UserWarning)
                for key in ("kind", "answer_id", "user"):
                    client.create_payload_index(collection, key, models.PayloadSchemaType.KEYWORD)
                client.create_payload_index(collection, "at", models.PayloadSchemaType.FLOAT)
        client.delete(
            collection,
            models.Filter(must=[_kind("seen"), _before(time.time() - SEEN_DAYS * 86400)]),
        )

    def close(self) -> None:
        """The client belongs to the index's store, which closes it."""

    def first_sight(self, *keys: str) -> bool:
        """Claim the keys; True only if none was claimed before, by any replica."""
        owner = uuid.uuid4().hex
        ids = [_id("seen", key) for key in keys]
        now = time.time()
        with _CLAIMING:
            self._put(
                [{"kind": "seen", "key": key, "owner": owner, "at": now} for key in keys],
                ids,
                update_mode=models.UpdateMode.INSERT_ONLY,
            )
            claimed = self.client.retrieve(self.collection, ids, with_payload=["owner"])
        return len(claimed) == len(ids) and all(
            (r.payload or {}).get("owner") == owner for r in claimed
        )

    def join_thread(self, channel: str, thread_ts: str) -> None:
        self._put(
            [{"kind": "thread", "channel": channel, "thread_ts": thread_ts, "at": time.time()}],
            [_id("thread", channel, thread_ts)],
        )

    def in_thread(self, channel: str, thread_ts: str) -> bool:
        return bool(self.client.retrieve(self.collection, [_id("thread", channel, thread_ts)]))

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
        record = {
            "kind": "answer",
            "answer_id": answer_id,
            "question": question,
            "answer": answer,
            "sources": list(sources),
            "model": model,
            "user": user,
            "channel": channel,
            "thread_ts": thread_ts,
            "at": time.time(),
        }
        self._put([record], [_id("answer", answer_id)])
        return answer_id

    def vote(self, answer_id: str, *, user: str, channel: str, vote: int) -> bool:
        """Record or change a user's vote; False when the answer is unknown."""
        if not self.client.retrieve(self.collection, [_id("answer", answer_id)]):
            return False
        record = {
            "kind": "vote",
            "answer_id": answer_id,
            "user": user,
            "vote": vote,
            "channel": channel,
            "at": time.time(),
        }
        self._put([record], [_id("vote", answer_id, user)])
        return True

    def votes(self) -> list[Vote]:
        votes = self._scroll(models.Filter(must=[_kind("vote")]))
        ids = list({_id("answer", str(v["answer_id"])) for v in votes})
        answers = {
            str(r.payload["answer_id"]): r.payload
            for r in self.client.retrieve(self.collection, ids)
            if r.payload
        }
        rows = [
            Vote(
                str(v["answer_id"]),
                a["question"],
                a["answer"],
                a["sources"],
                a["model"],
                str(v["user"]),
                str(v["channel"]),
                int(v["vote"]),
                float(v["at"]),
            )
            for v in votes
            if (a := answers.get(str(v["answer_id"]))) is not None
        ]
        return sorted(rows, key=lambda vote: vote.at)

    def answer(self, answer_id: str) -> AnswerRecord | None:
        found = self.client.retrieve(self.collection, [_id("answer", answer_id)])
        payloads = [r.payload for r in found if r.payload]
        return self._tallied(payloads)[0] if payloads else None

    def answers_by(self, user: str, limit: int) -> list[AnswerRecord]:
        where = models.Filter(must=[_kind("answer"), _match("user", user)])
        answers = sorted(self._scroll(where), key=lambda a: -float(a["at"]))[:limit]
        return self._tallied(answers)

    def disliked(self) -> list[AnswerRecord]:
        tally: dict[str, int] = {}
        for vote in self._scroll(models.Filter(must=[_kind("vote")])):
            tally[str(vote["answer_id"])] = tally.get(str(vote["answer_id"]), 0) + int(vote["vote"])
        reviewed = {
            str(r["answer_id"]) for r in self._scroll(models.Filter(must=[_kind("review")]))
        }
        wanted = [_id("answer", a) for a, score in tally.items() if score < 0 and a not in reviewed]
        found = self.client.retrieve(self.collection, wanted) if wanted else []
        answers = sorted((r.payload for r in found if r.payload), key=lambda a: -float(a["at"]))
        return self._tallied(answers)

    def review(self, answer_id: str, *, action: str, user: str, correction: str = "") -> bool:
        if not self.client.retrieve(self.collection, [_id("answer", answer_id)]):
            return False
        record = {
            "kind": "review",
            "answer_id": answer_id,
            "action": action,
            "user": user,
            "correction": correction,
            "at": time.time(),
        }
        self._put([record], [_id("review", answer_id)])
        return True

    def record_finetune(self, *, report: str, file_id: str | None, user: str) -> None:
        record = {"kind": "finetune", "report": report, "file_id": file_id, "user": user}
        self._put([{**record, "at": time.time()}], [_id("finetune", uuid.uuid4().hex)])

    def finetunes(self, limit: int) -> list[FinetuneRun]:
        runs = sorted(self._scroll(models.Filter(must=[_kind("finetune")])), key=lambda r: -r["at"])
        return [FinetuneRun(r["report"], r["file_id"], r["user"], r["at"]) for r in runs[:limit]]

    def _tallied(self, answers: list[dict[str, Any]]) -> list[AnswerRecord]:
        """Answer payloads as records, each with its 👍 and 👎 counted."""
        if not answers:
            return []
        ids = [str(a["answer_id"]) for a in answers]
        votes = self._scroll(models.Filter(must=[_kind("vote"), _any("answer_id", ids)]))
        return [
            AnswerRecord(
                answer_id,
                a["question"],
                a["answer"],
                a["sources"],
                a["model"],
                a["user"],
                a["channel"],
                a["thread_ts"],
                float(a["at"]),
                up=sum(1 for v in votes if v["answer_id"] == answer_id and v["vote"] > 0),
                down=sum(1 for v in votes if v["answer_id"] == answer_id and v["vote"] < 0),
            )
            for answer_id, a in zip(ids, answers, strict=True)
        ]

    def _put(
        self,
        payloads: list[dict[str, Any]],
        ids: list[str],
        *,
        update_mode: models.UpdateMode | None = None,
    ) -> None:
        points = zip(ids, payloads, strict=True)
        self.client.upsert(
            self.collection,
            [models.PointStruct(id=i, vector={}, payload=p) for i, p in points],
            wait=True,
            ordering=models.WriteOrdering.STRONG,
            update_mode=update_mode,
        )

    def _scroll(self, where: models.Filter) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        offset = None
        while True:
            records, offset = self.client.scroll(
                self.collection, scroll_filter=where, limit=256, offset=offset
            )
            found += [r.payload for r in records if r.payload]
            if offset is None:
                return found


def _kind(kind: str) -> models.FieldCondition:
    return models.FieldCondition(key="kind", match=models.MatchValue(value=kind))


def _match(key: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _any(key: str, values: list[str]) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchAny(any=values))


def _before(at: float) -> models.FieldCondition:
    return models.FieldCondition(key="at", range=models.Range(lt=at))
