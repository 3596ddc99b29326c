"""Tables, goal checks and the chart of a benchmark result (the dict :func:`run.run` returns)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["chart", "goals", "table"]

KERNEL = "kernel forward"


def _ratio(value: float, ref: float) -> str:
    return f"{value / ref:.2f}" if ref else "-"


def table(results: dict[str, Any]) -> str:
    pps: dict[str, Any] = results["pps"]
    ref = pps.get(KERNEL, {})
    lines = [
        "| target | lossless pps | x kernel | peak pps | x kernel | 3x overload: offered "
        "| held | held/peak | CPU us/pkt |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in pps.items():
        cpu = r["cpu_us_per_packet"]
        x_lossless = _ratio(r["lossless_pps"], ref.get("lossless_pps", 0))
        x_peak = _ratio(r["peak_pps"], ref.get("peak_pps", 0))
        lines.append(
            f"| {name} | {r['lossless_pps']} | {x_lossless}"
            f" | {r['peak_pps']} | {x_peak}"
            f" | {r['overload_offered_pps']} | {r['overload_pps']} | {r['overload_of_peak']:.2f}"
            f" | {cpu if cpu is not None else '-'} |"
        )
    http: dict[str, Any] = results["http"]
    base = http.get("haproxy tcp", {}).get("conn_per_s", 0)
    lines += ["", "| HTTP target | conn/s | x HAProxy | socket errors |", "|---|---:|---:|---:|"]
    for name, h in http.items():
        lines.append(
            f"| {name} | {h['conn_per_s']} | {_ratio(h['conn_per_s'], base)} "
            f"| {h['socket_errors']} |"
        )
    lines.append("")
    for goal in results.get("goals", []):
        verdict = "met" if goal["met"] else "NOT met"
        lines.append(f"goal {goal['goal']}: {verdict} ({goal['value']})")
    return "\n".join(lines)


def _goal(goal: str, value: Any, met: bool) -> dict[str, Any]:
    return {"goal": goal, "value": value, "met": met}


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals for a 2-core machine, checked against the measured figures."""
    pps: dict[str, Any] = results["pps"]
    http: dict[str, Any] = results["http"]
    out: list[dict[str, Any]] = []
    dr = pps.get("pylvs afpacket dr")
    if dr:
        lossless, held = dr["lossless_pps"], dr["overload_of_peak"]
        out.append(_goal("afpacket DR >= 260k pps lossless", lossless, lossless >= 260_000))
        out.append(_goal("afpacket DR holds >= 90% of peak at overload", held, held >= 0.9))
    nat = pps.get("pylvs nfqueue nat")
    if nat:
        lossless = nat["lossless_pps"]
        out.append(_goal("nfqueue NAT >= 150k pps lossless", lossless, lossless >= 150_000))
    http_dr = http.get("pylvs afpacket dr", {}).get("conn_per_s")
    haproxy = http.get("haproxy tcp", {}).get("conn_per_s")
    if http_dr is not None and haproxy is not None:
        value = f"{http_dr} vs {haproxy}"
        out.append(_goal("HTTP conn/s in DR >= HAProxy", value, http_dr >= haproxy))
    return out


def chart(results: dict[str, Any], path: Path) -> bool:
    """Bar charts of the packet rates and HTTP rates; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    pps: dict[str, Any] = results["pps"]
    http: dict[str, Any] = results["http"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [3, 1]})
    names = list(pps)
    width = 0.27
    xs = range(len(names))
    for i, (key, label) in enumerate(
        (("lossless_pps", "lossless"), ("peak_pps", "peak"), ("overload_pps", "at overload"))
    ):
        ax1.bar([x + (i - 1) * width for x in xs], [pps[n][key] / 1000 for n in names], width,
                label=label)  # fmt: skip
    ax1.set_xticks(list(xs), names, rotation=20, ha="right")
    ax1.set_ylabel("thousand packets/s (60-byte UDP)")
    ax1.set_title("Forwarding rate through the director")
    ax1.legend()
    hnames = list(http)
    ax2.bar(hnames, [http[n]["conn_per_s"] for n in hnames], color="tab:green")
    ax2.set_xticks(range(len(hnames)), hnames, rotation=20, ha="right")
    ax2.set_ylabel("HTTP connections/s")
    ax2.set_title("Short HTTP connections")
    fig.suptitle(f"pylvs bench {results['date']} (kernel {results['host']['kernel']})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
