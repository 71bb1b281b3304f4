"""Cache: upstream requests and stale reads of five clients on one Zipf read-mostly workload (issue 6).

Workload (seeded, deterministic; the same op sequence for every client, each on a fresh copy of the base):
- a sandbox base of 6 tables × 500 records (a small schema of our own, no link/lookup/formula fields:
  text, three single selects, number, checkbox, multiple selects, dateTime, long text);
- 300 distinct queries (50 per table: filters, sorts, maxRecords, field selections, as QuerySpec dicts),
  read with a Zipf distribution (exponent `ZIPF_S`) over a seeded ranking;
- 5,000 operations, 10% of them writes, in bursts of consecutive writes to one table (updates that move
  records between filters, some creates and deletes);
- the in-process sandbox sleeps 2 ms per request (`FaultConfig(latency_ms=2)`); simulated time advances
  1 s per operation (`clock.set_now`), so the 300 s TTLs expire during the run.

A read is *stale* when its answer (ids in order and field values) differs from what the sandbox returns at
that moment; the truth is listed straight from `sandbox.store` (same formula, no HTTP, not counted) on
one replay of the op sequence, shared by all clients (see `replay_truth`).

Clients: (1) direct pyairtable, one request per write (the baseline); (2) pyairtable on a requests-cache
`CachedSession` (expire_after 300 simulated seconds: entries are deleted by us when 300 simulated seconds
old, because requests-cache reads the real clock; GET and POST listRecords cached); (3) a dict cache with
a 300 s TTL that drops every entry of a table on a write to it; (4) beststag `CacheManager` in `query`
mode with `Writer` writes (one record per call) through the gateway (its change sink is the cache); (5)
beststag with every table mirrored and batched writes (a run of consecutive writes to one table and
operation = one `Writer` call).
Beststag runs with the shipped cache settings (dynamic TTL on, starting at 300 s, within 60..1800 s).

Variant: 2% of the writes are made by another client (direct pyairtable on the same sandbox, not seen by
the cache, not counted as the cache's requests); beststag query mode with dynamic TTL vs fixed TTLs:
300 s, then fixed TTLs searched (1800 s, then regula falsi on log TTL) towards the dynamic run's upstream
reads; stale reads at equal request counts are interpolated linearly between the two fixed runs around it.

--quick: 6 × 300 records, 90 queries, 1,500 operations (the same 15 reads per query), ~30 s; the full run
takes about 4-5 minutes.

Miss breakdown (beststag): before each read the cache's own entry is inspected (private keys, for this
diagnosis only): a miss is a *first read*, a *TTL expiry* (entry present but older than its TTL, or
already evicted), an entry *dropped by write application* (gone although its TTL had not run out), or a
*generation bump*. Drops are explained by a diagnostic write subscriber that runs before the cache's.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks import figure, ratio

SEED = 20260601
TABLES = ("Clientes", "Pedidos", "Produtos", "Chamados", "Projetos", "Contratos")
STATUS = ["Novo", "Ativo", "Pausado", "Encerrado"]
PRIORIDADE = ["Baixa", "Média", "Alta", "Urgente"]
CATEGORIA = ["Vendas", "Suporte", "Financeiro", "Marketing", "Produto", "Jurídico"]
TAGS = ["vip", "novo", "recorrente", "atrasado", "revisar"]
NOMES = [
    "Ana",
    "Bruno",
    "Carla",
    "Diego",
    "Elisa",
    "Fábio",
    "Gabriela",
    "Heitor",
    "Isabela",
    "João",
    "Larissa",
    "Marcos",
    "Natália",
    "Otávio",
    "Paula",
    "Rafael",
    "Sofia",
    "Tiago",
    "Vanessa",
    "Yuri",
]
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # simulated start
DATES_FROM = datetime(2026, 1, 1, tzinfo=UTC)  # record dates spread over 60 days before T0
TTL_S = 300
LATENCY_MS = 2.0
ZIPF_S = 1.0
WRITE_SHARE = 0.10
OUTSIDE_SHARE = 0.02
BATCH = 10
GOAL_READS = 0.10
GOAL_TOTAL = 0.05

Record = dict[str, Any]


def _progress(msg: str) -> None:
    print(f"[bench cache] {msg}", file=sys.stderr, flush=True)


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")


# ------------------------------------------------------------------------------------------ the base
def _schema() -> dict[str, Any]:
    def sel(names: list[str]) -> dict[str, Any]:
        return {"choices": [{"name": n} for n in names]}

    fields = [
        {"name": "Nome", "type": "singleLineText"},
        {"name": "status", "type": "singleSelect", "options": sel(STATUS)},
        {"name": "prioridade", "type": "singleSelect", "options": sel(PRIORIDADE)},
        {"name": "categoria", "type": "singleSelect", "options": sel(CATEGORIA)},
        {"name": "pontos", "type": "number", "options": {"precision": 0}},
        {"name": "ativo", "type": "checkbox", "options": {"icon": "check", "color": "greenBright"}},
        {"name": "tags", "type": "multipleSelects", "options": sel(TAGS)},
        {
            "name": "data",
            "type": "dateTime",
            "options": {
                "dateFormat": {"name": "iso", "format": "YYYY-MM-DD"},
                "timeFormat": {"name": "24hour", "format": "HH:mm"},
                "timeZone": "America/Sao_Paulo",
            },
        },
        {"name": "notas", "type": "multilineText"},
    ]
    return {"name": "Cache benchmark", "tables": [{"name": t, "fields": copy.deepcopy(fields)} for t in TABLES]}


def _random_fields(rng: random.Random, name: str) -> dict[str, Any]:
    return {
        "Nome": name,
        "status": rng.choice(STATUS),
        "prioridade": rng.choice(PRIORIDADE),
        "categoria": rng.choice(CATEGORIA),
        "pontos": rng.randrange(0, 1000, 5),  # steps of 5: some ties, as real scores have
        "ativo": rng.random() < 0.6,
        "tags": rng.sample(TAGS, k=rng.choice((0, 1, 1, 2))),
        "data": _iso(DATES_FROM + timedelta(minutes=rng.randrange(0, 60 * 24 * 60))),
        "notas": " ".join(
            rng.choice(
                (
                    "pedido",
                    "contato",
                    "retorno",
                    "ligar",
                    "proposta",
                    "revisão",
                    "prazo",
                    "reunião",
                    "cliente",
                    "entrega",
                )
            )
            for _ in range(rng.randint(4, 20))
        ),
    }


def _rows(rng: random.Random, table: str, n: int) -> list[tuple[str, str, str, dict[str, Any]]]:
    out = []
    for i in range(n):
        created = _iso(DATES_FROM + timedelta(seconds=97 * i + 11 * TABLES.index(table)))
        out.append((f"{table}:{i}", created, created, _random_fields(rng, f"{rng.choice(NOMES)} {table[:3]}-{i:04d}")))
    return out


# ------------------------------------------------------------------------------------------ queries
FIELD_SETS: list[list[str] | None] = [
    None,
    None,
    None,
    ["Nome", "status"],
    ["Nome", "pontos", "data"],
    ["Nome", "prioridade", "categoria"],
    ["Nome", "tags", "ativo"],
]
SORTS: list[list[dict[str, str]]] = [
    [],
    [],
    [{"field": "pontos", "direction": "desc"}],
    [{"field": "Nome", "direction": "asc"}],
    [{"field": "data", "direction": "desc"}],
    [{"field": "prioridade", "direction": "desc"}, {"field": "pontos", "direction": "asc"}],
]


def _filter(rng: random.Random) -> Any:
    kind = rng.randrange(11)
    if kind == 0:
        return {"status": rng.choice(STATUS)}
    if kind == 1:
        return {"status": rng.sample(STATUS, 2)}
    if kind == 2:
        return {"prioridade": rng.choice(PRIORIDADE), "ativo": rng.random() < 0.5}
    if kind == 3:
        return {"categoria": rng.choice(CATEGORIA)}
    if kind == 4:
        return {"pontos": {"gte": rng.randrange(100, 1000, 50)}}
    if kind == 5:
        lo = rng.randrange(0, 800, 50)
        return {"pontos": {"gte": lo, "lt": lo + rng.choice((100, 150, 200))}}
    if kind == 6:
        return {"tags": {"operator": "contains", "value": rng.choice(TAGS)}}
    if kind == 7:
        day = DATES_FROM + timedelta(days=rng.randrange(5, 58))
        return {"data": {"operator": "date_after", "value": day.strftime("%Y-%m-%d")}}
    if kind == 8:
        return {"or": [{"status": rng.choice(STATUS)}, {"prioridade": "Urgente"}]}
    if kind == 9:
        return {"not": {"status": "Encerrado"}, "categoria": rng.choice(CATEGORIA)}
    return None  # no filter: a top-N listing (given a sort and maxRecords below)


def make_queries(rng: random.Random, per_table: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for table in TABLES:
        seen: set[str] = set()
        while len(seen) < per_table:
            q: dict[str, Any] = {"table": table}
            flt = _filter(rng)
            sort = rng.choice(SORTS)
            max_records = rng.choice((None, None, None, 5, 10, 20, 50))
            if flt is None:
                sort = sort or [{"field": "pontos", "direction": "desc"}]
                max_records = max_records or 20
            else:
                q["filters"] = flt
            fields = rng.choice(FIELD_SETS)
            if fields is not None:
                q["fields"] = fields
            if sort:
                q["sort"] = sort
            if max_records:
                q["maxRecords"] = max_records
            key = json.dumps(q, sort_keys=True, ensure_ascii=False)
            if key not in seen:
                seen.add(key)
                out.append(q)
    return out


# ------------------------------------------------------------------------------------------ operations
@dataclass(frozen=True)
class Op:
    t: int  # simulated second
    kind: str  # read | write
    query: int = -1
    table: str = ""
    wop: str = ""  # update | create | delete
    ref: str = ""  # logical record id: "Table:i" (initial) or "new:Table:k" (created during the run)
    fields: dict[str, Any] | None = None
    burst: int = -1
    outside: bool = False


def make_ops(rng: random.Random, n_ops: int, n_queries: int, records: int) -> list[Op]:
    n_writes = round(n_ops * WRITE_SHARE)
    n_reads = n_ops - n_writes
    # bursts: (table, operation, length); lengths sum to n_writes
    bursts: list[tuple[str, str, int]] = []
    left = n_writes
    while left > 0:
        wop = rng.choices(("update", "create", "delete"), weights=(0.75, 0.15, 0.10))[0]
        n = min(left, rng.randint(1, 10) if wop == "update" else rng.randint(1, 4))
        bursts.append((rng.choice(TABLES), wop, n))
        left -= n
    slots = sorted(rng.randint(0, n_reads) for _ in bursts)
    ranking = list(range(n_queries))
    rng.shuffle(ranking)  # ranking[r] = the query read with Zipf rank r
    weights = [1.0 / (r + 1) ** ZIPF_S for r in range(n_queries)]
    reads = [ranking[r] for r in rng.choices(range(n_queries), weights=weights, k=n_reads)]
    alive = {t: [f"{t}:{i}" for i in range(records)] for t in TABLES}
    created = Counter[str]()
    ops: list[Op] = []
    b = 0
    for pos in range(n_reads + 1):
        while b < len(bursts) and slots[b] == pos:
            table, wop, n = bursts[b]
            if wop == "create":
                refs = []
                for _ in range(n):
                    created[table] += 1
                    refs.append(f"new:{table}:{created[table]}")
            else:
                refs = rng.sample(alive[table], n)
            for ref in refs:
                f: dict[str, Any] | None = None
                if wop == "update":
                    full = _random_fields(rng, "")
                    keys = rng.sample(
                        ["status", "prioridade", "categoria", "pontos", "ativo", "tags", "data"], k=rng.randint(1, 3)
                    )
                    f = {k: full[k] for k in keys}
                elif wop == "create":
                    f = _random_fields(rng, f"{rng.choice(NOMES)} novo {ref.rsplit(':', 1)[1]}")
                ops.append(Op(len(ops), "write", table=table, wop=wop, ref=ref, fields=f, burst=b))
            if wop == "delete":
                for ref in refs:
                    alive[table].remove(ref)
            elif wop == "create":
                alive[table].extend(refs)
            b += 1
        if pos < n_reads:
            ops.append(Op(len(ops), "read", query=reads[pos]))
    return ops


def with_outside_writes(rng: random.Random, ops: list[Op]) -> list[Op]:
    """The same ops with OUTSIDE_SHARE of the writes (updates only) made by another client."""
    writes = [o.t for o in ops if o.kind == "write"]
    updates = [o.t for o in ops if o.kind == "write" and o.wop == "update"]
    chosen = set(rng.sample(updates, max(1, round(len(writes) * OUTSIDE_SHARE))))
    return [replace(o, outside=True) if o.t in chosen else o for o in ops]


# ------------------------------------------------------------------------------------------ metering
class Meter:
    """Upstream requests the sandbox answers, by kind; paused while we compute truth or write as another client."""

    READ_ROUTES = ("list", "get", "meta")
    WRITE_ROUTES = ("create", "update", "delete")

    def __init__(self) -> None:
        self.reads = 0
        self.meta = 0
        self.writes = 0
        self.other = 0
        self.paused_depth = 0

    def __call__(self, method: str, route: str, status: int) -> None:
        if self.paused_depth:
            return
        if route in self.READ_ROUTES:
            self.reads += 1
            self.meta += route == "meta"
        elif route in self.WRITE_ROUTES:
            self.writes += 1
        else:
            self.other += 1

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        self.paused_depth += 1
        try:
            yield
        finally:
            self.paused_depth -= 1


@dataclass
class Env:
    tmp: Path
    template: Path
    base: str
    initial_ids: dict[str, str]
    queries: list[dict[str, Any]]
    specs: list[Any]  # QuerySpec
    direct_opts: list[dict[str, Any]]  # pyairtable Table.all() options per query
    truth_params: list[tuple[str, dict[str, Any]]]  # (table, ListParams kwargs) per query
    records_per_table: int


@dataclass
class Outcome:
    name: str
    reads: int = 0
    meta: int = 0
    writes: int = 0
    read_ops: int = 0
    stale: int = 0
    lat_ms: list[float] = field(default_factory=list)
    write_ms: list[float] = field(default_factory=list)  # wall time per write call (a batch for batching clients)
    outside_writes: int = 0
    stale_queries: Counter[int] = field(default_factory=Counter)
    misses: Counter[str] = field(default_factory=Counter)  # cause → misses
    miss_requests: Counter[str] = field(default_factory=Counter)  # cause → upstream requests
    drops: Counter[str] = field(default_factory=Counter)  # reason → entries dropped by write application
    extra: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def total(self) -> int:
        return self.reads + self.writes

    def pct(self, q: float, values: list[float] | None = None) -> float:
        xs = sorted(self.lat_ms if values is None else values)
        if not xs:
            return 0.0
        return xs[max(0, min(len(xs) - 1, math.ceil(q * len(xs)) - 1))]


# ------------------------------------------------------------------------------------------ clients
class Client:
    name = "?"
    batches = False

    def read(self, q: int) -> list[Record]:
        raise NotImplementedError

    def write(self, table: str, wop: str, items: list[tuple[str, dict[str, Any] | None]]) -> list[str]:
        """Write the items (ref, fields); returns the new ids of created records, in order."""
        raise NotImplementedError

    def before_read(self, q: int, out: Outcome) -> Any:  # untimed diagnostics
        return None

    def after_read(self, q: int, token: Any, upstream: int, out: Outcome) -> None:
        pass

    def tick(self, now: datetime) -> None:
        """Before every operation, at its simulated time (bench_feed's client polls the change feed here)."""
        return None

    def close(self) -> None:
        pass


class _PyairtableWrites:
    env: Env
    ids: dict[str, str]
    tables: dict[str, Any]

    def write(self, table: str, wop: str, items: list[tuple[str, dict[str, Any] | None]]) -> list[str]:
        t = self.tables[table]
        new: list[str] = []
        for ref, fields in items:  # one request per write
            if wop == "update":
                t.update(self.ids[ref], fields)
            elif wop == "create":
                new.append(t.create(fields)["id"])
            else:
                t.delete(self.ids[ref])
        self.after_write(table)
        return new

    def after_write(self, table: str) -> None:
        pass


class Direct(_PyairtableWrites, Client):
    name = "direct pyairtable"

    def __init__(self, env: Env, sandbox: Any, ids: dict[str, str], data_dir: Path) -> None:
        self.env, self.ids = env, ids
        api = sandbox.api(retry_strategy=None)
        self.tables = {t: api.table(env.base, t) for t in TABLES}

    def read(self, q: int) -> list[Record]:
        return self.tables[self.env.queries[q]["table"]].all(**self.env.direct_opts[q])  # type: ignore[no-any-return]


class RequestsCache(Direct):
    """pyairtable on a requests-cache CachedSession; entries deleted after TTL_S *simulated* seconds."""

    name = "pyairtable + requests-cache"

    def __init__(self, env: Env, sandbox: Any, ids: dict[str, str], data_dir: Path) -> None:
        from pyairtable import Api
        from requests_cache import NEVER_EXPIRE, CachedSession

        from beststag_cli.sandbox import DEFAULT_TOKEN, SANDBOX_ENDPOINT

        self.env, self.ids = env, ids
        api = Api(DEFAULT_TOKEN, endpoint_url=SANDBOX_ENDPOINT, retry_strategy=None)
        session = CachedSession(
            backend="memory",
            expire_after=NEVER_EXPIRE,
            allowable_methods=("GET", "POST"),
            filter_fn=lambda r: r.request.method == "GET" or r.request.url.split("?")[0].endswith("/listRecords"),
        )
        sandbox.mount(session, SANDBOX_ENDPOINT)
        api.session = session
        api.api_key = DEFAULT_TOKEN  # the Authorization header goes on the new session
        self.session = session
        self.stored: dict[str, float] = {}  # cache key → simulated time it was stored
        self.tables = {t: api.table(env.base, t) for t in TABLES}

    def _expire(self) -> None:
        from beststag_cli import clock

        now = clock.timestamp()
        responses = self.session.cache.responses
        for key in list(responses.keys()):
            if key not in self.stored:
                self.stored[key] = now
        old = [k for k, t in self.stored.items() if now - t >= TTL_S]
        for k in old:
            del self.stored[k]
            with contextlib.suppress(KeyError):
                del responses[k]

    def read(self, q: int) -> list[Record]:
        self._expire()
        out = super().read(q)
        self._expire()  # stamp what this read stored with the current simulated time
        return out


class InvalidateOnWrite(Direct):
    """A dict cache (TTL_S) in front of pyairtable that forgets a whole table on every write to it."""

    name = "invalidate-on-write"

    def __init__(self, env: Env, sandbox: Any, ids: dict[str, str], data_dir: Path) -> None:
        super().__init__(env, sandbox, ids, data_dir)
        self.cache: dict[int, tuple[float, list[Record]]] = {}
        self.seen: set[int] = set()
        self.invalidated: set[int] = set()

    def read(self, q: int) -> list[Record]:
        from beststag_cli import clock

        now = clock.timestamp()
        hit = self.cache.get(q)
        if hit is not None and now - hit[0] < TTL_S:
            return hit[1]
        records = super().read(q)
        self.cache[q] = (now, records)
        return records

    def before_read(self, q: int, out: Outcome) -> Any:
        from beststag_cli import clock

        hit = self.cache.get(q)
        if hit is not None:
            return "hit" if clock.timestamp() - hit[0] < TTL_S else "TTL expiry"
        if q not in self.seen:
            return "first read"
        return "invalidated by a write" if q in self.invalidated else "TTL expiry"

    def after_read(self, q: int, token: Any, upstream: int, out: Outcome) -> None:
        self.seen.add(q)
        self.invalidated.discard(q)
        if token != "hit":
            out.misses[token] += 1
            out.miss_requests[token] += upstream

    def after_write(self, table: str) -> None:
        for q in [q for q in self.cache if self.env.queries[q]["table"] == table]:
            del self.cache[q]
            self.invalidated.add(q)


@dataclass
class _Stored:
    at: float
    ttl: float
    gen: int


class Beststag(Client):
    """CacheManager + Writer on a Gateway wired to the sandbox whose change sink is the cache (as processes wire it)."""

    def __init__(
        self,
        env: Env,
        sandbox: Any,
        ids: dict[str, str],
        data_dir: Path,
        *,
        mode: str = "query",
        batches: bool = False,
        dynamic: bool = True,
        ttl_s: int = TTL_S,
        diagnose: bool = False,
        name: str = "",
        revalidate: bool = True,
    ) -> None:
        from beststag_cli.cache import build_cache
        from beststag_cli.cache.sync import CacheSync
        from beststag_cli.config import Settings, TableSettings
        from beststag_cli.gateway import build
        from beststag_cli.query.writes import Writer

        self.env, self.ids = env, ids
        self.name = name or f"beststag {mode}"
        self.batches = batches
        settings = Settings.model_validate({"data_dir": str(data_dir)})  # built-in defaults, not ./config
        settings.cache.default_ttl_s = ttl_s
        settings.cache.max_stale_s = 3600
        settings.cache.selective_min_score = 0
        settings.cache.mirror_max_records = 2000
        settings.cache.dynamic_ttl.enabled = dynamic
        settings.cache.dynamic_ttl.min_s = 60
        settings.cache.dynamic_ttl.max_s = 1800
        settings.cache.revalidate = revalidate
        for t in TABLES:
            settings.tables[t] = TableSettings(ttl_s=ttl_s, cache_mode=mode)  # type: ignore[arg-type]
        self.settings = settings
        self.diagnosed = diagnose and mode == "query"
        self.applied: dict[str, float] = {"events": 0, "ms": 0.0}
        bench = self

        class TimedSink:
            """The cache's own work per change, timed; the diagnosis first (it sees each answer unpatched)."""

            def __init__(self) -> None:
                self.cache = CacheSync(lambda: bench.m)

            def apply(self, change: Any) -> None:
                if bench.diagnosed:
                    bench._diagnose_write(change)
                t0 = time.perf_counter()
                try:
                    self.cache.apply(change)
                finally:
                    bench.applied["events"] += 1
                    bench.applied["ms"] += (time.perf_counter() - t0) * 1000

        self.gw = build(settings, sink=TimedSink(), sandbox=sandbox, source="bench")
        self.m = build_cache(settings, gateway=self.gw)
        self.writer = Writer(self.gw)
        self.mode = mode
        self.stored: dict[str, _Stored] = {}
        self.drops: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.refreshes = 0  # misses that replaced an expired answer
        self.refresh_changed = 0  # ... and found it different
        self.refresh_examples: list[dict[str, Any]] = []
        from beststag_cli.query.normalize import cache_key

        self.keys = [cache_key(s) for s in env.specs]

    # ---------------------------------------------------------------- client
    def read(self, q: int) -> list[Record]:
        res = self.m.get(self.env.specs[q])
        self._last_status = res.status
        return res.records

    def write(self, table: str, wop: str, items: list[tuple[str, dict[str, Any] | None]]) -> list[str]:
        from beststag_cli.query.writes import to_records

        if wop == "update":
            data: list[Any] = [{"id": self.ids[ref], "fields": f} for ref, f in items]
        elif wop == "create":
            data = [{"fields": f} for _, f in items]
        else:
            data = [self.ids[ref] for ref, _ in items]
        if self.batches:
            res = self.writer.write(wop, table, to_records(wop, data))  # type: ignore[arg-type]
            return [r["id"] for r in res.records] if wop == "create" else []
        new: list[str] = []
        for one in data:  # one Writer call (one request) per record
            res = self.writer.write(wop, table, to_records(wop, [one]))  # type: ignore[arg-type]
            if wop == "create":
                new.append(res.records[0]["id"])
        return new

    def close(self) -> None:
        self.m.close()
        self.gw.close()

    # ---------------------------------------------------------------- diagnostics (private cache keys)
    def _entry_key(self, q: int) -> tuple[str, str, int]:
        table = self.env.queries[q]["table"]
        gen = self.m.generation(table)
        if self.mode == "mirror":
            return f"m:{table}", self.m.keys.mirror(table, gen), gen
        return f"q:{self.keys[q]}", self.m.keys.query(table, gen, self.keys[q]), gen

    def before_read(self, q: int, out: Outcome) -> Any:
        from beststag_cli import clock

        ident, skey, gen = self._entry_key(q)
        entry = self.m.store.get(skey)
        now = clock.timestamp()
        if entry is not None:
            if now - entry["stored"] < entry["ttl"]:
                return "hit", None
            return "TTL expiry", entry
        last = self.stored.get(ident)
        if last is None:
            return "first read", None
        if last.gen != gen:
            return "generation bump", None
        if now - last.at >= last.ttl:
            return "TTL expiry", None
        return "dropped by write application", None

    def after_read(self, q: int, token: Any, upstream: int, out: Outcome) -> None:
        cause, old = token
        status = self._last_status
        self.statuses[status] += 1
        if status == "hit":
            if cause != "hit":
                self.statuses["hit the inspection did not foresee"] += 1
            return
        cause = cause if cause != "hit" else "unforeseen"
        out.misses[cause] += 1
        out.miss_requests[cause] += upstream
        ident, skey, gen = self._entry_key(q)
        entry = self.m.store.get(skey)
        if entry is None:
            return
        self.stored[ident] = _Stored(entry["stored"], entry["ttl"], gen)
        if old is not None:  # a refresh of an expired answer: did it find a change? (what dynamic TTL learns)
            self.refreshes += 1
            if old.get("hash") != entry.get("hash"):
                self.refresh_changed += 1
                if len(self.refresh_examples) < 5:
                    before = [r["id"] for r in old["records"]]
                    after = [r["id"] for r in entry["records"]]
                    fields_differ = [
                        r["id"]
                        for r, n in zip(old["records"], entry["records"], strict=False)
                        if r["id"] == n["id"] and r != n
                    ]
                    self.refresh_examples.append(
                        {
                            "query": self.env.queries[q],
                            "truncated": old.get("truncated"),
                            "ids_only_before": [i for i in before if i not in after][:5],
                            "ids_only_after": [i for i in after if i not in before][:5],
                            "same_ids_other_order": sorted(before) == sorted(after) and before != after,
                            "records_with_other_values": fields_differ[:5],
                        }
                    )

    def _diagnose_write(self, change: Any) -> None:
        """Why would the cache drop entries for this write? (same call the cache makes, plus the reason)"""
        from beststag_cli import clock
        from beststag_cli.cache.maintain import patch_answer
        from beststag_cli.query.spec import QuerySpec

        if change.unknown:
            return
        table = self.m.schema().table(change.table)
        name = table.name
        gen = self.m.generation(name)
        ix = self.m._index(name, gen)
        deletes = list(change.deleted)
        upserts = [r for r in change.upserted if "fields" in r]
        now = clock.now()
        for key in ix["q"]:
            entry = self.m.store.get(self.m.keys.query(name, gen, key))
            if entry is None:
                continue
            spec = QuerySpec.parse(entry["spec"])
            try:
                patched = patch_answer(
                    entry["records"],
                    truncated=bool(entry.get("truncated")),
                    spec=spec,
                    table=table,
                    now=now,
                    upserts=upserts,
                    deletes=deletes,
                )
            except Exception as e:  # the cache drops on any exception too
                self.drops[f"error: {type(e).__name__}"] += 1
                continue
            if patched is None:
                expired = clock.timestamp() - entry["stored"] >= entry["ttl"]
                self.drops[
                    _drop_reason(entry, spec, table, now, upserts, deletes)
                    + (" (entry already past its TTL)" if expired else "")
                ] += 1


def _drop_reason(
    entry: dict[str, Any], spec: Any, table: Any, now: datetime, upserts: list[Record], deletes: list[str]
) -> str:
    """The rule of `maintain.patch_answer` that refused to patch (mirrors its order of checks)."""
    from beststag_cli.cache.maintain import _compare
    from beststag_cli.query.evaluate import Evaluator
    from beststag_cli.query.validate import bind

    truncated = bool(entry.get("truncated"))
    records = entry["records"]
    members = {r["id"] for r in records}
    if spec.view is not None:
        return "query names a view"
    if truncated and any(d in members for d in deletes):
        return "delete of a member of a truncated maxRecords window"
    ev = Evaluator(table, now)
    tree = bind(spec, table).tree
    dirs = [x.direction == "desc" for x in spec.sort]

    def key(r: Record) -> tuple[Any, ...]:
        return (*ev.sort_key(spec.sort, r), r.get("createdTime", ""))

    boundary = key(records[-1]) if truncated and records else None
    for rec in upserts:
        inside = ev.matches(tree, rec)
        beyond = boundary is not None and _compare(key(rec), boundary, dirs) >= 0
        if rec["id"] in members:
            if not inside:
                return "a member leaves a truncated maxRecords window (filter)"
            if beyond:
                return "a member sorts past the end of a truncated maxRecords window"
        elif inside and boundary is not None and _compare(key(rec), boundary, dirs) == 0:
            return "an entering record ties with the window's last record"
    return "sort tie on every key and createdTime (order unknowable)"


# ------------------------------------------------------------------------------------------ running
def _listing(store: Any, base: str, table: str, params: dict[str, Any]) -> list[Record]:
    from beststag_cli.sandbox import ListParams

    out: list[Record] = []
    offset = None
    while True:
        page = store.list_records(base, table, ListParams(**params, offset=offset))
        out.extend(page["records"])
        offset = page.get("offset")
        if not offset:
            return out


def replay_truth(env: Env, ops: list[Op]) -> dict[int, list[tuple[str, Any]]]:
    """What the sandbox answers at every read of `ops`, as (logical record, fields) in order.

    The op sequence is replayed once on its own copy of the base, straight on `sandbox.store` (no HTTP,
    nothing counted): every client's sandbox goes through the same states, whoever makes the writes,
    so one replay is the truth for all of them. A query's answer is recomputed only after a write to
    its table (no query depends on the clock).
    """
    from beststag_cli import clock
    from beststag_cli.sandbox import Sandbox

    path = env.tmp / "truth.sqlite"
    shutil.copy(env.template, path)
    sandbox = Sandbox(path)
    store = sandbox.store
    ids = dict(env.initial_ids)
    inv = {v: k for k, v in ids.items()}
    version: Counter[str] = Counter()
    memo: dict[tuple[int, int], list[tuple[str, Any]]] = {}
    truth: dict[int, list[tuple[str, Any]]] = {}
    try:
        for op in ops:
            clock.set_now(T0 + timedelta(seconds=op.t))
            if op.kind == "write":
                if op.wop == "update":
                    store.update_records(env.base, op.table, [(ids[op.ref], op.fields)])
                elif op.wop == "create":
                    rid = store.create_records(env.base, op.table, [op.fields])[0]["id"]
                    ids[op.ref] = rid
                    inv[rid] = op.ref
                else:
                    store.delete_records(env.base, op.table, [ids[op.ref]])
                version[op.table] += 1
                continue
            table, params = env.truth_params[op.query]
            key = (op.query, version[table])
            if key not in memo:
                memo[key] = [(inv[r["id"]], r["fields"]) for r in _listing(store, env.base, table, params)]
            truth[op.t] = memo[key]
    finally:
        sandbox.close()
        clock.reset()
    _progress(f"truth: {len(memo)} distinct answers over {len(truth)} reads")
    return truth


def run_client(
    env: Env, make: Callable[..., Client], ops: list[Op], truth: dict[int, list[tuple[str, Any]]], label: str
) -> Outcome:
    from beststag_cli import clock
    from beststag_cli.sandbox import FaultConfig, Sandbox

    slot = env.tmp / label.replace(" ", "_").replace("/", "_")
    slot.mkdir()
    shutil.copy(env.template, slot / "base.sqlite")
    sandbox = Sandbox(slot / "base.sqlite", faults=FaultConfig(seed=1, latency_ms=LATENCY_MS))
    meter = Meter()
    sandbox.app.observers.append(meter)
    ids = dict(env.initial_ids)
    inv = {v: k for k, v in ids.items()}  # record id → logical record
    clock.set_now(T0)
    client = make(env, sandbox, ids, slot / "var")
    out = Outcome(client.name)
    other = sandbox.api(retry_strategy=None)  # the other writer of the variant
    pending: list[Op] = []
    wall0 = time.perf_counter()

    def send(batch: list[Op]) -> None:
        t0 = time.perf_counter()
        new = client.write(batch[0].table, batch[0].wop, [(o.ref, o.fields) for o in batch])
        out.write_ms.append((time.perf_counter() - t0) * 1000)
        for o, rid in zip([o for o in batch if o.wop == "create"], new, strict=True):
            ids[o.ref] = rid
            inv[rid] = o.ref

    def flush() -> None:
        if pending:
            clock.set_now(T0 + timedelta(seconds=pending[-1].t))
            send(list(pending))
            pending.clear()

    try:
        for op in ops:
            client.tick(T0 + timedelta(seconds=op.t))
            if op.kind == "write":
                if op.outside:
                    flush()
                    clock.set_now(T0 + timedelta(seconds=op.t))
                    with meter.paused():
                        other.table(env.base, op.table).update(ids[op.ref], op.fields)
                    out.outside_writes += 1
                    out.extra.setdefault("outside_at", []).append(op.t)
                    continue
                if not client.batches:
                    clock.set_now(T0 + timedelta(seconds=op.t))
                    send([op])
                    continue
                if pending and (pending[0].table, pending[0].wop) == (op.table, op.wop):
                    pending.append(op)
                else:
                    flush()
                    pending.append(op)
                continue
            flush()
            clock.set_now(T0 + timedelta(seconds=op.t))
            token = client.before_read(op.query, out)
            before = meter.reads
            t0 = time.perf_counter()
            got = client.read(op.query)
            out.lat_ms.append((time.perf_counter() - t0) * 1000)
            upstream = meter.reads - before
            client.after_read(op.query, token, upstream, out)
            out.read_ops += 1
            if [(inv.get(r["id"], r["id"]), r["fields"]) for r in got] != truth[op.t]:
                out.stale += 1
                out.stale_queries[op.query] += 1
                out.extra.setdefault("stale_at", []).append(op.t)
        flush()
    finally:
        out.wall_s = time.perf_counter() - wall0
        if isinstance(client, Beststag):
            out.drops = client.drops
            out.extra["statuses"] = dict(client.statuses)
            out.extra["refreshes"] = client.refreshes
            out.extra["refreshes_that_found_a_change"] = client.refresh_changed
            out.extra["refresh_change_examples"] = client.refresh_examples
            out.extra["write_applications"] = client.applied
            out.extra["diagnosed"] = client.diagnosed
            out.extra["ttl_s"] = {t: round(client.m.ttl_for(t), 1) for t in TABLES}
        client.close()
        sandbox.close()
        clock.reset()
    out.reads, out.meta, out.writes = meter.reads, meter.meta, meter.writes
    out.extra["other_requests"] = meter.other  # e.g. the change feed's payload pages
    _progress(
        f"{label}: {out.reads} reads, {out.writes} writes, {out.stale} stale, "
        f"p50 {out.pct(0.5):.2f} ms, {out.wall_s:.1f} s"
    )
    return out


def build_env(tmp: Path, records: int, per_table: int) -> Env:
    from beststag_cli.config import Settings
    from beststag_cli.gateway.api import Gateway
    from beststag_cli.query.explain import request_options
    from beststag_cli.query.service import QueryService
    from beststag_cli.query.spec import QuerySpec
    from beststag_cli.sandbox import SANDBOX_BASE_ID, Sandbox

    rng = random.Random(SEED)
    template = tmp / "template.sqlite"
    sb = Sandbox(template)
    sb.store.create_base(_schema(), SANDBOX_BASE_ID, seed=SEED)
    loaded = sb.store.bulk_load(SANDBOX_BASE_ID, {t: _rows(rng, t, records) for t in TABLES})
    initial_ids = {key: rid for by_key in loaded.values() for key, rid in by_key.items()}
    queries = make_queries(rng, per_table)
    settings = Settings.model_validate({"data_dir": str(tmp / "compile-var")})
    gw = Gateway(settings, sandbox=sb, source="bench")
    svc = QueryService(gw)
    specs, direct_opts, truth_params = [], [], []
    for q in queries:
        spec = QuerySpec.parse(q)
        bound = svc.bind(spec)
        if bound.empty:
            raise RuntimeError(f"query answers empty without a request: {q}")
        opts = request_options(bound)
        direct: dict[str, Any] = {"page_size": opts["page_size"]}
        truth: dict[str, Any] = {"page_size": 100}
        if "formula" in opts:
            direct["formula"] = truth["formula"] = opts["formula"]
        if spec.fields is not None:
            direct["fields"] = truth["fields"] = list(spec.fields)
        if spec.sort:
            direct["sort"] = [s.option() for s in spec.sort]
            truth["sort"] = [(s.field, s.direction) for s in spec.sort]
        if spec.max_records:
            direct["max_records"] = truth["max_records"] = spec.max_records
        specs.append(spec)
        direct_opts.append(direct)
        truth_params.append((spec.table, truth))
    gw.close()
    sb.close()
    for suffix in ("-wal", "-shm"):
        if Path(str(template) + suffix).exists():
            raise RuntimeError("the template sandbox left a WAL file behind")
    return Env(tmp, template, SANDBOX_BASE_ID, initial_ids, queries, specs, direct_opts, truth_params, records)


# ------------------------------------------------------------------------------------------ variant
def tune_fixed_ttl(
    env: Env, ops: list[Op], truth: dict[int, list[tuple[str, Any]]], target_reads: int, first: Outcome, steps: int
) -> list[tuple[int, Outcome]]:
    """Fixed-TTL runs whose upstream reads approach `target_reads` (reads fall as the TTL grows).

    The first probe is the dynamic TTL's upper bound (1800 s: a fixed TTL there requests no more than the
    dynamic one, which starts at 300 s); then regula falsi on log(TTL) between the closest runs on
    either side of the target, stopping within 2% of it.
    """
    runs: list[tuple[int, Outcome]] = [(TTL_S, first)]

    def close(o: Outcome) -> bool:
        return abs(o.reads - target_reads) <= max(2, 0.02 * target_reads)

    for _ in range(steps):
        if any(close(o) for _, o in runs):
            break
        above = [(t, o.reads) for t, o in runs if o.reads > target_reads]  # TTL too short
        below = [(t, o.reads) for t, o in runs if o.reads <= target_reads]  # TTL long enough
        if not below:
            ttl = max(1800, 2 * max(t for t, _ in above))
        elif not above:
            ttl = max(30, min(t for t, _ in below) // 2)
        else:
            (t1, r1), (t2, r2) = max(above), min(below)
            if t2 - t1 <= 1:
                break
            w = (r1 - target_reads) / (r1 - r2) if r1 != r2 else 0.5
            w = min(0.9, max(0.1, w))
            ttl = round(math.exp(math.log(t1) + w * (math.log(t2) - math.log(t1))))
        if any(t == ttl for t, _ in runs):
            break
        o = run_client(
            env,
            lambda *a, ttl=ttl: Beststag(*a, dynamic=False, ttl_s=ttl, name=f"fixed TTL {ttl}"),
            ops,
            truth,
            f"variant fixed TTL {ttl}",
        )
        runs.append((ttl, o))
    return sorted(runs, key=lambda p: p[0])


# ------------------------------------------------------------------------------------------ report
def _stale_at(runs: list[tuple[int, Outcome]], reads: int) -> tuple[tuple[int, int], float] | None:
    """Stale reads of a fixed TTL making exactly `reads` upstream reads: linear between the two runs around it."""
    above = [(o.reads, t, o.stale) for t, o in runs if o.reads >= reads]
    below = [(o.reads, t, o.stale) for t, o in runs if o.reads <= reads]
    if not above or not below:
        return None
    r1, t1, s1 = min(above)
    r2, t2, s2 = max(below)
    if r1 == r2:
        return (t1, t2), float(s1)
    return (t1, t2), s1 + (s2 - s1) * (r1 - reads) / (r1 - r2)


def _breakdown_text(o: Outcome) -> str:
    parts = [f"{cause} {n} ({o.miss_requests[cause]} req)" for cause, n in o.misses.most_common()]
    return ", ".join(parts) if parts else "no misses"


def run(quick: bool) -> dict[str, Any]:
    from beststag_cli import clock

    # --quick keeps the reads-per-query ratio of the full workload (15) on a smaller base
    n_ops = 1500 if quick else 5000
    records = 300 if quick else 500
    per_table = 15 if quick else 50
    tune_steps = 2
    try:
        import requests_cache  # noqa: F401

        have_rc = True
    except ImportError:
        have_rc = False
    notes: list[str] = []
    if not have_rc:
        msg = (
            "requests-cache is not installed: the requests-cache client is SKIPPED "
            "(install it with: .venv/bin/pip install 'requests-cache>=1.2', the project's bench extra)"
        )
        _progress(msg)
        notes.append(msg)
    try:
        with tempfile.TemporaryDirectory(prefix="beststag-bench-cache-") as tmpdir:
            tmp = Path(tmpdir)
            _progress(
                f"building the base ({len(TABLES)} tables × {records} records), "
                f"{per_table * len(TABLES)} queries, {n_ops} operations ..."
            )
            env = build_env(tmp, records, per_table)
            ops = make_ops(random.Random(SEED + 1), n_ops, len(env.queries), records)
            vops = with_outside_writes(random.Random(SEED + 2), ops)
            truth = replay_truth(env, ops)  # the variant's outside writes are the same writes: same truth
            clients: list[tuple[str, Callable[..., Client]]] = [("direct", Direct)]
            if have_rc:
                clients.append(("requests-cache", RequestsCache))
            clients += [
                ("invalidate-on-write", InvalidateOnWrite),
                ("beststag query", lambda *a: Beststag(*a, diagnose=True, name="beststag query")),
                (
                    "beststag mirror+batched",
                    lambda *a: Beststag(*a, mode="mirror", batches=True, name="beststag mirror+batched"),
                ),
            ]
            results: dict[str, Outcome] = {}
            for label, make in clients:
                _progress(f"client: {label} ...")
                results[label] = run_client(env, make, ops, truth, label)

            _progress("variant: 2% of writes by another client ...")
            dyn = run_client(env, lambda *a: Beststag(*a, name="dynamic TTL"), vops, truth, "variant dynamic TTL")
            fixed300 = run_client(
                env, lambda *a: Beststag(*a, dynamic=False, name="fixed TTL 300"), vops, truth, "variant fixed TTL 300"
            )
            tuned = tune_fixed_ttl(env, vops, truth, dyn.reads, fixed300, tune_steps)
    finally:
        clock.reset()
    return _report(quick, env, ops, vops, results, dyn, tuned, notes)


def _report(
    quick: bool,
    env: Env,
    ops: list[Op],
    vops: list[Op],
    results: dict[str, Outcome],
    dyn: Outcome,
    tuned: list[tuple[int, Outcome]],
    notes: list[str],
) -> dict[str, Any]:
    direct = results["direct"]
    figures: list[dict[str, Any]] = []
    for label, o in results.items():
        base = label == "direct"
        role = "baseline" if base else "measured"
        vs = None if base else "direct"

        def r(a: float, b: float, base: bool = base) -> float | None:
            return None if base else ratio(a, b)

        goal_reads = goal_total = goal_stale = None
        ok_reads = ok_total = ok_stale = None
        if label == "beststag query":
            goal_reads, ok_reads = f"≤ {GOAL_READS:.0%} of direct", o.reads <= GOAL_READS * direct.reads
        if label == "beststag mirror+batched":
            goal_total, ok_total = f"≤ {GOAL_TOTAL:.0%} of direct", o.total <= GOAL_TOTAL * direct.total
        if label.startswith("beststag"):
            goal_stale, ok_stale = "0", o.stale == 0
        figures += [
            figure(
                f"{label}: upstream reads",
                o.reads,
                "requests",
                baseline=vs,
                ratio=r(o.reads, direct.reads),
                goal=goal_reads,
                ok=ok_reads,
                role=role,
                note=f"incl. {o.meta} schema" if o.meta else None,
            ),
            figure(f"{label}: writes", o.writes, "requests", baseline=vs, ratio=r(o.writes, direct.writes), role=role),
            figure(
                f"{label}: total requests",
                o.total,
                "requests",
                baseline=vs,
                ratio=r(o.total, direct.total),
                goal=goal_total,
                ok=ok_total,
                role=role,
            ),
            figure(
                f"{label}: stale reads",
                o.stale,
                f"of {o.read_ops}",
                goal=goal_stale,
                ok=ok_stale,
                role=role,
                note=f"{o.stale / o.read_ops:.1%} of reads, {len(o.stale_queries)} queries" if o.stale else None,
            ),
            figure(
                f"{label}: read p50", o.pct(0.5), "ms", baseline=vs, ratio=r(o.pct(0.5), direct.pct(0.5)), role=role
            ),
            figure(
                f"{label}: read p95", o.pct(0.95), "ms", baseline=vs, ratio=r(o.pct(0.95), direct.pct(0.95)), role=role
            ),
        ]
    # variant: fixed TTL matched to the dynamic run's upstream reads
    best_ttl, best = min(tuned, key=lambda p: (abs(p[1].reads - dyn.reads), p[0]))
    fixed300 = dict(tuned)[TTL_S]

    def per_k(o: Outcome) -> str:
        return f"{1000 * o.stale / max(1, o.reads):.1f} stale per 1,000 upstream reads"

    figures += [
        figure(
            "variant, dynamic TTL: upstream reads",
            dyn.reads,
            "requests",
            note=f"{dyn.outside_writes} writes by another client",
        ),
        figure("variant, dynamic TTL: stale reads", dyn.stale, f"of {dyn.read_ops}", note=per_k(dyn)),
        figure(
            f"variant, fixed TTL {best_ttl} s (closest in requests): upstream reads",
            best.reads,
            "requests",
            baseline="dynamic TTL",
            ratio=ratio(best.reads, dyn.reads),
        ),
        figure(
            f"variant, fixed TTL {best_ttl} s (closest in requests): stale reads",
            best.stale,
            f"of {best.read_ops}",
            baseline="dynamic TTL",
            ratio=ratio(best.stale, dyn.stale) if dyn.stale else None,
            note=per_k(best),
        ),
        figure(
            f"variant, fixed TTL {TTL_S} s: upstream reads",
            fixed300.reads,
            "requests",
            baseline="dynamic TTL",
            ratio=ratio(fixed300.reads, dyn.reads),
        ),
        figure(
            f"variant, fixed TTL {TTL_S} s: stale reads",
            fixed300.stale,
            f"of {fixed300.read_ops}",
            baseline="dynamic TTL",
            ratio=ratio(fixed300.stale, dyn.stale) if dyn.stale else None,
            note=per_k(fixed300),
        ),
    ]
    interpolated = _stale_at(tuned, dyn.reads)
    if interpolated is not None:
        (t1, t2), stale_eq = interpolated
        figures.append(
            figure(
                "variant, fixed TTL at equal requests: stale reads",
                round(stale_eq, 1),
                f"of {dyn.read_ops}",
                baseline="dynamic TTL",
                ratio=ratio(stale_eq, dyn.stale) if dyn.stale else None,
                note=f"interpolated between fixed {t1} s and {t2} s to {dyn.reads} reads",
            )
        )
    n_writes = sum(1 for o in ops if o.kind == "write")
    for label in ("invalidate-on-write", "beststag query", "beststag mirror+batched"):
        o = results[label]
        notes.append(f"{label}: misses by cause: {_breakdown_text(o)}")
        if o.drops:
            notes.append(
                f"{label}: entries dropped by write application (at the write): "
                + ", ".join(f"{k} {n}" for k, n in o.drops.most_common())
            )
        if "refreshes" in o.extra:
            notes.append(
                f"{label}: {o.extra['refreshes']} refreshes of expired answers, "
                f"{o.extra['refreshes_that_found_a_change']} found a change; final TTLs "
                + ", ".join(f"{t:g}" for t in sorted(set(o.extra["ttl_s"].values())))
                + " s"
            )
    for label, o in results.items():
        applied = o.extra.get("write_applications")
        extra = ""
        if applied and applied["events"]:
            extra = f"; the cache's change sink {applied['ms'] / applied['events']:.1f} ms per change"
            if o.extra.get("diagnosed"):
                extra += " (the rest of the call includes this benchmark's drop diagnosis)"
        notes.append(
            f"{label}: write call p50 {o.pct(0.5, o.write_ms):.1f} ms, p95 {o.pct(0.95, o.write_ms):.1f} ms "
            f"({len(o.write_ms)} calls){extra}"
        )
    notes.append(
        "variant runs (TTL → upstream reads, stale reads, refreshes that found a change): dynamic → "
        f"{dyn.reads}, {dyn.stale}, {dyn.extra.get('refreshes_that_found_a_change')}; "
        + "; ".join(
            f"fixed {t} → {o.reads}, {o.stale}, {o.extra.get('refreshes_that_found_a_change')}" for t, o in tuned
        )
    )
    notes.append(f"variant dynamic TTL: misses by cause: {_breakdown_text(dyn)}; final TTLs {dyn.extra.get('ttl_s')}")
    notes.append(
        "ratios: value ÷ the same figure of direct pyairtable in this run (variant: ÷ the dynamic-TTL run); "
        "goals are the issue's, shown for information"
    )
    if quick:
        notes.append("--quick runs a smaller workload (see setup); the issue's goals are about the full run")
    setup = {
        "tables × records": f"{len(TABLES)} × {env.records_per_table} (own schema: no links, lookups or formulas)",
        "distinct queries": len(env.queries),
        "queries read at least once": len({o.query for o in ops if o.kind == "read"}),
        "operations": len(ops),
        "reads": len(ops) - n_writes,
        "writes (records)": n_writes,
        "write bursts": len({o.burst for o in ops if o.kind == "write"}),
        "writes by another client in the variant": sum(1 for o in vops if o.outside),
        "Zipf exponent": ZIPF_S,
        "sandbox latency per request (ms)": LATENCY_MS,
        "simulated time": f"1 s per operation ({len(ops):,} s)",
        "TTL (s)": f"{TTL_S} (beststag: dynamic, 60..1800, unless fixed)",
    }
    per_client = {
        label: {
            "reads": o.reads,
            "meta": o.meta,
            "writes": o.writes,
            "total": o.total,
            "stale": o.stale,
            "read_ops": o.read_ops,
            "p50_ms": round(o.pct(0.5), 3),
            "p95_ms": round(o.pct(0.95), 3),
            "write_p50_ms": round(o.pct(0.5, o.write_ms), 3),
            "misses": dict(o.misses),
            "miss_requests": dict(o.miss_requests),
            "drops": dict(o.drops),
            "wall_s": round(o.wall_s, 1),
            **o.extra,
        }
        for label, o in results.items()
    }
    variant = {
        "dynamic": {
            "reads": dyn.reads,
            "stale": dyn.stale,
            "misses": dict(dyn.misses),
            "miss_requests": dict(dyn.miss_requests),
            "outside_writes": dyn.outside_writes,
            **dyn.extra,
        },
        "fixed": [
            {
                "ttl_s": t,
                "reads": o.reads,
                "stale": o.stale,
                "misses": dict(o.misses),
                "miss_requests": dict(o.miss_requests),
                "refreshes_that_found_a_change": o.extra.get("refreshes_that_found_a_change"),
            }
            for t, o in tuned
        ],
        "matched_fixed_ttl_s": best_ttl,
    }
    return {
        "benchmark": "cache",
        "quick": quick,
        "figures": figures,
        "setup": setup,
        "notes": notes,
        "clients": per_client,
        "variant": variant,
    }
