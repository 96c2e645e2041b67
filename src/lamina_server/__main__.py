"""``python -m lamina_server``: run the reference server (same options as ``lamina server``)."""

from lamina_server.cli import main

raise SystemExit(main())
