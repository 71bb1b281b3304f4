"""One exception tree for the whole tool; each class carries its exit code and a hint.

Every exit code is an :class:`ExitStatus` member (the README's table); every error class the tool
raises is defined here, so this module is the one list the README's exit-code table is generated from
(`cog -r README.md`, see `beststag_cli/cli/reference.py`). The CLI (`cli/outcome.py`) is the only place that turns
these into exit codes and printed lines.
"""

from __future__ import annotations

import enum


@enum.unique
class ExitStatus(enum.IntEnum):
    """Every code beststag exits with; unique values, so one code always means one thing."""

    OK = 0
    FAILED = 1
    BAD_INPUT = 2
    PARTIAL = 3
    UPSTREAM = 4
    LOCKED = 75
    #: 128 + the signal's number, as shells report a process a signal stopped
    SIGINT = 130
    SIGTERM = 143

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]


_MEANINGS: dict[ExitStatus, str] = {
    ExitStatus.OK: "success",
    ExitStatus.FAILED: "the operation failed, an alert fires, or `doctor` found a problem; also an unexpected "
    "error (a bug: one line, the traceback with `-v`)",
    ExitStatus.BAD_INPUT: "bad input or config (one line says what and how to fix it): a command line that does "
    "not parse, an unknown table or field, input holding a lone UTF-16 surrogate (`\\ud83d`) "
    "or a `--file` that is not UTF-8",
    ExitStatus.PARTIAL: "partial success (some tables failed; the rest was kept)",
    ExitStatus.UPSTREAM: "upstream unavailable (auth, network, Airtable 5xx after retries), or a create's answer "
    "was lost (it may or may not have been applied)",
    ExitStatus.LOCKED: "another run holds the lock (cron may retry later): backups, cleanup, `metrics archive`, or "
    "another restore into the same base (the line names the holder's pid, host and age; "
    "`restore --wait S` waits up to S seconds first)",
    ExitStatus.SIGINT: "interrupted by SIGINT (Ctrl-C): no new work is started, in-flight requests settle, the "
    "partial backup is removed, the journal row is closed as `interrupted` (not a failure for "
    "the backup alert) and one line is printed; run the command again to redo or resume it",
    ExitStatus.SIGTERM: "interrupted by SIGTERM: the same clean stop as 130",
}

# The names code and tests used before ExitStatus; kept as aliases of its members (same objects).
EXIT_OK = ExitStatus.OK
EXIT_FAILED = ExitStatus.FAILED
EXIT_BAD_INPUT = ExitStatus.BAD_INPUT
EXIT_PARTIAL = ExitStatus.PARTIAL
EXIT_UPSTREAM = ExitStatus.UPSTREAM
EXIT_LOCKED = ExitStatus.LOCKED
EXIT_SIGINT = ExitStatus.SIGINT
EXIT_SIGTERM = ExitStatus.SIGTERM

#: What the CLI root prints for failures that are not a BestStagError (`--json`'s ``error.type``).
ROOT_KINDS: dict[str, tuple[ExitStatus, str]] = {
    "usage": (ExitStatus.BAD_INPUT, "the command line does not parse (unknown option, missing argument)"),
    "aborted": (ExitStatus.SIGINT, "a confirmation prompt was answered with Ctrl-C or end of input"),
    "internal_error": (ExitStatus.FAILED, "an unexpected exception, a bug: one line; `-v` prints the traceback"),
}


class BestStagError(Exception):
    """Base of every error the tool reports to a user (never shown with a traceback)."""

    exit_code: ExitStatus = ExitStatus.FAILED
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

    exit_code = ExitStatus.FAILED
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

    exit_code = ExitStatus.BAD_INPUT
    kind = "bad_input"


class ConfigError(BadInput):
    """The configuration file or an environment override is invalid."""

    kind = "config_error"
    hint = "fix the file named above, or run `beststag doctor`"


class UnknownTable(BadInput):
    """A table name (or id) the base does not have; the message suggests near-misses."""

    kind = "unknown_table"


class UnknownField(BadInput):
    """A field the table does not have; the message suggests near-misses."""

    kind = "unknown_field"


