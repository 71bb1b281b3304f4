"""beststag: cache, query optimizer, backups and metrics in front of an Airtable base."""

__version__ = "0.1.0"
