"""Credentials out of text the SDK shows: error messages, log lines, reprs.

A signed URL's query carries its one credential (the API's ``token=``, an upload's
``upload_token=``, an object store's ``X-Amz-Signature=``...), so anyone who reads the URL
can use it until it expires. :func:`redact` replaces the values of such query parameters, and
of such fields in JSON text, with :data:`REDACTED`. It runs only when an error, log line or repr
is built, never on the request path.
"""

from __future__ import annotations

import re

__all__ = ["REDACTED", "redact"]

REDACTED = "[REDACTED]"

#: Parameter names whose value is a credential: any name containing one of these words
#: (``token``, ``upload_token``, ``X-Amz-Security-Token``, ``X-Amz-Signature``,
#: ``X-Goog-Credential``, ``api_key``...), and the short ``sig`` of Azure SAS URLs.
_SECRET_NAME = r"[\w.-]*(?:token|signature|credential|secret|password|api[_-]?key)[\w.-]*|sig"
_QUERY_PARAMETER = re.compile(rf"(?i)([?&;](?:{_SECRET_NAME})=)[^&#\s'\"<>]+")
_JSON_FIELD = re.compile(rf'(?i)("(?:{_SECRET_NAME})"\s*:\s*")(?:[^"\\]|\\.)*(")')


def redact(text: str) -> str:
    """``text`` with the values of credential query parameters and JSON fields replaced."""
    if "=" in text:
        text = _QUERY_PARAMETER.sub(rf"\g<1>{REDACTED}", text)
    if '"' in text:
        text = _JSON_FIELD.sub(rf"\g<1>{REDACTED}\g<2>", text)
    return text
