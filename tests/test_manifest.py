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
    listened = set(re.findall(r'app\.event\("(\w+)"\)', listeners))
    assert listened - {"message"} <= events  # message events are subscribed per conversation
    assert "app_home_opened" in listened
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {
        "app_mentions:read",
        "chat:write",
        "commands",
        "reactions:write",
        "assistant:write",
        "channels:history",
        "im:history",
        "files:write",  # the fine-tune's loss and score picture (files_upload_v2)
    } <= scopes
    assert manifest["settings"]["interactivity"]["is_enabled"] is True  # buttons and modals
    home = manifest["features"]["app_home"]
    assert home["home_tab_enabled"] is True and home["messages_tab_enabled"] is True
    uploads = "\n".join(p.read_text() for p in (REPO / "bot" / "slack").glob("*.py"))
    assert "files_upload_v2" in uploads and "views_publish" in uploads
    assert manifest["settings"]["socket_mode_enabled"] is True
