"""Logging: JSON lines to the data dir, a human console on stderr, secrets redacted everywhere.

- Always: JSON lines to ``<data_dir>/logs/beststag.jsonl`` (file 0600, folder 0700), rotated by
  size (``logging.max_bytes``, ``logging.backups``). Several processes write the same file;
  each write and rotation happens under a ``flock`` on a sidecar lock file, and a process that
  finds the file rotated by another one reopens it.
- Console (stderr): on a terminal at INFO (DEBUG with ``-v``), through the handler the caller
  gives (the CLI's rich one, ``cli/console_log.py``: the core imports no console library); only
  errors under ``--quiet`` or when stderr is not a terminal (cron mails whatever reaches stderr). With
  ``--json`` the console lines are JSON too, since stdout then carries machine output.
- Redaction: a log-record factory masks message, args and exception text as each record is
  created, before any handler (ours or anyone's) sees it; :class:`RedactingFilter`, first on
  each of our handlers, also masks ``extra=`` fields and ``log_event`` fields. Both replace the
  configured secrets (``settings_sources.SECRET_SETTINGS``: tokens, the webhook secret, Redis URL
  passwords, alert webhooks and ping URLs; and the AWS credentials of the environment), anything shaped
  like an Airtable personal access token, the password of any ``scheme://user:password@`` URL,
  an ``Authorization`` header's value, and a credential-shaped word after ``Bearer``. Values,
  never words: a hint saying "send it as a bearer token" stays readable.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import logging.handlers
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from beststag_cli import clock
from beststag_cli.errors import BestStagError
from beststag_cli.fsutil import ensure_private_dir, private_open, touch_private

if TYPE_CHECKING:
    from beststag_cli.config import Settings

try:
    import fcntl

    _HAVE_FCNTL = True
except ImportError:  # pragma: no cover - Windows
    _HAVE_FCNTL = False

LOGGER_NAME = "beststag"
EVENT_LOGGER_NAME = "beststag.event"
MASK = "***"
#: secrets shorter than this are not redacted (masking "ab" would mangle every line)
MIN_SECRET_LEN = 4

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"pat[A-Za-z0-9]{14}\.[a-f0-9]{64}"), MASK),
    # a header's value is a value whatever it looks like, whatever its scheme (Bearer, Basic, Token…)
    (
        re.compile(r"""((?:Proxy-)?Authorization['"]?\s*[:=]\s*['"]?(?:[A-Za-z]+\s+)?)[^\s'",}]+""", re.IGNORECASE),
        r"\g<1>" + MASK,
    ),
    (re.compile(r"""(X-Api-Key['"]?\s*[:=]\s*['"]?)[^\s'",}]+""", re.IGNORECASE), r"\g<1>" + MASK),
    # "Bearer X" hides X, whatever X is, except the few words prose puts there ("a bearer token"):
    # redact values, not words
    (
        re.compile(
            r"(Bearer\s+)(?!(?:token|tokens|scheme|auth|authentication|header|credential)\b)[^\s'\",}]+", re.IGNORECASE
        ),
        r"\g<1>" + MASK,
    ),
    # the password of a URL's userinfo (redis://:pw@host, https://user:pw@host); up to the last "@"
    # before the host, as urllib and redis-py split it (a password may hold an unencoded "@")
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s/]+@", re.IGNORECASE), r"\g<1>" + MASK + "@"),
)

# attributes every LogRecord has; anything else was passed with `extra=`
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


_AUTH_KEYS = frozenset({"authorization", "proxy-authorization", "x-api-key"})


def _mask_auth(value: Any) -> Any:
    """`Bearer X` → `Bearer ***`, anything else → `***` (the scheme is not a secret, the rest is)."""
    if not isinstance(value, str):
        return MASK
    scheme, sep, _ = value.partition(" ")
    return f"{scheme} {MASK}" if sep and scheme.isalpha() else MASK


class Redactor:
    """Replaces secrets and token-shaped strings with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        uniq = {s for s in secrets if s and len(s) >= MIN_SECRET_LEN}
        # longest first, so a secret containing another is masked whole
        ordered = sorted(uniq, key=len, reverse=True)
        self._secrets = re.compile("|".join(re.escape(s) for s in ordered)) if ordered else None

    def redact(self, text: str) -> str:
        if self._secrets is not None:
            text = self._secrets.sub(MASK, text)
        for pattern, repl in _PATTERNS:
            text = pattern.sub(repl, text)
        return text

    def redact_value(self, value: Any) -> Any:
        """Redact strings inside ``value`` (dicts, lists and tuples are walked)."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):  # a header's value is a value, whatever it looks like
            return {
                k: _mask_auth(v) if str(k).lower() in _AUTH_KEYS else self.redact_value(v) for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.redact_value(v) for v in value]
        return value


_redactor = Redactor()


def get_redactor() -> Redactor:
    """The redactor installed by the last :func:`setup_logging` (token patterns only before)."""
    return _redactor


def redact(text: str) -> str:
    """Mask secrets in ``text`` (for messages printed outside logging, e.g. error output)."""
    return _redactor.redact(text)


def _redact_record(record: logging.LogRecord, r: Redactor) -> None:
    """Format the message once, mask it, drop the args; pre-render and mask exception text."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string must not lose the record (or leak its args)
        message = f"{record.msg!s} (unformattable args)"
    record.msg = r.redact(message)
    record.args = None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = r.redact(record.exc_text)
    if record.stack_info:
        record.stack_info = r.redact(record.stack_info)


