"""The intelligent cache in front of Airtable (see README, "Cache")."""
