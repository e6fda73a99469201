"""A fake Socket Mode endpoint: a real websocket server speaking Slack's envelope protocol."""

import json
import queue
import threading
import uuid
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve


class FakeSocketMode:
    def __init__(self) -> None:
        self.outbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self.acks: dict[str, dict[str, Any]] = {}
        self._acked = threading.Condition()
        self.server = serve(self._session, "127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}/link"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()

    def send(self, kind: str, payload: dict[str, Any]) -> str:
        envelope_id = uuid.uuid4().hex
        self.outbox.put(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": kind != "events_api",
                "retry_attempt": 0,
                "retry_reason": "",
            }
        )
        return envelope_id

    def ack_for(self, envelope_id: str, timeout: float = 30) -> dict[str, Any]:
        with self._acked:
            if not self._acked.wait_for(lambda: envelope_id in self.acks, timeout):
                raise AssertionError(f"no ack for {envelope_id}")
            return self.acks[envelope_id]

    def _session(self, connection: ServerConnection) -> None:
        connection.send(json.dumps({"type": "hello", "num_connections": 1}))
        reader = threading.Thread(target=self._read_acks, args=(connection,), daemon=True)
        reader.start()
        while reader.is_alive():
            try:
                envelope = self.outbox.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                connection.send(json.dumps(envelope))
            except ConnectionClosed:
                return

    def _read_acks(self, connection: ServerConnection) -> None:
        try:
            for message in connection:
                data = json.loads(message)
                if "envelope_id" in data:
                    with self._acked:
                        self.acks[data["envelope_id"]] = data
                        self._acked.notify_all()
        except ConnectionClosed:
            return