class RedactingFilter(logging.Filter):
    """Rewrites a record so no handler can see a secret: message, args, exception, extras.

    Message, args and exception are already masked when the record is created (see
    :func:`setup_logging`, which installs a record factory, so even handlers that others add
    to the root logger, such as pytest's, see masked records). ``extra=`` fields are attached
    after creation, so this filter, first on each of our handlers, masks them.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        r = self.redactor
        if record.args or (record.exc_info and not record.exc_text):
            _redact_record(record, r)
        else:
            record.msg = r.redact(str(record.msg))
        for key, value in list(vars(record).items()):
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                setattr(record, key, r.redact_value(value))
        return True


_base_factory: Callable[..., logging.LogRecord] | None = None


def _redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    assert _base_factory is not None
    record = _base_factory(*args, **kwargs)
    _redact_record(record, _redactor)
    return record


def _install_record_factory() -> None:
    global _base_factory
    if _base_factory is None:
        _base_factory = logging.getLogRecordFactory()
        logging.setLogRecordFactory(_redacting_factory)


def _remove_record_factory() -> None:
    global _base_factory
    if _base_factory is not None and logging.getLogRecordFactory() is _redacting_factory:
        logging.setLogRecordFactory(_base_factory)
    _base_factory = None


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, msg, pid, then event fields and extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": clock.now().isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        event = getattr(record, "event", None)
        if event:
            out["event"] = event
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            for k, v in fields.items():
                out.setdefault(str(k), v)
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and key not in ("event", "fields") and not key.startswith("_"):
                out.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return json.dumps(out, ensure_ascii=False, default=str)


class SharedRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """RotatingFileHandler safe for several processes appending to one file, creating it 0600.

    Each emit takes a ``flock`` on ``<file>.lock``; inside it, a file rotated away by another
    process is reopened before the size check, so only one process rotates and nobody keeps
    writing into a renamed file.
    """

    def __init__(self, filename: str | Path, max_bytes: int, backup_count: int) -> None:
        self._lock_path = str(filename) + ".lock"
        self._lock_fd: int | None = None
        self._refused = False
        touch_private(self._lock_path)  # UnsafePath now, at setup, for a planted link
        super().__init__(filename, mode="a", maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8")

    def _open(self) -> io.TextIOWrapper:
        f = private_open(self.baseFilename, "a", encoding="utf-8")
        assert isinstance(f, io.TextIOWrapper)  # os.fdopen in text mode
        return f

    def _reopen_if_rotated(self) -> None:
        if self.stream is None:
            return
        try:
            on_disk = os.stat(self.baseFilename)
        except FileNotFoundError:
            on_disk = None
        mine = os.fstat(self.stream.fileno())
        if on_disk is None or (on_disk.st_ino, on_disk.st_dev) != (mine.st_ino, mine.st_dev):
            self.stream.close()
            self.stream = self._open()

    def emit(self, record: logging.LogRecord) -> None:
        if self._refused:
            return
        if not _HAVE_FCNTL:  # pragma: no cover
            super().emit(record)
            return
        try:
            if self._lock_fd is None:
                touch_private(self._lock_path)
                self._lock_fd = os.open(
                    self._lock_path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
                )
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        except (OSError, BestStagError):
            self.handleError(record)
            return
        try:
            try:
                self._reopen_if_rotated()
            except BestStagError:  # the log file was replaced by a link: stop writing it, never follow it
                self._refused = True
                return
            super().emit(record)
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def handleError(self, record: logging.LogRecord) -> None:
        """A line that cannot be written (a full disk, ENOSPC) is dropped: never a traceback on stderr."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handleError(record)

    def close(self) -> None:
        super().close()
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None


