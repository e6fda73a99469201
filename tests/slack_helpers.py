"""Delivering real signed Slack requests to the bot's HTTP mode."""

import json
import time
import urllib.error
import urllib.request
from itertools import count
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from tests.fake_slack import TEAM

SECRET = "test-signing-secret"
_ids = count(1)


def signed_post(
    url: str,
    body: str,
    content_type: str,
    *,
    secret: str = SECRET,
    age: int = 0,
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    timestamp = str(int(time.time()) - age)
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    request = urllib.request.Request(
        url,
        data=body.encode(),
        headers={
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": signature,
            **(headers or {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def event(url: str, payload: dict[str, Any], *, event_id: str | None = None, **kw: Any):
    envelope = {
        "token": "legacy",
        "team_id": TEAM,
        "api_app_id": "A0APP",
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_ids):05d}",
        "event_time": int(time.time()),
        "event": payload,
    }
    return signed_post(url, json.dumps(envelope), "application/json", **kw)


def command(url: str, name: str, text: str, *, user: str, channel: str, response_url: str):
    form = {
        "command": name,
        "text": text,
        "user_id": user,
        "channel_id": channel,
        "team_id": TEAM,
        "response_url": response_url,
        "trigger_id": f"tr{next(_ids)}",
        "api_app_id": "A0APP",
        "token": "legacy",
    }
    return signed_post(url, urlencode(form), "application/x-www-form-urlencoded")


def click(url: str, action_id: str, value: str, *, user: str, channel: str, response_url: str):
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM},
        "user": {"id": user},
        "api_app_id": "A0APP",
        "channel": {"id": channel},
        "container": {"type": "message", "channel_id": channel, "message_ts": "1700.1"},
        "trigger_id": f"tr{next(_ids)}",
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "ajuste_feedback",
                "value": value,
                "action_ts": str(time.time()),
            }
        ],
    }
    return signed_post(
        url, urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded"
    )


def ts() -> str:
    return f"{int(time.time())}.{next(_ids):06d}"


def home_opened(url: str, user: str) -> tuple[int, str]:
    return event(
        url, {"type": "app_home_opened", "user": user, "channel": "D" + user, "tab": "home"}
    )


def home_click(
    url: str, action_id: str, value: str = "", *, user: str, selected: str | None = None
) -> tuple[int, str]:
    """A button (or, with `selected`, a menu choice) pressed on the Home tab."""
    action: dict[str, Any] = {"action_id": action_id, "block_id": "b", "action_ts": ts()}
    if selected is None:
        action |= {"type": "button", "value": value}
    else:
        option = {"text": {"type": "plain_text", "text": selected}, "value": selected}
        action |= {"type": "static_select", "selected_option": option}
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM},
        "user": {"id": user},
        "api_app_id": "A0APP",
        "container": {"type": "view", "view_id": "VHOME"},
        "view": {"id": "VHOME", "type": "home"},
        "trigger_id": f"tr{next(_ids)}",
        "actions": [action],
    }
    return signed_post(
        url, urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded"
    )


def submit_view(url: str, view: dict[str, Any], values: dict[str, Any], *, user: str):
    """A modal submitted with these input values (block id → action id → value)."""
    payload = {
        "type": "view_submission",
        "team": {"id": TEAM},
        "user": {"id": user},
        "api_app_id": "A0APP",
        "trigger_id": f"tr{next(_ids)}",
        "view": {**view, "id": "VMODAL", "state": {"values": values}},
    }
    return signed_post(
        url, urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded"
    )
