"""Errors of access control: groups, policies and their attachments."""

from __future__ import annotations


class AccessControlError(Exception):
    """Root of the domain's errors."""


class GroupNotFound(AccessControlError):
    def __init__(self, group_id: str) -> None:
        super().__init__(f"group {group_id!r} not found")


class GroupExists(AccessControlError):
    def __init__(self, name: str) -> None:
        super().__init__(f"a group named {name!r} already exists")


class GroupCycle(AccessControlError):
    def __init__(self, cycle: list[str]) -> None:
        super().__init__(f"adding this member would make a cycle: {' -> '.join(cycle)}")


class AlreadyInGroup(AccessControlError):
    def __init__(self, subject: str, group: str) -> None:
        super().__init__(f"{subject} is already a member of group {group!r}")


class NotInGroup(AccessControlError):
    def __init__(self, subject: str, group: str) -> None:
        super().__init__(f"{subject} is not a member of group {group!r}")


class SubjectNotFound(AccessControlError):
    def __init__(self, subject: str, org: str) -> None:
        super().__init__(f"{subject} is not in organization {org!r}")


class PolicyNotFound(AccessControlError):
    def __init__(self, policy_id: str) -> None:
        super().__init__(f"policy {policy_id!r} not found")


class PolicyExists(AccessControlError):
    def __init__(self, name: str) -> None:
        super().__init__(f"a policy named {name!r} already exists")


class BuiltinPolicy(AccessControlError):
    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is a built-in policy: it cannot be changed or deleted")


class AlreadyAttached(AccessControlError):
    def __init__(self, policy: str, principal: str) -> None:
        super().__init__(f"policy {policy!r} is already attached to {principal}")


class NotAttached(AccessControlError):
    def __init__(self, policy: str, principal: str) -> None:
        super().__init__(f"policy {policy!r} is not attached to {principal}")
