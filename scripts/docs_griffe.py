"""A griffe extension for the API reference (mkdocs.yml): the SDK's docstrings are written with
Sphinx roles (``:class:`~lamina.Client```, ``:meth:`explain```) and reST literal-block markers
(``Blocking::``); mkdocstrings renders Markdown, so the roles become code spans (``~`` keeps the
last dotted part, as Sphinx shows it) and ``::`` at the end of a line a colon."""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

_ROLE = re.compile(r":(?:class|meth|func|attr|mod|data|exc|obj|const):`(~?)([^`]+)`")
_LITERAL_BLOCK = re.compile(r"(\S)::$", flags=re.M)


def _role(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


def to_markdown(text: str) -> str:
    """The docstring ``text`` with its Sphinx roles and literal-block markers as Markdown."""
    return _LITERAL_BLOCK.sub(r"\1:", _ROLE.sub(_role, text))


class SphinxRolesToMarkdown(Extension):
    """Rewrites each docstring once, when griffe has loaded the object."""

    def on_instance(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
