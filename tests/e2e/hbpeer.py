"""Real Linux-HA heartbeat 3.0.6 nodes (Debian's ``heartbeat``) inside lab namespaces, as peers of
the heartbeat interoperability tests (reference/ha-peers.md, "Heartbeat 3.0.6").

Every instance gets its own copy of ``/etc/ha.d`` and ``/var/lib/heartbeat``, its own ``/run``
(the binary hard-codes ``/run/heartbeat.pid`` and its API sockets live in ``/run/heartbeat``) and
its own host name (heartbeat names itself after ``uname -n``). They are bind-mounted in a private
mount namespace, so the root namespace never sees them and they vanish with the instance.

The instance's processes are exactly those in its mount namespace: heartbeat daemonizes and forks
its medium readers/writers and resource scripts, all of which inherit it. :meth:`start` keeps a
file descriptor of that namespace open, so its inode cannot be reused by another namespace while
:meth:`close` still looks for stragglers by it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from pylvs.testing.netns import Lab, TimeoutExpired, wait_until

HEARTBEAT = Path("/usr/libexec/heartbeat/heartbeat")
MASTER_TITLE = "heartbeat: master control process"


def available() -> bool:
    """Whether Debian's heartbeat is installed (scripts/setup installs it)."""
    return HEARTBEAT.is_file() and shutil.which("cl_status") is not None


def log_path(work: Path, node: str) -> Path:
    """Where the instance ``node`` built in ``work`` keeps its log (ha.cf's ``logfile``)."""
    return work / node / "ha-log"


def typical_ha_cf(
    ucast: Sequence[tuple[str, str]],
    nodes: Sequence[str],
    logfile: Path,
    keepalive: str = "200ms",
    warntime: str = "500ms",
    deadtime: str = "1",
    initdead: str = "2",
    auto_failback: str = "on",
    udpport: int = 694,
) -> str:
    """An ha.cf for tests: fast timers, unicast to each ``(iface, peer address)``, release-1
    resource manager (``crm no``), logging straight to ``logfile`` (no logd, no syslog)."""
    lines = [
        f"keepalive {keepalive}",
        f"warntime {warntime}",
        f"deadtime {deadtime}",
        f"initdead {initdead}",
        f"udpport {udpport}",
        *(f"ucast {iface} {peer}" for iface, peer in ucast),
        f"auto_failback {auto_failback}",
        *(f"node {node}" for node in nodes),
        "crm no",
        "use_logd no",
        f"logfile {logfile}",
    ]
    return "\n".join(lines) + "\n"


def authkeys_sha1(secret: str, index: int = 1) -> str:
    return f"auth {index}\n{index} sha1 {secret}\n"


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: pid 1 here may never reap the daemon)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


