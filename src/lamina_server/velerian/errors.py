"""Errors of the Velerian facade, answered in FastAPI's ``{"detail": ...}`` shape that
velerian-sdk parses (:func:`install`), unlike ``/api/v1``'s envelope.

Lamina's domain errors and :class:`~lamina_server.api.errors.ApiError` keep the one status map
of :func:`~lamina_server.api.errors.api_error_for`, but for 400, which becomes 422: a FastAPI
service answers bad input with 422, and velerian-sdk has no class of its own for 400. Request
validation errors keep FastAPI's default answer (422 with the list of problems), as do
unknown routes and methods (404, 405).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from lamina_server.api.errors import HANDLED_ERRORS, api_error_for

logger = logging.getLogger("lamina_server")


class VelerianError(Exception):
    """An error only the facade raises: its status and message."""

    status_code = 409

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(VelerianError):
    status_code = 404


class Conflict(VelerianError):
    status_code = 409


class Invalid(VelerianError):
    status_code = 422


class ServiceUnavailable(VelerianError):
    status_code = 503


def detail(status_code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status_code, headers=headers)


async def _velerian_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VelerianError)
    return detail(exc.status_code, exc.message)


async def _lamina_error(request: Request, exc: Exception) -> JSONResponse:
    error = api_error_for(exc)
    status = 422 if error.status_code == 400 else error.status_code
    return detail(status, error.message, error.headers)


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return detail(500, "internal server error")


def install(app: FastAPI) -> None:
    """The facade's error handlers, on its own application."""
    app.add_exception_handler(VelerianError, _velerian_error)
    for error in HANDLED_ERRORS:
        app.add_exception_handler(error, _lamina_error)
    app.add_exception_handler(Exception, _internal)
