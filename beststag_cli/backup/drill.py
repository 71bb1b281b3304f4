"""`backup drill`: prove that a backup restores, without touching Airtable.

A drill takes one backup (an id, ``latest`` or ``TYPE/latest``) and

1. verifies it and every backup its tables' chains go through, attachment files hashed
   (:func:`verify.verify_backup`): a damaged file fails the drill, named;
2. builds a fresh base from the backup's own ``schema.json`` in a sandbox database of its own,
   ``<data_dir>/drills/<drill id>/`` (computed fields included, as a real target base has them);
3. restores the backup into that base through the same code a real restore runs
   (:func:`restore.restore_session` + :func:`restore.execute_restore`, "another base" mode), with a
   gateway on that sandbox whatever endpoint and token are configured, so nothing goes out;
4. reads the base back and compares it with the backup's point-in-time state
   (:func:`chain.table_state`): every record, every writable field, links through the restore's id
   map, attachments by the sha256 of the bytes the base serves against the backup's blob store;
5. records the drill in the journal (``drills``: result, records, seconds, the requests the restore
   sent — what a real restore of this backup needs — and the recovery time they take at the
   configured request rate), and removes its folder.

The metadata calls that would create the base on Airtable are not made by a drill (the base is loaded
into the sandbox directly); :func:`schema_requests` counts what they would be, and the recovery
estimate includes them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from beststag_cli import clock, errors, interrupts
from beststag_cli.fsutil import ensure_private_dir, safe_rmtree
from beststag_cli.logs import log_event
from beststag_cli.progress import Reporter, guard

from .chain import backup_index, table_chain, table_state
from .layout import LATEST, SCHEMA, BackupInfo, BlobStore, find_backup, read_bytes
from .restore import COMPUTED_TYPES, MAX_UPLOAD_BYTES, RestoreResult, execute_restore, restore_session
from .verify import BackupBroken, verify_backup

if TYPE_CHECKING:
    from beststag_cli.config import Settings
    from beststag_cli.gateway.api import Gateway
    from beststag_cli.journal import Journal
    from beststag_cli.sandbox import Sandbox

#: under the data dir: one folder per running drill (its sandbox database, journal and locks)
DRILLS_DIR = "drills"
PASSED, FAILED, RUNNING, INTERRUPTED = "passed", "failed", "running", "interrupted"
#: a drill folder older than this whose drill is gone (killed) is removed by the next drill
STALE_AFTER_S = 24 * 3600
#: how much of a differing value a message shows
SHOWN_CHARS = 80


# --------------------------------------------------------------------------------------------
# results


@dataclass
class Difference:
    """The first place where the restored base is not the backup."""

    table: str
    record: str  # the record's id in the backup
    field: str | None  # None: the record itself (missing, or not in the backup)
    problem: str
    target_record: str | None = None
    expected: Any = None
    actual: Any = None

    def describe(self) -> str:
        where = f"table {self.table!r}, record {self.record}"
        if self.target_record and self.target_record != self.record:
            where += f" (restored as {self.target_record})"
        if self.field is not None:
            where += f", field {self.field!r}"
        out = f"{where}: {self.problem}"
        if self.field is not None and self.problem == "differs":
            out += f" (backup {_shown(self.expected)}, restored {_shown(self.actual)})"
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _shown(v: Any) -> str:
    text = json.dumps(v, ensure_ascii=False, default=str)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


@dataclass
class DrillResult:
    id: str
    backup_id: str
    backup_type: str
    source_base: str | None
    drill_base: str
    status: str = RUNNING
    started: float = 0.0
    duration_s: float = 0.0
    #: table → records, attachments and links compared
    tables: dict[str, dict[str, int]] = field(default_factory=dict)
    #: requests the drill's restore sent to its base (reads included): what a real restore needs
    restore_requests: int = 0
    requests_by_route: dict[str, int] = field(default_factory=dict)
    #: metadata calls creating the base would add (:func:`schema_requests`)
    schema_requests: int = 0
    rate_per_s: float = 5.0
    restore_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    difference: Difference | None = None
    #: the broken file of a backup that failed verification
    broken: BackupBroken | None = None
    #: what stopped the drill's restore (anything else)
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    @property
    def records(self) -> int:
        return sum(t["records"] for t in self.tables.values())

    @property
    def attachments(self) -> int:
        return sum(t["attachments"] for t in self.tables.values())

    @property
    def links(self) -> int:
        return sum(t["links"] for t in self.tables.values())

    @property
    def requests(self) -> int:
        return self.restore_requests + self.schema_requests

    @property
    def estimate_s(self) -> float:
        """Seconds a real restore of this backup takes at ``rate_per_s`` (the base's request limit)."""
        return self.requests / self.rate_per_s if self.rate_per_s > 0 else 0.0

    @property
    def problem(self) -> str | None:
        if self.broken is not None:
            return self.broken.message
        if self.difference is not None:
            return self.difference.describe()
        return self.error

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "backup_id": self.backup_id,
            "backup_type": self.backup_type,
            "source_base": self.source_base,
            "drill_base": self.drill_base,
            "status": self.status,
            "passed": self.passed,
            "duration_s": round(self.duration_s, 3),
            "records": self.records,
            "attachments": self.attachments,
            "links": self.links,
            "tables": self.tables,
            "requests": {
                "total": self.requests,
                "restore": self.restore_requests,
                "schema": self.schema_requests,
                "by_route": self.requests_by_route,
            },
            "restore_s": round(self.restore_s, 3),
            "recovery_estimate": {
                "seconds": round(self.estimate_s, 1),
                "requests_per_second": self.rate_per_s,
                "method": f"{self.requests:,} requests at {self.rate_per_s:g} req/s",
            },
            "problem": self.problem,
            "difference": self.difference.to_dict() if self.difference is not None else None,
            "broken": (
                {"id": self.broken.backup_id, "file": self.broken.file, "problem": self.broken.problem}
                if self.broken is not None
                else None
            ),
            "warnings": self.warnings,
        }

    def failure(self) -> errors.BestStagError | None:
        """The error a failed drill exits with (1): the broken file, the first difference, or what stopped it."""
        if self.passed:
            return None
        if self.broken is not None:
            err = BackupBroken(self.broken.backup_id, self.broken.file, self.broken.problem)
            err.message = f"drill {self.id} failed: {err.message}"
            err.hint = self.broken.hint
            return err
        return errors.DrillFailed(f"drill {self.id} of backup {self.backup_id} failed: {self.problem}")


