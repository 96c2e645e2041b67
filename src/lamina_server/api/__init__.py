"""HTTP routers, one module per domain, mounted under ``/api/v1`` by :mod:`lamina_server.app`."""
