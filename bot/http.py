"""The bot's HTTP server: Slack's events in HTTP mode, health and metrics in every mode.

/healthz says the process is alive; /readyz that the model is loaded and the index reachable
(a load balancer sends Slack's requests only to ready replicas); /metrics is for Prometheus.
"""

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt import App, BoltRequest

log = logging.getLogger(__name__)
EVENTS_PATH = "/slack/events"

Readiness = Callable[[], dict[str, bool]]


class _Handler(BaseHTTPRequestHandler):
    app: App | None
    readiness: Readiness

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/healthz":
            self._send(200, "application/json", json.dumps({"ok": True}).encode())
        elif path == "/readyz":
            checks = self.readiness()
            ready = all(checks.values())
            body = json.dumps({"ready": ready, **checks}).encode()
            self._send(200 if ready else 503, "application/json", body)
        elif path == "/metrics":
            self._send(200, CONTENT_TYPE_LATEST, generate_latest())
        else:
            self._send(404, "text/plain", b"not found")

    def do_POST(self) -> None:
        if self.app is None or self.path.split("?")[0] != EVENTS_PATH:
            self._send(404, "text/plain", b"not found")
            return
        length = int(self.headers.get("Content-Length") or 0)
        request = BoltRequest(
            body=self.rfile.read(length).decode("utf-8"),
            query=self.path.partition("?")[2],
            headers={k.lower(): [v] for k, v in self.headers.items()},
        )
        response = self.app.dispatch(request)
        payload = response.body.encode("utf-8")
        self.send_response(response.status)
        for name, values in response.headers.items():
            for value in values:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _send(self, status: int, content_type: str, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("http: " + format, *args)


def http_server(
    host: str, port: int, *, readiness: Readiness, app: App | None = None
) -> ThreadingHTTPServer:
    """Serve health and metrics, and Slack's requests at /slack/events when `app` is given."""
    handler = type("AjusteHandler", (_Handler,), {"app": app, "readiness": staticmethod(readiness)})
    return ThreadingHTTPServer((host, port), handler)


def serve_in_background(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    return thread
