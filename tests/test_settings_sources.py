"""Issue 17 #1: one table (`settings_sources`) of where settings come from and which are secret.

- The secret list is checked against the Settings model: a setting whose name looks secret, or that
  takes a URL with a password, is declared; every declared path is a setting.
- Loading settings writes nothing; the CLI writes the snapshot.
- The snapshot path and the full loader agree for every combination of the environment overrides.
"""

from __future__ import annotations

import json
import os
import tempfile
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import settings as settings_
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from beststag_cli.config import Settings, load_config
from beststag_cli.errors import ConfigError
from beststag_cli.fastconfig import SNAPSHOT_NAME, fast_settings, save_snapshot
from beststag_cli.settings_sources import ENV_OVERRIDES, SECRET_SETTINGS, is_secret_path, url_password

REPO = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------------------------- the secret list

#: words that make a setting's name look secret (its name split at "_")
SECRET_WORDS = {"token", "secret", "password", "passwd", "key", "keys", "credential", "credentials", "auth"}
PASSWORD = "CanaryPw9"
WITH_PASSWORD = (f"https://user:{PASSWORD}@hooks.example/x", f"redis://user:{PASSWORD}@redis.example:6379/0")
#: what a job name / table name stands for when a setting is under a mapping of them
ANY_KEY = {("jobs", "pings"): "backup-complete"}


def _model(annotation: Any) -> Any:
    """The model class, or `dict[str, Model]`'s model with a marker, behind an annotation; else None."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        found = [m for a in typing.get_args(annotation) if (m := _model(a)) is not None]
        return found[0] if found else None
    if origin is dict:
        inner = _model(typing.get_args(annotation)[1])
        return ("*", inner) if isinstance(inner, type) else None
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _leaves(cls: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(key path, annotation) of every setting; "*" stands for any key of a mapping of sections."""
    for name, field in cls.model_fields.items():
        inner = _model(field.annotation)
        if isinstance(inner, tuple):
            yield from _leaves(inner[1], (*prefix, name, "*"))
        elif inner is not None:
            yield from _leaves(inner, (*prefix, name))
        else:
            yield (*prefix, name), field.annotation


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(annotation) is list


def _validates(path: tuple[str, ...], value: Any) -> Settings | None:
    raw = json.loads(Settings().model_dump_json())
    cur = raw
    for i, key in enumerate(path[:-1]):
        if key == "*":
            continue
        nxt = cur.setdefault(key, {})
        if i + 1 < len(path) - 1 and path[i + 1] == "*":
            name = ANY_KEY.get(path[: i + 1]) or next(iter(nxt))
            nxt = nxt.setdefault(name, {})
        cur = nxt
    cur[path[-1]] = value
    try:
        return Settings.model_validate(raw)
    except ValidationError:
        return None


def _takes_a_url_password(path: tuple[str, ...], annotation: Any) -> bool:
    """A URL-valued setting (plain words are refused) that keeps a URL's password."""
    wrap = (lambda v: [v]) if _is_list(annotation) else (lambda v: v)
    if _validates(path, wrap("plain words")) is not None:
        return False  # free text (a host name, a folder): only its name can say it is secret
    for url in WITH_PASSWORD:
        s = _validates(path, wrap(url))
        if s is not None and PASSWORD in s.model_dump_json():
            return True
    return False


def _declared(path: tuple[str, ...]) -> bool:
    return any(s.path == path for s in SECRET_SETTINGS)


def test_every_setting_that_looks_secret_is_declared() -> None:
    leaves = list(_leaves(Settings))
    assert len(leaves) > 80 and (("jobs", "pings", "*", "url") in dict(leaves))  # the walk reaches every section
    missing = [
        ".".join(p)
        for p, ann in leaves
        if (SECRET_WORDS & set(p[-1].split("_")) or _takes_a_url_password(p, ann)) and not _declared(p)
    ]
    assert missing == [], f"declare these in settings_sources.SECRET_SETTINGS: {missing}"


def test_every_declared_secret_is_a_setting_and_is_hidden_in_errors() -> None:
    paths = {p for p, _ in _leaves(Settings)}
    assert [s.dotted for s in SECRET_SETTINGS if s.path not in paths] == []
    for s in SECRET_SETTINGS:
        loc = tuple("backup-complete" if k == "*" else k for k in s.path)
        assert is_secret_path(loc) and is_secret_path((*loc, 0))
    assert not is_secret_path(("webhook", "host")) and not is_secret_path(("airtable", "base_id"))


def test_a_url_password_setting_refused_elsewhere() -> None:
    """The endpoints take no password (the token / AWS variables authenticate): nothing to keep secret there."""
    for path in (("airtable", "endpoint_url"), ("backup", "remote_endpoint_url")):
        assert _validates(path, "https://api.example") is not None
        assert _validates(path, WITH_PASSWORD[0]) is None