class RealHeartbeat:
    """One real heartbeat node named ``node`` in lab namespace ``short``, its files in
    ``work/node``. Call :meth:`close` from a fixture finalizer (or ``finally``): it stops every
    process of the instance, whatever state the test left it in."""

    def __init__(
        self,
        lab: Lab,
        short: str,
        node: str,
        ha_cf: str,
        authkeys: str,
        haresources: str,
        work: Path,
    ) -> None:
        self.lab = lab
        self.short = short
        # heartbeat lower-cases node names (src=, cl_status); the host name must match a node line.
        self.node = node.lower()
        self.dir = work / self.node
        self.ha_d = self.dir / "ha.d"
        self.varlib = self.dir / "varlib"
        self.run_dir = self.dir / "run"
        self.log = log_path(work, self.node)
        self.master: int | None = None
        # Every pid seen in the instance (master, medium processes, resource scripts).
        self.pids: set[int] = set()
        self._mnt_fd: int | None = None
        self._mnt_id: tuple[int, int] | None = None
        self._prepare(ha_cf, authkeys, haresources)

    def _prepare(self, ha_cf: str, authkeys: str, haresources: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree("/etc/ha.d", self.ha_d, symlinks=True)
        (self.ha_d / "ha.cf").write_text(ha_cf)
        keys = self.ha_d / "authkeys"
        keys.write_text(authkeys)
        keys.chmod(0o600)  # heartbeat refuses authkeys readable by others
        (self.ha_d / "haresources").write_text(haresources)
        shutil.copytree("/var/lib/heartbeat", self.varlib, symlinks=True)  # keeps owners, modes
        for sub in ("heartbeat/ccm", "heartbeat/crm", "heartbeat/dopd"):
            path = self.run_dir / sub
            path.mkdir(parents=True)
            shutil.chown(path, "hacluster", "haclient")
            path.chmod(0o750)
        for sub in ("crm", "resource-agents", "lock/subsys"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        (self.run_dir / "lock").chmod(0o1777)  # as the real /run/lock (/var/lock points here)
        self.log.touch()

    # -- running ----------------------------------------------------------------------------

    def start(self, timeout: float = 15.0, wait_api: bool = True) -> int:
        """Start heartbeat (it daemonizes); returns the master's pid once it runs and, with
        ``wait_api``, once its client API answers (cl_status says "stopped" until then)."""
        q = shlex.quote
        script = (
            f"hostname {q(self.node)} && "
            f"mount --bind {q(str(self.ha_d))} /etc/ha.d && "
            f"mount --bind {q(str(self.varlib))} /var/lib/heartbeat && "
            f"mount --bind {q(str(self.run_dir))} /run && "
            # heartbeat mlock()s itself; raise the limit where we may (without CAP_SYS_RESOURCE,
            # as on some VMs, the hard limit stays and heartbeat only logs that it cannot lock).
            "{ ulimit -l unlimited 2>/dev/null || :; } && "
            f"exec {q(str(HEARTBEAT))}"
        )
        argv = ["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", script]
        with (self.dir / "start.out").open("ab") as out:
            # A file, not a pipe: the daemon inherits stdout and would keep a pipe open forever.
            done = self.lab.run(
                self.short, argv, check=False, timeout=timeout, capture_output=False,
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"heartbeat {self.node} did not start: {self._start_output()}")
        try:
            pid = wait_until(self._master_from_pidfile, timeout, what=f"{self.node} master")
        except TimeoutExpired:
            self._pin_from_pidfile()  # so that close() still finds what did start
            raise
        assert pid is not None  # wait_until returns only a true value
        self.master = pid
        self._pin_namespace(pid)
        self.refresh_pids()
        if wait_api:
            wait_until(lambda: "is running" in self.cl_status("hbstatus"), timeout, 0.05,
                       f"{self.node} API")  # fmt: skip
            self.refresh_pids()
        return pid

    def _start_output(self) -> str:
        return (self.dir / "start.out").read_text(errors="replace") + self.log_text()[-2000:]

    def _master_from_pidfile(self) -> int | None:
        try:
            pid = int((self.run_dir / "heartbeat.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return pid if cmdline.startswith(MASTER_TITLE.encode()) and _alive(pid) else None

    def _pin_from_pidfile(self) -> None:
        """Pin the namespace of whatever heartbeat process the pid file names, if any."""
        try:
            pid = int((self.run_dir / "heartbeat.pid").read_text().split()[0])
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"heartbeat"):
                self._pin_namespace(pid)
        except (OSError, ValueError, IndexError):
            pass

    def _pin_namespace(self, pid: int) -> None:
        if self._mnt_fd is not None:
            return
        fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        st = os.fstat(fd)
        self._mnt_fd, self._mnt_id = fd, (st.st_dev, st.st_ino)

    def instance_pids(self) -> set[int]:
        """The live processes of this instance: those in its mount namespace (zombies have
        left every namespace), plus their descendants, in case one ever unshared again. Only
        live members count as parents: an old pid may belong to someone else by now."""
        found: set[int] = set()
        parents: dict[int, int] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                st = os.stat(f"/proc/{pid}/ns/mnt")
            except OSError:
                continue
            if self._mnt_id is not None and (st.st_dev, st.st_ino) == self._mnt_id:
                found.add(pid)
            ppid = _ppid(pid)
            if ppid is not None:
                parents[pid] = ppid
        grew = True
        while grew:
            grew = False
            for pid, ppid in parents.items():
                if pid not in found and ppid in found:
                    found.add(pid)
                    grew = True
        return {pid for pid in found if _alive(pid) and pid != os.getpid()}

    def refresh_pids(self) -> set[int]:
        """Record the instance's current processes; returns them."""
        live = self.instance_pids()
        self.pids |= live
        return live

    def children(self) -> set[int]:
        """Live processes of the instance other than the master."""
        return self.refresh_pids() - {self.master or 0}

    def running(self) -> bool:
        return self.master is not None and _alive(self.master)

    def _nsenter(self, argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        if not self.running():
            # Also after kill9(): the old pid may belong to another process by now.
            raise RuntimeError(f"heartbeat {self.node} is not running")
        # -m for its /run (API sockets, pid file), -u for its host name, -n for its network.
        cmd = ["nsenter", "-t", str(self.master), "-m", "-u", "-n", *argv]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def cl_status(self, *args: str, timeout: float = 10.0) -> str:
        """``cl_status ARGS`` against this node (``hbstatus``, ``listnodes``, ``nodestatus NODE``,
        ``rscstatus``); its stdout, empty when it failed (e.g. heartbeat not up yet)."""
        return self._nsenter(["cl_status", *args], timeout).stdout

    def node_status(self, node: str) -> str:
        return self.cl_status("nodestatus", node.lower()).strip()

    def kill9(self) -> float:
        """SIGKILL the master (a crashed node); returns the monotonic time of the kill. Its
        children and its resources (the VIP) stay behind, as after a real crash."""
        if self.master is None:
            raise RuntimeError(f"heartbeat {self.node} was not started")
        self.refresh_pids()
        when = time.monotonic()
        os.kill(self.master, signal.SIGKILL)
        wait_until(lambda: not _alive(self.master or 0), 5, what=f"{self.node} master gone")
        return when

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful stop (``heartbeat -k`` inside the instance: resources released and handed
        over); waits until every process of the instance has exited. With the master already
        gone (kill9) nothing graceful is left: its leftovers are killed as by close()."""
        self.refresh_pids()
        if not self.running():
            self.close()
            return
        self._nsenter([str(HEARTBEAT), "-k"], timeout)
        wait_until(lambda: not self.instance_pids(), timeout, 0.05, f"{self.node} stopped")

    def close(self) -> None:
        """SIGKILL whatever of the instance still runs, by pid, until nothing is left; then let
        its mount namespace (and with it every bind mount) go. Removes no file."""

        if self._mnt_fd is None:
            self._pin_from_pidfile()  # start() failed before it could pin

        def killed_all() -> bool:
            # A resource script may fork while we kill: look again until nothing is left.
            live = self.instance_pids()
            for pid in live:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return not live

        try:
            wait_until(killed_all, 10, 0.02, f"{self.node} processes gone")
        finally:
            if self._mnt_fd is not None:
                os.close(self._mnt_fd)
                # Unpinned, its inode may be reused by another namespace: stop matching it.
                self._mnt_fd, self._mnt_id = None, None

    # -- log --------------------------------------------------------------------------------

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def wait_log(self, pattern: str, timeout: float = 10.0, offset: int = 0) -> re.Match[str]:
        """Wait until the log (from character ``offset`` on) matches ``pattern``."""
        rx = re.compile(pattern)
        found = wait_until(
            lambda: rx.search(self.log_text(), offset), timeout, 0.05, f"{self.node} log: {pattern}"
        )
        assert found is not None  # wait_until returns only a true value
        return found
