"""Operations behind `beststag sandbox info|reset|seed|serve`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import SANDBOX_BASE_ID, Sandbox, sandbox_tokens
from .reporting import Reporter


def info(sb: Sandbox, base_id: str = SANDBOX_BASE_ID) -> dict[str, Any]:
    tables = []
    if sb.store.has_base(base_id):
        for t in sb.store.base_schema(base_id)["tables"]:
            tables.append({"id": t["id"], "name": t["name"], "records": sb.store.count(base_id, t["id"])})
    bases = []
    for b in sb.store.list_bases():  # every base: the sample, bases made through the API, loaded copies
        bt = [
            {"id": t["id"], "name": t["name"], "records": sb.store.count(b["id"], t["id"])}
            for t in sb.store.base_schema(b["id"])["tables"]
        ]
        bases.append({"id": b["id"], "name": b["name"], "tables": bt, "records": sum(t["records"] for t in bt)})
    return {"base_id": base_id, "token": sandbox_tokens()[0], "path": str(sb.path), "tables": tables, "bases": bases}


def reset(sb: Sandbox) -> None:
    sb.store.reset()


def seed(
    sb: Sandbox, *, scale: float = 1.0, seed: int = 42, replace: bool = True, progress: Reporter | None = None
) -> dict[str, int]:
    from .seed import load_sample

    if sb.store.has_base(SANDBOX_BASE_ID):
        if not replace:
            return {}
        sb.store.drop_base(SANDBOX_BASE_ID)
    return load_sample(sb.store, seed=seed, scale=scale, progress=progress)


def open_sandbox(path: Path) -> Sandbox:
    """The sandbox in ``path``; its folder must exist (the caller makes it with the product's
    private-dir rules: the sandbox imports nothing of the product)."""
    return Sandbox.from_env(path)
