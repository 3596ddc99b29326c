"""The method, tables, goal checks and chart of a benchmark result (the dict :func:`run.run`
returns)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["chart", "goals", "references", "runtime_of", "table"]

KERNEL = "kernel forward"
NFT = "nft dnat"
HAPROXY = "haproxy tcp"


def references(name: str) -> tuple[str, str]:
    """The kernel forwarding and nftables DNAT rows a row is compared with: the IPv6 ones for an
    IPv6 row (its name ends in ``ipv6``)."""
    suffix = " ipv6" if name.endswith(" ipv6") else ""
    return KERNEL + suffix, NFT + suffix


def _ratio(value: float | None, ref: float | None) -> str:
    return f"{value / ref:.2f}" if value is not None and ref else "-"


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def runtime_of(results: dict[str, Any], name: str) -> str:
    """The runtime a row's packets were handled on: the pylvs row's data plane, else what the
    row is (the kernel, HAProxy)."""
    row = results.get("pps", {}).get(name, {})
    if row.get("runtime"):
        return str(row["runtime"])
    if name in (*references(KERNEL), *references(KERNEL + " ipv6")):
        return "kernel"
    if name == HAPROXY:
        return "HAProxy"
    return "-"


def _lossless_cell(r: dict[str, Any]) -> str:
    text = f"{r['lossless_pps']} (sender)" if r.get("sender_bound") else str(r["lossless_pps"])
    return text + ("†" if r.get("contradictions") else "")


def table(results: dict[str, Any]) -> str:
    pps: dict[str, Any] = results["pps"]
    lines = [f"Method ({'quick' if results.get('quick') else 'full'} run):"]
    lines += [f"  {key}: {text}" for key, text in results.get("method", {}).items()]
    lines += [
        "",
        "| target | runtime | lossless pps | lossy at | x kernel | x nft | peak pps | x kernel "
        "| 3x overload: offered | held | held/peak | CPU us/pkt | 1-core pps |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    footnote = False
    for name, r in pps.items():
        kernel_name, nft_name = references(name)
        ref = pps.get(kernel_name, {})
        nft = pps.get(nft_name, {})
        cpu = r.get("cpu_us_per_packet")
        cpu_text = _cell(cpu)
        if cpu is not None and not r.get("cpu_at_lossless", True):
            cpu_text += "*"
            footnote = True
        lines.append(
            f"| {name} | {runtime_of(results, name)} | {_lossless_cell(r)}"
            f" | {_cell(r.get('lossy_pps'))}"
            f" | {_ratio(r['lossless_pps'], ref.get('lossless_pps'))}"
            f" | {_ratio(r['lossless_pps'], nft.get('lossless_pps'))}"
            f" | {r['peak_pps']} | {_ratio(r['peak_pps'], ref.get('peak_pps'))}"
            f" | {r['overload_offered_pps']} | {r['overload_pps']} | {r['overload_of_peak']:.2f}"
            f" | {cpu_text} | {_cell(r.get('one_core_pps'))} |"
        )
    if footnote:
        lines.append("* no lossless step: CPU cost at the step that delivered most")
    if any(name.endswith(" ipv6") for name in pps):
        lines.append(
            "ipv6 rows: 80-byte frames; x kernel and x nft against kernel forward ipv6 and "
            "nft dnat ipv6"
        )
    if any(r.get("contradictions") for r in pps.values()):
        lines.append(
            "† the search set aside steps that contradicted the others (lossy below a lossless "
            "rate: the machine was busy); see bench.json"
        )
    http: dict[str, Any] = results["http"]
    base = http.get(HAPROXY, {}).get("conn_per_s", 0)
    lines += ["", "| HTTP target | conn/s | x HAProxy | socket errors |", "|---|---:|---:|---:|"]
    for name, h in http.items():
        lines.append(
            f"| {name} | {h['conn_per_s']} | {_ratio(h['conn_per_s'], base)} "
            f"| {h['socket_errors']} |"
        )
    lines += _bulk_table(results)
    lines.append("")
    for goal in results.get("goals", []):
        verdict = "met" if goal["met"] else "NOT met"
        lines.append(f"goal {goal['goal']}: {verdict} ({goal['value']})")
    return "\n".join(lines)


def _gbit(results: dict[str, Any], name: str, streams: int) -> float | None:
    run = results.get("bulk", {}).get(name, {}).get(f"streams_{streams}")
    return float(run["gbit_s"]) if run else None


def _bulk_table(results: dict[str, Any]) -> list[str]:
    bulk: dict[str, Any] = results.get("bulk", {})
    if not bulk:
        return []
    lines = [
        "",
        "| bulk TCP target | runtime | 1 stream Gbit/s | x kernel | x HAProxy "
        "| 4 streams Gbit/s | x kernel | x HAProxy | retransmits 1 / 4 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, runs in bulk.items():
        cells = []
        for streams in (1, 4):
            value = _gbit(results, name, streams)
            cells.append(
                f"{_cell(value)} | {_ratio(value, _gbit(results, KERNEL, streams))} "
                f"| {_ratio(value, _gbit(results, HAPROXY, streams))}"
            )
        retrans = " / ".join(_cell(runs.get(f"streams_{n}", {}).get("retransmits")) for n in (1, 4))
        lines.append(f"| {name} | {runtime_of(results, name)} | {' | '.join(cells)} | {retrans} |")
    return lines


def _goal(goal: str, value: Any, met: bool) -> dict[str, Any]:
    return {"goal": goal, "value": value, "met": met}


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The performance issue's goals, checked against the measured figures for the pylvs rows of
    each runtime (CPython, and PyPy where its rows were measured)."""
    pps: dict[str, Any] = results["pps"]
    http: dict[str, Any] = results["http"]
    out: list[dict[str, Any]] = []

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a is not None and b else None

    def add(goal: str, value: float | None, met: bool) -> None:
        if value is not None:
            out.append(_goal(goal, value, met))

    kernel = pps.get(KERNEL, {})
    nft = pps.get(NFT, {})
    haproxy = http.get(HAPROXY, {}).get("conn_per_s")
    for suffix in ("", " pypy"):
        for method, cpu_goal in (("dr", 2.5), ("nat", 3.0)):
            name = f"pylvs afpacket {method}{suffix}"
            row = pps.get(name)
            if not row:
                continue
            label = name.removeprefix("pylvs ")
            r = ratio(row["lossless_pps"], kernel.get("lossless_pps"))
            add(f"{label} lossless / kernel forwarding lossless >= 1.0", r, (r or 0) >= 1.0)
            cpu = row.get("cpu_us_per_packet")
            add(f"{label} CPU per packet <= {cpu_goal} us", cpu, (cpu or 99) <= cpu_goal)
            held = row.get("overload_of_peak")
            add(f"{label} held at 3x overload / peak >= 0.9", held, (held or 0) >= 0.9)
            conn = http.get(name, {}).get("conn_per_s")
            want = 1.5 if method == "dr" else 1.0
            r = ratio(conn, haproxy)
            add(f"HTTP conn/s through {label} / HAProxy >= {want}", r, (r or 0) >= want)
        nat = pps.get(f"pylvs nfqueue nat{suffix}")
        if nat:
            r = ratio(nat["peak_pps"], nft.get("peak_pps"))
            add(f"nfqueue nat{suffix} peak / nft DNAT peak >= 0.8", r, (r or 0) >= 0.8)
        r = ratio(_gbit(results, f"pylvs afpacket dr{suffix}", 1), _gbit(results, KERNEL, 1))
        add(f"bulk TCP Gbit/s through afpacket dr{suffix} / kernel >= 0.5", r, (r or 0) >= 0.5)
    return out


