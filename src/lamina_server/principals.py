"""Who acts: the principal an API key resolves to, and the committer a commit records.

Neutral ground for every domain: identity authenticates principals, authorization checks them,
and the versioning engine records the committer without knowing where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Committer:
    type: str  # "user" | "role" | "agent"
    id: str  # principal uuid
    name: str  # display name / username


@dataclass(frozen=True, slots=True)
class Principal:
    type: str  # "user" | "role" | "agent"
    id: str
    name: str
    # The one organization an agent or a role acts in; ``None`` for a user.
    organization_id: str | None = None

    @property
    def committer(self) -> Committer:
        return Committer(type=self.type, id=self.id, name=self.name)
