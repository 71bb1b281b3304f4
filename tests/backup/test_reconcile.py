"""Finding the records a restore's lost create answer did create (pure)."""

from __future__ import annotations

from beststag_cli.backup.restore import FieldSpec, reconcile_pending

SPECS = [
    FieldSpec("Título", "singleLineText"),
    FieldSpec("estimativa (h)", "number"),
    FieldSpec("responsável", "multipleRecordLinks", target="Usuários"),
    FieldSpec("anexos", "multipleAttachments"),
]


def rec(title: str, est: float | None = None, **extra: object) -> dict:  # type: ignore[type-arg]
    fields = {"Título": title, **({"estimativa (h)": est} if est is not None else {}), **extra}
    return {"fields": fields}


def test_matches_by_values_created_after_the_send_time_each_once() -> None:
    state = {"recA": rec("a", 1), "recB": rec("b"), "recC": rec("a", 1), "recD": rec("d")}
    current = {
        "recOLD": {"createdTime": "2026-01-01T00:00:00.000Z", "fields": {"Título": "a", "estimativa (h)": 1}},
        "recN1": {
            "createdTime": "2026-01-02T10:00:00.000Z",
            "fields": {"Título": "a", "estimativa (h)": 1, "responsável": ["recNEWID000000001"]},
        },
        "recN2": {"createdTime": "2026-01-02T10:00:00.000Z", "fields": {"Título": "b"}},
        "recN3": {"createdTime": "2026-01-02T10:00:00.000Z", "fields": {"Título": "a", "estimativa (h)": 1}},
    }
    pending = {
        "recA": "2026-01-02T09:58:00.000Z",
        "recB": "2026-01-02T09:58:00.000Z",
        "recC": "2026-01-02T09:58:00.000Z",
        "recD": "2026-01-02T09:58:00.000Z",
    }
    pairs = dict(reconcile_pending(state, current, pending, SPECS, taken=set()))
    assert pairs["recB"] == "recN2"
    assert {pairs["recA"], pairs["recC"]} == {"recN1", "recN3"}  # the old record is never taken
    assert "recD" not in pairs  # it was not created: it will be


def test_taken_targets_and_different_values_are_not_matched() -> None:
    state = {"recA": rec("a", 2)}
    current = {
        "recN1": {"createdTime": "2026-01-02T10:00:00.000Z", "fields": {"Título": "a", "estimativa (h)": 1}},
        "recN2": {"createdTime": "2026-01-02T10:00:00.000Z", "fields": {"Título": "a", "estimativa (h)": 2}},
    }
    assert reconcile_pending(state, current, {"recA": "2026-01-02T00:00:00.000Z"}, SPECS, taken={"recN2"}) == []
