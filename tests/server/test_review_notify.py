"""Adversarial review (issue 19): forged, malformed or misdirected pings get 401, never a 500 or a pull."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

NOTIFY = "/webhook/airtable/notify"
SECRET_B64 = "c2VjcmV0LWZvci10aGUtcmV2aWV3LXRlc3RzLTEyMzQ1Njc4"
HOOK = "achReviewWebhook1"
JSON = {"Content-Type": "application/json", "Authorization": ""}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.binary(max_size=64) | json_values.map(lambda v: json.dumps(v).encode()),
    header=st.none() | st.text(max_size=80).filter(lambda h: h.isascii() and "\n" not in h and "\r" not in h),
    sign=st.booleans(),
)
def test_any_forged_or_odd_ping_is_401(client: Any, gateway: Any, body: bytes, header: str | None, sign: bool) -> None:
    from beststag_cli.feed import notify, state

    if state.load(gateway.journal, gateway.base_id) is None:
        state.save_new(gateway.journal, gateway.base_id, HOOK, SECRET_B64, None, [])
    if sign:  # a correct MAC over a body that is not this webhook's ping
        header = notify.mac_of(SECRET_B64, body)
    headers = dict(JSON)
    if header is not None:
        headers[notify.MAC_HEADER] = header
    pulls = client.app.state.feed_puller.pulls
    r = client.post(NOTIFY, content=body, headers=headers)
    ids = notify.ping_ids(body)
    if sign and ids == (gateway.base_id, HOOK):
        assert r.status_code == 204
    else:
        assert r.status_code == 401, r.text
        assert client.app.state.feed_puller.pulls == pulls
        assert SECRET_B64 not in r.text


def test_a_ping_signed_for_another_base_or_webhook_is_401(client: Any, gateway: Any) -> None:
    from beststag_cli.feed import notify, state

    state.save_new(gateway.journal, gateway.base_id, HOOK, SECRET_B64, None, [])
    for base, hook in (("appSomeOtherBase1", HOOK), (gateway.base_id, "achSomeOtherHook1")):
        body = json.dumps({"base": {"id": base}, "webhook": {"id": hook}, "timestamp": "2026-12-02"}).encode()
        r = client.post(NOTIFY, content=body, headers={**JSON, notify.MAC_HEADER: notify.mac_of(SECRET_B64, body)})
        assert r.status_code == 401, r.text
