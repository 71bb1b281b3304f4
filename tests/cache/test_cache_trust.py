"""Issue 15, the cache's part: answers stay exact after outside writes (7), damaged files and a full disk
never fail a read (10, 15), and a damaged settings snapshot only costs the fast path (10)."""

from __future__ import annotations

import contextlib
import gc
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from beststag_cli.cache.manager import CacheManager
from beststag_cli.query.spec import QuerySpec
from tests.tmpfs import small_tmpfs

BASE = "appBestStagSandbx"
FILTERS: list[dict[str, Any] | None] = [
    None,
    {"status": "Ativo"},
    {"status": "Inativo"},
    {"plano": "Pro"},
    {"status": "Ativo", "plano": "Free"},
]
QUERIES = st.builds(
    lambda f, fields, sort, mx: {
        k: v
        for k, v in (("table", "Usuários"), ("filters", f), ("fields", fields), ("sort", sort), ("maxRecords", mx))
        if v is not None
    },
    st.sampled_from(FILTERS),
    st.sampled_from([None, ["Nome", "status"], ["Nome", "plano", "status"]]),
    st.sampled_from([None, ["Nome"], ["-Nome"]]),
    st.sampled_from([None, 3, 10, 100]),
)


def truth(gateway: Any, q: dict[str, Any]) -> list[dict[str, Any]]:
    """What Airtable (the sandbox) answers to the query now, without any cache (attachment URLs aside)."""
    from beststag_cli.query.service import QueryService

    return same(list(QueryService(gateway).run(QuerySpec.parse(q)).records))


def same(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records without attachments' signed URLs (each answer signs them anew)."""

    def clean(v: Any) -> Any:
        if isinstance(v, list):
            return [clean(x) for x in v]
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if k not in ("url", "thumbnails")}
        return v

    return [clean(r) for r in records]


# --------------------------------------------------------------------------------------------
# defect 7: `invalidate` with a record id after a write made outside beststag


@hsettings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    queries=st.lists(QUERIES, min_size=1, max_size=4),
    change=st.sampled_from(["create", "update"]),
    status=st.sampled_from(["Ativo", "Inativo"]),
    plano=st.sampled_from(["Free", "Pro", "Enterprise"]),
    pick=st.integers(0, 10_000),
)
def test_record_invalidation_after_an_outside_write_leaves_no_stale_answer(
    cache: CacheManager,
    gateway: Any,
    api: Any,
    queries: list[dict[str, Any]],
    change: str,
    status: str,
    plano: str,
    pick: int,
) -> None:
    for q in queries:
        cache.get(QuerySpec.parse(q))  # cached (hit or miss, whichever)
    users = api.table(BASE, "Usuários")
    fields = {"status": status, "plano": plano}
    if change == "create":
        rid = users.create({"Nome": f"Fora {pick}", "email": f"fora{pick}@example.com", **fields})["id"]
    else:
        ids = [r["id"] for r in users.all(fields=["Nome"])]
        rid = users.update(ids[pick % len(ids)], fields)["id"]
    out = cache.invalidate("Usuários", rid)  # the n8n recipe: after any change made elsewhere
    assert out["scope"] == "record"
    for q in queries:
        got = cache.get(QuerySpec.parse(q))
        assert same(got.records) == truth(gateway, q), (q, got.status)


def test_record_invalidation_also_forgets_lookups_of_the_record_in_other_tables(
    cache: CacheManager, gateway: Any, api: Any
) -> None:
    q = {"table": "Tarefas", "fields": ["Título", "responsável", "Email do responsável"]}
    before = cache.get(QuerySpec.parse(q)).records
    owner = next(r["fields"]["responsável"][0] for r in before if r["fields"].get("responsável"))
    api.table(BASE, "Usuários").update(owner, {"email": "novo-endereco@example.com"})
    cache.invalidate("Usuários", owner)
    after = cache.get(QuerySpec.parse(q))
    assert same(after.records) == truth(gateway, q)
    assert any("novo-endereco@example.com" in (r["fields"].get("Email do responsável") or []) for r in after.records)


@pytest.fixture
def client(settings: Any, sandbox: Any) -> Iterator[Any]:
    """The webhook server on the test's sandbox (as tests/server does)."""
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    import beststag_cli.sandbox as sbmod
    from beststag_cli.server.app import create_app

    settings.webhook.secret = SecretStr("test-webhook-secret-0123456789")
    mp = pytest.MonkeyPatch()
    mp.setattr(sbmod, "get_sandbox", lambda path: sandbox)
    try:
        with TestClient(create_app(settings)) as c:
            c.headers.update({"Authorization": "Bearer test-webhook-secret-0123456789"})
            yield c
    finally:
        mp.undo()