_RUNTIME_COLOURS = {"CPython": "tab:blue", "PyPy": "tab:orange", "kernel": "tab:gray",
                    "HAProxy": "tab:green"}  # fmt: skip


def _colour(runtime: str) -> str:
    return _RUNTIME_COLOURS.get(runtime.split()[0] if runtime else "", "tab:purple")


def _label(results: dict[str, Any], name: str) -> str:
    return f"{name.removeprefix('pylvs ')}\n{runtime_of(results, name)}"


def _ticks(ax: Any, results: dict[str, Any], names: list[str]) -> None:
    ax.set_xticks(range(len(names)), [_label(results, n) for n in names], rotation=30,
                  ha="right", fontsize=8)  # fmt: skip
    for tick, name in zip(ax.get_xticklabels(), names, strict=True):
        tick.set_color(_colour(runtime_of(results, name)))


def chart(results: dict[str, Any], path: Path) -> bool:
    """Bar charts of the packet rates, CPU cost, HTTP and bulk rates; False when matplotlib is
    missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        return False
    pps: dict[str, Any] = results["pps"]
    http: dict[str, Any] = results["http"]
    bulk: dict[str, Any] = results.get("bulk", {})
    fig, ((ax1, ax2), (ax3, ax4)) = plt.subplots(
        2, 2, figsize=(16, 10), gridspec_kw={"width_ratios": [3, 2]}
    )
    names = list(pps)
    width = 0.27
    xs = range(len(names))
    # Rates in their own colours; the runtime of every row is in its tick label (and colour).
    for i, (key, label, colour) in enumerate(
        (
            ("lossless_pps", "lossless", "tab:purple"),
            ("peak_pps", "peak", "tab:olive"),
            ("overload_pps", "at 3x overload", "tab:cyan"),
        )
    ):
        ax1.bar([x + (i - 1) * width for x in xs], [pps[n][key] / 1000 for n in names], width,
                label=label, color=colour)  # fmt: skip
    _ticks(ax1, results, names)
    ax1.set_ylabel("thousand packets/s (60-byte UDP; 80-byte for ipv6)")
    ax1.set_title("Forwarding rate through the director")
    ax1.legend()
    cpu_names = [n for n in names if pps[n].get("cpu_us_per_packet") is not None]
    bars = ax2.bar(
        range(len(cpu_names)),
        [pps[n]["cpu_us_per_packet"] for n in cpu_names],
        color=[_colour(runtime_of(results, n)) for n in cpu_names],
    )
    for bar, n in zip(bars, cpu_names, strict=True):
        core = pps[n].get("one_core_pps")
        if core:
            ax2.annotate(f"{core / 1000:.0f}k/s", (bar.get_x() + bar.get_width() / 2,
                         bar.get_height()), ha="center", va="bottom", fontsize=8)  # fmt: skip
    _ticks(ax2, results, cpu_names)
    ax2.set_ylabel("CPU µs per packet (labels: pps one core could carry)")
    ax2.set_title("pylvs CPU cost at the highest lossless rate")
    runtimes = sorted({runtime_of(results, n).split()[0] for n in cpu_names})
    if runtimes:
        ax2.legend(handles=[Patch(color=_colour(r), label=r) for r in runtimes], title="data plane")
    hnames = list(http)
    ax3.bar(range(len(hnames)), [http[n]["conn_per_s"] for n in hnames],
            color=[_colour(runtime_of(results, n)) for n in hnames])  # fmt: skip
    _ticks(ax3, results, hnames)
    ax3.set_ylabel("HTTP connections/s")
    ax3.set_title("Short HTTP connections")
    bnames = list(bulk)
    colours = [_colour(runtime_of(results, n)) for n in bnames]
    for i, streams in enumerate((1, 4)):
        ax4.bar([x + (i - 0.5) * 0.4 for x in range(len(bnames))],
                [_gbit(results, n, streams) or 0.0 for n in bnames], 0.4, color=colours,
                hatch="//" if streams > 1 else None, edgecolor="white")  # fmt: skip
    _ticks(ax4, results, bnames)
    ax4.set_ylabel("Gbit/s (iperf3, received)")
    ax4.set_title("Bulk TCP: 1 stream (plain), 4 streams (hatched)")
    offl = results.get("method", {}).get("offloads", "")
    fig.suptitle(f"pylvs bench {results['date']} (kernel {results['host']['kernel']}; {offl})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
