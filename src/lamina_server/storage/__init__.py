"""Persistence: metadata through SQLAlchemy Core (``db``) and bytes through a blob store (``blobs``)."""