def test_n8n_recipe_outside_creates_then_invalidate_webhook_serves_them(client: Any, api: Any, gateway: Any) -> None:
    body = {"operation": "get", "table": "Usuários", "filters": {"status": "Ativo"}, "fields": ["Nome", "status"]}
    first = client.post("/webhook/airtable/cache", json=body).json()
    made = [api.table(BASE, "Usuários").create({"Nome": f"n8n {i}", "status": "Ativo"})["id"] for i in range(2)]
    dropped = []
    for rid in made:
        r = client.post(
            "/webhook/airtable/cache", json={"operation": "invalidate", "table": "Usuários", "recordId": rid}
        )
        assert r.status_code == 200
        dropped.append(r.json()["invalidated"]["entries"])
    assert dropped[0] >= 1  # the cached answer did not hold the new record: dropped all the same
    again = client.post("/webhook/airtable/cache", json=body).json()
    want = truth(gateway, {k: v for k, v in body.items() if k != "operation"} | {"table": "Usuários"})
    assert again["count"] == first["count"] + 2 == len(want)
    assert same(again["records"]) == want


# --------------------------------------------------------------------------------------------
# defect 10 (cache half): damaged cache files never fail a read; doctor sees them


def _cache_files(cache_dir: Path) -> dict[str, Path]:
    return {"db": cache_dir / "store" / "cache.db", "epoch": cache_dir / "epoch", "store": cache_dir / "store"}


