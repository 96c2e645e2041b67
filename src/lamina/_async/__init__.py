"""The SDK's source of truth, written once as async code (``AsyncClient``, ``AsyncPager``,
resources). ``scripts/unasync.py`` generates the blocking twin in ``lamina._sync``."""
