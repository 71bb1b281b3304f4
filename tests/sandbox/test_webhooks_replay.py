"""Stateful property: random writes by pyairtable, then the webhook's payloads replayed onto an empty
copy reproduce both tables exactly (created, changed, cleared and destroyed cells; inverse links)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from pyairtable.api.types import RecordDict
from requests import HTTPError

from beststag_cli.sandbox import Sandbox

from .test_webhooks import BASE_ID, SPEC, SPEC_DATA

NAMES = st.sampled_from(["ana", "bia", "caio", "", "dora"])
CELLS = st.fixed_dictionaries(
    {},
    optional={
        "Name": NAMES,
        "Count": st.one_of(st.none(), st.integers(-5, 5)),
        "Done": st.booleans(),
        "Tags": st.lists(st.sampled_from(["a", "b"]), unique=True, max_size=2),
    },
)


def v1(value: Any) -> Any:
    """A payload's v2 cell (selects as {id, name, color}, links as [{id, name}]) → the REST form."""
    if isinstance(value, dict) and "name" in value and set(value) <= {"id", "name", "color"}:
        return value["name"] if str(value.get("id", "")).startswith("sel") else value
    if isinstance(value, list) and value and all(isinstance(x, dict) and "id" in x for x in value):
        if str(value[0]["id"]).startswith("sel"):
            return [x["name"] for x in value]
        if str(value[0]["id"]).startswith("rec"):
            return [x["id"] for x in value]
    return value


def replay(payloads: list[Any]) -> dict[str, dict[str, dict[str, Any]]]:
    state: dict[str, dict[str, dict[str, Any]]] = {}
    for p in payloads:
        for tid, tc in p.changed_tables_by_id.items():
            recs = state.setdefault(tid, {})
            for rid, created in tc.created_records_by_id.items():
                assert rid not in recs
                recs[rid] = {k: v1(v) for k, v in created.cell_values_by_field_id.items()}
            for rid, changed in tc.changed_records_by_id.items():
                cells = recs[rid]  # a change always follows a create the copy has seen
                for fid, v in changed.current.cell_values_by_field_id.items():
                    if v is None:
                        cells.pop(fid, None)
                    else:
                        cells[fid] = v1(v)
            for rid in tc.destroyed_record_ids:
                del recs[rid]
    return state


class WebhookReplay(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.sb = Sandbox(":memory:")
        self.sb.store.create_base(SPEC, BASE_ID, seed=11)
        self.base = self.sb.api(retry_strategy=None).base(BASE_ID)
        self.items, self.people = self.base.table("Items"), self.base.table("People")
        self.hook = self.base.webhook(self.base.add_webhook("https://example.com/", SPEC_DATA).id)
        self.hook.disable_notifications()
        self.person_ids = [r["id"] for r in self.people.batch_create([{"Name": n} for n in ("p1", "p2", "p3")])]
        self.ids: list[str] = []

    def teardown(self) -> None:
        self.sb.close()

    def _with_links(self, data: st.DataObject, cells: dict[str, Any]) -> dict[str, Any]:
        if data.draw(st.booleans()):
            cells["Owner"] = data.draw(st.lists(st.sampled_from(self.person_ids), unique=True, max_size=2))
        return cells

    @rule(data=st.data(), n=st.integers(1, 3))
    def create(self, data: st.DataObject, n: int) -> None:
        made = self.items.batch_create([self._with_links(data, data.draw(CELLS)) for _ in range(n)])
        self.ids += [r["id"] for r in made]

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), replace=st.booleans())
    def update(self, data: st.DataObject, replace: bool) -> None:
        rid = data.draw(st.sampled_from(self.ids))
        self.items.update(rid, self._with_links(data, data.draw(CELLS)), replace=replace)

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        rids = data.draw(st.lists(st.sampled_from(self.ids), unique=True, min_size=1, max_size=3))
        self.items.batch_delete(rids)
        self.ids = [r for r in self.ids if r not in rids]

    @rule(data=st.data())
    def upsert(self, data: st.DataObject) -> None:
        cells = {**data.draw(CELLS), "Name": data.draw(NAMES.filter(bool))}
        try:
            out = self.items.batch_upsert([{"fields": cells}], key_fields=["Name"])
        except HTTPError:  # two records share the name: Airtable refuses, nothing is written
            return
        self.ids += [r for r in out["createdRecords"] if r not in self.ids]

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def relink_from_people(self, data: st.DataObject) -> None:
        # a write to the other table that changes Items' link cells through the inverse link
        rid = data.draw(st.sampled_from(self.person_ids))
        self.people.update(
            rid, {"Items (Owner)": data.draw(st.lists(st.sampled_from(self.ids), max_size=2, unique=True))}
        )

    @invariant()
    def replayed_copy_equals_the_tables(self) -> None:
        copy = replay(list(self.hook.payloads()))
        for table in (self.items, self.people):
            rows: list[RecordDict] = table.all(use_field_ids=True)
            tid = table.id
            want = {r["id"]: dict(r["fields"]) for r in rows}
            assert copy.get(tid, {}) == want


TestWebhookReplay = WebhookReplay.TestCase
TestWebhookReplay.settings = settings(
    max_examples=12, stateful_step_count=12, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
