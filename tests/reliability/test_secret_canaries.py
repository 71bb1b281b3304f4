"""Issue 17 #1 (found by a review of issue 16's change): a canary in every secret setting is found in no file.

The settings snapshot (`var/settings.snapshot.json`) held the Redis URL's password, and would have held
alert webhooks' and health pings' keys; the redactor masked only part of a password holding an "@".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.reliability.test_secrets_perms import _everything

REPO = Path(__file__).resolve().parents[2]
CANARIES = {
    "redis": "CanaryRedis9pw@Canary2nd",  # an unencoded "@" in the password: redis-py splits at the last one
    "webhook": "CanaryWebhookSecret9",
    "notify": "CanaryNotifyKey9",
    "ping": "CanaryPingUuid9",
    "aws": "CanaryAwsSecret9",
}


def test_no_secret_setting_reaches_a_file_or_the_output(cli: Any, clean_env: Path, tmp_path: Path,
                                                         monkeypatch: Any) -> None:
    config = yaml.safe_load((REPO / "config" / "beststag.yaml").read_text(encoding="utf-8"))
    config.setdefault("alerts", {})["notify_urls"] = [f"https://hooks.example/{CANARIES['notify']}"]
    config.setdefault("jobs", {})["pings"] = {"backup-complete": {"url": f"https://hc-ping.com/{CANARIES['ping']}"}}
    path = tmp_path / "beststag.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    monkeypatch.setenv("BESTSTAG_CONFIG", str(path))
    monkeypatch.setenv("BESTSTAG_REDIS_URL", f"redis://:{CANARIES['redis']}@127.0.0.1:1/0")
    monkeypatch.setenv("BESTSTAG_WEBHOOK_SECRET", CANARIES["webhook"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CANARIES["aws"])
    seen: list[str] = []
    for argv in (["--json", "sandbox", "info"], ["--json", "backup", "list"], ["--json", "backup", "list"],
                 ["--json", "cache", "get", "Usuários"], ["--json", "schedule", "show"],
                 ["--json", "doctor", "--offline"], ["-v", "doctor", "--offline"]):
        r = cli(*argv)
        assert "Traceback" not in r.stderr or "-v" in argv, r
        seen.append(r.stdout + r.stderr)
    snapshot = clean_env / "settings.snapshot.json"
    assert snapshot.is_file()  # the file the canaries reached before
    json.loads(snapshot.read_text(encoding="utf-8"))
    parts = {name: [value, value.split("@")[0], value.split("@")[-1]] for name, value in CANARIES.items()}
    for name, blob in _everything(clean_env):
        for what, pieces in parts.items():
            for piece in pieces:
                assert piece.encode() not in blob, (what, piece, name)
    for text in seen:
        for what, pieces in parts.items():
            for piece in pieces:
                assert piece not in text, (what, piece, text[-400:])
