"""The Slack app manifest asks for exactly what the listeners use."""

import re

import yaml

from tests.conftest import REPO


def test_manifest_matches_the_listeners():
    manifest = yaml.safe_load((REPO / "deploy" / "slack-manifest.yml").read_text())
    commands = {c["command"] for c in manifest["features"]["slash_commands"]}
    listeners = "\n".join(p.read_text() for p in (REPO / "bot" / "listeners").rglob("*.py"))
    assert commands == set(re.findall(r'app\.command\("(/\w+)"\)', listeners))
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert {"app_mention", "message.im", "message.channels", "assistant_thread_started"} <= events
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {
        "app_mentions:read",
        "chat:write",
        "commands",
        "reactions:write",
        "assistant:write",
        "channels:history",
        "im:history",
    } <= scopes
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is True
