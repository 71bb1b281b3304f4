"""Where settings come from and which of them are secret: the one table both loaders read.

The full loader (`config.py`, pydantic) and the snapshot path (`fastconfig.py`, no pydantic) used to
repeat the config file search order, the environment overrides, the secret settings and the data dir
rule, and the copies drifted (the Redis URL's password reached the snapshot). Everything here is
stdlib only and imports nothing of the product, so the cache-hit path can use it for free.

- **Config file** (:func:`find_config_file`): ``--config``, else ``$BESTSTAG_CONFIG``, else
  ``./config/beststag.yaml`` relative to the working directory, else the built-in defaults.
- **Environment** (:data:`ENV_OVERRIDES`): each variable and the setting it replaces; the
  environment wins over the file.
- **Secrets** (:data:`SECRET_SETTINGS`, :data:`SECRET_ENV`): every setting whose value (or whose
  URL password) must never reach a file, an answer or a log line; :func:`scrub` takes them out of a
  settings dump, :func:`secret_values` lists them for redaction, :func:`mask_url_password` is how a
  URL with a password may be shown.
- **Data dir** (:func:`resolve_data_dir`): the environment's value against the working directory,
  the file's against the file's folder, ``./var`` (against the working directory) when neither.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

# --------------------------------------------------------------------------------------------
# identity constants both loaders need (config.py re-exports them)

SANDBOX_BASE_ID = "appBestStagSandbx"
#: the token the sandbox accepts unless BESTSTAG_SANDBOX_TOKEN says otherwise (documented, so not a secret)
SANDBOX_DEFAULT_TOKEN = "sandbox"

# --------------------------------------------------------------------------------------------
# the config file

ENV_CONFIG = "BESTSTAG_CONFIG"
ENV_DATA_DIR = "BESTSTAG_DATA_DIR"
DEFAULT_CONFIG_RELPATH = Path("config") / "beststag.yaml"
#: the data dir when neither the environment nor the file names one (relative to the working directory)
DEFAULT_DATA_DIR = "var"


class MissingConfigFile(Exception):
    """A config file named explicitly (``--config`` or ``$BESTSTAG_CONFIG``) does not exist."""

    def __init__(self, path: Path, named_by: str) -> None:
        super().__init__(f"{path}: config file not found (named by {named_by})")
        self.path = path
        self.named_by = named_by


def find_config_file(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Path | None:
    """The config file the search order picks, or None for the built-in defaults.

    :raises MissingConfigFile: when ``path`` (``--config``) or ``$BESTSTAG_CONFIG`` names a missing file.
    """
    env = os.environ if env is None else env
    if path is not None and str(path) != "":
        p = Path(path).expanduser()
        if not p.is_file():
            raise MissingConfigFile(p, "--config")
        return p
    from_env = env.get(ENV_CONFIG)
    if from_env:
        p = Path(from_env).expanduser()
        if not p.is_file():
            raise MissingConfigFile(p, f"${ENV_CONFIG}")
        return p
    p = Path.cwd() / DEFAULT_CONFIG_RELPATH
    return p if p.is_file() else None


# --------------------------------------------------------------------------------------------
# environment overrides

#: how the loader treats a variable's value: text (validated by the model like the file's value),
#: secret (text that is never shown or stored), path (relative to the working directory, not to the
#: file), flag (a boolean: 1/true/yes/on or 0/false/no/off, any case)
EnvKind = Literal["text", "secret", "path", "flag"]


@dataclass(frozen=True)
class EnvOverride:
    var: str
    path: tuple[str, ...]
    kind: EnvKind
    doc: str


#: env var -> the setting it replaces. An alias comes before its name, so the name wins when both are set.
ENV_OVERRIDES: tuple[EnvOverride, ...] = (
    EnvOverride("AIRTABLE_API_KEY", ("airtable", "token"), "secret", "alias of AIRTABLE_TOKEN"),
    EnvOverride("AIRTABLE_TOKEN", ("airtable", "token"), "secret", "personal access token: Airtable mode"),
    EnvOverride("AIRTABLE_BASE_ID", ("airtable", "base_id"), "text", "the base (app...)"),
    EnvOverride("AIRTABLE_ENDPOINT_URL", ("airtable", "endpoint_url"), "text", "another Airtable-compatible API"),
    EnvOverride(ENV_DATA_DIR, ("data_dir",), "path", "relative to the working directory"),
    EnvOverride("BESTSTAG_WEBHOOK_SECRET", ("webhook", "secret"), "secret", "the bearer secret n8n sends"),
    EnvOverride("BESTSTAG_SANDBOX_TOKEN", ("airtable", "sandbox_token"), "secret", "the token the sandbox accepts"),
    EnvOverride("BESTSTAG_REDIS_URL", ("cache", "redis_url"), "text", "may carry a password"),
    EnvOverride("BESTSTAG_SANDBOX", ("airtable", "sandbox"), "flag", "1: use the sandbox"),
)

#: every variable the loader reads (a snapshot is good only for the values it was built from)
LOADER_ENV: tuple[str, ...] = (*(o.var for o in ENV_OVERRIDES), ENV_CONFIG)

#: read at run time, never by the config loader: changing one must not cost a cache hit its snapshot
RUNTIME_ENV = frozenset(
    {
        "BESTSTAG_FAKE_NOW",
        "BESTSTAG_SANDBOX_FAULTS",
        "BESTSTAG_SANDBOX_RATE_LIMIT",
        "BESTSTAG_TEST_WORKERS",
        "BESTSTAG_BIN",
        "BESTSTAG_ENV_FILE",
        "BESTSTAG_ALLOW_SANDBOX",
    }
)


def env_value(env: Mapping[str, str], var: str) -> str | None:
    """A variable's value as the loader takes it: stripped; unset and blank are the same (None)."""
    value = env.get(var)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def env_overrides(env: Mapping[str, str]) -> Iterator[tuple[EnvOverride, str]]:
    """The overrides that apply in ``env``, in table order (a later one for the same path wins)."""
    for override in ENV_OVERRIDES:
        value = env_value(env, override.var)
        if value is not None:
            yield override, value


