"""Developer sessions: ``nox -s tests``, ``lint``, ``typecheck``, ``generate``, ``docs``,
``bench``, ``tests_newest_httpx``.

The sessions run in the project's own virtualenv (``.venv``, which ``bash scripts/test.sh``
creates with the dev extra) instead of building one per session, so they work offline and use
the pinned tools. ``tests`` is exactly the README's test command (what CI runs).
``tests_newest_httpx`` is the exception: it builds its own virtualenv (it needs the network).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
_VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PYTHON = str(_VENV_PYTHON) if _VENV_PYTHON.exists() else sys.executable
LINTED = ("src", "tests", "scripts", "noxfile.py")

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "typecheck", "tests"]


@nox.session
def tests(session: nox.Session) -> None:
    """The README's test command: mirror check, lint, type check and the whole suite."""
    session.run("bash", "scripts/test.sh", *session.posargs, external=True)


@nox.session(venv_backend="venv")
def tests_newest_httpx(session: nox.Session) -> None:
    """The suite against the newest httpx, past the pin in pyproject.toml: the SDK relies on
    private parts of httpx (``lamina._httpx_compat``), and this is where a new release that
    changes them shows up (as ``HttpxCompatibilityError`` or a failing test) before the pin
    is raised."""
    session.install("-e", ".[dev]")
    session.install("--upgrade", "httpx")
    session.run("python", "-c", "import httpx; print('httpx', httpx.__version__)")
    session.run("python", "-m", "pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, and the generated mirror is up to date."""
    session.run(PYTHON, "-m", "ruff", "check", *LINTED, external=True)
    session.run(PYTHON, "-m", "ruff", "format", "--check", *LINTED, external=True)
    session.run(PYTHON, "scripts/unasync.py", "--check", external=True)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on src/lamina and src/lamina_server (settings in pyproject.toml)."""
    session.run(PYTHON, "-m", "mypy", external=True)


@nox.session
def generate(session: nox.Session) -> None:
    """Regenerate the blocking mirror (src/lamina/_sync, tests/_sync) from the async source."""
    session.run(PYTHON, "scripts/unasync.py", external=True)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site (mkdocs.yml) into ``site/`` with ``--strict``: a broken
    link, a missing page or an API reference that does not resolve fails. ``nox -s docs --
    serve`` serves it at http://127.0.0.1:8000 instead, rebuilding on change."""
    env = {"NO_MKDOCS_2_WARNING": "1"}
    if session.posargs[:1] == ["serve"]:
        session.run(PYTHON, "-m", "mkdocs", "serve", "--strict", external=True, env=env)
        return
    session.run(
        PYTHON, "-m", "mkdocs", "build", "--strict", *session.posargs, external=True, env=env
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Run every benchmark under scripts/bench (each prints ratios against its peer)."""
    for script in sorted((ROOT / "scripts" / "bench").glob("*.py")):
        session.run(PYTHON, str(script.relative_to(ROOT)), external=True)
