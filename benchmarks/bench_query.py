"""Query optimizer: requests and bytes of 20 representative queries vs the naive way, same run.

Optimised = `QueryService.run(spec)`: the filter compiled to filterByFormula, only the needed fields,
pageSize from maxRecords, sort and limit pushed server-side, contradictions answered without a request.
Naive (the baseline, same run, same sandbox) = `table.all()` of the whole table (every field, every
record; plus the linked table when a filter needs linked records' names), then filter/sort/limit in
Python with the same evaluator. Both answers are compared: they must be identical.

Setup: the sample BestStag base in a temp dir, scale 5 (≈ 10,000 records; Interações 5,000), scale 1 with
--quick, served in-process; requests and response bytes are counted on the gateway's HTTP session.
The estimated time at Airtable's 5 requests/s is requests ÷ 5 (latency ignored).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import figure, ratio

BASE = "appBestStagSandbx"


def queries(user_name: str) -> list[dict[str, Any]]:
    return [
        {"table": "Usuários", "filters": {"status": "Ativo"}},  # Teste 1, verbatim
        {
            "table": "Interações",
            "filters": {"timestamp": {"operator": "date_after", "days": -7}},  # Teste 2
            "fields": ["user", "message", "timestamp"],
            "sort": [{"field": "timestamp", "direction": "desc"}],
            "maxRecords": 50,
        },
        {"table": "Usuários", "filters": {"status": "Ativo"}, "fields": ["Nome", "email"]},
        {
            "table": "Interações",
            "filters": {"canal": "WhatsApp", "resolvido": False},
            "fields": ["Resumo", "user", "timestamp"],
            "maxRecords": 20,
        },
        {
            "table": "Interações",
            "filters": {"sentimento": "Negativo", "timestamp": {"operator": "date_after", "hours": -24}},
            "fields": ["Resumo", "sentimento"],
        },
        {
            "table": "Tarefas",
            "filters": {"status": ["A fazer", "Em andamento"], "prioridade": "Urgente"},
            "fields": ["Título", "vencimento"],
            "sort": ["vencimento"],
        },
        {
            "table": "Tarefas",
            "filters": {"vencimento": {"operator": "date_within", "days": 7}},
            "fields": ["Título", "vencimento", "responsável"],
        },
        {
            "table": "Tarefas",
            "filters": {"tags": {"operator": "contains", "value": "financeiro"}},
            "fields": ["Título", "tags"],
        },
        {
            "table": "Eventos",
            "filters": {"início": {"operator": "date_within", "days": 7}},
            "fields": ["Nome", "início", "local"],
            "sort": ["início"],
        },
        {"table": "Eventos", "filters": {"tipo": "Reunião"}, "fields": ["Nome", "início"], "maxRecords": 10},
        {
            "table": "Logs do Sistema",
            "filters": {"nível": ["ERROR", "WARN"], "timestamp": {"operator": "date_after", "days": -1}},
            "fields": ["Mensagem", "nível", "timestamp"],
            "sort": ["-timestamp"],
            "maxRecords": 100,
        },
        {
            "table": "Logs do Sistema",
            "filters": {"componente": "cache", "duração (ms)": {"gt": 500}},
            "fields": ["Mensagem", "duração (ms)"],
        },
        {"table": "Memória Contextual", "filters": {"relevância": {"gte": 0.8}}, "fields": ["Chave", "conteúdo"]},
        {
            "table": "Memória Contextual",
            "filters": {"expira em": {"operator": "date_before", "days": 0}},
            "fields": ["Chave", "expira em"],
        },
        {
            "table": "Usuários",
            "filters": {"plano": ["Pro", "Enterprise"], "ativo no WhatsApp": True},
            "fields": ["Nome", "telefone"],
        },
        {"table": "Usuários", "filters": {"tags": "vip"}, "fields": ["Nome", "email"]},
        {
            "table": "Interações",
            "filters": {"message": {"operator": "contains", "value": "reunião"}},
            "fields": ["Resumo", "message"],
            "maxRecords": 25,
        },
        {
            "table": "Interações",
            "filters": {"user": user_name},
            "fields": ["Resumo", "timestamp"],
            "sort": ["-timestamp"],
        },
        {
            "table": "Interações",
            "filters": {"tokens": {"gt": 500}},
            "fields": ["Resumo", "tokens"],
            "sort": ["-tokens"],
            "maxRecords": 10,
        },
        {"table": "Usuários", "filters": {"and": [{"status": "Ativo"}, {"status": "Inativo"}]}},  # contradiction
    ]


class Meter:
    """Requests and response bytes seen on a requests session."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0

    def __call__(self, resp: Any, *args: Any, **kwargs: Any) -> None:
        self.requests += 1
        self.bytes += len(resp.content)

    def take(self) -> tuple[int, int]:
        out = (self.requests, self.bytes)
        self.requests = self.bytes = 0
        return out


