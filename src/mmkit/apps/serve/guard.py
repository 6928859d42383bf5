"""Who may drive the server: an ASGI middleware in front of every request.

- **Host**: only the names the server is bound to (plus localhost and the loopback addresses), or those configured
  with `--allow-host`; a page on another name that resolves here (DNS rebinding) gets 421. A server bound to every
  interface (0.0.0.0, ::) accepts any Host: it requires the token instead.
- **Origin**: a state-changing request (POST, PUT, PATCH, DELETE) from a browser page of another origin gets 403
  (browsers send `Origin` with every cross-origin POST, `no-cors` ones included); requests without `Origin`
  (curl, scripts) are not browsers' and pass.
- **Token**: with `--token` (or `MMKIT_TOKEN`; required when bound to anything but loopback), every request except
  the page itself, /health and the API docs must carry it: `Authorization: Bearer <token>`, the header
  `X-MMKit-Token`, or `?token=` in the URL (the page reads it from its own address and sends it as a header).
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import parse_qs, urlsplit

from fastapi.responses import JSONResponse

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OPEN_PATHS = frozenset({"/", "/health", "/docs", "/openapi.json", "/favicon.ico"})
OPEN_PREFIXES = ("/docs/",)
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    if host.strip("[]") in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    return host.strip("[]") in ("0.0.0.0", "::", "")


def host_name(value: str) -> str:
    """The name of a Host header or of a URL's netloc, without port, lower case ("[::1]:8000" -> "::1")."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    """ASGI middleware enforcing the Host, Origin and token rules of this module's docstring."""

    def __init__(self, app, *, bind_host: str, token: str | None, allow_hosts: tuple[str, ...] = ()) -> None:
        self.app, self.token = app, token
        self.any_host = is_wildcard(bind_host) or "*" in allow_hosts
        self.hosts = LOOPBACK_NAMES | {host_name(bind_host)} | {host_name(h) for h in allow_hosts}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self.refusal(scope)
        if problem is not None:
            status, detail = problem
            await JSONResponse({"detail": detail}, status)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def refusal(self, scope) -> tuple[int, str] | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if not self.any_host and host_name(host) not in self.hosts:
            return (
                421,
                f"Host {host!r} is not a name of this server (start it with --allow-host {host_name(host)})",
            )
        origin = headers.get("origin")
        if scope["method"] in UNSAFE_METHODS and origin is not None and not _same_origin(origin, host):
            return 403, f"requests from pages of another origin ({origin}) are refused"
        if self.token is not None and not _is_open(scope["path"]) and not self._has_token(scope, headers):
            return 401, "this server needs its access token (Authorization: Bearer <token>, or ?token=)"
        return None

    def _has_token(self, scope, headers: dict[str, str]) -> bool:
        auth = headers.get("authorization", "")
        given = [auth[7:].strip()] if auth.lower().startswith("bearer ") else []
        given.append(headers.get("x-mmkit-token", ""))
        given += parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [])
        expected = self.token.encode()
        return any(hmac.compare_digest(g.encode(), expected) for g in given if g)


def _same_origin(origin: str, host: str) -> bool:
    """`Origin: http://name:port` against the `Host` the request was sent to (the page's own server)."""
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.strip().lower()


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)
