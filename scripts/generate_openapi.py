"""Write the server's OpenAPI documents, generated from the app: docs/api/openapi.json
(/api/v1) and docs/api/velerian-openapi.json (the Velerian facade, /api/v2).

python scripts/generate_openapi.py           # regenerate
python scripts/generate_openapi.py --check   # exit 1 if a checked-in file is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.routing import Mount

from lamina_server.app import create_app
from lamina_server.config import ServerConfig

DOCS = Path(__file__).resolve().parent.parent / "docs" / "api"
TARGET = DOCS / "openapi.json"
VELERIAN_TARGET = DOCS / "velerian-openapi.json"


def openapi_documents() -> dict[Path, dict[str, Any]]:
    # Building the documents runs no lifespan: nothing is opened or written in data_dir.
    app = create_app(ServerConfig(data_dir=Path("unused"), config_path=None, write_config=False))
    velerian = next(route for route in app.routes if isinstance(route, Mount))
    assert isinstance(velerian.app, FastAPI)
    return {TARGET: app.openapi(), VELERIAN_TARGET: velerian.app.openapi()}


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    args = parser.parse_args(argv)
    stale = 0
    for target, document in openapi_documents().items():
        text = render(document)
        if args.check:
            current = target.read_text(encoding="utf-8") if target.exists() else ""
            if current != text:
                print(f"{target} is stale: run python scripts/generate_openapi.py", file=sys.stderr)
                stale = 1
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target}")
    return stale


if __name__ == "__main__":
    raise SystemExit(main())
