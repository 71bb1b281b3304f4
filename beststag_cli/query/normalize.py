"""Canonical form of a query spec, and `cache_key(spec)` built on it.

Schema-free and import-light (no pyairtable, no gateway): equivalent queries get the same key.
Canonical form: AND/OR flattened, duplicates merged, children sorted (order-insensitive), double
negation removed, constants folded, the trivial contradictions (`F is_empty` AND `F not_empty`,
`x` AND NOT `x`) folded to false; `fields` deduplicated and sorted (`[]` = every field); sort
order kept (it changes the answer); `pageSize` dropped (it does not).
Type-aware contradictions (`status = A` AND `status = B`) need the schema: see `simplify.py`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .filters import FALSE, TRUE, And, Cond, Const, Node, Not, Or
from .spec import QuerySpec

KEY_VERSION = "q1"


def normalize_tree(node: Node) -> Node:
    if isinstance(node, (Cond, Const)):
        return node
    if isinstance(node, Not):
        inner = normalize_tree(node.item)
        if isinstance(inner, Const):
            return FALSE if inner.value else TRUE
        if isinstance(inner, Not):
            return inner.item
        if isinstance(inner, Cond) and inner.op in ("is_empty", "not_empty"):
            return Cond(inner.field, "not_empty" if inner.op == "is_empty" else "is_empty")
        return Not(inner)
    assert isinstance(node, (And, Or))
    is_and = isinstance(node, And)
    absorbing, neutral = (FALSE, TRUE) if is_and else (TRUE, FALSE)
    flat: dict[str, Node] = {}
    for child in node.items:
        c = normalize_tree(child)
        if c == absorbing:
            return absorbing
        if c == neutral:
            continue
        kids = c.items if isinstance(c, type(node)) else (c,)
        for k in kids:
            flat.setdefault(k.canon(), k)
    for k in flat.values():  # x AND NOT x → false; x OR NOT x → true
        if Not(k).canon() in flat:
            return absorbing
        if isinstance(k, Cond) and k.op == "is_empty" and Cond(k.field, "not_empty").canon() in flat:
            return absorbing
    items = tuple(flat[k] for k in sorted(flat))
    if not items:
        return neutral
    if len(items) == 1:
        return items[0]
    return And(items) if is_and else Or(items)


def normalize(spec: QuerySpec) -> dict[str, Any]:
    """The canonical JSON-able form of a spec (what the cache key hashes)."""
    return {
        "table": spec.table,
        "filter": normalize_tree(spec.tree).to_json(),
        "fields": sorted(set(spec.fields)) if spec.fields else None,
        "sort": [[s.field, s.direction] for s in spec.sort],
        "maxRecords": spec.max_records,
        "view": spec.view,
    }


def canonical_json(spec: QuerySpec) -> str:
    return json.dumps(normalize(spec), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def cache_key(spec: QuerySpec) -> str:
    """`q1:<sha256 of the canonical form>`; equal for equivalent specs, stable across processes."""
    return f"{KEY_VERSION}:" + hashlib.sha256(canonical_json(spec).encode()).hexdigest()
