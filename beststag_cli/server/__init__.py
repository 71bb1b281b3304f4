"""The webhook server (`beststag serve`): FastAPI app in `app.py`, background jobs in `jobs.py`."""
