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


def test_no_secret_setting_reaches_a_file_or_the_output(
    cli: Any, clean_env: Path, tmp_path: Path, monkeypatch: Any
) -> None:
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
    for argv in (
        ["--json", "sandbox", "info"],
        ["--json", "backup", "list"],
        ["--json", "backup", "list"],
        ["--json", "cache", "get", "Usuários"],
        ["--json", "schedule", "show"],
        ["--json", "doctor", "--offline"],
        ["-v", "doctor", "--offline"],
    ):
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


# ---------------------------------------------------------------------------------------------- every secret

CLOSED = "127.0.0.1:{port}"
#: how each declared secret is configured in the run below; `{w}` is its canary. Keyed by the dotted
#: paths of settings_sources.SECRET_SETTINGS, and checked against them: a new secret needs a line here.
TEMPLATES: dict[str, Any] = {
    "airtable.token": "{w}",
    "airtable.sandbox_token": "{w}",
    "webhook.secret": "{w}",
    # an unencoded "@" in the password: redis-py and urllib split at the last one
    "cache.redis_url": "redis://:{w}@Second{w}@127.0.0.1:1/0",
    "airtable.limiter_redis_url": "redis://limiter:{w}@127.0.0.1:1/1",
    "alerts.notify_urls": ["http://" + CLOSED + "/hooks/{w}"],
    "jobs.pings.*.url": "http://" + CLOSED + "/{w}",
    "jobs.pings.*.start": "http://" + CLOSED + "/{w}/start",
    "jobs.pings.*.success": "http://" + CLOSED + "/{w}/ok",
    "jobs.pings.*.fail": "http://" + CLOSED + "/{w}/fail/{{exit_code}}",
}
#: the job whose pings carry each ping setting (both run below: `backup run --type critical`, `metrics collect`)
PING_JOB = {"url": "backup-critical", "start": "metrics-usage", "success": "metrics-usage", "fail": "metrics-usage"}


def _closed_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()  # nothing listens there: every call to it is refused at once
    return port


def _word(dotted: str) -> str:
    return "Canary" + "".join(p.capitalize() for p in dotted.replace("*", "job").replace("_", ".").split(".")) + "7q"


def _place(config: dict[str, Any], env: dict[str, str], path: tuple[str, ...], value: Any) -> None:
    """Through the environment where a variable overrides the setting (as deployments do), else the file."""
    from beststag_cli.settings_sources import ENV_OVERRIDES

    names = [o.var for o in ENV_OVERRIDES if o.path == path and o.kind != "path"]
    if names and isinstance(value, str):
        env[names[-1]] = value  # the last one is the name (an alias comes first)
        return
    cur = config
    for key in path[:-1]:
        cur = cur.setdefault(PING_JOB[path[-1]] if key == "*" else key, {})
    cur[path[-1]] = value


def test_a_canary_in_every_secret_setting_reaches_no_file_and_no_output(
    cli: Any, clean_env: Path, sandbox: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    from beststag_cli.sandbox.server import serve_in_thread
    from beststag_cli.settings_sources import SECRET_ENV, SECRET_SETTINGS

    assert set(TEMPLATES) == {s.dotted for s in SECRET_SETTINGS}, "every declared secret gets a canary here"
    port = _closed_port()
    config = yaml.safe_load((REPO / "config" / "beststag.yaml").read_text(encoding="utf-8"))
    config.setdefault("backup", {}).update(
        remote="s3://canary-bucket/beststag", remote_endpoint_url=f"http://127.0.0.1:{port}"
    )
    env: dict[str, str] = {}
    canaries: dict[str, str] = {}
    for s in SECRET_SETTINGS:
        canaries[s.dotted] = word = _word(s.dotted)
        filled = json.loads(json.dumps(TEMPLATES[s.dotted]).replace("{w}", word).replace("{port}", str(port)))
        _place(config, env, s.path, filled)
    for var in SECRET_ENV:  # the S3 credentials are never settings: boto3 reads them from the environment
        env[var] = canaries[var] = _word(var.lower())
    path = tmp_path / "beststag.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")

    # Airtable mode (a token) against the test's sandbox served over loopback HTTP, which accepts the canary
    sandbox.app.tokens.add(env["AIRTABLE_TOKEN"])
    server, thread = serve_in_thread(sandbox.app)
    try:
        monkeypatch.delenv("BESTSTAG_SANDBOX")
        monkeypatch.setenv("AIRTABLE_ENDPOINT_URL", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("AIRTABLE_BASE_ID", "appBestStagSandbx")
        monkeypatch.setenv("BESTSTAG_CONFIG", str(path))
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        outputs: list[tuple[tuple[str, ...], str]] = []
        for argv in (
            ("--json", "doctor"),
            ("-v", "doctor"),
            ("--json", "backup", "run", "--type", "critical"),  # its upload to the closed port fails
            ("--json", "cache", "get", "Usuários"),
            ("--json", "cache", "get", "Usuários"),
            ("--json", "metrics", "collect", "--type", "usage", "--format", "prometheus"),
            ("--json", "metrics", "alerts"),
            ("--json", "cache", "get", "Usuarioz"),  # a failing command: exit 2
            ("-v", "backup", "list"),
            ("--json", "schedule", "show"),
        ):
            r = cli(*argv)
            assert "Traceback" not in r.stderr or "-v" in argv, (argv, r)
            outputs.append((argv, r.stdout + r.stderr))
    finally:
        server.shutdown()
        thread.join(timeout=60)
    assert outputs[2][1] and json.loads(outputs[3][1])  # the commands ran (a backup, a cache answer)
    assert (clean_env / "settings.snapshot.json").is_file()  # the file the Redis password reached before
    assert (clean_env / "logs" / "beststag.jsonl").is_file()
    for name, blob in _everything(clean_env):
        for what, word in canaries.items():
            assert word.encode() not in blob, (what, name)
    for argv, text in outputs:
        for what, word in canaries.items():
            assert word not in text, (what, argv, text[-600:])
