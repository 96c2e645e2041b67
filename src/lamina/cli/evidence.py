"""``lamina evidence verify BUNDLE [--public-key FILE | --endpoint URL]``: check an evidence
bundle offline (:func:`lamina.evidence.verify`) and print what was found.

Exit status: 0 verified, 1 problems found, 2 usage (bad arguments, an unreadable bundle or
key, a missing ``cryptography`` package, a key that cannot be fetched)."""

from __future__ import annotations

import argparse
import sys

import httpx

from lamina._errors import LaminaError
from lamina.evidence import verify

PUBLIC_KEY_PATH = "/api/v1/evidence/public-key"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lamina evidence", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("verify", help="verify an evidence bundle offline")
    check.add_argument("bundle", help="the bundle (.zip) an export downloaded")
    key = check.add_mutually_exclusive_group()
    key.add_argument("--public-key", metavar="FILE", help="the server's public key (PEM)")
    key.add_argument(
        "--endpoint",
        metavar="URL",
        help="fetch the public key the server at URL publishes (the bundle is still checked "
        "offline)",
    )
    return parser


def _fetch_key(endpoint: str) -> str:
    response = httpx.get(endpoint.rstrip("/") + PUBLIC_KEY_PATH, timeout=30)
    response.raise_for_status()
    pem: str = response.json()["public_key_pem"]
    return pem


def run_evidence(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:
        return 0 if exit_.code == 0 else 2
    try:
        key = _fetch_key(args.endpoint) if args.endpoint else args.public_key
        report = verify(args.bundle, public_key=key)
    except (OSError, LaminaError, httpx.HTTPError, ValueError, KeyError) as exc:
        print(f"lamina evidence verify: {exc}", file=sys.stderr)
        return 2
    print(report)
    return 0 if report.ok else 1
