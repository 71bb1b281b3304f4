"""One exception tree for the whole tool; each class carries its exit code and a hint.

Exit codes (ARCHITECTURE.md): 0 success, 1 operation failed or an alert fires, 2 bad input or
config, 3 partial success, 4 upstream unavailable, 75 another run holds the lock,
130 interrupted by SIGINT, 143 interrupted by SIGTERM (128 + the signal's number, as shells do).
The CLI root is the only place that turns these into exit codes and printed lines.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_PARTIAL = 3
EXIT_UPSTREAM = 4
EXIT_LOCKED = 75
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class BestStagError(Exception):
    """Base of every error the tool reports to a user (never shown with a traceback)."""

    exit_code: int = EXIT_FAILED
    hint: str = ""
    #: machine-readable name used in --json error objects and webhook answers
    kind: str = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def to_dict(self) -> dict[str, str]:
        return {"type": self.kind, "message": self.message, "hint": self.hint}


class OperationFailed(BestStagError):
    """An operation ran and failed (verification failed, a restore could not finish)."""

    exit_code = EXIT_FAILED
    kind = "operation_failed"


class CacheUnavailable(OperationFailed):
    """The shared cache (Redis) cannot be reached."""

    kind = "cache_unavailable"
    hint = "check cache.redis_url and that the Redis server answers (`redis-cli -u URL ping`)"


class RemoteFailed(OperationFailed):
    """The off-site backup store (S3) refused or could not be reached."""

    kind = "remote_failed"
    hint = "check backup.remote, backup.remote_endpoint_url and the AWS_* credentials, then retry"


class BadInput(BestStagError):
    """The user gave something we cannot use: a malformed filter, an unknown table, a bad id."""

    exit_code = EXIT_BAD_INPUT
    kind = "bad_input"


class ConfigError(BadInput):
    """The configuration file or an environment override is invalid."""

    kind = "config_error"
    hint = "fix the file named above, or run `beststag doctor`"


class UnknownTable(BadInput):
    kind = "unknown_table"


class UnknownField(BadInput):
    kind = "unknown_field"


class FilterError(BadInput):
    kind = "filter_error"
    hint = "see README, section 'Filters', for the filter syntax"


class NotFound(BadInput):
    """A named object (backup, record) does not exist."""

    kind = "not_found"


class PartialSuccess(BestStagError):
    """Some parts of a batch job failed; the good parts were kept."""

    exit_code = EXIT_PARTIAL
    kind = "partial"


class UpstreamUnavailable(BestStagError):
    """Airtable (or the sandbox) could not be reached or kept failing after retries."""

    exit_code = EXIT_UPSTREAM
    kind = "upstream_unavailable"
    hint = "check the network and AIRTABLE_TOKEN, then retry; `beststag doctor` tells more"


class WriteOutcomeUnknown(UpstreamUnavailable):
    """A create (not safe to send twice) lost its answer: Airtable may or may not have applied it."""

    kind = "write_outcome_unknown"
    hint = ("check with `beststag query run` whether the records exist before sending them again; "
            "`beststag records upsert --merge-on FIELD` is safe to retry")


class UpstreamAuthError(UpstreamUnavailable):
    kind = "upstream_auth"
    hint = "check AIRTABLE_TOKEN and that the token has access to AIRTABLE_BASE_ID"


class ForeignOrigin(OperationFailed):
    """A request to an origin other than the configured endpoint (the token never leaves it)."""

    kind = "foreign_origin"
    hint = "check AIRTABLE_ENDPOINT_URL (airtable.endpoint_url)"


class DiskFull(OperationFailed):
    """A write failed with ENOSPC (or EDQUOT): names the path and the space left on its filesystem."""

    kind = "disk_full"
    hint = "free space on that filesystem (or move BESTSTAG_DATA_DIR), then run again; nothing half-written was kept"

    def __init__(self, path: str, free_bytes: int | None, *, hint: str | None = None) -> None:
        free = "unknown" if free_bytes is None else f"{free_bytes:,} bytes"
        super().__init__(f"disk full writing {path} ({free} free)", hint=hint)
        self.path = path
        self.free_bytes = free_bytes


class CorruptFile(OperationFailed):
    """A file beststag reads (journal, cache, manifest, state) is not what beststag wrote."""

    kind = "corrupt_file"
    hint = "run `beststag doctor` to see what is damaged and `beststag doctor --repair` to set it aside"


class UnsafePath(BadInput):
    """A path inside the data dir is a symlink (or not a regular file/dir): never followed."""

    kind = "unsafe_path"
    hint = "remove the symlink (beststag never follows links inside its data dir), then run again"


class Interrupted(BestStagError):
    """SIGINT or SIGTERM stopped a run: work stopped cleanly, partial output removed, rows closed."""

    exit_code = EXIT_SIGINT
    kind = "interrupted"
    hint = "nothing half-done was kept; run the command again to resume or redo it"

    def __init__(self, signum: int, message: str | None = None) -> None:
        import signal as _signal

        name = _signal.Signals(signum).name if signum in iter(_signal.Signals) else f"signal {signum}"
        super().__init__(message or f"interrupted by {name}")
        self.signum = signum
        self.exit_code = 128 + signum


class LockHeld(BestStagError):
    """Another run holds the lock for this job."""

    exit_code = EXIT_LOCKED
    kind = "lock_held"
    hint = "another run is in progress; cron will try again at the next slot"


def all_error_classes() -> list[type[BestStagError]]:
    """Every class of the tree, for docs and for the test that checks the exit-code table."""
    out: list[type[BestStagError]] = []
    todo: list[type[BestStagError]] = [BestStagError]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out
