"""Backups of the Airtable base: run, list, verify, restore, cleanup (issue 7).

Plain core functions (no Typer, no Rich); `beststag_cli/cli/backup.py` is a thin client of them.
Imports are lazy so that `import beststag_cli.backup` stays cheap.

- :func:`runner.run_backup` (``settings, gateway, type, tables=None, *, progress=None``) → ``BackupResult``
- :func:`layout.list_backups` / :func:`layout.find_backup` → ``BackupInfo`` (``.manifest``, ``.summary()``)
- :func:`verify.verify_backup` / :func:`verify.verify_dir` → ``VerifyReport``; raise ``BackupBroken``
- :func:`restore.plan_restore` → ``RestorePlan`` (``.summary()``, ``.writes``, ``.schema``: the tables and
  fields the target lacks, created first); :func:`restore.execute_restore` → ``RestoreResult``
  (``.manual_file``); :func:`restore.gateway_for_base`; ``new_base=NewBase(name, workspace)`` creates the base
- :func:`schema_plan.plan_schema` (pure) → ``SchemaPlan``; :func:`schema_plan.execute_schema` → ``SchemaOutcome``
- :func:`chain.table_state` (point-in-time records of one table at one backup)
- :func:`retention.plan_retention` (pure) and ``cleanup.cleanup`` (the submodule's function)
- :func:`hooks.record_restored_tables` (the journal rows saying which tables a restore rewrote)
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "run_backup": "runner",
    "BackupResult": "runner",
    "base_lock": "runner",
    "list_backups": "layout",
    "find_backup": "layout",
    "BackupInfo": "layout",
    "Manifest": "layout",
    "verify_backup": "verify",
    "verify_dir": "verify",
    "BackupBroken": "verify",
    "plan_restore": "restore",
    "execute_restore": "restore",
    "gateway_for_base": "restore",
    "RestorePlan": "restore",
    "RestoreResult": "restore",
    "NewBase": "restore",
    "plan_schema": "schema_plan",
    "execute_schema": "schema_plan",
    "SchemaPlan": "schema_plan",
    "table_state": "chain",
    "plan_retention": "retention",
    "Policy": "retention",
    "Snapshot": "retention",
    "record_restored_tables": "hooks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
