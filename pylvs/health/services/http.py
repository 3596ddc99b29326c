"""``service=http``, ``https`` and ``http_proxy``: ldirectord's ``check_http``.

One ``GET`` or ``HEAD`` (``httpmethod``) of ``request``; the real server is up when the final answer
is 2xx and, when ``receive`` is set, its body matches ``receive`` as a regular expression. As
ldirectord (through LWP) does it:

* the URL is ``<service>://<rip>:<checkport>/<request>``, or ``request`` itself when it is already
  such a URL;
* ``Host:`` is ``virtualhost``, or the real server's address (no port) when there is none;
* https certificates and host names are not verified;
* redirects (301, 302, 303, 307, 308) are followed, at most 7, each with ``Host:`` from its URL;
* with ``http_proxy`` the real server is an HTTP proxy: the request goes to ``<rip>:<checkport>``
  with the absolute URL in its request line and ``Host:`` from that URL (``virtualhost`` is not
  used), so ``request`` normally names the site behind the proxy (``http://www.example.com/``).

The whole exchange, redirects included, is bounded by ``timeout``: every read waits only for the
time left, so a server that accepts and never answers, or answers a byte at a time, costs one
timeout (ldirectord's ``alarm`` around ``$ua->request``).
"""

from __future__ import annotations

import http.client
import io
import re
import socket
from typing import cast
from urllib.parse import quote, urljoin, urlsplit

from pylvs import __version__
from pylvs.health.check import CheckFailed, CheckTarget, Deadline, unverified_tls

__all__ = ["check", "url_for"]

MAX_REDIRECTS = 7  # LWP::UserAgent's max_redirect
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})  # LWP::UserAgent::request
DEFAULT_PORTS = {"http": 80, "https": 443}
USER_AGENT = f"pylvs/{__version__}"
URL_SAFE = "/%!$&'()*+,;=:@-._~"  # RFC 3986 pchar, and "%" to keep existing escapes


def url_for(target: CheckTarget) -> str:
    """The URL ldirectord builds for the check (``$$r{url}``, in ``ld_read_config``'s last pass).

    ldirectord takes ``request`` as the URL when it contains ``<schema>://`` anywhere; here it must
    start with it (after the leading ``/`` the config adds), so a path whose query string carries
    a URL (``/go?to=http://...``) stays a path on the real server instead of a broken URL.
    A ``http_proxy`` virtual's bare path goes to ``http://<rip>:<checkport>/<path>`` through the
    proxy, where ldirectord would hand LWP a relative URL that can never succeed.
    """
    schema = "http" if target.service == "http_proxy" else target.service
    # $uri =~ s/^\///g: one leading slash (the anchor matches only at the start).
    uri = target.request[1:] if target.request.startswith("/") else target.request
    if uri.startswith(f"{schema}://"):
        return uri
    return f"{schema}://{target.host()}:{target.checkport}/{uri}"


class _DeadlineReader(io.RawIOBase):
    """Reads of a socket, each waiting at most for the time the deadline has left."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        self._sock.settimeout(self._deadline.left())
        return self._sock.recv_into(buffer)


class _DeadlineSocket:
    """What :class:`http.client.HTTPResponse` needs of a socket (``makefile``), deadline-bound."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str = "rb") -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


def _open(scheme: str, host: str, port: int, deadline: Deadline) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=deadline.left())
    if scheme != "https":
        return sock
    try:
        sock.settimeout(deadline.left())
        # server_hostname only sets SNI for a name; Python sends none for an address, as
        # IO::Socket::SSL does not.
        return unverified_tls().wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


def _request(
    method: str,
    url: str,
    host_header: str | None,
    proxy: tuple[str, int] | None,
    deadline: Deadline,
) -> tuple[http.client.HTTPResponse, bytes]:
    """One request and its answer: status line, headers and (for GET) the whole body."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise CheckFailed(f"cannot fetch {url!r}")
    port = parts.port or DEFAULT_PORTS[scheme]
    name = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if host_header is None:
        # LWP::Protocol::http::_fixup_header: the URL host, and its port unless the default one.
        host_header = name if port == DEFAULT_PORTS[scheme] else f"{name}:{port}"
    # URI->new escapes what may not stand in a URL (a space, non-ASCII), and so does this.
    path = quote(parts.path or "/", safe=URL_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=URL_SAFE + "?")
    # Through a proxy the request line carries the absolute URL ($url->as_string), else the path.
    target = f"{scheme}://{parts.netloc}{path}" if proxy is not None else path
    head = (
        f"{method} {target} HTTP/1.1\r\n"
        f"Host: {host_header}\r\n"
        "Connection: close\r\n"
        f"User-Agent: {USER_AGENT}\r\n"
        "\r\n"
    )
    sock = (
        _open("http", *proxy, deadline)
        if proxy is not None
        else _open(scheme, parts.hostname, port, deadline)
    )
    with sock:
        sock.settimeout(deadline.left())
        sock.sendall(head.encode("latin-1"))
        # HTTPResponse only calls makefile("rb") on what it is given.
        response = http.client.HTTPResponse(
            cast(socket.socket, _DeadlineSocket(sock, deadline)), method=method
        )
        try:
            response.begin()
            body = response.read()  # empty for HEAD
        finally:
            response.close()
    return response, body


def _matches(receive: str, body: bytes) -> bool:
    """``$res->content =~ /$recstr/``, or true when ``receive`` is empty (``!($recstr =~ /.+/)``).

    LWP's content is bytes, so the pattern is matched as bytes (``\\w`` and friends are ASCII, as
    for a Perl byte string). Python's ``re`` reads the Perl syntax ``receive`` strings use
    (literals, classes, anchors, alternation, quantifiers, look-arounds); Perl-only constructs
    (``\\z``, ``\\Q...\\E``, ``(?<name>...)``, embedded code) do not compile and fail the check.
    """
    if not re.search(".+", receive):
        return True
    try:
        pattern = re.compile(receive.encode("utf-8"))
    except re.error as exc:
        raise CheckFailed(f"receive {receive!r} is not a valid regular expression: {exc}") from exc
    return pattern.search(body) is not None


def check(target: CheckTarget, timeout: float) -> str:
    deadline = Deadline(timeout)
    method = target.httpmethod.upper()
    url = url_for(target)
    proxy: tuple[str, int] | None = None
    host_header: str | None = None
    if target.service == "http_proxy":
        # check_http: $ua->proxy("http", "http://$$r{server}:$port/"), and no Host header set.
        proxy = (target.rip, target.checkport)
    else:
        host_header = target.virtualhost if target.virtualhost is not None else target.host()
    redirects = 0
    while True:
        via = proxy if proxy is not None and urlsplit(url).scheme.lower() == "http" else None
        response, body = _request(method, url, host_header, via, deadline)
        location = response.getheader("Location")
        if response.status not in REDIRECT_CODES or location is None:
            break
        if redirects >= MAX_REDIRECTS:
            raise CheckFailed(f"{response.status} {response.reason}: redirect loop at {url}")
        next_url = urljoin(url, location.strip())
        if urlsplit(next_url).scheme.lower() not in DEFAULT_PORTS:
            break  # LWP follows http and https only here; the 3xx is the answer
        # LWP::UserAgent::request clones the request without its Host header for a redirect.
        url, host_header, redirects = next_url, None, redirects + 1
    status = f"{response.status} {response.reason}"
    if not 200 <= response.status < 300:
        raise CheckFailed(f"{status} from {url}")
    if not _matches(target.receive, body):
        raise CheckFailed(f"response mismatch: {status} from {url}, body does not match receive")
    return f"{status} from {url}"
