"""Governance: approvals of held commits (:mod:`.approvals`), the audit log (:mod:`.audit`),
evidence packs (:mod:`.evidence`) signed with the server's key (:mod:`.signing_key`), and
usage. Import from the modules: the package imports nothing, so that the domains it governs can
import it without a cycle."""
