"""Sandbox throughput: listing pages of a 100k-record table in-process, and a filterByFormula scan.

Issue goals: in-process list throughput on a 100k-record table ≥ 200 pages of 100 per second; a
`filterByFormula` scan of 100k records < 1 s. Shown next to the figures, never asserted.

Setup: a sandbox in a temp dir with the sample BestStag base (`load_sample`, scale 50; 5 with --quick) and a
dedicated base whose table "Bench" has 100,000 records (10,000 with --quick) shaped like Interações plus a
`status` field. Baselines measured in the same run:
- the raw WSGI app called directly (no pyairtable, no requests, no JSON parsing) for the same pages;
- `json.dumps` of the same page (what serialising alone costs);
- a plain-Python scan of the same 100k rows (dicts) for the filter.
"""

from __future__ import annotations

import io
import json
import math
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from benchmarks import figure, ratio, timed, timed_best

BENCH_BASE = "appBenchSandbox01"
TABLE = "Bench"
NEEDLE = "reembolso"
FORMULA = f"AND({{status}}='Ativo', FIND('{NEEDLE}', LOWER({{message}})))"
GOAL_PAGES_PER_S = 200.0
GOAL_SCAN_S = 1.0

_SCHEMA: dict[str, Any] = {
    "name": "Benchmark",
    "tables": [
        {
            "name": TABLE,
            "fields": [
                {"name": "Resumo", "type": "singleLineText"},
                {
                    "name": "status",
                    "type": "singleSelect",
                    "options": {"choices": [{"name": "Ativo"}, {"name": "Inativo"}]},
                },
                {"name": "message", "type": "multilineText"},
                {
                    "name": "canal",
                    "type": "singleSelect",
                    "options": {"choices": [{"name": c} for c in ("WhatsApp", "Email", "Web", "Telegram")]},
                },
                {"name": "tokens", "type": "number", "options": {"precision": 0}},
                {
                    "name": "timestamp",
                    "type": "dateTime",
                    "options": {
                        "dateFormat": {"name": "iso", "format": "YYYY-MM-DD"},
                        "timeFormat": {"name": "24hour", "format": "HH:mm"},
                        "timeZone": "America/Sao_Paulo",
                    },
                },
                {"name": "resolvido", "type": "checkbox", "options": {"icon": "check", "color": "greenBright"}},
            ],
        }
    ],
}

_OPENINGS = ["Oi, tudo bem?", "Bom dia!", "Olá,", "Boa tarde.", "Preciso de ajuda:", "Rapidinho:", "Ei,"]
_ASKS = [
    "me lembra de pagar a conta de luz amanhã às {h}h",
    "marca uma reunião com a {p} na {d}",
    "quanto gastei com mercado este mês?",
    "cancela o compromisso de {d}",
    "anota que o aluguel subiu para R$ {v}",
    "qual é a minha próxima tarefa?",
    "me manda o resumo da semana",
    "adiciona {p} aos contatos",
    "o pedido ainda não chegou, pode verificar?",
    "muda o lembrete para as {h}h",
    "envia o relatório para a {p}",
]
_PEOPLE = ["Ana", "Bruno", "Carla", "Diego", "Fernanda", "Gustavo", "Helena", "Joana", "Marcos", "Paula"]
_DAYS = ["segunda", "terça", "quarta", "quinta", "sexta", "sábado"]


def _rows(n: int, seed: int = 20260101) -> list[tuple[str, str, str, dict[str, Any]]]:
    """n deterministic rows for `bulk_load`; about 1 in 250 messages mentions the needle."""
    rng = random.Random(seed)
    t0 = datetime(2026, 1, 1, 9, tzinfo=UTC)
    out = []
    for i in range(n):
        ask = rng.choice(_ASKS).format(
            h=rng.randint(7, 21), p=rng.choice(_PEOPLE), d=rng.choice(_DAYS), v=rng.randint(900, 4000)
        )
        message = f"{rng.choice(_OPENINGS)} {ask}"
        if rng.random() < 0.004:
            message += f" E o {NEEDLE.upper()} da compra de {rng.choice(_DAYS)}?"
        created = t0 + timedelta(seconds=37 * i + rng.randint(0, 30))
        stamp = created.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        fields = {
            "Resumo": ask[:40],
            "status": "Ativo" if rng.random() < 0.5 else "Inativo",
            "message": message,
            "canal": rng.choice(("WhatsApp", "WhatsApp", "Email", "Web", "Telegram")),
            "tokens": rng.randint(8, 4000),
            "timestamp": stamp,
            "resolvido": rng.random() < 0.78,
        }
        out.append((f"b{i}", stamp, stamp, fields))
    return out


