"""Background jobs of the webhook server (backups): one at a time per base, status by id."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import clock, errors
from ..logs import log_event

if TYPE_CHECKING:
    from ..config import Settings
    from ..gateway.api import Gateway


#: what `new_job_id` makes: `GET /jobs/{id}` answers 422 for anything else (404: a job id nobody started)
JOB_ID_PATTERN = r"^[0-9a-f]{12}$"


def new_job_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class Job:
    id: str
    kind: str
    params: dict[str, Any]
    status: str = "running"  # running | ok | partial | failed
    started: str = field(default_factory=lambda: clock.now().isoformat())
    finished: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.id,
            "kind": self.kind,
            "params": self.params,
            "status": self.status,
            "started": self.started,
            "finished": self.finished,
            "result": self.result,
            "error": self.error,
            "status_url": f"/jobs/{self.id}",
        }


class JobRunner:
    def __init__(self, settings: Settings, gateway: Gateway) -> None:
        self.settings = settings
        self.gateway = gateway
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise errors.NotFound(f"no job {job_id!r}", hint="job ids come from POST /webhook/airtable/backup")
        return job

    def start_backup(self, backup_type: str, tables: list[str] | None) -> Job:
        """Take the base's backup lock now (409 if held, by us or by cron), then run in a thread."""
        from ..backup.runner import base_lock, run_backup

        with self._lock:
            for j in self._jobs.values():
                if j.kind == "backup" and j.status == "running":
                    raise errors.LockHeld(
                        f"backup job {j.id} ({j.params['backup_type']}) is still running",
                        hint=f"GET /jobs/{j.id} for its status",
                    )
        # validate the request before accepting it (unknown type or table → 4xx, not a failed job)
        names = list(tables) if tables else list(self.settings.backup.of(backup_type).tables)
        schema_names = [t["name"] for t in self.gateway.schema().get("tables", [])]
        for n in names:
            if n not in schema_names:
                from ..names import did_you_mean

                raise errors.UnknownTable(f"unknown table {n!r}{did_you_mean(n, schema_names)}")
        with base_lock(self.settings, self.gateway.base_id):  # held by cron now? LockHeld → 409 at once
            pass  # run_backup takes it again in the thread
        job = Job(new_job_id(), "backup", {"backup_type": backup_type, "tables": names})
        with self._lock:
            self._jobs[job.id] = job

        def work() -> None:
            try:
                res = run_backup(self.settings, self.gateway, backup_type, names)
                job.result = res.summary()
                job.status = res.status if res.status in ("ok", "partial") else "ok"
            except errors.BestStagError as e:
                job.status = "failed"
                job.error = e.to_dict()
            except Exception as e:  # never kill the server for a job
                job.status = "failed"
                job.error = {"type": "internal_error", "message": f"{type(e).__name__}: {e}", "hint": ""}
            finally:
                job.finished = clock.now().isoformat()
                log_event("webhook.job_finished", job=job.id, status=job.status)

        t = threading.Thread(target=work, name=f"beststag-job-{job.id}", daemon=True)
        self._threads.append(t)
        t.start()
        return job

    def close(self) -> None:
        for t in self._threads:
            t.join(timeout=1)
