"""The log lines of keepalived 2.2.7's checkers, word for word (check_tcp.c tcp_check_thread
and tcp_epilog, check_http.c timeout_epilog / epilog / http_handle_response, check_smtp.c
smtp_final, check_dns.c dns_final, check_udp.c, check_ping.c, check_misc.c
misc_check_child_thread): what each checker module says of an attempt against a local server,
and when the keeper logs it (most per-attempt lines only with ``log_all_failures``)."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator

import pytest
from kalocal import free_port, web_server

from pylvs.config.kamodel import HttpCheck, HttpUrl, SmtpCheck, TcpCheck, UdpCheck
from pylvs.config.keepalived import parse_keepalived
from pylvs.core.ipvs import IPVS
from pylvs.health.kakeeper import CheckerState, KaKeeper
from pylvs.health.keepalived import run_checker
from pylvs.health.keepalived.conn import Target

RS = "[127.0.0.1]:tcp:80"
VS = "[10.0.0.100]:tcp:80"


def _target(port: int, timeout: float = 2.0) -> Target:
    return Target(addr="127.0.0.1", port=port, timeout=timeout, rs_name=RS, vs_name=VS)


@pytest.fixture
def web() -> Iterator[int]:
    with web_server(b"hello\n") as port:
        yield port


def test_tcp_lines() -> None:
    assert run_checker(TcpCheck(), _target(free_port())).lines == (
        f"TCP connection to {RS} failed.",
    )


def test_http_lines(web: int) -> None:
    def lines(**kw: object) -> tuple[str, ...]:
        return run_checker(HttpCheck(urls=[HttpUrl(**kw)]), _target(web)).lines  # type: ignore[arg-type]

    assert lines(path="/missing") == (f"HTTP status code error to server {RS}.",)
    assert lines(path="/", digest="0" * 32) == (f"MD5 digest error to server {RS}.",)
    assert lines(path="/", regex="nothere") == (f"Regex match failed server {RS}.",)
    # The success lines, logged while the checker is down (http_handle_response).
    assert lines(path="/") == (f"HTTP status code success to {RS} url(/)",)
    assert lines(path="/", regex="hel+o") == (f"Regex match success to {RS} url(/)",)
    refused = run_checker(HttpCheck(urls=[HttpUrl(path="/")]), _target(free_port()))
    assert refused.lines == (f"Connection failed server {RS}.",)


def test_smtp_bad_greeting_line() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(b"554 go away\r\n")

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        result = run_checker(SmtpCheck(), _target(port))
        t.join(5)
    assert result.lines == (f"SMTP_CHECK Bad greeting banner from server [127.0.0.1]:{port}",)
    closed = free_port()
    refused = run_checker(SmtpCheck(), _target(closed))
    assert refused.lines == (f"SMTP_CHECK Could not connect to server [127.0.0.1]:{closed}",)


def test_udp_line() -> None:
    result = run_checker(UdpCheck(payload=b"x"), _target(free_port(socket.SOCK_DGRAM), 0.5))
    assert result.lines == (f"UDP connection to {RS} failed.",)


# --- when the keeper logs them --------------------------------------------------------------


class Effects:
    def script(self, command: str, wait: float | None = None) -> None:
        pass


def _keeper(check: str, extra: str = "", globals_: str = "") -> tuple[KaKeeper, CheckerState]:
    text = (
        f"global_defs {{\n{globals_}}}\n"
        f"virtual_server 10.0.0.100 80 {{\n  protocol TCP\n{extra}"
        f"  real_server 10.0.0.1 80 {{\n    {check}\n  }}\n}}\n"
    )
    k = KaKeeper(IPVS(), Effects())
    k.start(parse_keepalived(text, "keepalived.conf"))
    return k, k.checkers[0]


R1 = "[10.0.0.1]:tcp:80"
V = "[10.0.0.100]:tcp:80"


def test_tcp_attempt_line_only_with_log_all_failures(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pylvs.keepalived")
    line = f"TCP connection to {R1} failed."
    k, ck = _keeper("TCP_CHECK {\n    }")
    k.result(ck, False, lines=(line,))
    assert line not in caplog.text
    assert f"TCP_CHECK on service {R1} failed." in caplog.text
    caplog.clear()
    k, ck = _keeper("TCP_CHECK {\n    }", globals_="  checker_log_all_failures\n")
    k.result(ck, False, lines=(line,))
    assert line in caplog.text


def test_http_words(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pylvs.keepalived")
    line = f"HTTP status code error to server {R1}."
    k, ck = _keeper(
        "HTTP_GET {\n      url {\n        path /\n      }\n      log_all_failures\n    }"
    )
    k.result(ck, False, lines=(line,))
    # timeout_epilog marks the checker as run before the epilog: "after N retries" at once.
    assert line in caplog.text
    assert f"HTTP_CHECK on service {R1} failed after 1 retries." in caplog.text
    caplog.clear()
    k.result(ck, True, lines=(f"HTTP status code success to {R1} url(/)",))
    assert f"HTTP status code success to {R1} url(/)" in caplog.text
    assert "succeed on service" not in caplog.text  # only failed_url cleared
    k.result(ck, True)
    assert f"Remote Web server {R1} succeed on service." in caplog.text


def test_smtp_and_dns_words(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pylvs.keepalived")
    line = "SMTP_CHECK Bad greeting banner from server [10.0.0.1]:80"
    k, ck = _keeper("SMTP_CHECK {\n    }")
    k.result(ck, False, lines=(line,))  # counts at once at start: logged
    assert line in caplog.text
    assert "failed." not in caplog.text  # smtp_final has no other line
    k.result(ck, True)
    assert f"Remote SMTP server {R1} succeed on service." in caplog.text
    caplog.clear()
    k, ck = _keeper("DNS_CHECK {\n    }")
    caplog.clear()  # the start's "Gained quorum"
    k.result(ck, True)
    assert caplog.text == ""  # dns_final logs no success
    for _ in range(3):  # retry 3: the retries are silent
        k.result(ck, False, lines=("read timeout from socket",))
    assert caplog.text == ""
    k.result(ck, False, lines=("read timeout from socket",))
    assert f"DNS_CHECK ({R1}) read timeout from socket after 3 retries" in caplog.text
    assert f"Removing service {R1} from VS {V}" in caplog.text


def test_udp_and_ping_words(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pylvs.keepalived")
    k, ck = _keeper("PING_CHECK {\n    }")
    k.result(ck, True)
    k.result(ck, False)
    k.result(ck, False)
    assert f"ICMP CHECK on service {R1} of {V} failed after 1 retries." in caplog.text
    k, ck = _keeper("UDP_CHECK {\n      retry 0\n    }")
    k.result(ck, False)
    assert f"UDP_CHECK on service {R1} failed." in caplog.text
    assert k.result(ck, False) == 60.0  # a failed UDP checker is not retried


@pytest.mark.parametrize(
    ("retry", "calls", "want"),
    [
        (0, [(1, None, False)], "failed with retry disabled (exited with status 1)."),
        (0, [(1, 9, False)], "failed with retry disabled (due to signal 9)."),
        (0, [(1, None, True)], "timed out with retry disabled."),
        (
            2,
            [(0, None, False)] + [(1, None, False)] * 3,
            "failed after 2 retries (exited with status 1).",
        ),
    ],
)
def test_misc_words(
    caplog: pytest.LogCaptureFixture,
    retry: int,
    calls: list[tuple[int, int | None, bool]],
    want: str,
) -> None:
    caplog.set_level(logging.INFO, "pylvs.keepalived")
    k, ck = _keeper(f"MISC_CHECK {{\n      misc_path /bin/false\n      retry {retry}\n    }}")
    for code, signal, timed_out in calls:
        k.result(ck, code == 0, exit_code=code, signal=signal, timed_out=timed_out)
    assert f"Misc check for [{R1} VS {V}] by [/bin/false] {want}" in caplog.text
    assert ", will do" not in caplog.text  # the retries are silent without log_all_failures


def test_misc_retry_lines_with_log_all_failures(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pylvs.keepalived")
    k, ck = _keeper(
        "MISC_CHECK {\n      misc_path /bin/false\n      retry 2\n      log_all_failures\n    }"
    )
    k.result(ck, True, exit_code=0)
    assert f"Misc check for [{R1} VS {V}] by [/bin/false] succeeded." in caplog.text
    for _ in range(3):
        k.result(ck, False, exit_code=1)
    for part in (", will do 2 retries", " on retry 1/2", " after 2 retries"):
        assert f"by [/bin/false] failed{part} (exited with status 1)." in caplog.text
