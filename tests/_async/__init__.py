"""SDK tests, written once as async code; scripts/unasync.py generates tests/_sync."""
