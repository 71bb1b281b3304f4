"""`backup restore`: put a base back into the state of a backup (point in time, through the chain).

Two modes:

- **same base** (the backup's own base): records that still exist are updated by id where they
  differ, deleted ones are recreated (they get new ids; links to them are remapped), and nothing
  is deleted unless ``prune_extra``;
- **another base** (``target_base``): every record is created, ``multipleRecordLinks`` are
  remapped to the new ids, and attachments are uploaded again (``uploadAttachment``).

Computed fields (formula, lookup, rollup, count, autoNumber, created/modified time and by) are
never written. A pair of inverse link fields is written from one side only (the table restored
later, so its targets already exist); links that cannot be written in that single pass
(self-links, one-way links to a later table) get a second pass of updates.

Plan first, then execute: :func:`plan_restore` reads the backup and the target base and says
per table what would be created, updated, skipped and deleted (``--dry-run`` stops there; it
writes nothing). :func:`execute_restore` writes in batches of 10 (Airtable's maximum) through
the gateway, and records every written record in the journal (``restore_items``) so that the
same restore run again after a crash resumes where it stopped. A create batch is marked
``pending`` before it is sent; a batch whose answer is lost (a 5xx, a dropped connection, a kill)
is looked for in the target (:func:`reconcile_pending`) before anything is sent again, in the same
run (bounded attempts with the gateway's backoff) or in the next one.

One restore at a time per target base: :func:`restore_lock` is taken before planning (before the
journal or the target is read) and held until the run is closed; a run left ``running`` is resumed
only once its process is gone (pid, host and boot id are kept on the row).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from beststag_cli import clock, errors, interrupts
from beststag_cli.diskspace import as_disk_full
from beststag_cli.fsutil import check_safe_path, ensure_private_dir
from beststag_cli.lockholder import clear_holder, identity, write_holder
from beststag_cli.logs import log_event
from beststag_cli.names import did_you_mean
from beststag_cli.progress import Reporter, Task, guard

from .chain import backup_index, table_chain, table_state
from .hooks import record_restored_tables
from .layout import SCHEMA, BlobStore, find_backup, iso, read_bytes, sha256_file
from .runner import AirtableClock
from .schema_plan import COMPUTED_TYPES, SchemaOutcome, SchemaPlan, execute_schema, plan_schema, write_manual
from .verify import BackupBroken, verify_dir

if TYPE_CHECKING:
    from beststag_cli.config import Settings
    from beststag_cli.gateway.api import Gateway
    from beststag_cli.journal import Journal

BATCH = 10
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
#: attempts per create batch or upload within one run when Airtable fails or loses an answer (a POST
#: is not retried by the gateway; a 429/503 is, first)
RUN_ATTEMPTS = 6
#: a batch counts as sent this long before Airtable's clock says (its Date is whole seconds, and a
#: reconcile only needs to tell this run's creates from older records, which ``used`` excludes anyway)
SENT_MARGIN_S = 120
#: attempts per read or update by id (each already retried by the gateway, with its backoff)
IDEMPOTENT_ATTEMPTS = 3
_BASE_ID_RE = re.compile(r"app[A-Za-z0-9]{14}")
#: the lock of a restore into a new base, before the base has an id (:meth:`NewBase.lock_key`)
_NEW_BASE_KEY_RE = re.compile(r"new-[0-9a-f]{16}")
_WORKSPACE_RE = re.compile(r"wsp[A-Za-z0-9]{14}")


# --------------------------------------------------------------------------------------------
# one restore per target base


_HELD: dict[str, int] = {}  # lock path → thread holding it (in this process)
_HELD_GUARD = threading.Lock()


#: who runs this restore: pid, host and boot id (one definition, shared with every lock's holder file)
process_identity = identity


def process_alive(info: dict[str, Any]) -> bool:
    """True if the process ``info`` (from :func:`process_identity`) may still be running.

    A pid on another boot is gone. A pid on another host cannot be checked: the caller holds the
    restore lock, so that process is not writing; it counts as gone. Rows without a pid (older
    versions) count as gone too.
    """
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    me = process_identity()
    if info.get("host") != me["host"] or (info.get("boot_id") or "") != me["boot_id"]:
        return False
    if pid == me["pid"]:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_path(settings: Settings, base_id: str) -> Any:
    if not _BASE_ID_RE.fullmatch(base_id) and not _NEW_BASE_KEY_RE.fullmatch(base_id):
        raise errors.BadInput(f"{base_id!r} is not a base id (expected appXXXXXXXXXXXXXX)")
    return settings.paths.locks / f"restore-{base_id}.lock"


def _holder_text(path: Any) -> str:
    """``pid 123 on host, for 4 s; `` from the holder file next to the lock (best effort; lockholder's wording)."""
    from beststag_cli.lockholder import holder_text

    return holder_text(path)


def holds_restore_lock(settings: Settings, base_id: str) -> bool:
    """True if the calling thread holds the restore lock of ``base_id``."""
    with _HELD_GUARD:
        return _HELD.get(str(_lock_path(settings, base_id))) == threading.get_ident()


@contextlib.contextmanager
def restore_lock(settings: Settings, base_id: str, *, wait_s: float = 0.0) -> Iterator[None]:
    """Hold ``<locks>/restore-<base>.lock`` (waiting up to ``wait_s``) or raise :class:`LockHeld` (exit 75).

    Held by this thread already: a no-op. The holder (pid, host, boot id, since) is written next
    to the lock so the message of a second run can name it.
    """
    from filelock import FileLock, Timeout

    path = _lock_path(settings, base_id)
    if holds_restore_lock(settings, base_id):
        yield
        return
    lock = FileLock(str(path), timeout=max(0.0, wait_s), mode=0o600, thread_local=False)
    try:
        ensure_private_dir(settings.paths.locks)
        _check_lock_file(path)  # filelock would truncate a link's target, or fail on a folder
        lock.acquire()
    except Timeout:  # (an OSError: first)
        waited = f" (waited {wait_s:g} s)" if wait_s > 0 else ""
        raise errors.LockHeld(
            f"another restore into base {base_id} is running ({_holder_text(path)}lock {path}){waited}",
            hint="wait for it to finish (or pass --wait SECONDS), then run the same restore again",
        ) from None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EISDIR, errno.ENOTDIR):  # planted after the check
            raise _unsafe_lock(path) from None
        full = _disk_full(e, settings)
        if full is None:
            raise
        raise full from None
    try:
        with _HELD_GUARD:
            _HELD[str(path)] = threading.get_ident()
        write_holder(path)  # best effort, like every lock's (a planted link there costs only the details)
        yield
    finally:
        with _HELD_GUARD:
            _HELD.pop(str(path), None)
        clear_holder(path)
        lock.release()


def _unsafe_lock(path: Any) -> errors.UnsafePath:
    return errors.UnsafePath(
        f"the restore lock {path} is not a regular file (a symlink or a folder was put there)",
        hint=f"remove {path} (beststag never follows links inside its data dir), then run the restore again",
    )


def _check_lock_file(path: Any) -> None:
    """Refuse a lock path that is (or lies under) a symlink, or is anything but a regular file."""
    check_safe_path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise _unsafe_lock(path)


def restore_target(settings: Settings, backup_id: str, target_base: str | None) -> str:
    """The base a restore of ``backup_id`` writes to (``target_base``, or the backup's own base)."""
    info = find_backup(settings.paths.backups, backup_id, restore_of=str(settings.base_id))
    if target_base is None and info.manifest is None:
        raise errors.OperationFailed(f"backup {info.id} cannot be read: {info.problem}")
    target = target_base or str(info.manifest.base)  # type: ignore[union-attr]
    _lock_path(settings, target)
    return target


