"""``pylvs lab``: build an LVS web farm in network namespaces, look inside it, take it down.

Subcommands: ``up SCENARIO``, ``down``, ``status``, ``exec NODE -- CMD``, ``fail NODE``,
``heal NODE`` (``repair``), ``http``, ``trace``, ``show SCENARIO``, ``list``. The scenarios are
the ``netns-lab/*.toml`` files (or a path). All namespaces carry a prefix (``lvs-``,
``--prefix`` or ``$PYLVS_LAB_PREFIX``), one lab per prefix.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pylvs.lab import client, runner, show, trace
from pylvs.lab.state import ProcessRecord, default_prefix
from pylvs.lab.topology import LabConfigError, Scenario, list_scenarios, load_scenario

__all__ = ["add_lab"]


def _scenario_help() -> str:
    return ", ".join(list_scenarios()) or "none found"


def add_lab(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "lab",
        help="an LVS farm in network namespaces: up, down, status, exec, http, trace, show",
        description=(
            "Build an Ultra Monkey style farm (clients, router, directors running pylvsd, real "
            "servers) in network namespaces named PREFIX<node>, and look inside it. "
            f"Scenarios: {_scenario_help()} (netns-lab/<name>.toml), or a path to a .toml file."
        ),
    )
    p.add_argument(
        "--prefix",
        default=default_prefix(),
        help="namespace name prefix of the lab (default lvs-, or $PYLVS_LAB_PREFIX)",
    )
    p.set_defaults(func=run)
    lab = p.add_subparsers(dest="lab_command", required=True, metavar="ACTION")

    q = lab.add_parser("up", help="build SCENARIO and start its servers and directors")
    q.add_argument("scenario")
    q.set_defaults(lab_func=_cmd_up)

    q = lab.add_parser("down", help="stop every lab process and delete the namespaces")
    q.set_defaults(lab_func=_cmd_down)

    q = lab.add_parser("status", help="nodes, addresses, running daemons with their pids")
    q.set_defaults(lab_func=_cmd_status)

    q = lab.add_parser("exec", help="run a command inside a node: exec NODE -- CMD [ARG...]")
    q.add_argument("node")
    q.add_argument("command", nargs=argparse.REMAINDER)
    q.set_defaults(lab_func=_cmd_exec)

    q = lab.add_parser(
        "fail",
        help="make a node fail: a real server's servers stop (or hang), a director dies",
        description=(
            "A real server: its servers are stopped (connections refused) or, with --hang, "
            "frozen (accepted, never answered); the health checks take it out. A director of "
            "a heartbeat or keepalived lab (farm, farmka): --how kill (default) kills its "
            "pylvsd with SIGKILL, leaving the VIP configured on it as a crashed heartbeat or "
            "keepalived does; --how term stops it with SIGTERM (it hands the VIP over: "
            "heartbeat releases its resources, VRRP sends a priority-0 advertisement); --how "
            "link pulls its cables (its switch ports go down: a partition). Returns once "
            "another director has taken the VIP over."
        ),
    )
    q.add_argument("node")
    q.add_argument("--hang", action="store_true", help="real server: freeze the servers instead")
    q.add_argument(
        "--how", choices=runner.DIRECTOR_FAILURES, help="director: kill (default), term or link"
    )
    q.set_defaults(lab_func=_cmd_fail)

    for name, text in (
        ("heal", "bring a failed node back (a director: pylvsd restarted or cables plugged)"),
        ("repair", "bring a failed node back (the same as heal)"),
    ):
        q = lab.add_parser(name, help=text)
        q.add_argument("node")
        q.set_defaults(lab_func=_cmd_heal)

    q = lab.add_parser(
        "http", help="send HTTP requests to the VIP and count the answers per server"
    )
    q.add_argument("-n", "--count", type=int, default=100, help="requests (default 100)")
    q.add_argument("--port", type=int, default=80)
    q.add_argument(
        "--from",
        dest="clients",
        action="append",
        metavar="NODE",
        help="client node (repeat; default: every client)",
    )
    q.set_defaults(lab_func=_cmd_http)

    q = lab.add_parser(
        "trace",
        help="capture one exchange at every hop and show how the headers change",
    )
    q.add_argument("--from", dest="client", metavar="NODE", help="client node (default: the first)")
    q.add_argument("--port", type=int, default=80, help="TCP port of the virtual service")
    q.add_argument("--udp", type=int, metavar="PORT", help="trace a UDP echo to PORT instead")
    q.add_argument(
        "--dir", type=Path, help="where to keep the pcap files (default: the lab's run dir)"
    )
    q.set_defaults(lab_func=_cmd_trace)

    q = lab.add_parser("show", help="the topology of SCENARIO as text, and as SVG/PNG with -o")
    q.add_argument("scenario")
    q.add_argument("-o", "--output", type=Path, help="picture file, .svg or .png (needs dot)")
    q.add_argument("--dot", action="store_true", help="print the graphviz source instead")
    q.set_defaults(lab_func=_cmd_show)

    q = lab.add_parser("list", help="the scenarios available")
    q.set_defaults(lab_func=_cmd_list)


def _cmd_up(args: argparse.Namespace) -> int:
    state = runner.up(args.scenario, args.prefix)
    print(
        f"lab {state.scenario!r} is up ({len(state.namespaces)} namespaces, prefix {args.prefix})"
    )
    _state, scenario, rows = runner.status(args.prefix)
    print(show.status_text(scenario, rows))
    print(show.hints(scenario, args.prefix))
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    report = runner.down(args.prefix)
    if not report.namespaces and not report.had_state:
        print(f"no lab with prefix {args.prefix!r}: nothing to remove")
        return 0
    pids = len(report.stopped) + len(report.swept)
    print(f"lab down: {pids} processes stopped, {len(report.namespaces)} namespaces removed")
    return 0


def _cmd_fail(args: argparse.Namespace) -> int:
    _state, scenario = runner.running_scenario(args.prefix)
    directors = [n.name for n in scenario.by_role("director")]
    if args.node in directors:
        if args.hang:
            raise runner.LabError("--hang is for real servers; a director fails with --how")
        result = runner.fail(args.prefix, args.node, args.how or "kill")
        assert isinstance(result, runner.FailResult)
        _print_director_failure(scenario, result)
        return 0
    if args.how is not None:
        raise runner.LabError("--how is for directors; a real server fails with or without --hang")
    how = "hang" if args.hang else "stop"
    rec = runner.fail(args.prefix, args.node, how)
    assert isinstance(rec, ProcessRecord)
    what = (
        "frozen (SIGSTOP): connections are accepted, never answered"
        if args.hang
        else ("stopped: connections are refused")
    )
    print(f"{args.node}: servers (pid {rec.pid}) {what}; `pylvs lab repair {args.node}` undoes it")
    print("watch the directors take it out: pylvs health --netns <director>, pylvs top")
    return 0


def _print_director_failure(scenario: Scenario, result: runner.FailResult) -> None:
    node = result.node
    ha = "keepalived" if scenario.vrrp is not None else "heartbeat"
    if result.how == "kill":
        left = (
            f"; like a crashed {ha} it leaves the VIP configured on {node}"
            if result.had_vip
            else ""
        )
        print(f"{node}: pylvsd (pid {result.pid}) killed with SIGKILL{left}")
    elif result.how == "term":
        gave = (
            "it sent a priority-0 advertisement and removed the VIP"
            if scenario.vrrp is not None
            else "heartbeat released its resources"
        )
        print(f"{node}: pylvsd (pid {result.pid}) stopped with SIGTERM: {gave}")
    else:
        print(f"{node}: cables pulled (switch ports {', '.join(result.ports)} down): a partition")
        if result.vrrp_state == "FAULT" and scenario.vrrp is not None:
            iface = scenario.vip_interface_of(scenario.node(node))
            print(
                f"{node}'s {iface.name if iface else 'interface'} has no carrier: VRRP put "
                f"{scenario.vrrp.instance} in FAULT state and removed the VIP (keepalived tracks "
                "the instance's interface)"
            )
    if result.takeover_s is not None:
        how = "heartbeat's deadtime, then IPaddr2 and gratuitous ARP"
        if result.how == "term":
            how = "heartbeat's hand-over, then IPaddr2 and gratuitous ARP"
        if scenario.vrrp is not None:
            how = (
                "the priority-0 advertisement, then skew time"
                if result.how == "term"
                else "VRRP's master down interval"
            ) + ", then the VIP and gratuitous ARP"
        print(
            f"{result.holder} took the VIP {scenario.vip} over {result.takeover_s:.2f} s later "
            f"({how})"
        )
    else:
        print(f"{node} did not hold the VIP: nothing to take over (VIP on {result.holder})")
    if len(result.holders) > 1 and result.how == "kill":
        print(
            f"the VIP is configured on {' and '.join(result.holders)}: {node}'s copy is stale, "
            "nothing released it; the router follows the new holder's gratuitous ARP "
            + (
                "(keepalived removes such a leftover when it starts again)"
                if scenario.vrrp is not None
                else "(heartbeat's answer to a node that may still answer is STONITH)"
            )
        )
    elif len(result.holders) > 1:
        print(
            f"the VIP is configured on {' and '.join(result.holders)}: a split brain, harmless "
            f"while {node} is cut off "
            + (
                "(keepalived's answers: track_interface, a vrrp_script)"
                if scenario.vrrp is not None
                else "(heartbeat's answer is STONITH)"
            )
        )
    tool = "vrrp" if scenario.vrrp is not None else "ha"
    print(f"`pylvs lab heal {node}` undoes it; see `pylvs {tool} --netns {result.holder} status`")


def _cmd_heal(args: argparse.Namespace) -> int:
    result = runner.heal(args.prefix, args.node)
    if isinstance(result, runner.HealResult):
        _state, scenario = runner.running_scenario(args.prefix)
        partition = "both sides restarted heartbeat"
        if scenario.vrrp is not None:
            partition = f"{args.node}'s interfaces are up again, VRRP left the FAULT state"
        done = {
            "kill": f"pylvsd started again (pid {result.pid})",
            "term": f"pylvsd started again (pid {result.pid})",
            "link": f"cables plugged back; {partition}",
        }[result.how]
        removed = f", stale VIP removed ({', '.join(result.removed)})" if result.removed else ""
        print(f"{args.node}: {done}{removed}")
        print(f"the cluster is whole again after {result.seconds:.1f} s: VIP on {result.holder}")
        return 0
    print(f"{args.node}: servers running again (pid {result.pid})")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    _state, scenario, rows = runner.status(args.prefix)
    print(show.status_text(scenario, rows))
    ok = all(
        r.exists and all(alive or w in show.FAILED_ON_PURPOSE for w, _p, alive in r.processes)
        for r in rows
    )
    return 0 if ok else 1


def _cmd_exec(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    argv = runner.exec_argv(args.prefix, args.node, command)
    # The venv's programs (pylvsadm, pylvsd, pylvs) by name inside the node, as after `activate`.
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    sys.stdout.flush()
    os.execvpe(argv[0], argv, env)


def _cmd_http(args: argparse.Namespace) -> int:
    _state, scenario = runner.running_scenario(args.prefix)
    clients = [n.name for n in scenario.by_role("client")]
    for name in args.clients or ():
        if name not in clients:
            raise runner.LabError(
                f"{name!r} is not a client node of {scenario.name} (clients: {', '.join(clients)})"
            )
    names = args.clients or clients
    namespaces = [runner.node_netns(args.prefix, name) for name in names]
    result = client.http_load(namespaces, scenario.vip, args.port, args.count)
    host = f"[{scenario.vip}]" if ":" in scenario.vip else scenario.vip  # RFC 3986 3.2.2
    print(show.load_text(result, f"http://{host}:{args.port}/"))
    return 0 if result.ok == args.count else 1


def _cmd_trace(args: argparse.Namespace) -> int:
    _state, scenario = runner.running_scenario(args.prefix)
    client_node = args.client or scenario.by_role("client")[0].name
    result = trace.run_trace(
        args.prefix, scenario, client_node, tcp_port=args.port, udp_port=args.udp, out_dir=args.dir
    )
    print(trace.format_trace(result))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario)
    if args.dot:
        print(show.to_dot(scenario), end="")
        return 0
    if args.output is not None:
        show.picture_format(args.output)  # a file name it cannot write fails before any output
    print(show.topology_text(scenario))
    if args.output is not None:
        show.render(scenario, args.output)
        print(f"\npicture written to {args.output}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    for name in list_scenarios():
        try:
            print(f"{name:8} {load_scenario(name).title}")
        except LabConfigError as exc:
            print(f"{name:8} (broken: {exc})")
    return 0


def run(args: argparse.Namespace) -> int:
    """Errors a user can cause are printed as one line, exit status 1."""
    try:
        return int(args.lab_func(args))
    except (runner.LabError, LabConfigError, ValueError, show.ShowError) as exc:
        print(f"pylvs lab: {exc}", file=sys.stderr)
        return 1
