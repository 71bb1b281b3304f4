"""Backups of the Airtable base: run, list, verify, restore, cleanup (issue 7)."""