# --------------------------------------------------------------------------------------------
# the data dir


def resolve_path(value: str | Path, base: Path) -> Path:
    """``value`` with ``~`` expanded, against ``base`` when relative, normalised (no ``..``)."""
    p = Path(value).expanduser()
    if not p.is_absolute():
        p = base / p
    return Path(os.path.normpath(p))


def resolve_data_dir(raw: Mapping[str, Any], *, from_env: bool, base_dir: Path) -> Path | None:
    """Where ``data_dir`` is, given the raw settings mapping (file values with env overrides applied).

    :param from_env: the value came from ``BESTSTAG_DATA_DIR`` (it resolves against the working directory).
    :param base_dir: the config file's folder (the working directory without a file).
    :return: None when the value is not a usable path (the model's validation says why).
    """
    if "data_dir" not in raw:
        return resolve_path(DEFAULT_DATA_DIR, Path.cwd())
    value = raw["data_dir"]
    if not isinstance(value, str | Path) or str(value) == "":
        return None
    return resolve_path(value, Path.cwd() if from_env else base_dir)


# --------------------------------------------------------------------------------------------
# secrets

MASK = "***"

#: value: the whole value is secret (a token; a URL whose path or query is its key, as healthchecks'
#: ping uuids and n8n's webhook paths are); password: only the password of the URL's userinfo
SecretPart = Literal["value", "password"]


@dataclass(frozen=True)
class SecretSetting:
    #: key path in the settings mapping; "*" matches any key of a mapping (jobs.pings.<job>)
    path: tuple[str, ...]
    part: SecretPart
    #: a documented default value: kept out of files like any value, but not masked in text (masking
    #: the word "sandbox" would mangle every log line that mentions sandbox mode)
    public_default: str | None = None

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


SECRET_SETTINGS: tuple[SecretSetting, ...] = (
    SecretSetting(("airtable", "token"), "value"),
    SecretSetting(("airtable", "sandbox_token"), "value", public_default=SANDBOX_DEFAULT_TOKEN),
    SecretSetting(("webhook", "secret"), "value"),
    SecretSetting(("cache", "redis_url"), "password"),
    SecretSetting(("airtable", "limiter_redis_url"), "password"),
    SecretSetting(("alerts", "notify_urls"), "value"),
    SecretSetting(("jobs", "pings", "*", "url"), "value"),
    SecretSetting(("jobs", "pings", "*", "start"), "value"),
    SecretSetting(("jobs", "pings", "*", "success"), "value"),
    SecretSetting(("jobs", "pings", "*", "fail"), "value"),
)

#: secrets that are never settings: the S3 credentials boto3 reads from the environment itself
SECRET_ENV: tuple[str, ...] = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")

#: the password of a URL's userinfo (``redis://:pw@host``, ``https://user:pw@host``), up to the last "@"
#: before the host, as urllib and redis-py split it (a password may hold an unencoded "@")
URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s/]+@", re.IGNORECASE)


def mask_url_password(text: str) -> str:
    """``text`` with every URL password masked: ``redis://:secret@host`` → ``redis://:***@host``."""
    return URL_PASSWORD.sub(r"\g<1>" + MASK + "@", text)


