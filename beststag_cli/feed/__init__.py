"""The change feed: Airtable's webhooks turned into `Change`s for the gateway's change sink.

`payloads.py` translates one webhook payload (Airtable's JSON, webhook cell format) into changes
with records in the REST format the cache keeps; gaps (what a payload cannot say exactly) are
named, never dropped silently. Stdlib only, apart from the schema types it reads.
"""
