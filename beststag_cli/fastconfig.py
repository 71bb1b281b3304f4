"""Settings for the cache-hit path without pydantic (importing the config models costs ~70 ms).

The CLI (and only the CLI: `cli/state.py`, once the full loader has validated the settings) saves a
snapshot of them, without secrets, to `<data_dir>/settings.snapshot.json` together with a
fingerprint of everything it was built from: the package version, the working directory, the config
file's path and bytes, and the environment variables the loader reads (secrets enter only as part
of a SHA-256 digest). `load_config` itself writes nothing, so library users and tests loading
settings leave no file behind. `fast_settings()` rebuilds the same fingerprint cheaply and returns
the snapshot only when it matches; any doubt returns None and the caller falls back to `load_config`.
The search order, the variables, the secrets and the data dir rule come from `settings_sources`,
the table the full loader reads too.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .paths import BACKUP_TYPES, Paths
from .settings_sources import (
    ENV_DATA_DIR,
    LOADER_ENV,
    RUNTIME_ENV,
    SANDBOX_DEFAULT_TOKEN,
    MissingConfigFile,
    env_overrides,
    env_value,
    find_config_file,
    mode_problem,
    resolve_data_dir,
    scrub,
    secret_values,
)

if TYPE_CHECKING:
    from .config import Settings

__all__ = ["SNAPSHOT_NAME", "FastSettings", "fast_settings", "mode_problem", "save_snapshot", "valid_for_commands"]

SNAPSHOT_NAME = "settings.snapshot.json"
#: bumped when the rules a snapshot was checked against change, so an older snapshot never answers
_RULES = b"modes-3"


def _fingerprint(file: Path | None, body: bytes, env: Mapping[str, str]) -> str:
    h = hashlib.sha256()
    h.update(__version__.encode() + b"\0" + _RULES)
    h.update(b"\0" + str(Path.cwd()).encode())
    h.update(b"\0" + (str(file.resolve()) if file else "").encode() + b"\0" + body)
    for k in LOADER_ENV:
        h.update(b"\0" + k.encode() + b"=" + env.get(k, "").strip().encode())
    # every other AIRTABLE_*/BESTSTAG_* variable too: one the full loader learns to read later (a mode
    # switch such as BESTSTAG_SANDBOX) must never be answered with a snapshot built without it
    for k in sorted(
        k for k in env if k.startswith(("AIRTABLE_", "BESTSTAG_")) and k not in LOADER_ENV and k not in RUNTIME_ENV
    ):
        h.update(b"\0" + k.encode() + b"=" + env[k].strip().encode())
    return h.hexdigest()


def _data_dir(file: Path | None, body: bytes, env: Mapping[str, str]) -> Path | None:
    """Where the full loader puts data_dir (the same rule, `settings_sources.resolve_data_dir`)."""
    from_env = env_value(env, ENV_DATA_DIR)
    if from_env is not None:
        return resolve_data_dir({"data_dir": from_env}, from_env=True, base_dir=Path.cwd())
    if file is None:
        return resolve_data_dir({}, from_env=False, base_dir=Path.cwd())
    import yaml  # only here: with BESTSTAG_DATA_DIR set (cron, services) the hit path never pays for it

    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        raw = yaml.load(body, Loader=loader)
    except yaml.YAMLError:
        return None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return None
    return resolve_data_dir(raw, from_env=False, base_dir=file.resolve().parent)


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


def _env_secrets(env: Mapping[str, str]) -> dict[str, Any]:
    """The secret settings the environment gives, as a settings mapping (``{"airtable": {"token": …}}``)."""
    tree: dict[str, Any] = {}
    for override, value in env_overrides(env):
        if override.kind == "secret":
            node = tree
            for key in override.path[:-1]:
                node = node.setdefault(key, {})
            node[override.path[-1]] = value
    return tree


def _secrets_from_env(settings: Settings, env: Mapping[str, str]) -> bool:
    """Every configured secret is the environment's (none from the file): the fast path can read them again
    from the environment, so the snapshot needs to hold none of them, only this answer."""
    return secret_values(settings.model_dump()) == secret_values(_env_secrets(env))


class _Jobs(_Section):
    """`jobs` without ping URLs (they are secrets: never in the snapshot); used only when none is configured."""

    @property
    def pings(self) -> dict[str, Any]:
        return {}


class FastSettings(_Section):
    """The subset of `Settings` the fast paths read, from a snapshot.

    What the snapshot leaves out because it is secret is known only as booleans (``has_pings``,
    ``has_notify_urls``, ``secrets_from_env``); a command that would need the values declines unless
    they can be read again from the environment (``secrets()``, ``api_token()``).
    """

    def __init__(
        self, data: dict[str, Any], *, config_file: Path | None = None, env: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(data)
        self._config_file = config_file
        self._env = os.environ if env is None else env
        prom = (data.get("metrics") or {}).get("prometheus_path")
        self.paths = Paths.from_data_dir(
            Path(data["data_dir"]),
            Path(data["backup"]["dir"]) if data["backup"].get("dir") else None,
            prom_file=Path(prom) if isinstance(prom, str) and prom else None,
        )

    @property
    def base_id(self) -> str | None:
        return self._data["airtable"]["base_id"]

    @property
    def sandbox_mode(self) -> bool:
        return bool(self._data["_sandbox_mode"])

    @property
    def tables(self) -> dict[str, Any]:
        return {k: _Section(v) for k, v in self._data["tables"].items()}

    @property
    def has_pings(self) -> bool:
        """Some job has a ping URL configured (the URLs themselves are not in the snapshot)."""
        return self._data.get("_has_pings") is not False

    @property
    def has_notify_urls(self) -> bool:
        """Alert webhooks are configured (the URLs themselves are not in the snapshot)."""
        return self._data.get("_has_notify_urls") is not False

    @property
    def secrets_from_env(self) -> bool:
        """Every configured secret comes from the environment: ``secrets()`` and ``api_token()`` are exact."""
        return self._data.get("_secrets_from_env") is True

    @property
    def jobs(self) -> _Section:
        if self.has_pings:
            raise LookupError("jobs.pings: not in the snapshot")  # not AttributeError: __getattr__ would answer
        return _Jobs(self._data["jobs"])

    @property
    def config_path(self) -> Path | None:
        return self._config_file.resolve() if self._config_file is not None else None

    @property
    def endpoint_url(self) -> str:
        return str(self._data["_endpoint_url"])

    def secrets(self) -> list[str]:
        """``Settings.secrets()``, read again from the environment (only when ``secrets_from_env``)."""
        if not self.secrets_from_env:
            raise LookupError("secrets: not all in the environment")
        return secret_values(_env_secrets(self._env))

    def api_token(self) -> str:
        """``Settings.api_token()``, from the environment (only when ``secrets_from_env``)."""
        if not self.secrets_from_env:
            raise LookupError("api_token: not in the environment")
        air = _env_secrets(self._env).get("airtable", {})
        return str(air.get("token") or air.get("sandbox_token") or SANDBOX_DEFAULT_TOKEN)

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
    if not (
        isinstance(air, dict) and isinstance(cache, dict) and isinstance(backup, dict) and isinstance(tables, dict)
    ):
        return False
    if not isinstance(data.get("data_dir"), str) or Path(os.path.normpath(data["data_dir"])) != data_dir:
        return False
    if not isinstance(data.get("_sandbox_mode"), bool) or not isinstance(air.get("base_id"), str | None):
        return False
    if not isinstance(backup.get("dir"), str | None):
        return False
    if not all(
        _is_int(cache.get(k)) and cache[k] >= 0 for k in ("default_ttl_s", "compress_min_bytes", "size_limit_mb")
    ):
        return False
    if not _is_num(cache.get("max_stale_s")) or cache.get("backend", "diskcache") not in ("diskcache", "redis"):
        return False
    if cache.get("backend") == "redis" and not (
        isinstance(cache.get("redis_url"), str) and isinstance(cache.get("redis_prefix", ""), str)
    ):
        return False
    for name, t in tables.items():
        if not isinstance(name, str) or not isinstance(t, dict):
            return False
        if not isinstance(t.get("cache_mode", "query"), str) or not (t.get("ttl_s") is None or _is_int(t["ttl_s"])):
            return False
    return True


def valid_for_commands(data: Any) -> bool:
    """The fields `metrics alerts` and `doctor` read beyond the hit path's have the loader's types
    (a hand-edited snapshot must not reach them: they write the journal and the log before answering)."""
    try:
        alerts, metrics, logging_, jobs = data["alerts"], data["metrics"], data["logging"], data["jobs"]
        rule = alerts["backup_failure"]
        numbers = [
            alerts[k]
            for k in ("cache_hit_ratio_min", "response_time_max_s", "error_rate_max", "storage_usage_max", "cooldown_s")
        ]
        numbers += [rule["max_age_h"][t] for t in BACKUP_TYPES] + [jobs["ping_timeout_s"]]
        numbers.append(data["backup"]["drill_max_age_h"])
        ints = [
            alerts["min_samples"],
            rule["consecutive_failures"],
            metrics["plan_record_limit"],
            logging_["max_bytes"],
            logging_["backups"],
            jobs["ping_retries"],
        ]
        flags = [rule["enabled"], data["_has_pings"], data["_has_notify_urls"], data["_secrets_from_env"]]
        return (
            all(_is_num(v) for v in numbers)
            and all(_is_int(v) for v in ints)
            and all(isinstance(v, bool) for v in flags)
            and isinstance(alerts["range"], str)
            and logging_["level"] in ("DEBUG", "INFO", "WARNING", "ERROR")
            and isinstance(data["_endpoint_url"], str)
            and isinstance(metrics.get("prometheus_path"), str | None)
            and isinstance(data["cache"].get("redis_url"), str | None)
            and isinstance(data["backup"].get("remote"), str | None)
        )
    except (KeyError, TypeError):
        return False


def fast_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> FastSettings | None:
    """The snapshot's settings when it matches the current config exactly; None (use the full loader) on any doubt.

    A damaged snapshot (garbage, wrong types, a link, another data dir) is never an error: the
    caller falls back to the full loader, which writes a good one again.
    """
    env = os.environ if env is None else env
    try:
        try:
            file = find_config_file(path, env)
        except MissingConfigFile:
            return None  # the full loader says what is missing
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
        if mode_problem(
            token=not data["_sandbox_mode"],
            base_id=data["airtable"]["base_id"],
            sandbox=data["airtable"].get("sandbox") is True,
        ):
            return None
        return FastSettings(data, config_file=file, env=env)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None


def save_snapshot(settings: Settings, env: Mapping[str, str] | None = None) -> None:
    """Save the snapshot of validated ``settings`` for ``env`` (the CLI calls this; ``load_config`` never does).

    Best effort: a failure to write the snapshot only costs the next hit its fast path.
    """
    from .fsutil import write_private_file

    env = os.environ if env is None else env
    file = settings.config_path
    try:
        body = file.read_bytes() if file is not None else b""
        fp = _fingerprint(file, body, env)
        target = settings.paths.data_dir / SNAPSHOT_NAME
        current = _read_snapshot(target)
        if (
            isinstance(current, dict)
            and current.get("fingerprint") == fp
            and _valid_settings(current.get("settings"), Path(os.path.normpath(settings.paths.data_dir)))
        ):
            return  # a damaged one (garbage, wrong types, a link) is written again below
        if not settings.paths.data_dir.is_dir():
            return  # never create the data dir as a side effect of reading config
        data = settings.model_dump(mode="json")
        data["_sandbox_mode"] = settings.sandbox_mode
        # what the secrets scrub removes look like, as booleans only: the fast paths decline the
        # commands that would need them (ping and alert URLs), or read them again from the environment
        data["_has_pings"] = any(
            any(getattr(p, w) for w in ("url", "start", "success", "fail")) for p in settings.jobs.pings.values()
        )
        data["_has_notify_urls"] = bool(settings.alerts.notify_urls)
        data["_secrets_from_env"] = _secrets_from_env(settings, env)
        data["_endpoint_url"] = settings.endpoint_url  # before scrub: a password in it is masked like any
        data["_masked"] = scrub(data)
        write_private_file(target, json.dumps({"fingerprint": fp, "settings": data}, ensure_ascii=False))
    except Exception:  # never let a cache of the config break loading it
        return
