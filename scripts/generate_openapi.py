"""Write the server's OpenAPI document, generated from the app, to docs/api/openapi.json.

python scripts/generate_openapi.py           # regenerate
python scripts/generate_openapi.py --check   # exit 1 if the checked-in file is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lamina_server.app import create_app
from lamina_server.config import ServerConfig

TARGET = Path(__file__).resolve().parent.parent / "docs" / "api" / "openapi.json"


def openapi_document() -> dict[str, Any]:
    # Building the document runs no lifespan: nothing is opened or written in data_dir.
    app = create_app(ServerConfig(data_dir=Path("unused"), config_path=None, write_config=False))
    return app.openapi()


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    args = parser.parse_args(argv)
    text = render(openapi_document())
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is stale: run python scripts/generate_openapi.py", file=sys.stderr)
            return 1
        return 0
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
