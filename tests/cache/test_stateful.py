"""Random interleavings of reads and own writes: the cache never answers differently from Airtable."""

from __future__ import annotations

import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from beststag_cli import clock
from beststag_cli.cache import connect
from beststag_cli.config import load_config
from beststag_cli.gateway.api import Gateway
from beststag_cli.gateway.changes import Change
from beststag_cli.query.service import QueryService
from beststag_cli.query.spec import QuerySpec
from beststag_cli.query.writes import Writer, to_records
from beststag_cli.sandbox import Sandbox
from beststag_cli.sandbox.seed import load_sample

STATUSES = ["A fazer", "Em andamento", "Concluída", "Cancelada"]
PRIORITIES = ["Baixa", "Média", "Alta", "Urgente"]
SPECS = [
    {"table": "Tarefas", "filters": {"status": "A fazer"}, "fields": ["Título", "status"]},
    {
        "table": "Tarefas",
        "filters": {"status": {"operator": "in", "value": ["A fazer", "Em andamento"]}},
        "sort": [{"field": "prioridade", "direction": "desc"}],
        "fields": ["Título"],
    },
    {"table": "Tarefas", "sort": [{"field": "estimativa (h)", "direction": "asc"}], "maxRecords": 5},
    {
        "table": "Tarefas",
        "filters": {"estimativa (h)": {"operator": "gte", "value": 10}},
        "sort": [{"field": "Título", "direction": "asc"}],
        "maxRecords": 4,
        "fields": ["Título", "estimativa (h)"],
    },
    {"table": "Tarefas", "filters": {"or": [{"prioridade": "Urgente"}, {"concluída": True}]}},
    {"table": "Tarefas", "maxRecords": 3},
    {
        "table": "Tarefas",
        "filters": {"not": {"status": "Concluída"}},
        "sort": [{"field": "status", "direction": "asc"}, {"field": "Título", "direction": "desc"}],
    },
]


class CacheVersusAirtable(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="bst-stateful-"))
        self.sandbox = Sandbox(self.dir / "sandbox" / "base.sqlite")
        load_sample(self.sandbox.store, scale=0.05, seed=7)
        self.settings = load_config(env={"BESTSTAG_DATA_DIR": str(self.dir / "var")})
        self.gw, self.cache = connect(self.settings, sandbox=self.sandbox)
        self.writer = Writer(self.gw)
        self.truth = QueryService(Gateway(self.settings, sandbox=self.sandbox))
        self.ids = [r["id"] for r in self.sandbox.api().table("appBestStagSandbx", "Tarefas").all()]
        self.n = 0
        # after every sample record: Airtable's createdTime only grows with creation order
        clock.set_now(clock.now() + timedelta(days=1))
        self.other = self.sandbox.api(retry_strategy=None).table("appBestStagSandbx", "Tarefas")

    def teardown(self) -> None:
        clock.reset()
        self.cache.close()
        self.sandbox.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(seconds=st.integers(1, 400))
    def time_passes(self, seconds: int) -> None:
        clock.advance(seconds)

    @precondition(lambda self: len(self.ids) > 3)
    @rule(
        k=st.integers(0, 10**6),
        status=st.sampled_from(STATUSES),
        est=st.integers(0, 40),
        kind=st.sampled_from(["update", "create", "delete"]),
    )
    def another_client_writes(self, k: int, status: str, est: int, kind: str) -> None:
        """A write the cache cannot see; then time passes beyond every TTL, so reads must be exact again."""
        clock.advance(1)
        if kind == "update":
            self.other.update(self.ids[k % len(self.ids)], {"status": status, "estimativa (h)": est})
        elif kind == "create":
            self.ids.append(self.other.create({"Título": f"fora{k}", "status": status, "estimativa (h)": est})["id"])
        else:
            self.other.delete(self.ids.pop(k % len(self.ids)))
        cs = self.settings.cache
        clock.advance(max(cs.dynamic_ttl.max_s, cs.deletion_check_s) + 1)

    @precondition(lambda self: self.ids)
    @rule(k=st.integers(0, 10**6), status=st.sampled_from(STATUSES), est=st.integers(0, 40))
    def another_client_writes_and_the_feed_tells(self, k: int, status: str, est: int) -> None:
        """An outside update told the way the change feed tells it: the whole record, but no createdTime
        (webhook payloads carry it for created records only). No time passes: the change alone keeps it exact."""
        rec = self.other.update(self.ids[k % len(self.ids)], {"status": status, "estimativa (h)": est})
        told = {"id": rec["id"], "fields": rec["fields"]}
        assert self.gw.outside_change(Change(self.gw.base_id, "Tarefas", "feed", updated=(told,)))

    @rule(i=st.integers(0, len(SPECS) - 1))
    def read(self, i: int) -> None:
        spec = QuerySpec.parse(SPECS[i])
        got = self.cache.get(spec).records
        want = self.truth.run(spec).records
        assert got == want, (SPECS[i], [r["id"] for r in got], [r["id"] for r in want])

    @precondition(lambda self: self.ids)
    @rule(
        k=st.integers(0, 10**6),
        status=st.sampled_from(STATUSES),
        prio=st.sampled_from(PRIORITIES),
        est=st.one_of(st.none(), st.integers(0, 40)),
        done=st.booleans(),
    )
    def update(self, k: int, status: str, prio: str, est: int | None, done: bool) -> None:
        rid = self.ids[k % len(self.ids)]
        self.writer.write(
            "update",
            "Tarefas",
            to_records(
                "update",
                [
                    {
                        "id": rid,
                        "fields": {"status": status, "prioridade": prio, "estimativa (h)": est, "concluída": done},
                    }
                ],
            ),
        )

    @rule(status=st.sampled_from(STATUSES), est=st.integers(0, 40), title=st.text("abcxyz ", min_size=1, max_size=6))
    def create(self, status: str, est: int, title: str) -> None:
        self.n += 1
        recs = self.writer.write(
            "create",
            "Tarefas",
            to_records("create", [{"Título": f"{title}{self.n}", "status": status, "estimativa (h)": est}]),
        ).records
        self.ids.append(recs[0]["id"])

    @precondition(lambda self: len(self.ids) > 3)
    @rule(k=st.integers(0, 10**6))
    def delete(self, k: int) -> None:
        rid = self.ids.pop(k % len(self.ids))
        self.writer.write("delete", "Tarefas", to_records("delete", [rid]))

    @invariant()
    def cache_is_consistent(self) -> None:
        assert not self.cache.store.check()


TestCacheVersusAirtable = CacheVersusAirtable.TestCase
TestCacheVersusAirtable.settings = settings(
    max_examples=25, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