# --------------------------------------------------------------------------------------------
# what a restore into a new base costs in metadata calls


def schema_requests(schema: Mapping[str, Any]) -> int:
    """Metadata calls that create a base like ``schema`` on Airtable (an estimate, the drill makes none).

    One call creates the base with every table and its plain fields; each link (a pair with its
    inverse counts once) and each computed field is one create-field call afterwards, as they need
    the tables or the fields they read to exist; one call reads the new base's schema back.
    """
    calls = 1
    seen: set[str] = set()
    for t in schema.get("tables") or []:
        for f in t.get("fields") or []:
            if f.get("type") == "multipleRecordLinks":
                if f.get("id") in seen:
                    continue
                seen.add(str(f.get("id")))
                inverse = (f.get("options") or {}).get("inverseLinkFieldId")
                if inverse:
                    seen.add(str(inverse))
                calls += 1
            elif f.get("type") in COMPUTED_TYPES:
                calls += 1
    return calls + 1


# --------------------------------------------------------------------------------------------
# the scratch base


def resolve_drill_backup(settings: Settings, spec: str = LATEST, backup_type: str | None = None) -> BackupInfo:
    """The backup a drill takes: ``spec`` as `backup restore` reads it; with ``backup_type``, ``latest``
    is the newest of that type that finished ok (and an id must be of that type)."""
    from beststag_cli.paths import BACKUP_TYPES

    root = settings.paths.backups
    if backup_type is not None:
        if backup_type not in BACKUP_TYPES:
            raise errors.BadInput(f"unknown backup type {backup_type!r} (expected one of {', '.join(BACKUP_TYPES)})")
        if spec == LATEST:
            spec = f"{backup_type}/{LATEST}"
    info = find_backup(root, spec, restore_of=str(settings.base_id))
    if backup_type is not None and info.type != backup_type:
        raise errors.BadInput(f"backup {info.id} is not a {backup_type} backup", hint="drop --type, or pick another id")
    return info


