"""Helpers for backup tests: a second (empty) sandbox base, and comparable snapshots of a base."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

#: fields whose values Airtable computes from the record's own history; they cannot survive a restore
HISTORY_TYPES = frozenset({"createdTime", "lastModifiedTime", "autoNumber", "createdBy", "lastModifiedBy"})


def empty_target(sandbox: Any, gateway: Any, base_id: str, seed: int = 7) -> Any:
    """An empty base with the sample schema, and a gateway on it (sharing the sandbox and journal).

    `seed` must differ from the sample's (42): the sandbox derives table ids from it, and two
    bases with the same table ids would share their records.
    """
    from beststag_cli.backup.restore import gateway_for_base
    from beststag_cli.sandbox.seed import load_sample

    load_sample(sandbox.store, base_id=base_id, with_records=False, seed=seed)
    return gateway_for_base(gateway, base_id)


def snapshot(gateway: Any, tables: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """table → record id → comparable fields (attachments as (filename, type, sha256 of the bytes))."""
    schema = {t["name"]: t for t in gateway.schema()["tables"]}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    session = gateway.api.session
    for name in tables:
        types = {f["name"]: f["type"] for f in schema[name]["fields"]}
        ids = {t["id"]: t["name"] for t in schema.values()}
        targets = {
            f["name"]: ids.get((f.get("options") or {}).get("linkedTableId", ""))
            for f in schema[name]["fields"]
            if f["type"] == "multipleRecordLinks"
        }
        recs = {}
        for r in gateway.all(name):
            fields = {}
            for k, v in r["fields"].items():
                if types[k] in HISTORY_TYPES:
                    continue
                if types[k] == "multipleAttachments":
                    v = [
                        (a["filename"], a["type"], hashlib.sha256(session.get(a["url"]).content).hexdigest()) for a in v
                    ]
                fields[k] = v
            recs[r["id"]] = {"fields": fields, "types": types, "targets": targets}
        out[name] = recs
    return out


def assert_same_state(
    expected: dict[str, dict[str, dict[str, Any]]], actual: dict[str, dict[str, dict[str, Any]]], id_map: dict[str, str]
) -> None:
    """`actual` holds `expected` with record ids translated by `id_map` (identity for unmapped ids).

    Links to tables outside `expected` are not compared (a restore of some tables into another base
    cannot keep them: those records do not exist there).
    """

    def m(x: str) -> str:
        return id_map.get(x, x)

    for table, recs in expected.items():
        got = actual[table]
        assert len(got) == len(recs), f"{table}: {len(got)} records, expected {len(recs)}"
        for rid, rec in recs.items():
            assert m(rid) in got, f"{table}: record {rid} (→ {m(rid)}) missing"
            outside = {k for k, t in rec["targets"].items() if t not in expected}
            want = {}
            for k, v in rec["fields"].items():
                if rec["types"][k] == "multipleRecordLinks":
                    v = sorted(m(x) for x in v)
                want[k] = v
            have = {
                k: (sorted(v) if rec["types"][k] == "multipleRecordLinks" else v)
                for k, v in got[m(rid)]["fields"].items()
            }
            for k in outside:
                want.pop(k, None)
                have.pop(k, None)
            assert have == want, f"{table}/{rid}: fields differ"


@pytest.fixture
def backups_root(settings: Any) -> Any:
    return settings.paths.backups