#: longest value a console line shows without -v (the JSON log file always has it whole)
FIELD_MAX_CHARS = 80


def _logfmt(value: Any, limit: int | None) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    if text == "" or any(c.isspace() or c in '"=' for c in text):
        text = json.dumps(text, ensure_ascii=False)
    return text


class FieldsFormatter(logging.Formatter):
    """``message key=value …``: the event's fields after the message (logfmt quoting).

    Without ``verbose`` long values are cut at :data:`FIELD_MAX_CHARS` and ``extra=`` attributes are
    left out; with it (``-v``) every field and extra is shown whole.
    """

    def __init__(self, fmt: str = "%(message)s", *, verbose: bool = False) -> None:
        super().__init__(fmt)
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        pairs: dict[str, Any] = {}
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            pairs.update({str(k): v for k, v in fields.items() if v is not None or self.verbose})
        if self.verbose:
            for key, value in vars(record).items():
                if key not in _RECORD_ATTRS and key not in ("event", "fields") and not key.startswith("_"):
                    pairs.setdefault(key, value)
        if not pairs:
            return text
        limit = None if self.verbose else FIELD_MAX_CHARS
        tail = " ".join(f"{k}={_logfmt(v, limit)}" for k, v in pairs.items())
        head, sep, rest = text.partition("\n")  # an exception's text stays below the line
        return f"{head} {tail}{sep}{rest}"


#: builds the console handler on a terminal (the CLI's rich one: `cli/console_log.py:rich_handler`);
#: the core never imports a console library, so without one a terminal gets plain lines
TerminalHandler = Callable[[TextIO], logging.Handler]


def _console_handler(
    stream: TextIO, *, level: int, json_mode: bool, terminal: TerminalHandler | None, verbose: bool = False
) -> logging.Handler:
    if json_mode:
        h: logging.Handler = logging.StreamHandler(stream)
        h.setFormatter(JsonFormatter())
    elif terminal is not None:
        h = terminal(stream)
        h.setFormatter(FieldsFormatter(verbose=verbose))
        h._beststag_terminal = True  # type: ignore[attr-defined]
    else:
        h = logging.StreamHandler(stream)
        h.setFormatter(FieldsFormatter("beststag: %(levelname)s: %(message)s", verbose=verbose))
    h.setLevel(level)
    h._beststag_console = True  # type: ignore[attr-defined]
    return h


