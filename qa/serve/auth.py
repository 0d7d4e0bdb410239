"""The service's token: who may write, and who may read when the server listens beyond this machine.

A token comes from ``QA_TOKEN`` or a file (``--token-file``). Requests give it as
``Authorization: Bearer <token>`` and it is compared in constant time (:func:`hmac.compare_digest`).

- Anything that writes (a method other than GET, HEAD or OPTIONS) needs the token; a server started
  without one refuses writes (403) and stays read-only.
- Bound to an address other than the loopback, every request needs the token (401 without it), and the
  server does not start without one.
- Bound to the loopback, only ``localhost`` and loopback addresses are accepted as the ``Host`` of a
  request, so a web page elsewhere cannot reach the server through a rebound DNS name.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
from pathlib import Path

from qa.errors import ConfigError

TOKEN_ENV = "QA_TOKEN"
"""The environment variable holding the token."""

MIN_TOKEN_LENGTH = 16
"""Shortest token accepted (characters): a token is a secret, not a password to type."""

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that read; every other method writes."""


def load_token(token_file=None, *, environ=None) -> str | None:
    """The token from ``token_file`` (its first line), else from ``QA_TOKEN``; None when neither is set.

    Raises
    ------
    ConfigError
        The file cannot be read, or the token is shorter than :data:`MIN_TOKEN_LENGTH`.
    """
    environ = os.environ if environ is None else environ
    if token_file is not None:
        path = Path(token_file)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the token file: {getattr(exc, 'strerror', None) or exc}",
                              path=path) from None
        token, where = (lines[0].strip() if lines else ""), path
    else:
        token, where = environ.get(TOKEN_ENV, "").strip(), None
        if not token:
            return None
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"the token is {len(token)} characters, fewer than {MIN_TOKEN_LENGTH}; make one with "
                          "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                          + ("" if where else f" (from {TOKEN_ENV})"), path=where)
    return token


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is this machine only.

    Examples
    --------
    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def given_token(headers) -> str | None:
    """The token a request carries (``Authorization: Bearer ...``), or None."""
    value = headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def matches(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison of the given token with the expected one (False when either is None)."""
    if given is None or expected is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _host_name(host_header: str) -> str:
    """The host of a ``Host`` header, without the port (``[::1]:8000`` -> ``::1``)."""
    host = host_header.strip()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class TokenMiddleware:
    """ASGI middleware: the host check, then the token for writes (and for everything when ``everything``).

    Parameters
    ----------
    app : ASGI application
    token : str or None
        The expected token; None refuses every write.
    everything : bool
        Require the token for reads too (the server listens beyond the loopback).
    loopback_only : bool
        Accept only loopback names in the ``Host`` header.
    """

    def __init__(self, app, *, token: str | None, everything: bool, loopback_only: bool):
        self.app, self.token, self.everything, self.loopback_only = app, token, everything, loopback_only

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        if self.loopback_only and not is_loopback(_host_name(headers.get("host", "localhost"))):
            return await _refuse(send, 400, "this server answers only to localhost (it is bound to the loopback)")
        method = scope.get("method", "GET").upper()
        writes = method not in SAFE_METHODS
        if writes or self.everything:
            given = given_token(headers)
            if writes and self.token is None:
                return await _refuse(send, 403, "this server is read-only: start qa serve with QA_TOKEN or "
                                                "--token-file to accept submissions")
            if not matches(given, self.token):
                return await _refuse(send, 401, "missing or wrong token: send 'Authorization: Bearer <token>'",
                                     challenge=True)
        return await self.app(scope, receive, send)


async def _refuse(send, status: int, message: str, *, challenge: bool = False) -> None:
    body = json.dumps({"error": message}).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store")]
    if challenge:
        headers.append((b"www-authenticate", b'Bearer realm="qa"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
