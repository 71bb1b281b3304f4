"""Settings for the cache-hit path without pydantic (importing the config models costs ~70 ms).

`load_config` (the full, validating loader) saves a snapshot of the validated settings, without
secrets, to `<data_dir>/settings.snapshot.json` together with a fingerprint of everything it was
built from: the package version, the working directory, the config file's path and bytes, and the
environment overrides (secrets enter only as part of a SHA-256 digest). `fast_settings()` rebuilds
the same fingerprint cheaply and returns the snapshot only when it matches; any doubt returns
None and the caller falls back to `load_config`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .paths import Paths

if TYPE_CHECKING:
    from .config import Settings

SNAPSHOT_NAME = "settings.snapshot.json"
_ENV_KEYS = ("AIRTABLE_API_KEY", "AIRTABLE_TOKEN", "AIRTABLE_BASE_ID", "AIRTABLE_ENDPOINT_URL",
             "BESTSTAG_DATA_DIR", "BESTSTAG_WEBHOOK_SECRET", "BESTSTAG_SANDBOX_TOKEN", "BESTSTAG_CONFIG",
             "BESTSTAG_REDIS_URL", "BESTSTAG_SANDBOX")
#: bumped when the rules a snapshot was checked against change, so an older snapshot never answers
_RULES = b"modes-2"
SANDBOX_BASE_ID = "appBestStagSandbx"  # config.SANDBOX_BASE_ID (importing config costs the pydantic import)
#: read at run time, never by the config loader: they must not cost a hit its snapshot
_NOT_CONFIG = frozenset({"BESTSTAG_FAKE_NOW", "BESTSTAG_SANDBOX_FAULTS", "BESTSTAG_SANDBOX_RATE_LIMIT",
                         "BESTSTAG_TEST_WORKERS", "BESTSTAG_BIN", "BESTSTAG_ENV_FILE", "BESTSTAG_ALLOW_SANDBOX"})
_SECRET_PATHS = (("airtable", "token"), ("airtable", "sandbox_token"), ("webhook", "secret"))
#: URLs that carry keys in their path or query (healthchecks ping URLs, alert webhooks): never on disk
_URL_SECRETS = (("alerts", "notify_urls"), ("jobs", "pings"))
_USERINFO_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s/]+@", re.IGNORECASE)


def _scrub(data: dict[str, Any]) -> list[str]:
    """Take every secret out of a settings dump (in place); return the dotted paths whose value was masked.

    Known secrets go; URL-valued settings that carry keys are emptied; and a password in any URL's
    userinfo (``redis://:pw@host``, wherever it is configured) is masked, its path returned so the
    fast path knows that value is not usable and leaves that case to the full loader.
    """
    for a, b in _SECRET_PATHS:
        data.get(a, {}).pop(b, None)
    for a, b in _URL_SECRETS:
        section = data.get(a)
        if isinstance(section, dict) and b in section:
            section[b] = type(section[b])()
    masked: list[str] = []

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, path) for v in node]
        if isinstance(node, str) and _USERINFO_PASSWORD.search(node):
            masked.append(path)
            return _USERINFO_PASSWORD.sub(r"\g<1>***@", node)
        return node

    data.update(walk(data, ""))
    return masked


def mode_problem(*, token: bool, base_id: str | None, sandbox: bool) -> tuple[str, str] | None:
    """Why this token / base id / BESTSTAG_SANDBOX combination is refused, as (message, hint); None if fine.

    One rule for the full loader and the snapshot path: sandbox mode only when asked for
    (BESTSTAG_SANDBOX=1) or when neither a token nor a base id is configured. A base id without a
    token is a production setup that lost its token (cron with a bad env file): answering from the
    sample base there would report success on the wrong data.
    """
    if token and sandbox:
        return ("AIRTABLE_TOKEN and BESTSTAG_SANDBOX=1 are both set: a token means Airtable, "
                "BESTSTAG_SANDBOX=1 the local sandbox",
                "unset BESTSTAG_SANDBOX to use Airtable, or unset AIRTABLE_TOKEN to use the sandbox")
    if token and base_id is None:
        return ("AIRTABLE_TOKEN is set but AIRTABLE_BASE_ID (airtable.base_id) is not: no base to work on",
                "set AIRTABLE_BASE_ID=appXXXXXXXXXXXXXX (the app... part of the base's URL)")
    if not token and not sandbox and base_id not in (None, SANDBOX_BASE_ID):
        return (f"AIRTABLE_BASE_ID (airtable.base_id) is {base_id} but AIRTABLE_TOKEN is not set: "
                "refusing to answer from the sandbox instead",
                "set AIRTABLE_TOKEN, or BESTSTAG_SANDBOX=1 for the sandbox")
    return None


def _config_file(path: str | Path | None, env: Mapping[str, str]) -> Path | bool | None:
    """Same search order as config.find_config_file; False when the full loader must decide."""
    if path is not None and str(path) != "":
        p = Path(path).expanduser()
        return p if p.is_file() else False
    if env.get("BESTSTAG_CONFIG"):
        p = Path(env["BESTSTAG_CONFIG"]).expanduser()
        return p if p.is_file() else False
    p = Path.cwd() / "config" / "beststag.yaml"
    return p if p.is_file() else None


def _fingerprint(file: Path | None, body: bytes, env: Mapping[str, str]) -> str:
    h = hashlib.sha256()
    h.update(__version__.encode() + b"\0" + _RULES)
    h.update(b"\0" + str(Path.cwd()).encode())
    h.update(b"\0" + (str(file.resolve()) if file else "").encode() + b"\0" + body)
    for k in _ENV_KEYS:
        h.update(b"\0" + k.encode() + b"=" + env.get(k, "").strip().encode())
    # every other AIRTABLE_*/BESTSTAG_* variable too: one the full loader learns to read later (a mode
    # switch such as BESTSTAG_SANDBOX) must never be answered with a snapshot built without it
    for k in sorted(k for k in env if k.startswith(("AIRTABLE_", "BESTSTAG_")) and k not in _ENV_KEYS
                    and k not in _NOT_CONFIG):
        h.update(b"\0" + k.encode() + b"=" + env[k].strip().encode())
    return h.hexdigest()


def _data_dir(file: Path | None, body: bytes, env: Mapping[str, str]) -> Path | None:
    """Where the full loader puts data_dir (env, else the file's value, else ./var)."""
    def norm(p: Path) -> Path:
        return Path(os.path.normpath(p))

    if env.get("BESTSTAG_DATA_DIR", "").strip():
        p = Path(env["BESTSTAG_DATA_DIR"].strip()).expanduser()
        return norm(p if p.is_absolute() else Path.cwd() / p)
    if file is None:
        return norm(Path.cwd() / "var")
    import yaml

    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        raw = yaml.load(body, Loader=loader)
    except yaml.YAMLError:
        return None
    value = raw.get("data_dir") if isinstance(raw, dict) else None
    if value is None:
        return norm(Path.cwd() / "var")
    if not isinstance(value, str) or not value:
        return None
    p = Path(value).expanduser()
    return norm(p if p.is_absolute() else file.resolve().parent / p)


class _Section:
    """Attribute access over a dict snapshot."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        try:
            v = self._data[name]
        except KeyError:
            raise AttributeError(name) from None
        return _Section(v) if isinstance(v, dict) else v


class FastSettings(_Section):
    """The subset of `Settings` the cache-hit path reads, from a snapshot."""

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data)
        prom = (data.get("metrics") or {}).get("prometheus_path")
        self.paths = Paths.from_data_dir(Path(data["data_dir"]),
                                         Path(data["backup"]["dir"]) if data["backup"].get("dir") else None,
                                         prom_file=Path(prom) if isinstance(prom, str) and prom else None)

    @property
    def base_id(self) -> str | None:
        return self._data["airtable"]["base_id"]

    @property
    def sandbox_mode(self) -> bool:
        return bool(self._data["_sandbox_mode"])

    @property
    def tables(self) -> dict[str, Any]:
        return {k: _Section(v) for k, v in self._data["tables"].items()}

    def ttl_for(self, table: str) -> int:
        t = self._data["tables"].get(table)
        if t is not None and t.get("ttl_s") is not None:
            return int(t["ttl_s"])
        return int(self._data["cache"]["default_ttl_s"])


MAX_SNAPSHOT_BYTES = 4 * 2**20


def _read_snapshot(path: Path) -> Any:
    """The snapshot's JSON, read without following a link and only from a regular file; None if unsure."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_SNAPSHOT_BYTES:
            return None
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        return json.loads(b"".join(chunks))
    except (OSError, ValueError, RecursionError):
        return None
    finally:
        os.close(fd)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _valid_settings(data: Any, data_dir: Path) -> bool:
    """The fields the hit path reads have the types the full loader gives them, and the data dir is ours."""
    if not isinstance(data, dict):
        return False
    air, cache, backup, tables = (data.get(k) for k in ("airtable", "cache", "backup", "tables"))
    if not (isinstance(air, dict) and isinstance(cache, dict) and isinstance(backup, dict)
            and isinstance(tables, dict)):
        return False
    if not isinstance(data.get("data_dir"), str) or Path(os.path.normpath(data["data_dir"])) != data_dir:
        return False
    if not isinstance(data.get("_sandbox_mode"), bool) or not isinstance(air.get("base_id"), str | None):
        return False
    if not isinstance(backup.get("dir"), str | None):
        return False
    if not all(_is_int(cache.get(k)) and cache[k] >= 0 for k in ("default_ttl_s", "compress_min_bytes",
                                                                    "size_limit_mb")):
        return False
    if not _is_num(cache.get("max_stale_s")) or cache.get("backend", "diskcache") not in ("diskcache", "redis"):
        return False
    if cache.get("backend") == "redis" and not (isinstance(cache.get("redis_url"), str)
                                                and isinstance(cache.get("redis_prefix", ""), str)):
        return False
    for name, t in tables.items():
        if not isinstance(name, str) or not isinstance(t, dict):
            return False
        if not isinstance(t.get("cache_mode", "query"), str) or not (t.get("ttl_s") is None or _is_int(t["ttl_s"])):
            return False
    return True


def fast_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> FastSettings | None:
    """The snapshot's settings when it matches the current config exactly; None (use the full loader) on any doubt.

    A damaged snapshot (garbage, wrong types, a link, another data dir) is never an error: the
    caller falls back to the full loader, which writes a good one again.
    """
    env = os.environ if env is None else env
    try:
        file = _config_file(path, env)
        if file is False:
            return None
        assert not isinstance(file, bool)
        body = file.read_bytes() if file is not None else b""
        data_dir = _data_dir(file, body, env)
        if data_dir is None:
            return None
        snap = _read_snapshot(data_dir / SNAPSHOT_NAME)
        if not isinstance(snap, dict) or snap.get("fingerprint") != _fingerprint(file, body, env):
            return None
        if not _valid_settings(snap.get("settings"), data_dir):
            return None
        data = snap["settings"]
        if data.get("_masked"):  # a Redis URL's password is not on disk: only the full loader can connect
            return None
        # the full loader refuses these; a snapshot must never answer where it would (e.g. one left by an older rule)
        if mode_problem(token=not data["_sandbox_mode"], base_id=data["airtable"]["base_id"],
                        sandbox=data["airtable"].get("sandbox") is True):
            return None
        return FastSettings(data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None


def save_snapshot(settings: Settings, file: Path | None, env: Mapping[str, str]) -> None:
    """Best effort: a failure to write the snapshot only costs the next hit its fast path."""
    from .fsutil import write_private_file

    try:
        body = file.read_bytes() if file is not None else b""
        fp = _fingerprint(file, body, env)
        target = settings.paths.data_dir / SNAPSHOT_NAME
        current = _read_snapshot(target)
        if isinstance(current, dict) and current.get("fingerprint") == fp and \
                _valid_settings(current.get("settings"), Path(os.path.normpath(settings.paths.data_dir))):
            return  # a damaged one (garbage, wrong types, a link) is written again below
        if not settings.paths.data_dir.is_dir():
            return  # never create the data dir as a side effect of reading config
        data = settings.model_dump(mode="json")
        data["_masked"] = _scrub(data)
        data["_sandbox_mode"] = settings.sandbox_mode
        write_private_file(target, json.dumps({"fingerprint": fp, "settings": data}, ensure_ascii=False))
    except Exception:  # never let a cache of the config break loading it
        return