def _damage(kind: str, cache_dir: Path, outside: Path, seed: int) -> None:
    import random

    rnd = random.Random(seed)
    f = _cache_files(cache_dir)
    for side in ("-wal", "-shm"):  # a damaged database, not a database with a good write-ahead log
        Path(str(f["db"]) + side).unlink(missing_ok=True)
    if kind == "db-garbage":
        f["db"].write_bytes(rnd.randbytes(rnd.randint(1, 20_000)))
    elif kind == "db-header":
        data = bytearray(f["db"].read_bytes())
        for i in rnd.sample(range(0, 100), 12):
            data[i] = rnd.randrange(256)
        f["db"].write_bytes(bytes(data))
    elif kind == "db-pages":
        data = bytearray(f["db"].read_bytes())
        for i in rnd.sample(range(100, len(data)), min(len(data) - 100, 400)):
            data[i] = rnd.randrange(256)
        f["db"].write_bytes(bytes(data))
    elif kind == "db-truncated":
        data = f["db"].read_bytes()
        f["db"].write_bytes(data[: rnd.randint(0, max(1, len(data) // 3))])
    elif kind == "db-is-dir":
        f["db"].unlink()
        f["db"].mkdir()
    elif kind == "db-symlink":
        f["db"].unlink()
        f["db"].symlink_to(outside)
    elif kind == "epoch-garbage":
        f["epoch"].write_bytes(rnd.randbytes(rnd.randint(0, 7)))
    elif kind == "epoch-max":
        f["epoch"].write_bytes(b"\xff" * 8)
    elif kind == "epoch-is-dir":
        f["epoch"].unlink()
        f["epoch"].mkdir()
    elif kind == "epoch-symlink":
        f["epoch"].unlink()
        f["epoch"].symlink_to(outside)
    elif kind == "store-is-file":
        import shutil

        shutil.rmtree(f["store"])
        f["store"].write_bytes(rnd.randbytes(100))
    else:  # pragma: no cover
        raise AssertionError(kind)


KINDS = [
    "db-garbage",
    "db-header",
    "db-pages",
    "db-truncated",
    "db-is-dir",
    "db-symlink",
    "epoch-garbage",
    "epoch-max",
    "epoch-is-dir",
    "epoch-symlink",
    "store-is-file",
]
FILTER = '{"status": "Ativo"}'


@pytest.mark.parametrize("kind", KINDS)
@hsettings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_damaged_cache_files_fall_back_to_airtable_and_rebuild(
    cli: Any, settings: Any, gateway: Any, tmp_path: Path, kind: str, seed: int
) -> None:
    from beststag_cli.cache.store import check

    q = {"table": "Usuários", "filters": {"status": "Ativo"}, "fields": ["Nome", "email"]}
    want = truth(gateway, q)
    args = ("--json", "cache", "get", "Usuários", "--filter", FILTER, "--fields", "Nome,email")
    assert cli(*args).exit_code == 0  # the cache exists and holds the answer
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"not the cache's" * 10)
    gc.collect()  # the in-process CLI leaves its stores to the collector; a process would have closed them
    _damage(kind, settings.paths.cache_dir, outside, seed)
    if kind not in ("epoch-garbage", "epoch-max"):  # any 8 bytes are a valid epoch; shorter ones are not
        assert check(settings), kind  # doctor's check sees it before anything repairs it
    r = cli(*args)
    assert r.exit_code == 0, (kind, r.stdout[-300:], r.stderr[-500:])
    assert same(r.json()["records"]) == want, kind
    assert "Traceback" not in r.stderr and len([ln for ln in r.stderr.splitlines() if ln.strip()]) <= 1
    for more in (("--json", "cache", "stats"), ("cache", "prune")):
        r = cli(*more)
        assert r.exit_code == 0, (kind, more, r.stderr[-500:])
    assert check(settings) == [], kind  # rebuilt
    assert outside.read_bytes() == b"not the cache's" * 10  # nothing outside the data dir was touched
    assert cli(*args).json()["cache"]["status"] == "hit"  # and it caches again


def test_doctor_reports_a_damaged_cache(cli: Any, settings: Any) -> None:
    assert cli("--json", "cache", "get", "Usuários", "--filter", FILTER).exit_code == 0
    db = _cache_files(settings.paths.cache_dir)["db"]
    db.write_bytes(b"garbage" * 100)
    for side in ("-wal", "-shm"):
        Path(str(db) + side).unlink(missing_ok=True)
    r = cli("--json", "doctor")
    checks = (
        {c["name"]: c for c in r.json()["checks"]} if isinstance(r.json(), dict) else {c["name"]: c for c in r.json()}
    )
    assert checks["cache"]["status"] == "fail" and "cache.db" in checks["cache"]["message"]


# --------------------------------------------------------------------------------------------
# defect 10: a damaged settings snapshot only costs the fast path


def _snapshot(settings: Any) -> Path:
    from beststag_cli.fastconfig import SNAPSHOT_NAME

    return Path(settings.paths.data_dir) / SNAPSHOT_NAME


def _mutate(doc: Any, path: list[Any], value: Any) -> Any:
    if not path:
        return value
    if isinstance(doc, dict) and doc:
        key = sorted(doc)[path[0] % len(doc)]
        return {**doc, key: _mutate(doc[key], path[1:], value)}
    if isinstance(doc, list) and doc:
        i = path[0] % len(doc)
        return [*doc[:i], _mutate(doc[i], path[1:], value), *doc[i + 1 :]]
    return value


JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    how=st.sampled_from(["bytes", "truncate", "leaf", "json"]),
    raw=st.binary(max_size=300),
    path=st.lists(st.integers(0, 50), min_size=1, max_size=5),
    junk=JUNK,
    cut=st.integers(0, 10_000),
)
def test_a_damaged_settings_snapshot_falls_back_to_the_full_loader(
    cli: Any, settings: Any, how: str, raw: bytes, path: list[int], junk: Any, cut: int
) -> None:
    from beststag_cli.cli.fastpath import try_cache_hit
    from beststag_cli.fastconfig import fast_settings

    args = ["--json", "cache", "get", "Usuários", "--filter", FILTER]
    assert cli(*args).exit_code == 0
    snap = _snapshot(settings)
    good = json.loads(snap.read_bytes())
    assert fast_settings() is not None and try_cache_hit(args) == 0  # the fast path works before the damage
    if how == "bytes":
        body = raw
    elif how == "truncate":
        text = snap.read_bytes()
        body = text[: cut % max(1, len(text))]
    elif how == "json":
        body = json.dumps(junk).encode()
    else:
        doc = _mutate(good, [1, *path] if path[0] % 2 else path, junk)
        if doc == good:
            return
        body = json.dumps(doc).encode()
    snap.write_bytes(body)
    fast = fast_settings()  # never raises; what it returns, if anything, is the good snapshot
    assert fast is None or json.loads(body) == good or _same_reads(fast, good["settings"])
    code = try_cache_hit(args)
    assert code in (None, 0)
    r = cli(*args)  # the full CLI answers, and writes a good snapshot again (unless what changed is unread)
    assert r.exit_code == 0 and r.json()["records"]
    assert fast_settings() is not None and try_cache_hit(args) == 0


def _same_reads(fast: Any, good: dict[str, Any]) -> bool:
    """A mutation the validator lets through must not change what the hit path reads."""
    return bool(str(fast.paths.data_dir) == good["data_dir"] and fast.base_id == good["airtable"]["base_id"])


def test_a_snapshot_behind_a_symlink_is_not_read(cli: Any, settings: Any, tmp_path: Path) -> None:
    from beststag_cli.fastconfig import fast_settings

    assert cli("--json", "cache", "get", "Usuários", "--filter", FILTER).exit_code == 0
    snap = _snapshot(settings)
    elsewhere = tmp_path / "planted.json"
    elsewhere.write_bytes(snap.read_bytes())
    before = elsewhere.read_bytes()
    snap.unlink()
    snap.symlink_to(elsewhere)
    assert fast_settings() is None
    r = cli("--json", "cache", "get", "Usuários", "--filter", FILTER)
    assert r.exit_code == 0
    # a link planted in the data dir is neither followed nor removed (beststag did not create it): the
    # fast path keeps falling back to the full loader, and the link's target is not written through
    assert snap.is_symlink() and fast_settings() is None
    assert elsewhere.read_bytes() == before


# --------------------------------------------------------------------------------------------
# defect 15 (cache half): a full disk under the cache


@pytest.fixture
def full_cache_dir(settings: Any) -> Iterator[Any]:
    """data_dir/cache on a 1 MB tmpfs; `.fill()` takes every byte left, `.free()` gives them back."""
    d = Path(settings.paths.cache_dir)

    class Disk:
        filler = d / "filler"

        def fill(self) -> None:
            fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                for size in (65536, 4096, 512, 64, 1):
                    with contextlib.suppress(OSError):
                        while os.write(fd, b"\0" * size):
                            pass
            finally:
                os.close(fd)

        def free(self) -> None:
            self.filler.unlink(missing_ok=True)

    with small_tmpfs(d, "1m"):
        try:
            yield Disk()
        finally:
            with contextlib.suppress(Exception):
                import gc

                gc.collect()  # closes stores the in-process CLI left open (before the unmount)


def test_a_full_disk_under_the_cache_still_answers_from_airtable(cli: Any, gateway: Any, full_cache_dir: Any) -> None:
    small = ("--json", "cache", "get", "Usuários", "--filter", FILTER, "--fields", "Nome")
    assert cli(*small).exit_code == 0
    full_cache_dir.fill()
    r = cli(*small)  # a hit: served from the cache
    assert r.exit_code == 0 and same(r.json()["records"]) == truth(
        gateway, {"table": "Usuários", "filters": {"status": "Ativo"}, "fields": ["Nome"]}
    )
    warned, said = 0, []
    for table in ("Interações", "Tarefas", "Eventos", "Memória Contextual", "Usuários"):
        r = cli("--json", "cache", "get", table)  # SQLite may still find room in its files: some may fit
        assert r.exit_code == 0, r.stderr[-500:]
        assert same(r.json()["records"]) == truth(gateway, {"table": table})
        assert "Traceback" not in r.stderr
        warned += "disk full" in r.stderr
        said += [x for x in r.stderr.splitlines() if "warning" in x]
    assert warned, said  # and those that did not fit said so, one line each (a full disk, not damage)
    r = cli("--json", "cache", "stats")
    assert r.exit_code == 0, r.stderr[-500:]
    data = json.dumps(
        [
            {"id": f"rec{i:014d}", "createdTime": "2026-01-01T00:00:00.000Z", "fields": {"Nome": os.urandom(64).hex()}}
            for i in range(3000)
        ]
    )
    r = cli("--json", "cache", "set", "Usuários", "--filter", '{"plano": "Pro"}', "--data", data)
    assert r.exit_code == 1 and "disk full" in (r.stdout + r.stderr) and "Traceback" not in r.stderr
    full_cache_dir.free()
    big = ("--json", "cache", "get", "Interações", "--refresh")
    assert cli(*big).exit_code == 0
    assert cli(*big[:-1]).json()["cache"]["status"] == "hit"  # space is back: it caches again


def test_a_cache_that_cannot_even_be_opened_on_a_full_disk(cli: Any, gateway: Any, full_cache_dir: Any) -> None:
    full_cache_dir.fill()
    args = ("--json", "cache", "get", "Usuários", "--filter", FILTER, "--fields", "Nome")
    r = cli(*args)
    assert r.exit_code == 0, r.stderr[-500:]
    assert same(r.json()["records"]) == truth(
        gateway, {"table": "Usuários", "filters": {"status": "Ativo"}, "fields": ["Nome"]}
    )
    r = cli("--json", "cache", "stats")
    assert r.exit_code == 0, r.stderr[-500:]
    data = r.json()
    assert data["entries"] is None and any("disk full" in w for w in data["warnings"])
    full_cache_dir.free()
    assert cli(*args).exit_code == 0 and cli(*args).json()["cache"]["status"] == "hit"
