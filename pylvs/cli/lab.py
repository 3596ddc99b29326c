"""``pylvs lab``: build an LVS web farm in network namespaces, look inside it, take it down.

Subcommands: ``up SCENARIO``, ``down``, ``status``, ``exec NODE -- CMD``, ``http``, ``trace``,
``show SCENARIO``, ``list``. The scenarios are the ``netns-lab/*.toml`` files (or a path). All
namespaces carry a prefix (``lvs-``, ``--prefix`` or ``$PYLVS_LAB_PREFIX``), one lab per prefix.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pylvs.lab import client, runner, show, trace
from pylvs.lab.state import default_prefix
from pylvs.lab.topology import LabConfigError, list_scenarios, load_scenario

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
        "fail", help="make a real server fail (its servers stopped, or hung with --hang)"
    )
    q.add_argument("node")
    q.add_argument("--hang", action="store_true", help="freeze the servers instead of stopping")
    q.set_defaults(lab_func=_cmd_fail)

    q = lab.add_parser("repair", help="bring a failed real server back")
    q.add_argument("node")
    q.set_defaults(lab_func=_cmd_repair)

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
    how = "hang" if args.hang else "stop"
    rec = runner.fail(args.prefix, args.node, how)
    what = (
        "frozen (SIGSTOP): connections are accepted, never answered"
        if args.hang
        else ("stopped: connections are refused")
    )
    print(f"{args.node}: servers (pid {rec.pid}) {what}; `pylvs lab repair {args.node}` undoes it")
    print("watch the directors take it out: pylvs health --netns <director>, pylvs top")
    return 0


def _cmd_repair(args: argparse.Namespace) -> int:
    rec = runner.repair(args.prefix, args.node)
    print(f"{args.node}: servers running again (pid {rec.pid})")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    _state, scenario, rows = runner.status(args.prefix)
    print(show.status_text(scenario, rows))
    return 0 if all(r.exists and all(alive for _w, _p, alive in r.processes) for r in rows) else 1


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
    print(show.load_text(result, f"http://{scenario.vip}:{args.port}/"))
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
