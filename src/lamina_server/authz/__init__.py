"""Authorization: the actions routes declare, the policies and groups that grant them, and the
one check every request passes."""

from lamina_server.authz.actions import Action
from lamina_server.authz.check import ALLOWED, Authorizer, Decision, Resource

__all__ = ["ALLOWED", "Action", "Authorizer", "Decision", "Resource"]
