"""Loading the sample BestStag base (`sample.py`) into a sandbox store."""

from __future__ import annotations

from datetime import datetime

from .fields import format_instant
from .reporting import Reporter, guard
from .sample import SAMPLE_BASE_ID, SampleAttachment, generate_sample
from .store import SandboxStore


def load_sample(
    store: SandboxStore,
    *,
    seed: int = 42,
    scale: float = 1.0,
    now: datetime | None = None,
    base_id: str = SAMPLE_BASE_ID,
    with_records: bool = True,
    progress: Reporter | None = None,
) -> dict[str, int]:
    """Create the sample base (schema and, unless told otherwise, records); returns counts per table."""
    reporter = guard(progress)
    gen = reporter.task("seed: generating the sample", total=None)
    data = generate_sample(seed=seed, scale=scale, now=now)
    gen.advance(sum(len(v) for v in data.tables.values()))
    gen.done()
    store.create_base(data.schema, base_id, seed=seed)
    if not with_records:
        return {name: 0 for name in data.tables}
    rows = {}
    for name, records in data.tables.items():
        out = []
        for r in records:
            fields = {
                k: [(a.filename, a.content_type, a.data) for a in v]
                if isinstance(v, list) and v and isinstance(v[0], SampleAttachment)
                else v
                for k, v in r.fields.items()
            }
            out.append((r.key, format_instant(r.created_time), format_instant(r.modified_time), fields))
        rows[name] = out
    store.bulk_load(base_id, rows, progress=reporter)
    return {name: len(v) for name, v in rows.items()}
