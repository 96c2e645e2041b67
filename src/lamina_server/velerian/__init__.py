"""The Velerian API (``/api/v2``): a facade for the official ``velerian-sdk``, mapped onto
Lamina's governance and sandboxes (``docs/governance.md``).

- :mod:`.keys`: ``vk_live_`` keys, minted by a Lamina user for one of its organizations;
- :mod:`.access`: the prelude every facade route declares (key scope and Lamina action);
- :mod:`.abps`: ABPs, named run definitions in a repository; :mod:`.runs`: their invocations,
  each a governed one-shot sandbox;
- :mod:`.app`: the application mounted at ``/api/v2``, its routes in :mod:`.routes_keys`,
  :mod:`.routes_runs` and :mod:`.routes_governance`, its errors in :mod:`.errors`.
"""

from __future__ import annotations

from dataclasses import dataclass

from lamina_server.velerian.abps import Abps
from lamina_server.velerian.keys import VelerianKeys
from lamina_server.velerian.runs import Runs


@dataclass(frozen=True, slots=True)
class Velerian:
    """The facade's services."""

    keys: VelerianKeys
    abps: Abps
    runs: Runs


__all__ = ["Velerian"]
