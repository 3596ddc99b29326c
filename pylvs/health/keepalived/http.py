"""HTTP_GET and SSL_GET (check_http.c): each ``url`` of the checker in turn, all must pass.

The request is keepalived's template, byte for byte::

    GET <path> HTTP/1.<0|1>\\r\\nUser-Agent: KeepAliveClient\\r\\n[Connection: close\\r\\n]
    Host: <virtualhost | addr:port>\\r\\n\\r\\n

(``http_protocol`` 1.0: no Connection header; 1.0C and 1.1: ``Connection: close``). The answer is
read to the end of the connection; its status must be in the url's ``status_code`` ranges
(default 200-299), the MD5 of the body (what follows the first empty line, not de-chunked:
what ``genhash`` prints) must equal ``digest`` when given, and ``regex`` must match the body (or,
with ``regex_no_match``, must not). The virtual host is the url's, else the checker's, else the
real server's, else the virtual server's. SSL_GET verifies no certificate (keepalived checks
none unless an ``SSL`` block with a CA is configured, which pylvs does not run); ``enable_sni``
sends the virtual host as SNI.

A failed url gives keepalived's ``timeout_epilog`` line (logged with log_all_failures):
``HTTP status code error to server [rs]:tcp:80.``, ``MD5 digest error to server ...``,
``Regex match failed server ...``, ``Timeout connecting server ...``, ``Connection failed
server ...``, ``Timeout HTTP read server ...``, ``Read, no data received from  server ...``.
"""

from __future__ import annotations

import hashlib
import re
import socket
import ssl
from functools import lru_cache

from pylvs.config.kamodel import HttpCheck, HttpUrl
from pylvs.health.check import CheckFailed, Deadline, unverified_tls
from pylvs.health.keepalived import KaFailed, Passed
from pylvs.health.keepalived.conn import ConnectFailed, Target, connect_state, connect_tcp

__all__ = ["MAX_BODY", "check", "request_bytes"]

# Enough for any health page; a longer answer is cut (its digest then differs, as it must).
MAX_BODY = 4 * 1024 * 1024

_REGEX_FLAGS = {
    "caseless": re.IGNORECASE,
    "multiline": re.MULTILINE,
    "dotall": re.DOTALL,
    "extended": re.VERBOSE,
}


def request_bytes(c: HttpCheck, url: HttpUrl, target: Target, vhost: str | None) -> bytes:
    minor = 1 if c.http_protocol == "1.1" else 0
    close = "Connection: close\r\n" if c.http_protocol in ("1.0C", "1.1") else ""
    if vhost:
        host = vhost
    elif target.family() == socket.AF_INET6:
        host = f"[{target.addr}]:{target.port}"
    else:
        host = f"{target.addr}:{target.port}"
    path = url.path or "/"
    text = (
        f"GET {path} HTTP/1.{minor}\r\nUser-Agent: KeepAliveClient\r\n{close}Host: {host}\r\n\r\n"
    )
    return text.encode("latin-1", "replace")


@lru_cache(maxsize=256)
def _compiled(pattern: str, options: tuple[str, ...]) -> re.Pattern[bytes]:
    flags = 0
    for name in options:
        flags |= _REGEX_FLAGS.get(name, 0)
    return re.compile(pattern.encode(), flags)


def _epilog(target: Target, what: str, reason: str) -> KaFailed:
    """check_http.c ``timeout_epilog``'s line: ``<what> server [rs]:tcp:80.``"""
    line = f"{what} server {target.rs_name}."
    return KaFailed(f"{line} ({reason})", line)


_CONNECT_WORDS = {"timeout": "Timeout connecting", "fail": "Connection failed"}


def _fetch(c: HttpCheck, url: HttpUrl, target: Target, vhost: str | None) -> bytes:
    deadline = Deadline(target.timeout)
    try:
        sock: socket.socket | ssl.SSLSocket = connect_tcp(target, deadline)
    except ConnectFailed as exc:
        raise _epilog(target, _CONNECT_WORDS.get(exc.state, "Error connecting"), str(exc)) from None
    try:
        if c.ssl:
            name = vhost if c.enable_sni and vhost else None
            try:
                sock = unverified_tls().wrap_socket(sock, server_hostname=name)
            except (OSError, CheckFailed) as exc:
                if connect_state(exc) == "timeout":
                    raise _epilog(target, "Timeout connecting", "TLS handshake timed out") from None
                what = "SSL handshake/communication error connecting to"
                raise _epilog(target, what, str(exc) or type(exc).__name__) from None
        try:
            sock.settimeout(deadline.left())
            sock.sendall(request_bytes(c, url, target, vhost))
        except (OSError, CheckFailed) as exc:
            if connect_state(exc) == "timeout":
                raise _epilog(target, "Timeout WEB write", "write timed out") from None
            raise _epilog(target, "Cannot send get request to", str(exc)) from None
        data = bytearray()
        while len(data) < MAX_BODY:
            try:
                sock.settimeout(deadline.left())
                chunk = sock.recv(65536)
            except (OSError, CheckFailed) as exc:
                if connect_state(exc) == "timeout":
                    raise _epilog(target, "Timeout HTTP read", "read timed out") from None
                raise _epilog(target, "Read error with", str(exc)) from None
            if not chunk:
                break
            data += chunk
        return bytes(data)
    finally:
        sock.close()


def check_url(c: HttpCheck, url: HttpUrl, target: Target, vhost: str | None) -> tuple[str, str]:
    """One url: what was seen, and http_handle_response's success line (logged while the
    checker is down)."""
    answer = _fetch(c, url, target, vhost)
    path = url.path or "/"
    if not answer:
        raise _epilog(target, "Read, no data received from ", f"url({path}): no data")
    head, sep, body = answer.partition(b"\r\n\r\n")
    first = head.split(b"\r\n", 1)[0].split()
    try:
        status = int(first[1]) if sep else 0
    except (IndexError, ValueError):
        status = 0  # extract_status_code: no status line
    if not any(low <= status <= high for low, high in url.status_code):
        raise _epilog(target, "HTTP status code error to", f"url({path}): status code {status}")
    msg = "HTTP status code"
    if url.digest is not None:
        digest = hashlib.md5(body).hexdigest()
        if digest != url.digest.lower():
            raise _epilog(
                target, "MD5 digest error to", f"url({path}): MD5 digest {digest}, not {url.digest}"
            )
        msg = "MD5 digest"
    if url.regex is not None:
        pattern = _compiled(url.regex, tuple(url.regex_options))
        lo = url.regex_min_offset or 0
        hi = url.regex_max_offset if url.regex_max_offset is not None else len(body)
        found = pattern.search(body, lo, max(lo, hi)) is not None
        if found == url.regex_no_match:
            words = "matched" if found else "did not match"
            raise _epilog(target, "Regex match failed", f"url({path}): regex {words}")
        msg = "Regex match"
    return f"url({path}) status {status}", f"{msg} success to {target.rs_name} url({path})"


def check(checker: HttpCheck, target: Target) -> Passed:
    seen, lines = [], []
    for url in checker.urls:
        vhost = url.virtualhost or checker.virtualhost or target.virtualhost
        what, line = check_url(checker, url, target, vhost)
        seen.append(what)
        lines.append(line)
    return Passed("; ".join(seen), tuple(lines))