@contextlib.contextmanager
def restore_session(
    settings: Settings,
    gateway: Gateway,
    backup_id: str,
    *,
    tables: list[str] | None = None,
    target_base: str | None = None,
    prune_extra: bool = False,
    wait_s: float = 0.0,
    new_base: NewBase | None = None,
) -> Iterator[RestorePlan]:
    """Take the target's restore lock, then plan: the plan stays true while the block runs.

    Pass the plan to :func:`execute_restore` inside the block. ``new_base``: the lock is the new
    base's (by workspace and name) until it exists.
    """
    # an alias (`complete/latest`) is resolved once: a backup finishing meanwhile must not change which one
    backup_id = find_backup(settings.paths.backups, backup_id, restore_of=str(settings.base_id)).id
    if new_base is not None and target_base is None:
        target = created_base(gateway.journal, new_base) or new_base.lock_key()
    else:
        target = restore_target(settings, backup_id, target_base)
    with restore_lock(settings, target, wait_s=wait_s):
        yield plan_restore(
            settings,
            gateway,
            backup_id,
            tables=tables,
            target_base=target_base,
            prune_extra=prune_extra,
            new_base=new_base,
        )


# --------------------------------------------------------------------------------------------
# plan


@dataclass
class FieldSpec:
    name: str
    type: str
    #: links: name of the linked table; None for other types
    target: str | None = None
    #: links: written during the creates/updates of this table (False: not written, or second pass)
    owned: bool = True
    deferred: bool = False


@dataclass
class TablePlan:
    name: str
    target_table_id: str
    fields: list[FieldSpec]
    records: int
    create: list[str] = field(default_factory=list)  # backup ids to create
    update: list[str] = field(default_factory=list)  # backup ids whose target record differs
    skip: int = 0
    delete: list[str] = field(default_factory=list)  # target ids (prune_extra)
    uploads: int = 0
    already: int = 0  # done by the interrupted run this one resumes

    def counts(self) -> dict[str, int]:
        return {
            "records": self.records,
            "create": len(self.create),
            "update": len(self.update),
            "skip": self.skip,
            "delete": len(self.delete),
            "attachments": self.uploads,
            "resumed": self.already,
        }


#: what a restore counts as a write, in the order plan and result name them (``table`` and ``field``: the
#: schema it recreates, counted only when there is some)
WRITE_KINDS = ("table", "field", "create", "update", "delete", "upload")


@dataclass(frozen=True)
class NewBase:
    """``--new-base NAME --workspace wspXXX``: the base a restore creates (``POST /v0/meta/bases``)."""

    name: str
    workspace: str

    def __post_init__(self) -> None:
        if not self.name.strip() or len(self.name) > 255 or any(ord(c) < 32 for c in self.name):
            raise errors.BadInput(f"{self.name!r} is not a base name (1 to 255 characters, no control characters)")
        if not _WORKSPACE_RE.fullmatch(self.workspace):
            raise errors.BadInput(f"{self.workspace!r} is not a workspace id (expected wspXXXXXXXXXXXXXX)")

    def lock_key(self) -> str:
        """The restore lock's name while the base has no id (the same for the same workspace and name)."""
        return "new-" + hashlib.sha256(f"{self.workspace}\0{self.name}".encode()).hexdigest()[:16]

    def journal_key(self) -> str:
        return f"restore.new_base.{self.lock_key()}"


def describe_writes(counts: Mapping[str, int]) -> str:
    """`3 writes (1 create, 1 update, 1 upload)`: the one wording of the plan, the question and the result."""
    total = sum(counts.get(k, 0) for k in WRITE_KINDS)
    parts = [f"{n:,} {k}{'' if n == 1 else 's'}" for k in WRITE_KINDS if (n := counts.get(k, 0))]
    return f"{total:,} write{'' if total == 1 else 's'}" + (f" ({', '.join(parts)})" if parts else "")


@dataclass
class RestorePlan:
    restore_id: str
    backup_id: str
    source_base: str
    target_base: str
    same_base: bool
    prune_extra: bool
    tables: list[TablePlan]
    resumed: bool = False
    warnings: list[str] = field(default_factory=list)
    #: the ``tables`` argument the plan was made with (None: every table of the backup)
    requested_tables: list[str] | None = field(default=None, repr=False)
    # working data (not part of the summary)
    states: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict, repr=False)
    current: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict, repr=False)
    existing_ids: dict[str, set[str]] = field(default_factory=dict, repr=False)
    id_map: dict[str, str] = field(default_factory=dict, repr=False)
    done: dict[str, set[str]] = field(default_factory=dict, repr=False)
    #: table → (backup id, target id) found for creates whose answer was lost
    reconciled: dict[str, list[tuple[str, str]]] = field(default_factory=dict, repr=False)
    #: sha256 of a current attachment of the target base (downloads it), for content comparison
    fetch_sha: Callable[[dict[str, Any]], str | None] | None = field(default=None, repr=False)
    #: the tables and fields the target lacks, and what a person must recreate (schema_plan.py)
    schema: SchemaPlan = field(default_factory=SchemaPlan)
    #: a restore into a base it creates; ``target_base`` is its lock key until the base exists
    new_base: NewBase | None = None
    #: the backup's schema.json (for a new base's create request)
    backup_schema: dict[str, Any] = field(default_factory=dict, repr=False)
    #: the tables the new base was created with (by this run)
    base_tables: list[str] = field(default_factory=list)

    @property
    def writes(self) -> int:
        return sum(self.write_counts().values())

    def write_counts(self) -> dict[str, int]:
        """Planned writes by kind (WRITE_KINDS): the result's `write_counts` counts the same things."""
        schema = {"table": len(self.schema.tables), "field": len(self.schema.fields)} if self.schema.writes else {}
        return {
            **schema,
            "create": sum(len(t.create) for t in self.tables),
            "update": sum(len(t.update) for t in self.tables),
            "delete": sum(len(t.delete) for t in self.tables),
            "upload": sum(t.uploads for t in self.tables),
        }

    def summary(self) -> dict[str, Any]:
        return {
            "restore_id": self.restore_id,
            "backup_id": self.backup_id,
            "source_base": self.source_base,
            "target_base": self.target_base
            if _BASE_ID_RE.fullmatch(self.target_base) or self.new_base is None
            else f"new base {self.new_base.name!r}",
            "mode": "same base" if self.same_base else ("new base" if self.new_base is not None else "other base"),
            "prune_extra": self.prune_extra,
            "resumed": self.resumed,
            "warnings": self.warnings,
            "planned_writes": self.write_counts(),
            "tables": {t.name: t.counts() for t in self.tables},
            "schema": self.schema.summary(),
            **(
                {"new_base": {"name": self.new_base.name, "workspace": self.new_base.workspace}}
                if self.new_base
                else {}
            ),
        }


def gateway_for_base(gateway: Gateway, base_id: str) -> Gateway:
    """A gateway on another base with the same settings, journal, limiter and sandbox."""
    import re

    from beststag_cli.gateway.api import Gateway as _Gateway

    if base_id == gateway.base_id:
        return gateway
    if not re.fullmatch(r"app[A-Za-z0-9]{14}", base_id):
        raise errors.BadInput(f"{base_id!r} is not a base id (expected appXXXXXXXXXXXXXX)")
    s = gateway.settings.model_copy(deep=True)
    s.airtable.base_id = base_id
    other = _Gateway(
        s,
        journal=gateway.journal,
        source=gateway.source,
        limiter=gateway._limiter,
        sandbox=gateway.sandbox,
        sink=gateway.sink,
    )  # its writes reach the same cache
    other.sleep = gateway.sleep  # the same retry policy, waits included
    return other