def run(quick: bool) -> dict[str, Any]:
    scale = 1.0 if quick else 5.0
    saved = dict(os.environ)
    try:
        return _run(scale)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        from beststag_cli import clock

        clock.reset()


def _run(scale: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-query-") as tmp:
        os.environ["BESTSTAG_DATA_DIR"] = str(Path(tmp) / "var")  # sandbox mode, in a temp data dir
        for key in [k for k in os.environ if k.startswith("AIRTABLE_")]:
            del os.environ[key]
        from beststag_cli import clock
        from beststag_cli.config import load_config
        from beststag_cli.gateway.api import Gateway
        from beststag_cli.query.evaluate import apply_query, needs_links
        from beststag_cli.query.service import QueryService
        from beststag_cli.query.spec import QuerySpec
        from beststag_cli.sandbox import Sandbox

        sandbox = Sandbox(Path(tmp) / "base.sqlite")
        t0 = time.perf_counter()
        sandbox.ensure_sample(seed=42, scale=scale)
        seed_s = time.perf_counter() - t0
        settings = load_config()
        gateway = Gateway(settings, sandbox=sandbox, source="bench")
        meter = Meter()
        gateway.api.session.hooks["response"].append(meter)
        service = QueryService(gateway)
        schema = service.schema.get()
        meter.take()
        clock.set_now(clock.now())
        now = clock.now()
        user_name = gateway.all("Usuários", fields=["Nome"], max_records=1)[0]["fields"]["Nome"]
        meter.take()

        rows: list[dict[str, Any]] = []
        for raw in queries(user_name):
            spec = QuerySpec.parse(raw)
            t1 = time.perf_counter()
            opt = service.run(spec).records
            opt_s = time.perf_counter() - t1
            opt_req, opt_bytes = meter.take()
            table = schema.table(spec.table)
            t1 = time.perf_counter()
            everything = gateway.table(spec.table).all()  # the naive way: every record, every field
            links = None
            if needs_links(spec.tree, spec.sort, table):
                users = schema.table("Usuários")
                names = {(users.id, r["id"]): r["fields"].get("Nome") for r in gateway.table("Usuários").all()}
                links = lambda tid, rid, names=names: names.get((tid, rid))  # noqa: E731
            naive = apply_query(spec, everything, table, now, links=links)
            naive_s = time.perf_counter() - t1
            naive_req, naive_bytes = meter.take()
            rows.append(
                {
                    "table": spec.table,
                    "records": len(opt),
                    "same": [r["id"] for r in opt] == [r["id"] for r in naive],
                    "opt_req": opt_req,
                    "opt_bytes": opt_bytes,
                    "naive_req": naive_req,
                    "naive_bytes": naive_bytes,
                    "opt_s": opt_s,
                    "naive_s": naive_s,
                }
            )
        gateway.close()
        sandbox.close()

    opt_req = sum(r["opt_req"] for r in rows)
    naive_req = sum(r["naive_req"] for r in rows)
    opt_bytes = sum(r["opt_bytes"] for r in rows)
    naive_bytes = sum(r["naive_bytes"] for r in rows)
    same = sum(1 for r in rows if r["same"])
    per_query_bytes = sorted(ratio(r["opt_bytes"], r["naive_bytes"]) for r in rows)
    figures = [
        figure(
            "requests, 20 queries",
            opt_req,
            "requests",
            baseline="naive table.all() + Python filter",
            ratio=ratio(opt_req, naive_req),
        ),
        figure(
            "response bytes, 20 queries",
            opt_bytes,
            "bytes",
            baseline="naive table.all() + Python filter",
            ratio=ratio(opt_bytes, naive_bytes),
        ),
        figure(
            "time at 5 req/s (requests ÷ 5)",
            opt_req / 5,
            "s",
            baseline="naive at 5 req/s",
            ratio=ratio(opt_req, naive_req),
        ),
        figure(
            "in-process wall time",
            sum(r["opt_s"] for r in rows),
            "s",
            baseline="naive, in-process",
            ratio=ratio(sum(r["opt_s"] for r in rows), sum(r["naive_s"] for r in rows)),
            note="sandbox in-process: no network latency",
        ),
        figure(
            "median per-query bytes ratio",
            per_query_bytes[len(per_query_bytes) // 2],
            "×",
            note="optimised ÷ naive, per query",
        ),
        figure("answers identical to the naive way", same, f"of {len(rows)}", ok=same == len(rows)),
        figure("naive requests", naive_req, "requests", role="baseline"),
        figure("naive response bytes", naive_bytes, "bytes", role="baseline"),
    ]
    return {
        "figures": figures,
        "setup": {"scale": scale, "records in the base": int(2000 * scale), "seed time (s)": round(seed_s, 2)},
        "per_query": rows,
        "notes": [
            "the contradiction query costs 0 requests optimised; the naive way still lists the table",
            "naive link filters also list Usuários to learn the linked records' names",
        ],
    }
