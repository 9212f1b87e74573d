"""HTTP targets for the Call API behavior, and the checks that keep requests inside them.

A target is configured on the flow, never inside a function: it holds the base URL and the
credentials (headers, query parameters). A request builder only returns ``{headers, method,
params, path, body}``; ``path`` is appended to the target's base URL and may not leave it::

    crm = HttpTarget("crm", "https://crm.example.com/api/", headers={"Authorization": "Bearer ..."})
    prepare_request(crm, {"method": "GET", "path": "/orders/42"})   # https://crm.example.com/api/orders/42
    prepare_request(crm, {"path": "https://evil.example/"})         # InvalidInputError
    prepare_request(crm, {"path": "../../admin"})                   # InvalidInputError

Redirects are not followed (a redirect could point anywhere). Request and response handling
here is pure; ``send`` is the only function that does I/O (httpx2; ``transport=`` injects a
fake for tests).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import httpx2

from ..errors import (
    AuthenticationError,
    ConfigError,
    InvalidInputError,
    ProviderConnectionError,
    ProviderError,
    ProviderRequestError,
    ProviderServerError,
    ProviderTimeoutError,
    RateLimitError,
)

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
REQUEST_KEYS = ("headers", "method", "params", "path", "body")
#: Headers a request builder may not set: credentials belong to the target, and Host/Cookie
#: could redirect or impersonate.
FORBIDDEN_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "host",
                               "x-api-key", "api-key"})
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_ENCODED_RE = re.compile(r"%(2e|2f|5c|00)", re.IGNORECASE)
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")


@dataclass(frozen=True)
class HttpTarget:
    """An API resource a flow may call: base URL plus the credentials to send with every call.

    ``headers``/``params`` hold credentials (e.g. ``{"Authorization": "Bearer ..."}``); they
    are never shown to functions, traces or ``apiResults``. ``timeout`` is in seconds.
    ``transport`` is an ``httpx2.AsyncBaseTransport`` (tests pass ``httpx2.MockTransport``).
    """

    id: str
    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    transport: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID_RE.match(self.id):
            raise ConfigError(f"HTTP target id {self.id!r} must be letters, digits, _ . - (up to 100)")
        try:
            url = httpx2.URL(self.base_url)
        except (TypeError, httpx2.InvalidURL) as exc:
            raise ConfigError(f"HTTP target {self.id!r}: invalid base_url {self.base_url!r}: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(f"HTTP target {self.id!r}: base_url must be an absolute http(s) URL, "
                              f"got {self.base_url!r}")
        if url.userinfo:
            raise ConfigError(f"HTTP target {self.id!r}: put credentials in headers=, not in the URL")
        if url.query or url.fragment:
            raise ConfigError(f"HTTP target {self.id!r}: base_url must not have a query or fragment; "
                              "use params=")
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)) or self.timeout <= 0:
            raise ConfigError(f"HTTP target {self.id!r}: timeout must be a positive number of seconds")
        object.__setattr__(self, "headers", dict(self.headers or {}))
        object.__setattr__(self, "params", dict(self.params or {}))

    @property
    def url(self) -> httpx2.URL:
        return httpx2.URL(self.base_url)

    def __repr__(self) -> str:  # never show credentials
        return f"HttpTarget(id={self.id!r}, base_url={self.base_url!r})"


@dataclass(frozen=True)
class PreparedRequest:
    method: str
    url: httpx2.URL
    headers: dict[str, str]
    params: dict[str, Any]
    body: Any

    def describe(self) -> str:
        return f"{self.method} {self.url.copy_with(query=None)}"


def resolve_path(target: HttpTarget, path: Any) -> httpx2.URL:
    """The absolute URL for ``path`` under ``target``; InvalidInputError if it would leave it.

    Refused: absolute URLs and any ``scheme:``, ``//host``, backslashes, ``..`` above the
    target's base path, percent-encoded dots/slashes, query strings or fragments in the path
    (use ``params``), control characters.
    """
    base = target.url
    if path is None or path == "":
        return base
    if not isinstance(path, str):
        raise InvalidInputError(f"request path must be a string, got {type(path).__name__}")

    def refuse(why: str) -> InvalidInputError:
        return InvalidInputError(f"request path {path!r} is refused: {why}; a request builder can "
                                 f"only reach paths under HTTP target {target.id!r} ({target.base_url})")

    if _SCHEME_RE.match(path) or "://" in path:
        raise refuse("it is an absolute URL")
    if path.startswith("//"):
        raise refuse("'//' would name another host")
    if "\\" in path:
        raise refuse("it contains a backslash")
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise refuse("it contains control characters")
    if "?" in path or "#" in path:
        raise refuse("put query arguments in 'params', not in the path")
    if _ENCODED_RE.search(path):
        raise refuse("it contains percent-encoded '.', '/', '\\' or NUL")
    segments: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not segments:
                raise refuse("'..' climbs above the target's base path")
            segments.pop()
            continue
        segments.append(segment)
    trailing = "/" if path.endswith("/") and segments else ""
    base_path = base.path if base.path.endswith("/") else base.path + "/"
    url = base.copy_with(path=base_path + "/".join(segments) + trailing)
    # Belt and braces: whatever the parsing above missed, the result must still be the target.
    if (url.scheme, url.host, url.port, url.userinfo) != (base.scheme, base.host, base.port, base.userinfo) \
            or not url.path.startswith(base_path.rstrip("/")) or "/../" in url.path + "/":
        raise refuse("the resulting URL is outside the target")
    return url


def prepare_request(target: HttpTarget, built: Any, where: str = "request builder") -> PreparedRequest:
    """Validate a request builder's result and resolve it against ``target``."""
    if not isinstance(built, Mapping):
        raise InvalidInputError(f"{where} must return a dict with {', '.join(REQUEST_KEYS)}, "
                                f"got {type(built).__name__}")
    unknown = sorted(set(built) - set(REQUEST_KEYS))
    if unknown:
        extra = " (the base URL belongs to the HTTP target)" if {"url", "base_url", "host"} & set(unknown) else ""
        raise InvalidInputError(f"{where} returned unknown key(s) {unknown}{extra}; "
                                f"allowed: {list(REQUEST_KEYS)}")
    method = built.get("method") or "GET"
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise InvalidInputError(f"{where}: method must be one of {list(METHODS)}, got {method!r}")
    headers = built.get("headers") or {}
    if not isinstance(headers, Mapping):
        raise InvalidInputError(f"{where}: headers must be a dict, got {type(headers).__name__}")
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidInputError(f"{where}: header {name!r} must map a string to a string")
        if name.lower() in FORBIDDEN_HEADERS:
            raise InvalidInputError(f"{where}: header {name!r} is not allowed; credentials belong "
                                    f"to HTTP target {target.id!r}")
    params = built.get("params") or {}
    if not isinstance(params, Mapping):
        raise InvalidInputError(f"{where}: params must be a dict, got {type(params).__name__}")
    url = resolve_path(target, built.get("path"))
    return PreparedRequest(method=method.upper(), url=url, headers=dict(headers),
                           params=dict(params), body=built.get("body"))


