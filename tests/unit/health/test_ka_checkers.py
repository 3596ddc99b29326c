"""keepalived's checkers (pylvs.health.keepalived) against small local servers on 127.0.0.1.

HTTP digests are compared with what keepalived's own ``/usr/bin/genhash`` prints for the same
page. The end-to-end tests (tests/e2e/test_keepalived_checkers.py) use real servers.
"""

from __future__ import annotations

import shutil
import socket
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from kalocal import free_port, web_server

from pylvs.config.kamodel import (
    DnsCheck,
    HttpCheck,
    HttpUrl,
    MiscCheck,
    PingCheck,
    SmtpCheck,
    TcpCheck,
    UdpCheck,
)
from pylvs.health.keepalived import run_checker
from pylvs.health.keepalived.conn import Target
from pylvs.health.keepalived.http import request_bytes

BODY = b"<html>hello from the real server</html>\n"


def _target(port: int, timeout: float = 2.0) -> Target:
    return Target(addr="127.0.0.1", port=port, timeout=timeout)


@pytest.fixture
def web() -> Iterator[int]:
    with web_server(BODY) as port:
        yield port


def test_tcp_check_up_and_down() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert run_checker(TcpCheck(), _target(port)).up
    result = run_checker(TcpCheck(), _target(free_port()))
    assert not result.up
    assert "refused" in result.reason.lower()


def test_http_request_is_keepalived_template() -> None:
    c = HttpCheck(http_protocol="1.1", urls=[HttpUrl(path="/x")])
    assert request_bytes(c, c.urls[0], _target(80), None) == (
        b"GET /x HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\n"
        b"Host: 127.0.0.1:80\r\n\r\n"
    )
    c10 = HttpCheck(urls=[HttpUrl(path="/")])
    assert request_bytes(c10, c10.urls[0], _target(8080), "www.example") == (
        b"GET / HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: www.example\r\n\r\n"
    )


@pytest.mark.skipif(shutil.which("genhash") is None, reason="keepalived's genhash not installed")
def test_http_digest_is_what_genhash_prints(web: int) -> None:
    out = subprocess.run(
        ["genhash", "-s", "127.0.0.1", "-p", str(web), "-u", "/index.html"],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    digest = out.stdout.split()[-1]
    good = HttpCheck(urls=[HttpUrl(path="/index.html", digest=digest)])
    assert run_checker(good, _target(web)).up
    bad = HttpCheck(urls=[HttpUrl(path="/index.html", digest="0" * 32)])
    result = run_checker(bad, _target(web))
    assert not result.up
    assert "MD5 digest error" in result.reason


def test_http_status_code_and_regex(web: int) -> None:
    def check(**kw: object) -> bool:
        return run_checker(HttpCheck(urls=[HttpUrl(**kw)]), _target(web)).up  # type: ignore[arg-type]

    assert check(path="/")
    assert not check(path="/missing")
    assert check(path="/missing", status_code=[(404, 404)])
    assert check(path="/missing", status_code=[(200, 299), (400, 499)])
    assert check(path="/", regex="hello from")
    assert not check(path="/", regex="goodbye")
    assert check(path="/", regex="goodbye", regex_no_match=True)
    assert not check(path="/", regex="hello", regex_no_match=True)
    # Every url must pass.
    two = HttpCheck(urls=[HttpUrl(path="/"), HttpUrl(path="/missing")])
    assert not run_checker(two, _target(web)).up


def test_smtp_check_greeting_helo_quit() -> None:
    seen: list[bytes] = []

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(b"220-mail.test ESMTP\r\n220 ready\r\n")
            line = self.rfile.readline()
            seen.append(line)
            self.wfile.write(b"250 mail.test\r\n" if line.startswith(b"HELO") else b"500 no\r\n")
            seen.append(self.rfile.readline())

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.server_address[1]
        assert run_checker(SmtpCheck(helo_name="lb.test"), _target(port)).up
        server.shutdown()
    assert seen == [b"HELO lb.test\r\n", b"QUIT\r\n"]


def test_dns_check_needs_matching_id_and_noerror() -> None:
    rcodes = [dns.rcode.NOERROR]

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data, sock = self.request
            query = dns.message.from_wire(data)
            assert query.question[0].rdtype == dns.rdatatype.SOA
            reply = dns.message.make_response(query)
            reply.set_rcode(rcodes[0])
            sock.sendto(reply.to_wire(), self.client_address)

    with socketserver.ThreadingUDPServer(("127.0.0.1", 0), Handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.server_address[1]
        assert run_checker(DnsCheck(), _target(port)).up  # empty answer: keepalived says up
        rcodes[0] = dns.rcode.SERVFAIL
        result = run_checker(DnsCheck(), _target(port))
        assert not result.up
        assert "rcode = 2" in result.reason
        server.shutdown()


def test_udp_check_icmp_unreachable_is_down_silence_is_up() -> None:
    closed = free_port(socket.SOCK_DGRAM)
    assert not run_checker(UdpCheck(payload=b"x"), _target(closed, 0.5)).up
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as quiet:
        quiet.bind(("127.0.0.1", 0))
        port = quiet.getsockname()[1]
        assert run_checker(UdpCheck(payload=b"x"), _target(port, 0.3)).up
        assert not run_checker(UdpCheck(payload=b"x", require_reply=b""), _target(port, 0.3)).up


def test_misc_check_exit_status(tmp_path: Path) -> None:
    script = tmp_path / "check.sh"
    script.write_text("#!/bin/sh\nexit $1\n")
    script.chmod(0o755)
    for code in (0, 1, 7):
        result = run_checker(MiscCheck(misc_path=f"{script} {code}"), _target(0))
        assert (result.up, result.weight) == (code == 0, code)
    slow = MiscCheck(misc_path="/bin/sleep 5", misc_timeout=0.2)
    result = run_checker(slow, _target(0))
    assert (result.up, result.weight, result.reason) == (False, 1, "/bin/sleep timed out")


def test_ping_check_loopback() -> None:
    assert run_checker(PingCheck(), _target(0, 1.0)).up