def _environ(path_qs: str) -> dict[str, Any]:
    path, _, query = path_qs.partition("?")
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "REQUEST_URI": path_qs,
        "QUERY_STRING": query,
        "SERVER_NAME": "sandbox.beststag.local",
        "SERVER_PORT": "80",
        "HTTP_HOST": "sandbox.beststag.local",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "CONTENT_LENGTH": "0",
        "HTTP_AUTHORIZATION": "Bearer sandbox",
    }


def _raw_pages(app: Any, base: str, table: str, page_size: int = 100) -> tuple[int, int]:
    """Every page straight from the WSGI app; returns (pages, bytes). The offset is cut out of the bytes."""
    prefix = f"/v0/{base}/{quote(table, safe='')}?pageSize={page_size}"
    status: list[str] = []

    def start_response(s: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        status.append(s)

    pages = size = 0
    offset: str | None = None
    while True:
        target = prefix + ("&" + urlencode({"offset": offset}) if offset else "")
        body = b"".join(app(_environ(target), start_response))
        if not status[-1].startswith("200"):
            raise RuntimeError(f"raw app: {status[-1]} {body[:200]!r}")
        pages += 1
        size += len(body)
        at = body.rfind(b'"offset":"')
        if at < 0:
            return pages, size
        offset = body[at + 10 : body.index(b'"', at + 10)].decode()


def _progress(msg: str) -> None:
    print(f"[bench sandbox] {msg}", file=sys.stderr, flush=True)


def run(quick: bool) -> dict[str, Any]:
    from beststag_cli.sandbox import SANDBOX_BASE_ID, Sandbox
    from beststag_cli.sandbox.seed import load_sample

    n = 10_000 if quick else 100_000
    scale = 5 if quick else 50
    rounds = 3 if quick else 2
    warm_repeats = 5
    with tempfile.TemporaryDirectory(prefix="beststag-bench-") as tmp:
        path = Path(tmp) / "sandbox.sqlite"
        sb = Sandbox(path)
        _progress(f"seeding the sample base at scale {scale} and a {n:,}-record table ...")
        seed_s, counts = timed(lambda: load_sample(sb.store, scale=scale))
        rows = _rows(n)
        sb.store.create_base(_SCHEMA, BENCH_BASE, seed=1)
        bulk_s, _ = timed(lambda: sb.store.bulk_load(BENCH_BASE, {TABLE: rows}))
        assert sb.store.count(BENCH_BASE, TABLE) == n
        sb.close()

        # (b0) a fresh process-level Sandbox: the first listing loads the 100k records from SQLite
        sb = Sandbox(path)
        api = sb.api(retry_strategy=None)
        table = api.table(BENCH_BASE, TABLE)
        _progress("cold open + first filtered listing ...")
        cold_s, cold_rows = timed(lambda: table.all(formula=FORMULA))

        # (a) pages/s through pyairtable + the in-process adapter, vs the raw WSGI app
        expected_pages = math.ceil(n / 100)
        py_times: list[float] = []
        raw_times: list[float] = []
        raw_bytes = 0
        for r in range(rounds):
            _progress(f"paging round {r + 1}/{rounds} ...")
            dt, pages = timed(lambda: [len(p) for p in table.iterate(page_size=100)])
            if len(pages) != expected_pages or sum(pages) != n:
                raise RuntimeError(f"pyairtable saw {len(pages)} pages / {sum(pages)} records")
            py_times.append(dt)
            dt, (raw_pages, raw_bytes) = timed(lambda: _raw_pages(sb.app, BENCH_BASE, TABLE))
            if raw_pages != expected_pages:
                raise RuntimeError(f"raw app served {raw_pages} pages")
            raw_times.append(dt)
        py_pps = expected_pages / min(py_times)
        raw_pps = expected_pages / min(raw_times)

        # json.dumps of one page (the app's own separators), as pages/s
        page = next(iter(table.iterate(page_size=100)))
        page_doc = {"records": page, "offset": "itrXXXXXXXXXXXXXX/recXXXXXXXXXXXXXX"}
        reps = 200 if quick else 1000
        dumps_s, _, _ = timed_best(
            lambda: [json.dumps(page_doc, ensure_ascii=False, separators=(",", ":")) for _ in range(reps)], 3
        )
        dumps_pps = reps / dumps_s

        # (b) the filter: first call with a new formula text (records cached), then warm
        _progress("filterByFormula scans ...")
        fresh = FORMULA.replace("'Ativo'", '"Ativo"')  # same meaning, not yet compiled
        first_s, first_rows = timed(lambda: table.all(formula=fresh))
        warm_best, warm_median, warm_rows = timed_best(lambda: table.all(formula=FORMULA), warm_repeats)
        ids = [r["id"] for r in warm_rows]
        if [r["id"] for r in first_rows] != ids or [r["id"] for r in cold_rows] != ids:
            raise RuntimeError("the filtered listings disagree")
        # baseline: the same predicate in plain Python over the same rows (dicts)
        plain = [f for *_, f in rows]
        py_best, _, py_hits = timed_best(
            lambda: [f for f in plain if f["status"] == "Ativo" and NEEDLE in f["message"].lower()], warm_repeats
        )
        if len(py_hits) != len(ids):
            raise RuntimeError(f"plain-Python scan found {len(py_hits)}, the sandbox {len(ids)}")
        sb.close()

    per_page_ms = 1000 / py_pps
    figures = [
        figure(
            "list: pyairtable.iterate, in-process",
            py_pps,
            "pages/s",
            baseline="raw WSGI app",
            ratio=ratio(py_pps, raw_pps),
            goal=f"≥ {GOAL_PAGES_PER_S:.0f} pages/s",
            ok=py_pps >= GOAL_PAGES_PER_S,
            note=f"{per_page_ms:.2f} ms per page of 100",
        ),
        figure(
            "list: raw WSGI app",
            raw_pps,
            "pages/s",
            baseline="json.dumps of the page",
            ratio=ratio(raw_pps, dumps_pps),
            role="baseline",
        ),
        figure("list: json.dumps of the page only", dumps_pps, "pages/s", role="baseline"),
        figure(
            "filter: warm, best",
            warm_best,
            "s",
            baseline="plain-Python scan",
            ratio=ratio(warm_best, py_best),
            goal=f"< {GOAL_SCAN_S:.0f} s",
            ok=warm_best < GOAL_SCAN_S,
        ),
        figure(
            "filter: warm, median",
            warm_median,
            "s",
            baseline="plain-Python scan",
            ratio=ratio(warm_median, py_best),
            goal=f"< {GOAL_SCAN_S:.0f} s",
            ok=warm_median < GOAL_SCAN_S,
        ),
        figure(
            "filter: first call, new formula",
            first_s,
            "s",
            baseline="warm scan",
            ratio=ratio(first_s, warm_median),
            goal=f"< {GOAL_SCAN_S:.0f} s",
            ok=first_s < GOAL_SCAN_S,
        ),
        figure(
            "filter: cold open",
            cold_s,
            "s",
            baseline="warm scan",
            ratio=ratio(cold_s, warm_median),
            note="first request after opening the file",
        ),
        figure("filter: plain-Python scan of the rows", py_best, "s", role="baseline"),
    ]
    return {
        "benchmark": "sandbox",
        "quick": quick,
        "figures": figures,
        "setup": {
            "records in the benchmark table": n,
            "filter": FORMULA,
            "records matched": len(ids),
            "sample base records (load_sample)": sum(counts.values()),
            f"{SANDBOX_BASE_ID} seeding s": round(seed_s, 2),
            f"{n:,}-record bulk_load s": round(bulk_s, 2),
            "page of 100, JSON bytes": raw_bytes // expected_pages,
            "paging rounds (best kept)": rounds,
            "pyairtable pages/s per round": [round(expected_pages / t, 1) for t in py_times],
            "raw app pages/s per round": [round(expected_pages / t, 1) for t in raw_times],
            "warm scan repeats": warm_repeats,
        },
        "notes": [
            "ratios are measured value ÷ baseline measured in this run; for seconds, lower is better",
            "goals are the issue's targets, shown for information (nothing asserts them)",
        ],
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