def response_dict(response: httpx2.Response) -> dict[str, Any]:
    """The seed's response dict: ``statusCode``, ``headers``, ``body`` (parsed JSON or text)."""
    text = response.text
    body: Any = text
    content_type = response.headers.get("content-type", "")
    if text and ("json" in content_type or text.lstrip()[:1] in ("{", "[")):
        try:
            body = json.loads(text)
        except ValueError:
            body = text
    return {"statusCode": response.status_code, "headers": dict(response.headers), "body": body}


def status_error(target: HttpTarget, request: PreparedRequest, status: int) -> ProviderError:
    """The promptlab error for a non-2xx answer (``.provider`` is the target id)."""
    message = f"{request.describe()} answered {status}"
    if status in (401, 403):
        return AuthenticationError(message, provider=target.id, status_code=status)
    if status == 429:
        return RateLimitError(message, provider=target.id, status_code=status)
    if status >= 500:
        return ProviderServerError(message, provider=target.id, status_code=status)
    return ProviderRequestError(message, provider=target.id, status_code=status)


async def send(target: HttpTarget, request: PreparedRequest, timeout: float | None = None) -> httpx2.Response:
    """Send ``request`` with the target's credentials; transport errors become promptlab errors."""
    limit = timeout if timeout is not None else target.timeout
    content: Any = None
    json_body: Any = None
    if isinstance(request.body, (dict, list)):
        json_body = request.body
    elif isinstance(request.body, (str, bytes)):
        content = request.body
    elif request.body is not None:
        json_body = request.body
    headers = {**request.headers, **target.headers}
    params = {**request.params, **target.params}
    async with httpx2.AsyncClient(transport=target.transport, timeout=limit,
                                  follow_redirects=False) as client:
        try:
            return await client.request(request.method, request.url, headers=headers,
                                        params=params or None, content=content, json=json_body)
        except httpx2.TimeoutException as exc:
            raise ProviderTimeoutError(f"{request.describe()} timed out after {limit:g} s",
                                       provider=target.id) from exc
        except httpx2.TransportError as exc:
            raise ProviderConnectionError(f"{request.describe()} failed: {type(exc).__name__}: {exc}",
                                          provider=target.id) from exc


__all__ = ["HttpTarget", "PreparedRequest", "prepare_request", "resolve_path", "response_dict",
           "status_error", "send", "METHODS", "FORBIDDEN_HEADERS"]