def new_drill_id() -> str:
    return f"drill-{clock.now().strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def new_drill_base_id() -> str:
    """A base id no real base has: ``appDrill`` and 9 random letters and digits."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "appDrill" + "".join(secrets.choice(alphabet) for _ in range(9))


def drill_settings(settings: Settings, folder: Path, base_id: str) -> Settings:
    """Settings for the drill's own gateway: the sandbox endpoint, no token, the drill base, the drill's
    folder as data dir (journal, locks), the real backups folder. Whatever endpoint and token are
    configured, a gateway built from these talks to the sandbox it is handed."""
    from beststag_cli.config import SANDBOX_ENDPOINT_URL

    s = settings.model_copy(deep=True)
    s.airtable.token = None
    s.airtable.endpoint_url = SANDBOX_ENDPOINT_URL
    s.airtable.base_id = base_id
    s.airtable.sandbox = True
    s.airtable.limiter = "file"
    s.data_dir = folder
    s.backup.dir = settings.paths.backups
    s.backup.remote = None
    return s


@dataclass
class DrillBase:
    """A drill's scratch base: its folder, sandbox, settings and gateway (NullSink: no cache is told)."""

    folder: Path
    base_id: str
    sandbox: Sandbox
    settings: Settings
    gateway: Gateway
    schema: dict[str, Any]

    def requests(self) -> tuple[int, dict[str, int]]:
        stats = self.sandbox.app.stats
        return stats.requests, dict(stats.by_route)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.gateway.close()
        with contextlib.suppress(Exception):
            self.sandbox.close()


def _clear_stale(root: Path) -> None:
    """Remove drill folders a killed drill left behind (older than :data:`STALE_AFTER_S`)."""
    if not root.is_dir():
        return
    now = time.time()  # file ages: the file system's clock, not the pinned one
    for entry in os.scandir(root):
        if not entry.name.startswith("drill-") or not entry.is_dir(follow_symlinks=False):
            continue
        with contextlib.suppress(OSError):
            if now - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER_S:
                safe_rmtree(entry.path)


@contextlib.contextmanager
def drill_base(settings: Settings, drill_id: str, info: BackupInfo) -> Iterator[DrillBase]:
    """A fresh sandbox base built from ``info``'s schema.json in ``<data_dir>/drills/<drill_id>/``,
    removed (folder and all) when the block ends.

    :raises DrillFailed: the schema cannot be built into a base (named).
    """
    from beststag_cli.gateway.api import Gateway
    from beststag_cli.gateway.changes import NullSink
    from beststag_cli.journal import Journal
    from beststag_cli.sandbox import Sandbox
    from beststag_cli.sandbox.load import LoadError, load_schema

    root = settings.paths.data_dir / DRILLS_DIR
    ensure_private_dir(root)
    _clear_stale(root)
    folder = root / drill_id
    ensure_private_dir(folder)
    sb: Sandbox | None = None
    gw: Gateway | None = None
    try:
        schema = json.loads(read_bytes(info.path / SCHEMA).decode("utf-8"))
        base_id = new_drill_base_id()
        # the drill's gateway keeps its journal and locks one level down: the folder itself stays a plain
        # folder of the data dir (removable by safe_rmtree), not a private root of its own
        s = drill_settings(settings, folder / "state", base_id)
        sb = Sandbox(folder / "sandbox.sqlite", tokens=[s.api_token()])
        try:
            load_schema(sb.store, schema, base_id, f"drill of {info.id}")
        except LoadError as e:
            raise errors.DrillFailed(f"backup {info.id}: {SCHEMA} cannot be built into a base: {e}") from None
        gw = Gateway(s, journal=Journal(s.paths.journal, source="drill"), sandbox=sb, source="drill", sink=NullSink())
        yield DrillBase(folder, base_id, sb, s, gw, schema)
    finally:
        if gw is not None:
            with contextlib.suppress(Exception):
                gw.close()
        if sb is not None:
            with contextlib.suppress(Exception):
                sb.close()
        safe_rmtree(folder)


