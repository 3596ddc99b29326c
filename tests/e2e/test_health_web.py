"""Negotiate checks ``http``, ``https``, ``http_proxy`` and ``simpletcp`` against real servers.

The director namespace ``d`` runs the checks; the real server namespace ``r1`` runs nginx (plain
HTTP, HTTPS with a self-signed certificate, a forward proxy in front of a name-based site) and
redis-server (a line protocol: ``PING`` answers ``+PONG``). nginx logs each request line and Host
header, so the tests see what the check sent. A listening socket that never accepts stands for a
hung server.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import nginx as nginx_server
import pytest

from pylvs.health.check import CheckFailed, CheckTarget
from pylvs.health.services import negotiate
from pylvs.health.services.http import check as check_http
from pylvs.health.services.simpletcp import check as check_simpletcp
from pylvs.testing.netns import Lab, wait_until

DIRECTOR = "198.51.100.1"
RIP = "198.51.100.11"
HTTP, HTTPS, PROXY, BACKEND, HUNG, REDIS, SPARE = 80, 443, 3128, 8081, 8082, 6379, 8090
TIMEOUT = 2.0

# The server blocks of nginx.conf (tests/e2e/nginx.py adds the rest); nginx logs each request
# line and Host header, so the tests see what the check sent.
NGINX_SERVERS = """\
    server {{
        listen {rip}:{http} default_server;
        server_name _;
        location = / {{ return 200 "front page\\n"; }}
        location = /ok.html {{ return 200 "health: OK\\n"; }}
        location = /other.html {{ return 200 "something else entirely\\n"; }}
        location = /error {{ return 500 "health: OK, but failing\\n"; }}
        location = /missing {{ return 404; }}
        location = /redirect {{ return 302 /ok.html; }}
        location = /loop {{ return 302 /loop; }}
        location = /get-only {{
            if ($request_method = HEAD) {{ return 405; }}
            return 200 "health: OK\\n";
        }}
    }}
    server {{
        listen {rip}:{http};
        server_name www.example.com;
        location / {{ return 200 "site www.example.com\\n"; }}
    }}
    server {{
        listen {rip}:{https} ssl default_server;
        server_name _;
        ssl_certificate {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;
        location = /ok.html {{ return 200 "secure: OK\\n"; }}
        location = /error {{ return 500; }}
    }}
    server {{
        listen {rip}:{https} ssl;
        server_name secure.example.com;
        ssl_certificate {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;
        location / {{ return 200 "site secure.example.com\\n"; }}
    }}
    server {{
        # A forward proxy for the one site behind it.
        listen {rip}:{proxy};
        location / {{
            proxy_pass http://127.0.0.1:{backend};
            proxy_set_header Host $host;
        }}
    }}
    server {{
        listen 127.0.0.1:{backend};
        server_name www.example.com;
        location = /ok.html {{ return 200 "proxied www.example.com: OK\\n"; }}
        location / {{ return 503; }}
    }}
    server {{
        listen 127.0.0.1:{backend} default_server;
        location / {{ return 404; }}
    }}
"""
ACCESS_LOG = (
    "log_format health '$server_port|$request|$http_host|$http_user_agent';\n"
    "    access_log {d}/access.log health;"
)

SPARE_SERVERS = """\
    server {{ listen {rip}:{port}; location / {{ return 200 "up\\n"; }} }}
"""


@dataclass
class Web:
    lab: Lab
    dir: Path

    def check(self, target: CheckTarget) -> str:
        with self.lab.inside("d"):
            return negotiate(target, TIMEOUT)

    def log_lines(self) -> list[str]:
        return (self.dir / "access.log").read_text().splitlines()

    def logged(self, before: int) -> list[str]:
        """The access log lines written since it had ``before`` lines."""
        return wait_until(lambda: self.log_lines()[before:], what="nginx access log")


def target(service: str, port: int, **kwargs: Any) -> CheckTarget:
    return CheckTarget(
        checktype="negotiate",
        service=service,
        protocol="tcp",
        vip="203.0.113.10",
        vport=port,
        rip=RIP,
        rport=port,
        checkport=port,
        **kwargs,
    )


def port_open(lab: Lab, port: int) -> bool:
    with lab.inside("d"), socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((RIP, port)) == 0


def start_redis(lab: Lab, directory: Path, port: int) -> subprocess.Popen[Any]:
    argv = ["redis-server", "--bind", RIP, "--port", str(port), "--save", "", "--appendonly", "no"]
    argv += ["--dir", str(directory), "--protected-mode", "no"]
    return lab.popen("r1", argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    directory = tmp_path_factory.mktemp("nginx")
    # A self-signed certificate for a name that is not the real server's: the check must not care.
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
    openssl += ["-subj", "/CN=not-the-real-server", "-keyout", str(directory / "key.pem")]
    openssl += ["-out", str(directory / "cert.pem")]
    subprocess.run(
        openssl,
        check=True,
        capture_output=True,
        timeout=30,
    )
    with Lab() as lab:
        lab.add_netns("d")
        lab.add_netns("r1")
        lab.veth("d", "d0", "r1", "r0", f"{DIRECTOR}/24", f"{RIP}/24")
        servers = NGINX_SERVERS.format(
            d=directory, rip=RIP, http=HTTP, https=HTTPS, proxy=PROXY, backend=BACKEND
        )
        nginx = nginx_server.start(
            lab, "r1", directory, servers, ACCESS_LOG.format(d=directory), connections=64
        )
        redis = start_redis(lab, directory, REDIS)
        for port in (HTTP, HTTPS, PROXY, REDIS):
            wait_until(partial(port_open, lab, port), timeout=10, what=f"port {port}")
        yield Web(lab, directory)
        assert nginx.poll() is None and redis.poll() is None


@pytest.fixture
def hung(web: Web) -> Iterator[int]:
    """A port on the real server that completes TCP handshakes and then never says anything."""
    with web.lab.inside("r1"):
        sock = socket.socket()
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((RIP, HUNG))
        sock.listen(8)  # never accepted: the kernel queue completes the handshakes
        yield HUNG


def assert_hangs_up(web: Web, tgt: CheckTarget) -> None:
    start = time.monotonic()
    with pytest.raises((CheckFailed, TimeoutError)):
        web.check(tgt)
    elapsed = time.monotonic() - start
    assert TIMEOUT - 0.2 < elapsed < TIMEOUT + 1.5


# --- http ---------------------------------------------------------------------------------------


def test_http_up_request_line_and_host(web: Web) -> None:
    before = len(web.log_lines())
    result = web.check(target("http", HTTP, request="/ok.html", receive="health: OK"))
    assert result.startswith("200 OK")
    port, request, host, agent = web.logged(before)[-1].split("|")
    assert (port, request, host) == (str(HTTP), "GET /ok.html HTTP/1.1", RIP)  # no port in Host
    assert agent.startswith("pylvs/")


def test_http_default_request_is_root(web: Web) -> None:
    before = len(web.log_lines())
    assert web.check(target("http", HTTP)) == f"200 OK from http://{RIP}:{HTTP}/"
    assert web.logged(before)[-1].split("|")[1] == "GET / HTTP/1.1"


def test_http_request_is_escaped(web: Web) -> None:
    before = len(web.log_lines())
    assert web.check(target("http", HTTP, request="ok.html?probe=a b", receive="OK"))
    assert web.logged(before)[-1].split("|")[1] == "GET /ok.html?probe=a%20b HTTP/1.1"


def test_http_wrong_content(web: Web) -> None:
    with pytest.raises(CheckFailed, match="response mismatch"):
        web.check(target("http", HTTP, request="/other.html", receive="health: OK"))
    # receive is a regular expression, searched anywhere in the body
    assert web.check(target("http", HTTP, request="other.html", receive=r"some\w+ els[aeiou]"))


def test_http_error_status_is_down_even_when_content_matches(web: Web) -> None:
    with pytest.raises(CheckFailed, match="500 Internal Server Error"):
        web.check(target("http", HTTP, request="/error", receive="health: OK"))
    with pytest.raises(CheckFailed, match="404 Not Found"):
        web.check(target("http", HTTP, request="/missing"))


def test_http_virtualhost(web: Web) -> None:
    vhost = target("http", HTTP, request="/", receive="site www.example.com")
    with pytest.raises(CheckFailed):  # without it, Host is the address: nginx's default server
        web.check(vhost)
    before = len(web.log_lines())
    assert web.check(replace(vhost, virtualhost="www.example.com")).startswith("200")
    assert web.logged(before)[-1].split("|")[2] == "www.example.com"


def test_http_head_and_get(web: Web) -> None:
    ok = target("http", HTTP, request="/get-only", receive="health: OK")
    before = len(web.log_lines())
    assert web.check(ok).startswith("200")
    with pytest.raises(CheckFailed, match="405"):
        web.check(replace(ok, httpmethod="HEAD"))
    assert [line.split("|")[1] for line in web.logged(before)] == [
        "GET /get-only HTTP/1.1",
        "HEAD /get-only HTTP/1.1",
    ]
    head = target("http", HTTP, request="/ok.html", httpmethod="HEAD")
    assert web.check(head).startswith("200")  # HEAD: the status alone decides ...
    with pytest.raises(CheckFailed, match="response mismatch"):
        web.check(replace(head, receive="health"))  # ... as a HEAD answer has no body


def test_http_redirects_are_followed(web: Web) -> None:
    before = len(web.log_lines())
    assert web.check(target("http", HTTP, request="/redirect", receive="health: OK"))
    assert [line.split("|")[1] for line in web.logged(before)] == [
        "GET /redirect HTTP/1.1",
        "GET /ok.html HTTP/1.1",
    ]
    with pytest.raises(CheckFailed, match="redirect loop"):
        web.check(target("http", HTTP, request="/loop"))


def test_http_full_url_request(web: Web) -> None:
    url = f"http://{RIP}:{HTTP}/ok.html"
    assert web.check(target("http", HTTP, request=url, receive="OK")).endswith(url)


def test_http_hung_server(web: Web, hung: int) -> None:
    assert_hangs_up(web, target("http", hung, request="/ok.html"))


def test_http_refused_after_stop(web: Web) -> None:
    directory = web.dir / "spare"
    servers = SPARE_SERVERS.format(rip=RIP, port=SPARE)
    proc = nginx_server.start(web.lab, "r1", directory, servers, connections=16)
    wait_until(lambda: port_open(web.lab, SPARE), timeout=10, what="spare nginx")
    assert web.check(target("http", SPARE, receive="up")).startswith("200")
    web.lab.stop(proc)
    with pytest.raises(ConnectionRefusedError):
        web.check(target("http", SPARE, receive="up"))


# --- https --------------------------------------------------------------------------------------


def test_https_up_without_verifying_the_certificate(web: Web) -> None:
    before = len(web.log_lines())
    tgt = target("https", HTTPS, request="/ok.html", receive="secure: OK")
    assert web.check(tgt) == f"200 OK from https://{RIP}:{HTTPS}/ok.html"
    assert web.logged(before)[-1].split("|")[:3] == [str(HTTPS), "GET /ok.html HTTP/1.1", RIP]


def test_https_down(web: Web) -> None:
    with pytest.raises(CheckFailed, match="500"):
        web.check(target("https", HTTPS, request="/error"))
    with pytest.raises(CheckFailed, match="response mismatch"):
        web.check(target("https", HTTPS, request="/ok.html", receive="health"))


def test_https_virtualhost(web: Web) -> None:
    tgt = target("https", HTTPS, request="/", receive="site secure.example.com")
    with pytest.raises(CheckFailed):
        web.check(tgt)
    assert web.check(replace(tgt, virtualhost="secure.example.com")).startswith("200")


def test_https_head(web: Web) -> None:
    before = len(web.log_lines())
    assert web.check(target("https", HTTPS, request="/ok.html", httpmethod="HEAD"))
    assert web.logged(before)[-1].split("|")[1] == "HEAD /ok.html HTTP/1.1"


def test_https_hung_server(web: Web, hung: int) -> None:
    assert_hangs_up(web, target("https", hung, request="/ok.html"))  # no TLS handshake


def test_https_to_plain_http_port_is_down(web: Web) -> None:
    with pytest.raises(Exception):  # noqa: B017 - ssl.SSLError: nginx answers 400 in plain text
        web.check(target("https", HTTP, request="/ok.html"))


# --- http_proxy ---------------------------------------------------------------------------------


def proxy_and_site_lines(web: Web, before: int) -> dict[str, list[str]]:
    """The proxy's and the site's access log lines of one proxied request, by port."""
    wait_until(lambda: web.logged(before)[1:], what="proxy and site log lines")
    return {line.split("|")[0]: line.split("|")[1:3] for line in web.log_lines()[before:]}


def test_http_proxy_up(web: Web) -> None:
    before = len(web.log_lines())
    tgt = target("http_proxy", PROXY, request="/http://www.example.com/ok.html", receive=": OK")
    assert web.check(tgt) == "200 OK from http://www.example.com/ok.html"
    # The proxy got the absolute URL and the site's Host; the site behind it got the path.
    assert proxy_and_site_lines(web, before) == {
        str(PROXY): ["GET http://www.example.com/ok.html HTTP/1.1", "www.example.com"],
        str(BACKEND): ["GET /ok.html HTTP/1.0", "www.example.com"],
    }


def test_http_proxy_down(web: Web) -> None:
    with pytest.raises(CheckFailed, match="503"):  # the proxy answers for a bad origin
        web.check(target("http_proxy", PROXY, request="/http://www.example.com/missing"))
    with pytest.raises(CheckFailed, match="response mismatch"):
        web.check(
            target("http_proxy", PROXY, request="/http://www.example.com/ok.html", receive="nope")
        )


def test_http_proxy_ignores_virtualhost_and_takes_head(web: Web) -> None:
    before = len(web.log_lines())
    tgt = target(
        "http_proxy",
        PROXY,
        request="/http://www.example.com/ok.html",
        virtualhost="elsewhere.example.org",
        httpmethod="HEAD",
    )
    with web.lab.inside("d"):
        assert check_http(tgt, TIMEOUT).startswith("200")
    assert proxy_and_site_lines(web, before)[str(PROXY)] == [
        "HEAD http://www.example.com/ok.html HTTP/1.1",
        "www.example.com",
    ]


def test_http_proxy_hung(web: Web, hung: int) -> None:
    assert_hangs_up(web, target("http_proxy", hung, request="/http://www.example.com/ok.html"))


# --- simpletcp ----------------------------------------------------------------------------------


def test_simpletcp_up(web: Web) -> None:
    tgt = target("simpletcp", REDIS, request="/PING\\n", receive=r"^\+PONG")
    assert web.check(tgt) == "line matched receive: '+PONG'"
    # Any line of the answer may match: ECHO answers "$5" then "hello". Lines keep their "\r\n",
    # and "$" (Perl's and Python's) only matches before a final "\n": anchor at the start.
    echo = target("simpletcp", REDIS, request="/ECHO hello\\n", receive="^hello")
    assert web.check(echo) == "line matched receive: 'hello'"


def test_simpletcp_wrong_answer(web: Web) -> None:
    with pytest.raises(CheckFailed, match="no line"):
        web.check(target("simpletcp", REDIS, request="/PING\\n", receive="PANG"))


def test_simpletcp_hung(web: Web, hung: int) -> None:
    assert_hangs_up(web, target("simpletcp", hung, request="/PING\\n", receive="PONG"))


def test_simpletcp_refused_after_stop(web: Web, tmp_path: Path) -> None:
    proc = start_redis(web.lab, tmp_path, SPARE + 1)
    wait_until(lambda: port_open(web.lab, SPARE + 1), timeout=10, what="spare redis")
    tgt = target("simpletcp", SPARE + 1, request="/PING\\n", receive="PONG")
    with web.lab.inside("d"):
        assert check_simpletcp(tgt, TIMEOUT)
    web.lab.stop(proc)
    with pytest.raises(ConnectionRefusedError):
        web.check(tgt)