class FilterError(BadInput):
    """A filter that does not parse, or that does not fit the field's type."""

    kind = "filter_error"
    hint = "see README, section 'Filters', for the filter syntax"


class NotFound(BadInput):
    """A named object (backup, record) does not exist."""

    kind = "not_found"


class SchemaConflict(BadInput):
    """A restore's target has a field the backup also has, with another type (or a link to another table):
    nothing is written, and nothing is converted."""

    kind = "schema_conflict"
    hint = "rename or delete that field in the target (Airtable's UI), or restore into another base"


class PartialSuccess(BestStagError):
    """Some parts of a batch job failed; the good parts were kept."""

    exit_code = ExitStatus.PARTIAL
    kind = "partial"


class UpstreamUnavailable(BestStagError):
    """Airtable (or the sandbox) could not be reached or kept failing after retries."""

    exit_code = ExitStatus.UPSTREAM
    kind = "upstream_unavailable"
    hint = "check the network and AIRTABLE_TOKEN, then retry; `beststag doctor` tells more"


class WriteOutcomeUnknown(UpstreamUnavailable):
    """A create (not safe to send twice) lost its answer: Airtable may or may not have applied it."""

    kind = "write_outcome_unknown"
    hint = (
        "check with `beststag query run` whether the records exist before sending them again; "
        "`beststag records upsert --merge-on FIELD` is safe to retry"
    )


class UpstreamAuthError(UpstreamUnavailable):
    """Airtable refused the token (401/403)."""

    kind = "upstream_auth"
    hint = "check AIRTABLE_TOKEN and that the token has access to AIRTABLE_BASE_ID"


class ForeignOrigin(OperationFailed):
    """A request would have left the configured endpoint: refused before sending, the token never left."""

    kind = "foreign_origin"
    hint = "check AIRTABLE_ENDPOINT_URL (airtable.endpoint_url)"


class DiskFull(OperationFailed):
    """A write failed with ENOSPC (or EDQUOT): one line naming the path and the space left on its filesystem;
    the partial run is removed, the journal row closed."""

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

    exit_code = ExitStatus.SIGINT
    kind = "interrupted"
    hint = "nothing half-done was kept; run the command again to resume or redo it"

    def __init__(self, signum: int, message: str | None = None) -> None:
        import signal as _signal

        name = _signal.Signals(signum).name if signum in {s.value for s in _signal.Signals} else f"signal {signum}"
        super().__init__(message or f"interrupted by {name}")
        self.signum = signum
        # beststag handles SIGINT and SIGTERM only (interrupts.py), so the code is one of the table's two;
        # the message above still names any other signal a caller passes
        self.exit_code = ExitStatus.SIGTERM if signum == _signal.SIGTERM else ExitStatus.SIGINT


class LockHeld(BestStagError):
    """Another run holds the lock for this job."""

    exit_code = ExitStatus.LOCKED
    kind = "lock_held"
    hint = "another run is in progress; cron will try again at the next slot"


class AlertsFiring(OperationFailed):
    """At least one alert fires (exit 1, so cron mails and CI jobs notice)."""

    kind = "alert_firing"
    hint = "the figures above say what crossed its threshold; thresholds are under `alerts:` in the config"


class BackupBroken(OperationFailed):
    """A backup failed verification (a stored file is missing or does not match its sha256; a restore from
    it writes nothing): the message names the first broken file."""

    kind = "backup_broken"
    hint = "restore from another backup (`beststag backup list`), and run a new backup"

    def __init__(self, backup_id: str, file: str, problem: str) -> None:
        super().__init__(f"backup {backup_id} is broken: {file}: {problem}")
        self.backup_id = backup_id
        self.file = file
        self.problem = problem


class DrillFailed(OperationFailed):
    """A restore drill ran and the restored base is not the backup (`backup drill`): the message names the
    first difference (table, record, field), or what stopped the restore."""

    kind = "drill_failed"
    hint = "the backup does not restore as it was taken: run a new complete backup and drill it"


def all_error_classes() -> list[type[BestStagError]]:
    """Every class of the tree, for docs and for the test that checks the exit-code table."""
    out: list[type[BestStagError]] = []
    todo: list[type[BestStagError]] = [BestStagError]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out