def _schema_index(schema: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    by_name = {t["name"]: t for t in schema.get("tables", [])}
    id_to_name = {t["id"]: t["name"] for t in schema.get("tables", [])}
    return by_name, id_to_name


def _field_specs(table: dict[str, Any], id_to_name: dict[str, str]) -> list[FieldSpec]:
    out = []
    for f in table["fields"]:
        if f["type"] in COMPUTED_TYPES:
            continue
        target = None
        if f["type"] == "multipleRecordLinks":
            target = id_to_name.get((f.get("options") or {}).get("linkedTableId", ""))
        out.append(FieldSpec(f["name"], f["type"], target))
    return out


def _order_tables(names: list[str], src_tables: dict[str, dict[str, Any]], id_to_name: dict[str, str]) -> list[str]:
    """Tables that others link to with a single link (parents) first; schema order otherwise."""
    chosen = set(names)

    def singles(n: str) -> int:
        c = 0
        for f in src_tables[n]["fields"]:
            opts = f.get("options") or {}
            if f["type"] == "multipleRecordLinks" and opts.get("prefersSingleRecordLink"):
                tgt = id_to_name.get(opts.get("linkedTableId", ""))
                if tgt in chosen and tgt != n:
                    c += 1
        return c

    pos = {n: i for i, n in enumerate(src_tables)}
    return sorted(names, key=lambda n: (singles(n), pos.get(n, 0)))


def _assign_links(order: list[str], specs: dict[str, list[FieldSpec]], src_tables: dict[str, dict[str, Any]]) -> None:
    """Decide which side of each link pair is written, and which links wait for the second pass."""
    rank = {n: i for i, n in enumerate(order)}
    for n in order:
        fdefs = {f["name"]: f for f in src_tables[n]["fields"]}
        for spec in specs[n]:
            if spec.type != "multipleRecordLinks":
                continue
            opts = fdefs[spec.name].get("options") or {}
            tgt = spec.target
            inverse_id = opts.get("inverseLinkFieldId")
            if tgt is None or tgt not in rank:
                spec.owned = True  # the other side is not restored: write this one (to records that exist)
                continue
            inverse_name = None
            if inverse_id:
                inverse_name = next((f["name"] for f in src_tables[tgt]["fields"] if f["id"] == inverse_id), None)
            if tgt == n:
                if inverse_name and inverse_name != spec.name:
                    names_sorted = sorted([spec.name, inverse_name])
                    spec.owned = spec.name == names_sorted[0]
                spec.deferred = spec.owned
                continue
            if inverse_name:
                spec.owned = rank[n] > rank[tgt]
            else:
                spec.owned = True
                spec.deferred = rank[tgt] > rank[n]


def _norm(v: Any) -> Any:
    """Airtable's blanks (absent, "", [], false) as None; 0 is a value (``0 == False`` in Python)."""
    if v is None or v is False or (isinstance(v, str | list | dict) and not v):
        return None
    return v


def _att_ids(v: Any) -> list[str]:
    return [str(a.get("id")) for a in v or [] if isinstance(a, dict)]


def _match_atts(want: Any, have: Any, plan: RestorePlan) -> list[str | None]:
    """For each attachment of the backup, the id of the current attachment holding the same file.

    Same id, or (in another base, where uploads get new ids) the same name and size and the same
    sha256 once downloaded. None: the file has to be uploaded.
    """
    current = [a for a in have or [] if isinstance(a, dict)]
    out: list[str | None] = []
    used: set[str] = set()
    for a in want or []:
        hit = next((str(c["id"]) for c in current if c.get("id") == a.get("id") and c["id"] not in used), None)
        if hit is None:
            for c in current:
                if c.get("id") in used or c.get("filename") != a.get("filename") or c.get("size") != a.get("size"):
                    continue
                if a.get("sha256") and plan.fetch_sha is not None and plan.fetch_sha(c) == a.get("sha256"):
                    hit = str(c["id"])
                    break
        if hit is not None:
            used.add(hit)
        out.append(hit)
    return out


def _atts_equal(want: Any, have: Any, plan: RestorePlan) -> bool:
    if _att_ids(want) == _att_ids(have):
        return True
    return len(want or []) == len(have or []) and _match_atts(want, have, plan) == _att_ids(have)


def find_resumable(
    journal: Journal | None, backup_id: str, target_base: str, tables: list[str], prune_extra: bool
) -> str | None:
    """The id of an unfinished restore of the same backup, base and tables (to resume), if any.

    A run still ``running`` is resumed only if its process is gone (:func:`process_alive`).
    """
    if journal is None:
        return None
    rows = journal.query(
        "SELECT id, status, progress_json FROM restore_runs WHERE backup_id = ? AND status IN "
        "('running', 'failed', 'interrupted') ORDER BY started DESC",
        (backup_id,),
    )
    for r in rows:
        try:
            p = json.loads(r["progress_json"] or "{}")
        except ValueError:
            continue
        if not isinstance(p, dict):
            continue
        if r["status"] == "running" and process_alive(p.get("process") or {}):
            continue
        if (
            p.get("target_base") == target_base
            and sorted(p.get("tables") or []) == sorted(tables)
            and bool(p.get("prune_extra")) == prune_extra
        ):
            return str(r["id"])
    return None


def known_mappings(journal: Journal | None, target_base: str) -> dict[str, str]:
    """Every ``backup id → new id`` an earlier restore into ``target_base`` created.

    Record ids are unique, so this stays true across backups: a second restore (of this or a
    later backup) finds the record where the first one put it instead of creating it again.
    """
    if journal is None:
        return {}
    runs = []
    for r in journal.query("SELECT id, progress_json FROM restore_runs"):
        try:
            if json.loads(r["progress_json"] or "{}").get("target_base") == target_base:
                runs.append(r["id"])
        except ValueError:
            continue
    out: dict[str, str] = {}
    for rid in runs:
        for r in journal.query(
            "SELECT src, dst FROM restore_items WHERE restore_id = ? AND phase = 'create' ORDER BY ts", (rid,)
        ):
            if r["dst"]:
                out[r["src"]] = r["dst"]
    return out


def _runs_into(journal: Journal, target_base: str) -> list[str]:
    runs = []
    for r in journal.query("SELECT id, progress_json FROM restore_runs"):
        try:
            if json.loads(r["progress_json"] or "{}").get("target_base") == target_base:
                runs.append(str(r["id"]))
        except ValueError:
            continue
    return runs


def pending_creates(journal: Journal | None, target_base: str) -> dict[str, dict[str, str]]:
    """Creates whose answer was lost (table → backup id → ISO time they were sent): they may exist."""
    if journal is None:
        return {}
    out: dict[str, dict[str, str]] = {}
    for rid in _runs_into(journal, target_base):
        for r in journal.query(
            "SELECT table_name, src, dst FROM restore_items WHERE restore_id = ? AND phase = 'pending'", (rid,)
        ):
            out.setdefault(r["table_name"], {})[r["src"]] = r["dst"] or ""
    return out


def reconcile_pending(
    state: dict[str, dict[str, Any]],
    current: dict[str, dict[str, Any]],
    pending: dict[str, str],
    specs: list[Any],
    taken: set[str],
) -> list[tuple[str, str]]:
    """Find the records a lost create answer did create: created since it was sent, same values.

    Links and attachments are left out of the comparison (their ids change in a restore); every other
    written field must be equal. Each target record is matched at most once. Pure: no I/O.
    """
    plain = [sp.name for sp in specs if sp.type not in ("multipleRecordLinks", "multipleAttachments")]
    pairs: list[tuple[str, str]] = []
    used = set(taken)
    for sid, sent in sorted(pending.items(), key=lambda kv: kv[1]):
        rec = state.get(sid)
        if rec is None:
            continue
        want = {n: _norm(rec.get("fields", {}).get(n)) for n in plain}
        for dst, have in current.items():
            if dst in used or str(have.get("createdTime", "")) < sent:
                continue
            if all(_norm(have.get("fields", {}).get(n)) == v for n, v in want.items()):
                pairs.append((sid, dst))
                used.add(dst)
                break
    return pairs


def _load_done(journal: Journal | None, restore_id: str) -> tuple[dict[str, str], dict[str, set[str]]]:
    id_map: dict[str, str] = {}
    done: dict[str, set[str]] = {}
    if journal is None:
        return id_map, done
    for r in journal.query("SELECT phase, src, dst FROM restore_items WHERE restore_id = ?", (restore_id,)):
        done.setdefault(r["phase"], set()).add(r["src"])
        if r["phase"] == "create" and r["dst"]:
            id_map[r["src"]] = r["dst"]
    return id_map, done


def plan_restore(
    settings: Settings,
    gateway: Gateway,
    backup_id: str,
    *,
    tables: list[str] | None = None,
    target_base: str | None = None,
    prune_extra: bool = False,
    new_base: NewBase | None = None,
) -> RestorePlan:
    """Read the backup (its whole chain, verified) and the target base; say what a restore would do.

    Writes nothing. ``gateway`` is the configured one; another base gets its own gateway. The tables
    and fields the target lacks are planned from the backup's schema.json (``plan.schema``, created
    first by :func:`execute_restore`). ``new_base``: the target is a base the restore creates (planned
    against an empty base until it exists; once an earlier run created it, that base).

    :raises NotFound | BadInput: unknown backup id, unknown table (all before anything is written).
    :raises SchemaConflict: a field of the target has another type (or links to another table) than
        the backup's.
    :raises BackupBroken: a file in the chain fails verification.
    """
    root = settings.paths.backups
    info = find_backup(root, backup_id, restore_of=str(settings.base_id))
    if info.manifest is None:
        raise errors.OperationFailed(f"backup {info.id} cannot be read: {info.problem}")
    m = info.manifest
    available = m.ok_tables()
    if tables:
        for t in tables:
            if t not in m.tables:
                raise errors.UnknownTable(
                    f"backup {info.id} has no table {t!r}{did_you_mean(t, list(m.tables))}",
                    hint=f"it holds: {', '.join(m.tables)}",
                )
            if t not in available:
                raise errors.BadInput(
                    f"table {t!r} failed in backup {info.id}; it cannot be restored from it",
                    hint="pick an earlier backup of that table",
                )
        names = list(tables)
    else:
        names = available
    if not names:
        raise errors.BadInput(f"backup {info.id} holds no restorable table")
    journal = gateway.journal
    if new_base is not None:
        if target_base is not None:
            raise errors.BadInput("--new-base and --base name two targets; give one of them")
        target_base = created_base(journal, new_base)  # None until a run created it
    virtual = new_base is not None and target_base is None
    target = new_base.lock_key() if virtual and new_base is not None else (target_base or m.base)
    tgw = None if virtual else gateway_for_base(gateway, target)
    same = target == m.base

    # the chain must read back whole before we touch the base
    index = backup_index(root)
    store = BlobStore(root)
    seen: set[str] = set()
    for n in names:
        for b in table_chain(info, n, index):
            if b.id not in seen:
                verify_dir(b.path, store=store, expected_id=b.id, hash_blobs=False)
                seen.add(b.id)

    src_schema = json.loads(read_bytes(info.path / SCHEMA).decode("utf-8"))
    src_tables, src_ids = _schema_index(src_schema)
    for n in names:
        if n not in src_tables:
            raise errors.OperationFailed(f"backup {info.id}: {SCHEMA} has no table {n!r}")
    tgt_schema: dict[str, Any] = {"tables": []} if tgw is None else tgw.schema()
    where = f"new base {new_base.name!r}" if virtual and new_base is not None else target
    schema = plan_schema(src_schema, tgt_schema, names, target_base=where)
    tgt_tables, _ = _schema_index(tgt_schema)
    have = {n: {f["name"] for f in t["fields"]} for n, t in tgt_tables.items()}
    # a field neither in the target nor created (a link to a table that is not there) is not written
    specs = {
        n: [sp for sp in _field_specs(src_tables[n], src_ids) if schema.will_exist(n, sp.name, have)] for n in names
    }
    order = _order_tables(names, src_tables, src_ids)
    _assign_links(order, specs, src_tables)

    resume = find_resumable(journal, info.id, target, order, prune_extra)
    restore_id = resume or f"restore-{uuid.uuid4().hex[:12]}"
    id_map, done = _load_done(journal, restore_id) if resume else ({}, {})
    id_map = {**known_mappings(journal, target), **id_map}
    plan = RestorePlan(
        restore_id=restore_id,
        backup_id=info.id,
        source_base=m.base,
        target_base=target,
        same_base=same,
        prune_extra=prune_extra,
        tables=[],
        resumed=resume is not None,
        id_map=id_map,
        done=done,
        fetch_sha=None if tgw is None else _sha_fetcher(tgw),
        requested_tables=list(tables) if tables else None,
        schema=schema,
        new_base=new_base,
        backup_schema=src_schema,
        warnings=list(schema.warnings),
    )

    for n in order:
        plan.states[n] = table_state(info, n, index)
    link_targets = {s.target for n in order for s in specs[n] if s.target and s.owned} - set(order)
    for n in order:  # a table the restore creates has no record yet
        plan.current[n] = {r["id"]: r for r in tgw.all(n)} if tgw is not None and n in tgt_tables else {}
    for t in sorted(t for t in link_targets if t is not None):
        if t in tgt_tables and tgw is not None:
            small = next(
                (f["name"] for f in tgt_tables[t]["fields"] if f["type"] == "checkbox"),
                tgt_tables[t]["fields"][0]["name"],
            )
            plan.existing_ids[t] = {r["id"] for r in tgw.all(t, fields=[small])}
            if not same:
                plan.warnings.append(
                    f"links to table {t!r} (not restored) are dropped: its records have other ids in the target base"
                )

    pending = pending_creates(journal, target)
    for n in order:
        lost = {sid: t for sid, t in pending.get(n, {}).items() if sid not in id_map}
        if lost:
            found = reconcile_pending(plan.states[n], plan.current[n], lost, specs[n], set(id_map.values()))
            for sid, found_id in found:
                id_map[sid] = found_id
            plan.reconciled[n] = found
            if found:
                plan.warnings.append(
                    f"{n}: {len(found)} record(s) created by an interrupted restore whose answer "
                    "was lost were found and will not be created again"
                )

    to_upload: list[tuple[str, str, str, dict[str, Any]]] = []  # (table, backup id, field, attachment)
    for n in order:
        state, current = plan.states[n], plan.current[n]
        tid = tgt_tables[n]["id"] if n in tgt_tables else ""  # known once created
        tp = TablePlan(name=n, target_table_id=tid, fields=specs[n], records=len(state))
        wanted: set[str] = set()
        att_specs = [s for s in specs[n] if s.type == "multipleAttachments" and s.owned and not s.deferred]
        for sid, rec in state.items():
            dst = id_map.get(sid) or (sid if same and sid in current else None)
            if dst is None or dst not in current:
                tp.create.append(sid)
                for s in att_specs:
                    for a in rec["fields"].get(s.name) or []:
                        tp.uploads += 1
                        to_upload.append((n, sid, s.name, a))
                continue
            wanted.add(dst)
            if sid in done.get("create", set()):
                tp.already += 1
            if _differs(rec, current[dst], specs[n], id_map, plan):
                tp.update.append(sid)
                for s in att_specs:
                    want = rec["fields"].get(s.name)
                    for a, matched in zip(
                        want or [], _match_atts(want, current[dst]["fields"].get(s.name), plan), strict=True
                    ):
                        if matched is None:
                            tp.uploads += 1
                            to_upload.append((n, sid, s.name, a))
            else:
                tp.skip += 1
        extra = [rid for rid in current if rid not in wanted]
        if extra and prune_extra:
            tp.delete = extra
        elif extra and same:
            plan.warnings.append(f"{n}: {len(extra)} record(s) not in the backup are kept (--prune-extra deletes them)")
        elif extra:
            plan.warnings.append(f"{n}: the target table already holds {len(extra)} record(s); they are kept")
        plan.tables.append(tp)
    check_blobs(info.id, store, to_upload)
    return plan


def check_blobs(backup_id: str, store: BlobStore, uploads: Iterable[tuple[str, str, str, dict[str, Any]]]) -> None:
    """Hash every stored file a restore would upload; the first that does not match its sha256 stops it.

    Files missing from the store are left to the upload step (a warning there, as before).

    :raises BackupBroken: names the blob and the record and field that use it.
    """
    checked: set[str] = set()
    for table, sid, fname, att in uploads:
        sha = str(att.get("sha256") or "")
        if sha in checked or not sha or not store.has(sha):
            continue
        try:
            _, digest = sha256_file(store.path(sha))
        except OSError as e:
            raise BackupBroken(backup_id, f"attachments/{sha[:2]}/{sha}", f"cannot be read ({e.strerror})") from None
        if digest != sha:
            raise _corrupt_blob(backup_id, sha, table, sid, fname, att)
        checked.add(sha)


def _corrupt_blob(backup_id: str, sha: str, table: str, sid: str, fname: str, att: dict[str, Any]) -> BackupBroken:
    err = BackupBroken(
        backup_id,
        f"attachments/{sha[:2]}/{sha}",
        f"does not match its sha256 (file {att.get('filename')!r} of {table} record {sid}, field "
        f"{fname!r}); nothing was written",
    )
    err.hint = f"run `beststag backup verify {backup_id}` to list every damaged file; restore from another backup"
    return err


def _sha_fetcher(tgw: Gateway) -> Callable[[dict[str, Any]], str | None]:
    cache: dict[str, str | None] = {}

    def fetch(att: dict[str, Any]) -> str | None:
        key = str(att.get("id"))
        if key in cache:
            return cache[key]
        for attempt in range(3):  # a failed download is not cached: unknown is not "different"
            try:
                resp = tgw.api.session.get(str(att.get("url")), timeout=(10.0, 60.0), headers={"Authorization": None})
            except Exception:
                resp = None
            if resp is not None and resp.status_code == 200:
                cache[key] = hashlib.sha256(resp.content).hexdigest()
                return cache[key]
            if resp is not None and resp.status_code in (403, 404, 410):
                return None
            tgw.sleep(tgw._backoff(attempt + 1, None))
        return None

    return fetch


def _desired(rec: dict[str, Any], spec: FieldSpec) -> Any:
    return rec.get("fields", {}).get(spec.name)


def _map_links(ids: Iterable[str], spec: FieldSpec, plan: RestorePlan, *, lenient: bool = False) -> list[str]:
    out = []
    existing = plan.current[spec.target] if spec.target in plan.current else plan.existing_ids.get(str(spec.target))
    for x in ids:
        y = plan.id_map.get(x)
        if y is None and plan.same_base and existing is not None and x in existing:
            y = x  # same base: a record that still exists keeps its id
        if y is None and lenient and spec.target in plan.current:
            y = x  # planning: a restored table's record not created yet (it will be mapped then)
        if y is not None:
            out.append(y)
    return out


def _differs(
    rec: dict[str, Any], cur: dict[str, Any], specs: list[FieldSpec], id_map: dict[str, str], plan: RestorePlan
) -> bool:
    for spec in specs:
        if not spec.owned:
            continue
        want, have = _desired(rec, spec), cur.get("fields", {}).get(spec.name)
        if spec.type == "multipleAttachments":
            if not _atts_equal(want, have, plan):
                return True
        elif spec.type == "multipleRecordLinks":
            if _map_links(want or [], spec, plan, lenient=True) != list(have or []):
                return True
        elif _norm(want) != _norm(have):
            return True
    return False


# --------------------------------------------------------------------------------------------
# execute


@dataclass
class RestoreResult:
    plan: RestorePlan
    status: str
    duration_s: float
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    uploaded: dict[str, int] = field(default_factory=dict)
    links: dict[str, int] = field(default_factory=dict)
    dropped_links: int = 0
    schema: SchemaOutcome | None = None
    #: the list of what a person must recreate (fields the API cannot create, views), when there is some
    manual_file: str | None = None

    @property
    def records(self) -> int:
        return sum(self.created.values()) + sum(self.updated.values())

    def write_counts(self) -> dict[str, int]:
        """Writes done by kind, counted as the plan counts them (link second passes are `links_set`, apart)."""
        s = self.schema
        planned = self.plan.schema
        tables = len(self.plan.base_tables) + len(planned.tables)  # a new base's tables come with it
        schema = {"table": tables, "field": len(planned.fields)} if (planned.writes or tables) and s is not None else {}
        return {
            **schema,
            "create": sum(self.created.values()),
            "update": sum(self.updated.values()),
            "delete": sum(self.deleted.values()),
            "upload": sum(self.uploaded.values()),
        }

    def summary(self) -> dict[str, Any]:
        out = self.plan.summary()
        out.update(
            {
                "id": self.plan.restore_id,
                "status": self.status,
                "duration_s": round(self.duration_s, 3),
                "records": self.records,
                "writes": self.write_counts(),
                "dropped_links": self.dropped_links,
                "manual_file": self.manual_file,
            }
        )
        s = self.schema
        out["schema"]["done"] = {
            "tables_created": [*self.plan.base_tables, *(s.tables_created if s else [])],
            "fields_created": s.fields_created if s else [],
            "renamed": s.renamed if s else [],
            "found": s.found if s else [],
        }
        for n, t in out["tables"].items():
            t.update(
                {
                    "created": self.created.get(n, 0),
                    "updated": self.updated.get(n, 0),
                    "deleted": self.deleted.get(n, 0),
                    "uploaded": self.uploaded.get(n, 0),
                    "links_set": self.links.get(n, 0),
                }
            )
        return out


class _Recorder:
    """Writes restore progress to the journal: one row per record and phase, one transaction a batch."""

    def __init__(self, journal: Journal | None, restore_id: str) -> None:
        self.journal = journal
        self.restore_id = restore_id

    def add(self, table: str, phase: str, pairs: Sequence[tuple[str, str | None]]) -> None:
        if self.journal is None or not pairs:
            return
        ts = clock.timestamp()
        # Journal has no public bulk append; its transactional helper keeps a batch one commit.
        self.journal._write_many(
            "INSERT INTO restore_items (restore_id, table_name, phase, src, dst, ts) VALUES (?,?,?,?,?,?)",
            [(self.restore_id, table, phase, s, d, ts) for s, d in pairs],
        )


def execute_restore(
    settings: Settings, gateway: Gateway, plan: RestorePlan, *, progress: Reporter | None = None, wait_s: float = 0.0
) -> RestoreResult:
    """Carry out ``plan`` (from :func:`plan_restore`) under the target base's restore lock.

    A plan made without the lock (not inside :func:`restore_session`) is made again once the lock is
    held, so what is written never rests on a read another restore could have changed.

    :raises LockHeld: another restore into that base is running (after ``wait_s``).
    :raises DiskFull: a journal (or other local) write failed for want of space; the row is closed
        when it can be.
    :raises Interrupted | KeyboardInterrupt: the row is closed as ``interrupted``, the lock released.
    :raises BestStagError: a write kept failing; the journal keeps the progress, and running the same
        restore again resumes it.
    """
    if plan.new_base is not None and not _BASE_ID_RE.fullmatch(plan.target_base):
        with restore_lock(settings, plan.target_base, wait_s=wait_s):
            base_id, made = create_new_base(gateway, plan)
            with restore_lock(settings, base_id, wait_s=wait_s):
                fresh = _replan(settings, gateway, plan, base_id)
                fresh.base_tables = made
                return _execute_locked(settings, gateway, fresh, guard(progress))
    if holds_restore_lock(settings, plan.target_base):
        return _execute_locked(settings, gateway, plan, guard(progress))
    with restore_lock(settings, plan.target_base, wait_s=wait_s):
        return _execute_locked(settings, gateway, _replan(settings, gateway, plan, plan.target_base), guard(progress))


def _replan(settings: Settings, gateway: Gateway, plan: RestorePlan, target_base: str) -> RestorePlan:
    fresh = plan_restore(
        settings,
        gateway,
        plan.backup_id,
        tables=plan.requested_tables,
        target_base=target_base,
        prune_extra=plan.prune_extra,
    )
    fresh.new_base = plan.new_base
    if not fresh.resumed:
        fresh.restore_id = plan.restore_id  # the id the caller was shown
    return fresh


def created_base(journal: Journal | None, new_base: NewBase) -> str | None:
    """The id of the base an earlier restore created for ``new_base`` (its answer arrived), if any."""
    if journal is None:
        return None
    try:
        rec = json.loads(journal.kv_get(new_base.journal_key()) or "{}")
    except ValueError:
        return None
    base_id = rec.get("base_id") if isinstance(rec, dict) else None
    return str(base_id) if isinstance(base_id, str) and _BASE_ID_RE.fullmatch(base_id) else None


def create_new_base(gateway: Gateway, plan: RestorePlan) -> tuple[str, list[str]]:
    """Create the base of ``plan.new_base`` with the tables of ``plan.schema`` (their plain fields), once.

    Returns its id and the tables it was created with. The journal says ``pending`` before the request
    is sent and keeps the id once answered. A base of that name that exists already is refused, unless
    a pending request of ours (whose answer was lost) made it: then it is that base.

    :raises BadInput: a base of that name exists and this restore did not create it.
    """
    nb = plan.new_base
    assert nb is not None
    journal = gateway.journal
    key = nb.journal_key()
    known = created_base(journal, nb)
    if known is not None:
        return known, []
    pending = journal is not None and journal.kv_get(key) is not None
    bodies = [t.body() for t in plan.schema.tables]
    names = [t.name for t in plan.schema.tables]

    def named() -> list[dict[str, Any]]:
        return [b for b in _persist(gateway, "list bases", gateway.list_bases) if b.get("name") == nb.name]

    def adopt(base_id: str) -> tuple[str, list[str]]:
        if journal is not None:
            journal.kv_set(key, json.dumps({"base_id": base_id, "workspace": nb.workspace, "name": nb.name}))
        log_event("restore.base_created", base_id=base_id, name=nb.name, workspace=nb.workspace)
        return base_id, names

    same = named()
    if same and not pending:
        raise errors.BadInput(
            f"a base named {nb.name!r} exists already ({same[0]['id']}); nothing was written",
            hint=f"restore into it with --base {same[0]['id']} (an empty base), or pick another name",
        )
    if len(same) == 1:  # ours: the answer of the request that made it was lost
        return adopt(str(same[0]["id"]))
    if len(same) > 1:
        raise errors.OperationFailed(
            f"{len(same)} bases are named {nb.name!r} ({', '.join(b['id'] for b in same)}); an earlier "
            "restore's request may have made one of them",
            hint="restore into the right one with --base",
        )
    if journal is not None:
        journal.kv_set(key, json.dumps({"pending": clock.timestamp(), "workspace": nb.workspace, "name": nb.name}))
    for attempt in range(1, RUN_ATTEMPTS + 1):
        try:
            answer = gateway.create_base(nb.name, nb.workspace, bodies)
            return adopt(str(answer["id"]))
        except errors.BestStagError as e:
            if not _retryable(e) or attempt == RUN_ATTEMPTS:
                raise
            log_event("restore.retry", _level=30, what="create base", attempt=attempt, error=str(e)[:200])
            gateway.sleep(gateway._backoff(attempt, None))
            same = named()
            if len(same) == 1:
                return adopt(str(same[0]["id"]))
    raise AssertionError("unreachable")


def _disk_full(e: BaseException, settings: Settings) -> errors.DiskFull | None:
    """The :class:`DiskFull` when a full disk is why ``e`` happened, else None (see :mod:`diskspace`)."""
    return as_disk_full(e, settings.paths.data_dir, settings.paths.journal)


def _execute_locked(settings: Settings, gateway: Gateway, plan: RestorePlan, progress: Reporter) -> RestoreResult:
    tgw = gateway_for_base(gateway, plan.target_base)
    journal = gateway.journal
    rec = _Recorder(journal, plan.restore_id)
    result = RestoreResult(plan, "running", 0.0)
    started = clock.timestamp()
    t0 = time.monotonic()
    progress_info = {
        "backup_id": plan.backup_id,
        "target_base": plan.target_base,
        "tables": [t.name for t in plan.tables],
        "prune_extra": plan.prune_extra,
        "mode": "same" if plan.same_base else "other",
        "process": process_identity(),
    }

    def record(status: str) -> None:
        if journal is None:
            return
        journal.record_restore_run(
            id=plan.restore_id,
            backup_id=plan.backup_id,
            status=status,
            started=started,
            finished=None if status == "running" else clock.timestamp(),
            duration_s=time.monotonic() - t0,
            records=result.records,
            progress={**progress_info, "counts": result.summary()["tables"]},
        )

    store = BlobStore(settings.paths.backups)
    airtable = AirtableClock(settings.endpoint_url)  # "sent" times come from Airtable's clock, never ours
    session = tgw.api.session
    session.hooks["response"].append(airtable.hook)
    try:
        record("running")
        log_event(
            "restore.started",
            restore_id=plan.restore_id,
            backup_id=plan.backup_id,
            target_base=plan.target_base,
            resumed=plan.resumed,
        )
        _recreate_schema(settings, tgw, plan, rec, result, progress)
        for tp in plan.tables:
            _restore_table(tgw, plan, tp, rec, store, result, progress, airtable)
        for tp in plan.tables:
            _second_pass(tgw, plan, tp, rec, result)
        for tp in reversed(plan.tables):
            _prune(tgw, plan, tp, rec, result)
    except BaseException as e:
        interrupted = isinstance(e, KeyboardInterrupt | errors.Interrupted)
        result.status = "interrupted" if interrupted else "failed"
        result.duration_s = time.monotonic() - t0
        full = None if interrupted else _disk_full(e, settings)
        with contextlib.suppress(Exception):  # the journal itself may be what failed (disk full)
            record(result.status)
        with contextlib.suppress(Exception):
            log_event(
                "restore." + result.status,
                _level=30 if interrupted else 40,
                restore_id=plan.restore_id,
                error=str(e)[:300],
            )
        if full is not None and full is not e:
            full.hint = full.hint + "; run the same restore again to resume it"
            raise full from None
        if isinstance(e, errors.BestStagError) and not interrupted:
            e.hint = (e.hint + "; " if e.hint else "") + "run the same restore again to resume it"
        raise
    finally:
        with contextlib.suppress(ValueError):
            session.hooks["response"].remove(airtable.hook)
    result.status = "ok"
    result.duration_s = time.monotonic() - t0
    try:
        record("ok")
    except BaseException as e:
        full = _disk_full(e, settings)
        if full is None:
            raise
        raise full from None
    log_event(
        "restore.finished", restore_id=plan.restore_id, records=result.records, duration_s=round(result.duration_s, 3)
    )
    # the cache already heard of every write, as it happened (the gateway's change sink), failed runs too
    record_restored_tables(
        plan.target_base, [t.name for t in plan.tables], reason=f"restore {plan.restore_id}", journal=journal
    )
    return result


def _recreate_schema(
    settings: Settings, tgw: Gateway, plan: RestorePlan, rec: _Recorder, result: RestoreResult, progress: Reporter
) -> None:
    """Create the tables and fields the target lacks (each once), and write the manual list."""
    sp = plan.schema
    if sp.manual or sp.views or sp.warnings:
        path = write_manual(
            settings.paths.data_dir, plan.restore_id, sp, backup_id=plan.backup_id, target_base=plan.target_base
        )
        result.manual_file = str(path)
    if not sp.writes:
        result.schema = SchemaOutcome()
        return
    task = progress.task("recreate the schema", total=sp.writes, unit="items")
    outcome = execute_schema(tgw, sp, progress=lambda _what: task.advance(1))
    task.done(f"{len(outcome.tables_created)} tables, {len(outcome.fields_created)} fields created")
    result.schema = outcome
    rec.add("", "schema", [(x, None) for x in [*outcome.tables_created, *outcome.fields_created]])
    from beststag_cli.fsutil import safe_unlink
    from beststag_cli.query.schema_cache import schema_path

    # the saved copy of the target's schema names none of the new tables and fields (queries would refuse them)
    safe_unlink(schema_path(settings.paths.data_dir, plan.target_base))
    for tp in plan.tables:
        tp.target_table_id = tp.target_table_id or outcome.table_ids.get(tp.name, "")


def _retryable(e: BaseException) -> bool:
    """A failure another attempt may get past: lost answers, 5xx and 429 after the gateway's own retries."""
    return isinstance(e, errors.UpstreamUnavailable) and not isinstance(e, errors.UpstreamAuthError)


def _persist(tgw: Gateway, what: str, fn: Callable[[], Any]) -> Any:
    """Run an idempotent call (read, update by id); on a retryable failure wait (gateway backoff) and run it again."""
    for attempt in range(1, IDEMPOTENT_ATTEMPTS + 1):
        try:
            return fn()
        except errors.BestStagError as e:
            if not _retryable(e) or attempt == IDEMPOTENT_ATTEMPTS:
                raise
            log_event("restore.retry", _level=30, what=what, attempt=attempt, error=str(e)[:200])
            tgw.sleep(tgw._backoff(attempt, None))
    raise AssertionError("unreachable")


def _payload(
    rec: dict[str, Any], tp: TablePlan, plan: RestorePlan, result: RestoreResult, *, current: dict[str, Any] | None
) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """Fields to write for one record (changed ones only when ``current`` is given) and the uploads it needs."""
    out: dict[str, Any] = {}
    uploads: list[tuple[str, dict[str, Any]]] = []
    cur_fields = (current or {}).get("fields", {})
    for spec in tp.fields:
        if not spec.owned or spec.deferred:
            continue
        want = _desired(rec, spec)
        if spec.type == "multipleAttachments":
            if current is None:
                uploads.extend((spec.name, a) for a in want or [])  # a new record gets its files by upload
                continue
            have = cur_fields.get(spec.name)
            if _atts_equal(want, have, plan):
                continue
            matches = _match_atts(want, have, plan)
            out[spec.name] = [{"id": m} for m in matches if m is not None]
            uploads.extend((spec.name, a) for a, m in zip(want or [], matches, strict=True) if m is None)
            continue
        if spec.type == "multipleRecordLinks":
            mapped = _map_links(want or [], spec, plan)
            result.dropped_links += len(want or []) - len(mapped)
            if current is None:
                if mapped:
                    out[spec.name] = mapped
            elif mapped != list(cur_fields.get(spec.name) or []):
                out[spec.name] = mapped
            continue
        if current is None:
            if _norm(want) is not None:
                out[spec.name] = want
        elif _norm(want) != _norm(cur_fields.get(spec.name)):
            out[spec.name] = want if _norm(want) is not None else None
    return out, uploads


def _restore_table(
    tgw: Gateway,
    plan: RestorePlan,
    tp: TablePlan,
    rec: _Recorder,
    store: BlobStore,
    result: RestoreResult,
    progress: Reporter,
    airtable: AirtableClock,
) -> None:
    state, current = plan.states[tp.name], plan.current[tp.name]
    done_create = plan.done.get("create", set())
    done_update = plan.done.get("update", set())
    fresh: set[str] = set()  # target ids created by this run (they hold no attachment yet)
    n = 0
    rec.add(tp.name, "create", plan.reconciled.get(tp.name, []))
    todo = [s for s in tp.create if s not in done_create]
    # the total is this run's work: a resumed restore counts only what is left
    task = progress.task(f"restore {tp.name}", total=len(todo) + sum(1 for s in tp.update if s not in done_update))
    for i in range(0, len(todo), BATCH):
        interrupts.check()  # a signal whose Interrupted an `except Exception` swallowed still stops us here
        chunk = todo[i : i + BATCH]
        bodies = {sid: _payload(state[sid], tp, plan, result, current=None)[0] for sid in chunk}
        for sid, new_id in _create_batch(tgw, plan, tp, rec, bodies, airtable):
            plan.id_map[sid] = new_id
            fresh.add(new_id)
        result.created[tp.name] = result.created.get(tp.name, 0) + len(chunk)
        n += len(chunk)
        task.advance(len(chunk))

    todo = [s for s in tp.update if s not in done_update]
    for i in range(0, len(todo), BATCH):
        interrupts.check()  # a signal whose Interrupted an `except Exception` swallowed still stops us here
        chunk = todo[i : i + BATCH]
        batch = []
        for sid in chunk:
            upd_id = plan.id_map.get(sid, sid)
            fields, _ = _payload(state[sid], tp, plan, result, current=current[upd_id])
            if fields:
                batch.append({"id": upd_id, "fields": fields})
        if batch:
            _persist(tgw, f"update {tp.name}", lambda b=batch: tgw.update(tp.name, b, source="restore"))  # type: ignore[misc]
        rec.add(tp.name, "update", [(sid, plan.id_map.get(sid, sid)) for sid in chunk])
        result.updated[tp.name] = result.updated.get(tp.name, 0) + len(batch)
        n += len(chunk)
        task.advance(len(chunk))
    task.done(f"{n:,} records")

    # one queue of files per (record, field), built from the backup now; what the target already
    # holds is read again just before uploading, so nothing is uploaded twice
    att_specs = [sp for sp in tp.fields if sp.type == "multipleAttachments" and sp.owned and not sp.deferred]
    queue: dict[tuple[str, str], tuple[str, list[dict[str, Any]]]] = {}
    for sid in dict.fromkeys([*tp.create, *tp.update]):
        dst = plan.id_map.get(sid) or (sid if plan.same_base else None)
        if dst is None:
            continue
        for sp in att_specs:
            want = []
            for att in state[sid].get("fields", {}).get(sp.name) or []:
                sha = att.get("sha256")
                if not sha or not store.has(str(sha)):
                    plan.warnings.append(
                        f"{tp.name}/{dst}: attachment {att.get('filename')} is not in the backup; skipped"
                    )
                elif store.path(str(sha)).stat().st_size > MAX_UPLOAD_BYTES:
                    plan.warnings.append(
                        f"{tp.name}/{dst}: attachment {att.get('filename')} is over 5 MB, which "
                        "uploadAttachment refuses; skipped"
                    )
                else:
                    want.append(att)
            if want:
                queue[(dst, sp.name)] = (sid, want)
    if not queue:
        return
    files = progress.task(f"upload {tp.name}", total=sum(len(w) for _, w in queue.values()), unit="files")
    for (dst, fname), (sid, want) in queue.items():
        _upload_missing(tgw, plan, tp, rec, store, result, dst, fname, want, sid, known_empty=dst in fresh, task=files)
    files.done(f"{result.uploaded.get(tp.name, 0)} uploaded")


def _same_as_body(body: dict[str, Any], have: dict[str, Any], tp: TablePlan) -> bool:
    """``have`` (a target record's fields) holds exactly what a create ``body`` wrote (files aside)."""
    for spec in tp.fields:
        if not spec.owned or spec.deferred or spec.type == "multipleAttachments":
            continue
        if _norm(body.get(spec.name)) != _norm(have.get(spec.name)):
            return False
    return True


def _create_batch(
    tgw: Gateway,
    plan: RestorePlan,
    tp: TablePlan,
    rec: _Recorder,
    bodies: dict[str, dict[str, Any]],
    airtable: AirtableClock,
) -> list[tuple[str, str]]:
    """Create one batch; return (backup id, new id) for each record. Never creates a record twice.

    The batch is marked pending before it is sent (a kill before the answer is reconciled by the
    next run). When the answer is lost or Airtable fails after the gateway's retries, the target
    is read and the records the batch did create are found (same values, created since it was
    sent); only the others are sent again. Bounded by :data:`RUN_ATTEMPTS`.
    """
    todo = dict(bodies)
    pairs: list[tuple[str, str]] = []
    sent = _sent_time(tgw, airtable)
    rec.add(tp.name, "pending", [(sid, sent) for sid in todo])
    for attempt in range(1, RUN_ATTEMPTS + 1):
        try:
            created = tgw.create(tp.name, list(todo.values()), source="restore")
        except errors.BestStagError as e:
            if not _retryable(e) or attempt == RUN_ATTEMPTS:
                raise
            log_event("restore.retry", _level=30, what=f"create {tp.name}", attempt=attempt, error=str(e)[:200])
            tgw.sleep(tgw._backoff(attempt, None))
            found = _find_created(tgw, plan, tp, todo, sent, {d for _, d in pairs})
            rec.add(tp.name, "create", list(found))
            pairs.extend(found)
            for sid, _ in found:
                todo.pop(sid)
            if not todo:
                break
            continue
        new = [(sid, r["id"]) for sid, r in zip(todo, created, strict=True)]
        rec.add(tp.name, "create", list(new))
        pairs.extend(new)
        break
    return pairs


def _sent_time(tgw: Gateway, airtable: AirtableClock) -> str:
    """When a batch is sent, by Airtable's clock (its ``createdTime``), less :data:`SENT_MARGIN_S`.

    The local clock may be set anywhere: a host ahead would make every record the batch created
    look older than the batch, and a lost answer would be sent again (duplicates).
    """
    now = airtable.now()
    if now is None:  # no answer from the target yet: any answer carries Airtable's Date
        _persist(tgw, "read the schema", tgw.schema)
        now = airtable.now()
    if now is None:
        log_event("restore.no_airtable_clock", _level=30, note="no Date header seen; using the local clock")
        now = clock.now()
    return iso(now - timedelta(seconds=SENT_MARGIN_S))


def _find_created(
    tgw: Gateway, plan: RestorePlan, tp: TablePlan, todo: dict[str, dict[str, Any]], sent: str, taken: set[str]
) -> list[tuple[str, str]]:
    """The records of ``todo`` a create whose answer was lost did create (read from the target)."""
    used = taken | set(plan.id_map.values()) | set(plan.current[tp.name])
    records = _persist(tgw, f"reconcile {tp.name}", lambda: tgw.all(tp.name))
    out: list[tuple[str, str]] = []
    for sid, body in todo.items():
        for r in records:
            if r["id"] in used or str(r.get("createdTime", "")) < sent:
                continue
            if _same_as_body(body, r.get("fields", {}), tp):
                out.append((sid, r["id"]))
                used.add(r["id"])
                break
    return out


def _upload_missing(
    tgw: Gateway,
    plan: RestorePlan,
    tp: TablePlan,
    rec: _Recorder,
    store: BlobStore,
    result: RestoreResult,
    dst: str,
    fname: str,
    want: list[dict[str, Any]],
    sid: str,
    *,
    known_empty: bool,
    task: Task,
) -> None:
    """Upload the files of ``want`` that record ``dst`` does not hold yet (by sha256), each once."""
    for attempt in range(1, RUN_ATTEMPTS + 1):
        if known_empty and attempt == 1:
            have: list[Any] = []
        else:
            got = _persist(tgw, f"get {tp.name}", lambda: tgw.get(tp.name, dst))
            have = list(got.get("fields", {}).get(fname) or [])
        missing = [a for a, m in zip(want, _match_atts(want, have, plan), strict=True) if m is None]
        if attempt == 1:
            task.advance(len(want) - len(missing))  # already there: nothing to send
        try:
            for att in missing:
                sha = str(att["sha256"])
                data = store.read(sha)
                if hashlib.sha256(data).hexdigest() != sha:  # changed since the plan checked it
                    raise _corrupt_blob(plan.backup_id, sha, tp.name, sid, fname, att)
                tgw.upload_attachment(
                    tp.name,
                    dst,
                    fname,
                    str(att.get("filename") or "file"),
                    content=data,
                    content_type=str(att.get("type") or "application/octet-stream"),
                    source="restore",
                )
                rec.add(tp.name, "upload", [(f"{dst}|{fname}|{sha}", dst)])
                result.uploaded[tp.name] = result.uploaded.get(tp.name, 0) + 1
                task.advance(1, bytes=len(data))
            return
        except errors.BestStagError as e:
            if not _retryable(e) or attempt == RUN_ATTEMPTS:
                raise
            log_event("restore.retry", _level=30, what=f"upload {tp.name}/{dst}", attempt=attempt, error=str(e)[:200])
            tgw.sleep(tgw._backoff(attempt, None))


def _second_pass(tgw: Gateway, plan: RestorePlan, tp: TablePlan, rec: _Recorder, result: RestoreResult) -> None:
    deferred = [s for s in tp.fields if s.deferred and s.owned]
    if not deferred:
        return
    done = plan.done.get("link", set())
    state, current = plan.states[tp.name], plan.current[tp.name]
    batch: list[dict[str, Any]] = []
    srcs: list[str] = []

    def flush() -> None:
        if batch:
            body = list(batch)
            _persist(tgw, f"links {tp.name}", lambda: tgw.update(tp.name, body, source="restore"))
            rec.add(tp.name, "link", [(s, None) for s in srcs])
            result.links[tp.name] = result.links.get(tp.name, 0) + len(batch)
        batch.clear()
        srcs.clear()

    for sid, r in state.items():
        if sid in done:
            continue
        dst = plan.id_map.get(sid) or (sid if plan.same_base and sid in current else None)
        if dst is None:
            continue
        fields = {}
        for spec in deferred:
            want = _map_links(_desired(r, spec) or [], spec, plan)
            have = list((current.get(dst) or {}).get("fields", {}).get(spec.name) or [])
            if want != have:
                fields[spec.name] = want
        if fields:
            batch.append({"id": dst, "fields": fields})
            srcs.append(sid)
            if len(batch) == BATCH:
                flush()
    flush()


def _prune(tgw: Gateway, plan: RestorePlan, tp: TablePlan, rec: _Recorder, result: RestoreResult) -> None:
    done = plan.done.get("delete", set())
    todo = [d for d in tp.delete if d not in done]
    for i in range(0, len(todo), BATCH):
        interrupts.check()  # a signal whose Interrupted an `except Exception` swallowed still stops us here
        chunk = todo[i : i + BATCH]
        tgw.delete(tp.name, chunk, source="restore")
        rec.add(tp.name, "delete", [(d, None) for d in chunk])
        result.deleted[tp.name] = result.deleted.get(tp.name, 0) + len(chunk)