def shown_url(url: str) -> str:
    """How a URL whose path or query is its key (a ``value`` secret) may be shown: ``https://host/***``."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:  # a port that is no number: show nothing of it
        return MASK
    rest = f"/{MASK}" if (parts.path.strip("/") or parts.query) else ""
    return f"{parts.scheme}://{host}{port}{rest}"


def url_password(url: str) -> str | None:
    """The password in a URL's userinfo, or None."""
    m = URL_PASSWORD.search(url)
    return m.group(0)[len(m.group(1)) : -1] if m else None


def is_secret_path(loc: tuple[str | int, ...]) -> bool:
    """Whether a key path (as a validation error gives it: list indices included) is, or is inside, a secret."""
    keys = tuple(str(p) for p in loc if not isinstance(p, int))
    for s in SECRET_SETTINGS:
        if len(keys) >= len(s.path) and all(want in ("*", got) for want, got in zip(s.path, keys, strict=False)):
            return True
    return False


def _reveal(value: Any) -> Any:
    """A pydantic SecretStr's value (duck-typed: this module imports no pydantic), else the value."""
    reveal = getattr(value, "get_secret_value", None)
    return reveal() if callable(reveal) else value


def _matches(data: Any, path: tuple[str, ...]) -> Iterator[tuple[dict[str, Any], str]]:
    """(mapping, key) for every place ``path`` names in ``data`` that holds a key."""
    head, rest = path[0], path[1:]
    if not isinstance(data, dict):
        return
    keys = list(data) if head == "*" else [head] if head in data else []
    for key in keys:
        if rest:
            yield from _matches(data[key], rest)
        else:
            yield data, key


def secret_values(data: Mapping[str, Any]) -> list[str]:
    """Every secret configured in a settings mapping (for redaction): whole values, URL passwords.

    ``data`` is a settings dump (``Settings.model_dump()``: SecretStr values are revealed here).
    """
    out: list[str] = []
    for s in SECRET_SETTINGS:
        for parent, key in _matches(dict(data), s.path):
            value = _reveal(parent[key])
            for item in value if isinstance(value, list) else [value]:
                item = _reveal(item)
                if not isinstance(item, str) or not item:
                    continue
                secret = item if s.part == "value" else url_password(item)
                if secret and secret != s.public_default:
                    out.append(secret)
    return out


def env_secret_values(env: Mapping[str, str]) -> list[str]:
    """The values of :data:`SECRET_ENV` set in ``env``."""
    return [v for k in SECRET_ENV if (v := env.get(k, "").strip())]


def scrub(data: dict[str, Any]) -> list[str]:
    """Take every secret out of a settings dump (in place); return the dotted paths whose value was masked.

    Whole-value secrets are removed (a list or mapping of them is emptied); a URL's password is
    masked, wherever a URL is configured (not only in :data:`SECRET_SETTINGS`), and its path returned
    so the fast path knows that value is unusable and leaves it to the full loader.
    """
    for s in SECRET_SETTINGS:
        if s.part != "value":
            continue
        for parent, key in _matches(data, s.path):
            value = parent[key]
            if isinstance(value, list | dict):
                parent[key] = type(value)()
            else:
                del parent[key]
    masked: list[str] = []

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, path) for v in node]
        if isinstance(node, str) and URL_PASSWORD.search(node):
            masked.append(path)
            return mask_url_password(node)
        return node

    data.update(walk(data, ""))
    return masked


# --------------------------------------------------------------------------------------------
# modes


def mode_problem(*, token: bool, base_id: str | None, sandbox: bool) -> tuple[str, str] | None:
    """Why this token / base id / BESTSTAG_SANDBOX combination is refused, as (message, hint); None if fine.

    One rule for the full loader and the snapshot path: sandbox mode only when asked for
    (BESTSTAG_SANDBOX=1) or when neither a token nor a base id is configured. A base id without a
    token is a production setup that lost its token (cron with a bad env file): answering from the
    sample base there would report success on the wrong data.
    """
    if token and sandbox:
        return (
            "AIRTABLE_TOKEN and BESTSTAG_SANDBOX=1 are both set: a token means Airtable, "
            "BESTSTAG_SANDBOX=1 the local sandbox",
            "unset BESTSTAG_SANDBOX to use Airtable, or unset AIRTABLE_TOKEN to use the sandbox",
        )
    if token and base_id is None:
        return (
            "AIRTABLE_TOKEN is set but AIRTABLE_BASE_ID (airtable.base_id) is not: no base to work on",
            "set AIRTABLE_BASE_ID=appXXXXXXXXXXXXXX (the app... part of the base's URL)",
        )
    if not token and not sandbox and base_id not in (None, SANDBOX_BASE_ID):
        return (
            f"AIRTABLE_BASE_ID (airtable.base_id) is {base_id} but AIRTABLE_TOKEN is not set: "
            "refusing to answer from the sandbox instead",
            "set AIRTABLE_TOKEN, or BESTSTAG_SANDBOX=1 for the sandbox",
        )
    return None
