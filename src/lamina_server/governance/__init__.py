"""Governance: approvals of held commits, the audit log, evidence packs and usage."""
