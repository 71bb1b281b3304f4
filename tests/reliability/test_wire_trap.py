"""The token only on its endpoint (issue 15, defect 6) and the wire trap that proves it (tests/wiretrap.py).

pyairtable builds the attachment upload URL by swapping the endpoint's host for content.airtable.com
and keeping its scheme: with AIRTABLE_ENDPOINT_URL set, uploads went to `http://content.airtable.com`
with the bearer token. The gateway now routes them to the endpoint (the sandbox serves
`uploadAttachment` on its own host) and refuses any other origin before sending.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from beststag_cli import errors
from beststag_cli.gateway.api import Gateway
from beststag_cli.sandbox import SANDBOX_BASE_ID, Sandbox
from beststag_cli.sandbox.server import serve_in_thread
from tests.wiretrap import WireTrap

TOKEN = "pat" + "WIRETRAPxx1234" + "." + "0123456789abcdef" * 4


# ---------------------------------------------------------------------------------------- the trap
def test_the_trap_catches_plain_http_https_and_subprocess_requests(wire_trap: WireTrap) -> None:
    mark = wire_trap.mark()
    auth = {"Authorization": "Bearer " + TOKEN}
    assert requests.get("http://example.invalid/leak?x=1", timeout=30, headers=auth).status_code == 403
    with pytest.raises(requests.exceptions.ProxyError):  # CONNECT refused: the tunnel is never opened
        requests.get("https://example.invalid/secret", timeout=30, headers=auth)
    code = (
        "import urllib.request as u\ntry:\n    u.urlopen('http://outside.invalid/from-child', timeout=30)\n"
        "except Exception:\n    pass\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)  # inherits the proxy variables
    with pytest.raises(AssertionError) as caught:
        wire_trap.check(mark)
    hits = wire_trap.forget_since(mark)  # leaked on purpose: the teardown check must not fail this test
    shown = str(caught.value)
    assert "GET example.invalid/leak?x=1" in shown
    assert "CONNECT example.invalid:443" in shown
    assert "GET outside.invalid/from-child" in shown
    # every hit, the subprocess's too, is attributed to this test through the proxy URL's tag
    assert {wire_trap.describe(h).rsplit("(from ", 1)[1] for h in hits} == {
        "tests/reliability/test_wire_trap.py::test_the_trap_catches_plain_http_https_and_subprocess_requests)"
    }
    wire_trap.check(wire_trap.mark())


def test_loopback_is_not_trapped(sandbox: Sandbox, wire_trap: WireTrap) -> None:
    mark = wire_trap.mark()
    server, thread = serve_in_thread(sandbox.app, "127.0.0.1", 0)
    try:
        for host in ("127.0.0.1", "localhost"):
            r = requests.get(f"http://{host}:{server.server_address[1]}/_sandbox/health", timeout=30)
            assert r.status_code == 200
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)
    assert wire_trap.hits_since(mark) == []


# ---------------------------------------------------------------------------------------- the rule
@pytest.mark.parametrize(
    "endpoint", ["http://127.0.0.1:8765", "http://sandbox.beststag.local", "https://proxy.example"]
)
def test_uploads_go_to_the_endpoint_unless_it_is_airtable(endpoint: str) -> None:
    from beststag_cli.gateway.api import Origins

    o = Origins(endpoint)
    upload = endpoint.split("://")[0] + "://content.airtable.com/v0/appX/recY/anexos/uploadAttachment"
    routed = o.route(upload)
    assert routed == endpoint + "/v0/appX/recY/anexos/uploadAttachment"
    o.check(routed)
    for foreign in (
        upload,
        "https://content.airtable.com/v0/x",
        "https://api.airtable.com/v0/x",
        endpoint.replace("://", "://evil.") + "/v0/x",
        "ftp://127.0.0.1:8765/v0/x",
    ):
        with pytest.raises(errors.ForeignOrigin):
            o.check(foreign)


def test_real_airtable_uploads_to_https_content_airtable_only() -> None:
    from beststag_cli.gateway.api import Origins

    o = Origins("https://api.airtable.com")
    upload = "https://content.airtable.com/v0/appX/recY/anexos/uploadAttachment"
    assert o.route(upload) == upload
    o.check(upload)
    o.check("https://api.airtable.com:443/v0/appX/Tbl")
    for foreign in (
        "http://content.airtable.com/v0/x",
        "http://api.airtable.com/v0/x",
        "https://content.airtable.com:8443/v0/x",
        "https://api.airtable.com.evil.example/v0/x",
    ):
        with pytest.raises(errors.ForeignOrigin):
            o.check(foreign)
    # Airtable's signed attachment URLs: downloaded without the token, over https, nothing else
    o.check("https://v5.airtableusercontent.com/abc/def", authorized=False)
    for url, method, authorized in (
        ("https://v5.airtableusercontent.com/a", "GET", True),
        ("https://v5.airtableusercontent.com/a", "POST", False),
        ("http://v5.airtableusercontent.com/a", "GET", False),
        ("https://airtableusercontent.com.evil.example/a", "GET", False),
    ):
        with pytest.raises(errors.ForeignOrigin):
            o.check(url, method=method, authorized=authorized)
    with pytest.raises(errors.ForeignOrigin):  # only for real Airtable
        Origins("http://127.0.0.1:8765").check("https://v5.airtableusercontent.com/a", authorized=False)


# ---------------------------------------------------------------------------------- over the wire
@pytest.fixture
def served(sandbox: Sandbox) -> Iterator[str]:
    """`sandbox serve` on a loopback port, accepting TOKEN."""
    sandbox.app.tokens.add(TOKEN)
    server, thread = serve_in_thread(sandbox.app, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=30)


@pytest.fixture
def http_gateway(served: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    """A real Gateway configured like an operator would: AIRTABLE_ENDPOINT_URL, a token, a base id."""
    from beststag_cli.config import load_config

    monkeypatch.setenv("AIRTABLE_ENDPOINT_URL", served)
    monkeypatch.setenv("AIRTABLE_TOKEN", TOKEN)
    monkeypatch.delenv("BESTSTAG_SANDBOX")
    monkeypatch.setenv("AIRTABLE_BASE_ID", SANDBOX_BASE_ID)
    settings = load_config()
    settings.airtable.rate_limit_per_s = 50  # the served sandbox has no limit; the test stays fast
    gw = Gateway(settings, source="test")
    assert gw.sandbox is None and gw.api.session.trust_env  # real HTTP, proxies from the environment
    yield gw
    gw.close()


def _hash_of(gw: Gateway, table: str, record_id: str, field: str) -> list[str]:
    atts = gw.get(table, record_id)["fields"].get(field) or []
    return [
        hashlib.sha256(gw.api.session.get(a["url"], headers={"Authorization": None}, timeout=30).content).hexdigest()
        for a in atts
    ]


def test_an_upload_through_the_gateway_stays_on_the_endpoint(
    http_gateway: Gateway, sandbox: Sandbox, wire_trap: WireTrap
) -> None:
    calls: list[tuple[str, str, int]] = []
    sandbox.app.observers.append(lambda m, route, status: calls.append((m, route, status)))
    mark = wire_trap.mark()
    rec = http_gateway.create("Tarefas", [{"Título": "wire"}])[0]
    content = bytes(range(256)) * 40
    http_gateway.table("Tarefas").upload_attachment(
        rec["id"], "anexos", "nota.bin", content=content, content_type="application/octet-stream"
    )
    assert ("POST", "upload", 200) in calls  # the sandbox answered it, on its own host
    assert _hash_of(http_gateway, "Tarefas", rec["id"], "anexos") == [hashlib.sha256(content).hexdigest()]
    assert wire_trap.hits_since(mark) == []


def test_the_gateway_refuses_another_origin_before_sending(http_gateway: Gateway, wire_trap: WireTrap) -> None:
    mark = wire_trap.mark()
    with pytest.raises(errors.ForeignOrigin) as caught:
        http_gateway.api.request("get", "http://elsewhere.example/v0/x?sig=secret")
    assert "sig=secret" not in caught.value.message and TOKEN not in caught.value.message
    with pytest.raises(errors.ForeignOrigin):  # straight through the session, token or not
        http_gateway.api.session.get("https://elsewhere.example/file", headers={"Authorization": None})
    assert wire_trap.hits_since(mark) == []  # refused here: nothing reached the network


def test_restore_into_another_base_over_http_uploads_every_attachment_to_the_endpoint(
    http_gateway: Gateway, sandbox: Sandbox, wire_trap: WireTrap
) -> None:
    from beststag_cli.backup.restore import execute_restore, gateway_for_base, plan_restore
    from beststag_cli.backup.runner import run_backup
    from beststag_cli.sandbox.seed import load_sample

    mark = wire_trap.mark()
    settings = http_gateway.settings
    tables = ["Usuários", "Tarefas"]  # Tarefas holds attachments and links to Usuários
    backup = run_backup(settings, http_gateway, "complete", tables)
    assert backup.status == "ok" and backup.manifest.attachments_count > 0
    load_sample(sandbox.store, base_id="appWireTrapTarget", with_records=False, seed=7)
    target = gateway_for_base(http_gateway, "appWireTrapTarget")

    plan = plan_restore(settings, http_gateway, backup.manifest.id, tables=tables, target_base="appWireTrapTarget")
    result = execute_restore(settings, http_gateway, plan)

    assert result.status == "ok"
    assert sum(result.uploaded.values()) == backup.manifest.attachments_count
    src = _attachment_hashes(http_gateway)
    dst = _attachment_hashes(target)
    assert dst == src and len(src) > 0  # every attachment, equal by hash
    assert wire_trap.hits_since(mark) == []


def _attachment_hashes(gw: Gateway) -> list[tuple[str, ...]]:
    """The sha256s of each Tarefas record's attachments, one sorted tuple per record that has any, sorted."""
    out = []
    for r in gw.all("Tarefas"):
        atts: list[dict[str, Any]] = r["fields"].get("anexos") or []
        if atts:
            out.append(
                tuple(
                    sorted(
                        hashlib.sha256(
                            gw.api.session.get(a["url"], headers={"Authorization": None}, timeout=30).content
                        ).hexdigest()
                        for a in atts
                    )
                )
            )
    return sorted(out)