# --------------------------------------------------------------------------------------------
# comparing the restored base with the backup


def _norm(v: Any) -> Any:
    """Airtable's blanks (absent, "", [], false) as None; 0 is a value."""
    if v is None or v is False or (isinstance(v, str | list | dict) and not v):
        return None
    return v


def compare_restored(
    base: DrillBase,
    info: BackupInfo,
    tables: list[str],
    id_map: Mapping[str, str],
    store: BlobStore,
    counts: dict[str, dict[str, int]] | None = None,
    warnings: list[str] | None = None,
) -> Difference | None:
    """The first difference between ``base`` (read back through its gateway) and ``info``'s state of
    ``tables``, or None. Records in backup order, fields in schema order; ``counts`` gets what was
    compared per table, ``warnings`` what a restore cannot bring back (noted, not a difference).
    """
    counts = counts if counts is not None else {}
    warnings = warnings if warnings is not None else []
    index = backup_index(info.path.parent.parent)
    by_name = {t["name"]: t for t in base.schema.get("tables", [])}
    id_to_name = {t["id"]: t["name"] for t in base.schema.get("tables", [])}
    restored = set(tables)
    gw = base.gateway
    session = gw.api.session
    for name in tables:
        interrupts.check()  # a signal an `except Exception` swallowed still stops the drill here
        state = table_state(info, name, index)
        fields = [f for f in by_name[name]["fields"] if f["type"] not in COMPUTED_TYPES]
        have = {r["id"]: r for r in gw.all(name)}
        c = counts.setdefault(name, {"records": 0, "attachments": 0, "links": 0})
        wanted: set[str] = set()
        for sid, rec in state.items():
            dst = id_map.get(sid)
            got = have.get(dst) if dst is not None else None
            if got is None:
                return Difference(name, sid, None, "missing from the restored base", dst)
            wanted.add(str(dst))
            for f in fields:
                diff = _compare_field(name, sid, str(dst), f, rec, got, id_map, id_to_name, restored, store)
                if isinstance(diff, Difference):
                    return diff
                diff = diff if diff is not None else {}
                for k in ("attachments", "links"):
                    c[k] += diff.get(k, 0)
                warnings.extend(diff.get("warnings", []))
            c["records"] += 1
        extra = sorted(set(have) - wanted)
        if extra:
            return Difference(name, "-", None, f"holds {len(extra)} record(s) the backup does not have", extra[0])
        # attachments are read back here: each file the base serves, by sha256
        for sid, rec in state.items():
            for f in fields:
                if f["type"] != "multipleAttachments":
                    continue
                diff = _compare_files(name, sid, id_map[sid], f["name"], rec, have[id_map[sid]], store, session)
                if diff is not None:
                    return diff
    return None


