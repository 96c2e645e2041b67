"""Governance's errors (the API maps each to its status in :mod:`lamina_server.api.errors`)."""

from __future__ import annotations


class GovernanceError(Exception):
    pass


class ApprovalNotFound(GovernanceError):
    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {session_id!r} has no approval request")
        self.session_id = session_id


class ApprovalDecided(GovernanceError):
    def __init__(self, session_id: str, state: str) -> None:
        super().__init__(f"the approval of session {session_id!r} is already {state}")
        self.session_id = session_id
        self.state = state


class SelfApproval(GovernanceError):
    """Four eyes: whoever asked for a change cannot approve it."""

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"the change of session {session_id!r} was requested by you: "
            "another member must approve it"
        )


class SigningKeyError(GovernanceError):
    """The evidence key file exists but does not hold an Ed25519 private key."""