def log_requests_to_console(*, quiet: bool = False) -> None:
    """Let INFO lines (one a request) reach the console under `serve`: a server's log is its output.

    On a terminal they stay the terminal handler's lines; when the console is not a terminal (systemd, docker, a pipe)
    they become JSON lines, which log collectors parse. ``--quiet`` keeps errors only.
    """
    if quiet:
        return
    for h in logging.getLogger().handlers:
        if getattr(h, "_beststag_console", False):
            if h.level > logging.INFO:
                h.setLevel(logging.INFO)
            if not getattr(h, "_beststag_terminal", False):
                h.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.setLevel(min(root.level, logging.INFO))


def setup_logging(
    settings: Settings,
    *,
    quiet: bool = False,
    verbose: bool = False,
    json_mode: bool = False,
    stream: TextIO | None = None,
    tty: bool | None = None,
    terminal_handler: TerminalHandler | None = None,
) -> Path | None:
    """Install the file and console handlers on the root logger (replacing earlier ones).

    :param stream: console stream (default ``sys.stderr``, looked up at call time).
    :param tty: treat the console as a terminal or not (default: ``stream.isatty()``).
    :param terminal_handler: makes the console handler when the console is a terminal (the CLI
        passes its rich one); None: plain ``beststag: LEVEL: message`` lines there too.
    :return: the JSON-lines log file, or None when it could not be opened (a warning says why).
    """
    global _redactor
    from beststag_cli.settings_sources import env_secret_values

    # the S3 credentials are no settings, but botocore's debug lines carry them (the session token whole)
    _redactor = Redactor([*settings.secrets(), *env_secret_values(os.environ)])
    redacting = RedactingFilter(_redactor)
    _install_record_factory()

    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_beststag", False):
            root.removeHandler(h)
            h.close()

    stream = sys.stderr if stream is None else stream
    is_tty = stream.isatty() if tty is None else tty
    if quiet:
        console_level = logging.ERROR
    elif verbose:
        console_level = logging.DEBUG
    elif is_tty:
        console_level = logging.INFO
    else:
        console_level = logging.ERROR
    file_level = logging.DEBUG if verbose else logging.getLevelName(settings.logging.level)

    handlers: list[logging.Handler] = []
    console = _console_handler(
        stream, level=console_level, json_mode=json_mode, terminal=terminal_handler if is_tty else None, verbose=verbose
    )
    handlers.append(console)

    log_file: Path | None = settings.paths.log_file
    problem: str | None = None
    try:
        ensure_private_dir(settings.paths.logs)
        fh: logging.Handler = SharedRotatingFileHandler(
            settings.paths.log_file, settings.logging.max_bytes, settings.logging.backups
        )
        fh.setFormatter(JsonFormatter())
        fh.setLevel(file_level)
        handlers.append(fh)
    except OSError as exc:
        problem = f"cannot write the log file {settings.paths.log_file}: {exc.strerror or exc}"
        log_file = None
    except BestStagError as exc:  # UnsafePath: a planted symlink; log to the console only, never through it
        problem = f"not writing the log file: {exc.message}"
        log_file = None

    for h in handlers:
        h.addFilter(redacting)
        h._beststag = True  # type: ignore[attr-defined]
        root.addHandler(h)
    root.setLevel(min(h.level for h in handlers))
    logging.captureWarnings(True)
    if problem:
        logging.getLogger(LOGGER_NAME).warning(problem)
    return log_file


def teardown_logging() -> None:
    """Undo :func:`setup_logging`: remove its handlers and its record factory."""
    _remove_record_factory()
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_beststag", False):
            root.removeHandler(h)
            h.close()


def log_event(name: str, /, *, _level: int = logging.INFO, **fields: Any) -> None:
    """Write one structured event: a JSON line with ``event`` = ``name`` and the given fields.

    >>> log_event("backup.finished", backup_id="2025-01-01T00-00-00Z", records=120)  # doctest: +SKIP
    """
    logging.getLogger(EVENT_LOGGER_NAME).log(_level, name, extra={"event": name, "fields": fields})