def _compare_field(
    table: str,
    sid: str,
    dst: str,
    f: dict[str, Any],
    rec: dict[str, Any],
    got: dict[str, Any],
    id_map: Mapping[str, str],
    id_to_name: Mapping[str, str],
    restored: set[str],
    store: BlobStore,
) -> Difference | dict[str, Any] | None:
    fname, ftype = f["name"], f["type"]
    want = rec.get("fields", {}).get(fname)
    have = got.get("fields", {}).get(fname)
    if ftype == "multipleRecordLinks":
        target = id_to_name.get((f.get("options") or {}).get("linkedTableId", ""))
        if target not in restored:
            if want:
                return {"warnings": [f"{table}.{fname}: links to table {target!r}, which the backup does not hold"]}
            return None
        mapped = [id_map[x] for x in want or [] if x in id_map]
        notes = []
        if len(mapped) != len(want or []):
            notes.append(f"{table}/{sid}.{fname}: links to a record not in the backup's {target!r} (dropped)")
        if sorted(mapped) != sorted(have or []):
            return Difference(table, sid, fname, "differs", dst, sorted(mapped), sorted(have or []))
        return {"links": len(mapped), "warnings": notes}
    if ftype == "multipleAttachments":
        kept = _restorable(want, store)
        notes = []
        if len(kept) != len(want or []):
            lost = len(want or []) - len(kept)
            notes.append(f"{table}/{sid}.{fname}: {lost} file(s) not in the backup or over 5 MB (not restored)")
        if len(kept) != len(have or []):
            names = [a.get("filename") for a in kept], [a.get("filename") for a in have or []]
            return Difference(table, sid, fname, "differs", dst, *names)
        return {"attachments": len(kept), "warnings": notes}
    if _norm(want) != _norm(have):
        return Difference(table, sid, fname, "differs", dst, want, have)
    return None


def _restorable(want: Any, store: BlobStore) -> list[dict[str, Any]]:
    """The attachments of a backup cell a restore uploads: stored in the backup, within uploadAttachment's 5 MB."""
    out = []
    for a in want or []:
        sha = str(a.get("sha256") or "")
        if sha and store.has(sha) and store.path(sha).stat().st_size <= MAX_UPLOAD_BYTES:
            out.append(a)
    return out


def _compare_files(
    table: str, sid: str, dst: str, fname: str, rec: dict[str, Any], got: dict[str, Any], store: BlobStore, session: Any
) -> Difference | None:
    want = _restorable(rec.get("fields", {}).get(fname), store)
    have = got.get("fields", {}).get(fname) or []
    for a, h in zip(want, have, strict=False):
        resp = session.get(str(h.get("url")), timeout=(10.0, 60.0), headers={"Authorization": None})
        digest = hashlib.sha256(resp.content).hexdigest() if resp.status_code == 200 else None
        if digest != a.get("sha256") or h.get("filename") != a.get("filename"):
            shown = f"sha256 {digest[:12]}…" if digest else f"HTTP {resp.status_code}"
            return Difference(
                table,
                sid,
                fname,
                "differs",
                dst,
                f"{a.get('filename')} sha256 {str(a.get('sha256'))[:12]}…",
                f"{h.get('filename')} {shown}",
            )
    return None


# --------------------------------------------------------------------------------------------
# the drill


def _chain(info: BackupInfo) -> list[BackupInfo]:
    """``info`` and every backup its good tables' chains go through (each once)."""
    assert info.manifest is not None
    index = backup_index(info.path.parent.parent)
    out = {info.id: info}
    for name in info.manifest.ok_tables():
        with contextlib.suppress(errors.OperationFailed):  # verify_backup's check_chains names it
            for b in table_chain(info, name, index):
                out.setdefault(b.id, b)
    return list(out.values())


def verify_for_drill(settings: Settings, info: BackupInfo, progress: Reporter | None = None) -> None:
    """Verify ``info`` and its chain, attachment files hashed. :raises BackupBroken: the first broken file."""
    store = BlobStore(settings.paths.backups)
    if info.manifest is None:
        verify_backup(info, store)  # raises, naming the manifest
        return
    index = backup_index(settings.paths.backups)
    seen: set[str] = set()
    for b in _chain(info):
        verify_backup(b, store, seen, index, progress=progress)


