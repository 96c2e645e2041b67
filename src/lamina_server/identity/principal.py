"""Who is calling: the principal an API key resolves to."""

from __future__ import annotations

from dataclasses import dataclass

from lamina_server.versioning import Committer


@dataclass(frozen=True, slots=True)
class Principal:
    type: str  # "user" | "role" | "agent"
    id: str
    name: str

    @property
    def committer(self) -> Committer:
        return Committer(type=self.type, id=self.id, name=self.name)