def test_a_bad_secret_value_is_not_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text('jobs:\n  pings:\n    backup-complete:\n      url: "ftp://hc-ping.com/CanaryUuid9"\n')
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    assert "jobs.pings.backup-complete.url" in e.value.message and "CanaryUuid9" not in e.value.message
    assert url_password("redis://:a@b@host:1/0") == "a@b"


# ---------------------------------------------------------------------------------------------- who writes the snapshot


def test_loading_settings_writes_nothing_the_cli_writes_the_snapshot(cli: Any, clean_env: Path) -> None:
    clean_env.mkdir(parents=True)
    load_config()
    load_config(REPO / "config" / "beststag.yaml")
    assert list(clean_env.rglob("*")) == []  # a library user or a test loading config leaves no file
    assert cli("--json", "backup", "list").exit_code == 0
    assert (clean_env / SNAPSHOT_NAME).is_file()
    assert fast_settings() is not None


# ---------------------------------------------------------------------------------------------- fast == full

#: values each override is tried with, by kind (a "text" variable by name): valid, blank, wrong
_TEXT_VALUES = {
    "AIRTABLE_BASE_ID": ["appBBBBBBBBBBBBBB", "appBestStagSandbx", "nope"],
    "AIRTABLE_ENDPOINT_URL": ["http://127.0.0.1:9", "https://api.example/", "not a url"],
    "BESTSTAG_REDIS_URL": ["redis://127.0.0.1:1/0", "redis://:pw9@127.0.0.1:1/0", "mysql://x"],
}
_BY_KIND = {
    "secret": ["patAAAAAAAAAAAAAA.x", " patBBBB "],
    "path": ["d1", "./d2/../d3", "{tmp}/abs"],
    "flag": ["1", "true", "YES", "0", "off", "maybe"],
}
_NOISE = ["", "  "]


def _values(var: str, kind: str) -> list[str]:
    """A new override (or kind) without values here fails the collection of this file (KeyError)."""
    return _TEXT_VALUES[var] if kind == "text" else _BY_KIND[kind]


_ENVS = st.fixed_dictionaries(
    {}, optional={o.var: st.sampled_from(_values(o.var, o.kind) + _NOISE) for o in ENV_OVERRIDES}
)


@settings_(max_examples=60, deadline=None)
@given(env=_ENVS, with_file=st.booleans(), change=st.sampled_from([o.var for o in ENV_OVERRIDES]))
def test_the_snapshot_answers_what_the_full_loader_says(env: dict[str, str], with_file: bool, change: str) -> None:
    old_cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            os.chdir(tmp)
            env = {k: v.replace("{tmp}", tmp) for k, v in env.items()}
            if with_file:  # the default search place; its data_dir is relative to the file's folder
                (Path(tmp) / "config").mkdir()
                (Path(tmp) / "config" / "beststag.yaml").write_text("data_dir: filevar\ncache:\n  default_ttl_s: 77\n")
            try:
                full = load_config(None, env)
            except ConfigError:
                event("refused by the full loader")
                assert fast_settings(None, env) is None
                return
            full.paths.data_dir.mkdir(parents=True, exist_ok=True)
            save_snapshot(full, env)
            fast = fast_settings(None, env)
            if any(url_password(u or "") for u in (full.cache.redis_url, full.airtable.limiter_redis_url)):
                event("a URL password: left to the full loader")
                assert fast is None  # the password is not on disk: only the full loader can connect
                return
            event("answered from the snapshot")
            assert fast is not None, env
            assert fast.paths == full.paths and fast.data_dir == str(full.data_dir)
            assert (fast.base_id, fast.sandbox_mode) == (full.base_id, full.sandbox_mode)
            assert fast.airtable.endpoint_url == full.airtable.endpoint_url
            assert fast.airtable.sandbox == full.airtable.sandbox
            assert (fast.cache.redis_url, fast.cache.backend) == (full.cache.redis_url, full.cache.backend)
            assert all(fast.ttl_for(t) == full.ttl_for(t) for t in full.tables)
            # and never for another environment: any other value of any variable the loader reads
            other = dict(env)
            other[change] = "CanaryOther9" if env.get(change, "").strip() != "CanaryOther9" else "other"
            assert fast_settings(None, other) is None
        finally:
            os.chdir(old_cwd)


def test_the_readme_lists_every_environment_variable() -> None:
    """The README's table of variables was hand-written and had lost BESTSTAG_REDIS_URL and BESTSTAG_SANDBOX_TOKEN."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| variable | meaning |") :]
    table = table[: table.index("\n\n")]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    missing = [o.var for o in ENV_OVERRIDES if not any(f"`{o.var}`" in row.split("|")[1] for row in rows)]
    assert missing == [], f"add a row to the README's table of variables for {missing}"