def run_drill(
    settings: Settings,
    journal: Journal,
    spec: str = LATEST,
    *,
    backup_type: str | None = None,
    progress: Reporter | None = None,
) -> DrillResult:
    """Drill one backup (see the module's docstring) and record it in ``journal``.

    A failed drill is a result (``status`` failed, ``failure()`` its error), recorded like a passing one.

    :raises NotFound | BadInput: no such backup, a bad type (nothing recorded).
    :raises Interrupted | KeyboardInterrupt: recorded as ``interrupted``; the drill's folder is removed.
    """
    progress = guard(progress)
    info = resolve_drill_backup(settings, spec, backup_type)
    result = DrillResult(
        id=new_drill_id(),
        backup_id=info.id,
        backup_type=info.type,
        source_base=info.base,
        drill_base="",
        started=clock.timestamp(),
        rate_per_s=float(settings.airtable.rate_limit_per_s),
    )
    t0 = time.monotonic()
    _record(journal, result)
    log_event("drill.started", drill_id=result.id, backup_id=info.id)
    try:
        _drill(settings, info, result, progress)
    except BaseException as e:
        result.duration_s = time.monotonic() - t0
        if isinstance(e, KeyboardInterrupt | errors.Interrupted):
            result.status = INTERRUPTED
            result.error = "interrupted"
        else:
            result.status = FAILED
            result.error = f"{type(e).__name__}: {e}"[:300]
        with contextlib.suppress(Exception):
            _record(journal, result)
        raise
    result.duration_s = time.monotonic() - t0
    _record(journal, result)
    log_event(
        "drill.finished",
        _level=20 if result.passed else 40,
        drill_id=result.id,
        backup_id=info.id,
        status=result.status,
        records=result.records,
        requests=result.requests,
        problem=result.problem,
    )
    return result


def _drill(settings: Settings, info: BackupInfo, result: DrillResult, progress: Reporter) -> None:
    try:
        verify_for_drill(settings, info, progress)
    except BackupBroken as e:
        result.broken, result.status = e, FAILED
        return
    assert info.manifest is not None
    tables = info.manifest.ok_tables()
    failed = [n for n in info.manifest.tables if n not in tables]
    if failed:
        result.warnings.append(f"tables that failed in the backup are not drilled: {', '.join(failed)}")
    with drill_base(settings, result.id, info) as base:
        result.drill_base = base.base_id
        result.schema_requests = schema_requests(base.schema)
        before, by_route = base.requests()
        t0 = time.monotonic()
        try:
            restored = restore_into(base, info, progress)
        except BackupBroken as e:  # a blob changed after the verification (the restore hashes what it sends)
            result.broken, result.status = e, FAILED
            return
        except errors.BestStagError as e:
            if isinstance(e, errors.Interrupted):
                raise
            result.error, result.status = f"the restore stopped: {e.message}", FAILED
            return
        finally:
            result.restore_s = time.monotonic() - t0
            after, by_route_after = base.requests()
            result.restore_requests = after - before
            result.requests_by_route = {
                k: v - by_route.get(k, 0) for k, v in sorted(by_route_after.items()) if v - by_route.get(k, 0)
            }
        result.warnings.extend(restored.plan.warnings)
        diff = compare_restored(
            base,
            info,
            [t.name for t in restored.plan.tables],
            restored.plan.id_map,
            BlobStore(settings.paths.backups),
            result.tables,
            result.warnings,
        )
    result.difference = diff
    result.status = PASSED if diff is None else FAILED


def restore_into(base: DrillBase, info: BackupInfo, progress: Reporter | None = None) -> RestoreResult:
    """The real restore of ``info`` into the drill base: planned under its lock, then carried out."""
    with restore_session(base.settings, base.gateway, info.id, target_base=base.base_id) as plan:
        return execute_restore(base.settings, base.gateway, plan, progress=progress)


def _record(journal: Journal, r: DrillResult) -> None:
    finished = None if r.status == RUNNING else clock.timestamp()
    journal.record_drill(
        id=r.id,
        backup_id=r.backup_id,
        backup_type=r.backup_type,
        status=r.status,
        started=r.started,
        finished=finished,
        duration_s=r.duration_s if finished is not None else None,
        records=r.records,
        attachments=r.attachments,
        links=r.links,
        requests=r.restore_requests,
        schema_requests=r.schema_requests,
        rate_per_s=r.rate_per_s,
        estimate_s=round(r.estimate_s, 3) if finished is not None else None,
        restore_s=r.restore_s,
        problem=r.problem,
        detail={"tables": r.tables, "warnings": r.warnings[:50], "by_route": r.requests_by_route},
    )
