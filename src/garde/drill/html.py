"""The drill's HTML report: one self-contained page (inline SVG and CSS, no script, nothing
fetched) a BCP committee reads at a glance: the verdict, outcomes per second with the fault
timeline shaded, journal depth, the data centers' states as the monitor saw them, the drain.
"""

from __future__ import annotations

from html import escape
from typing import Any

from garde.drill.workload import OUTCOMES

COLOURS = {
    "served": "#2e7d32",
    "failed over": "#66bb6a",
    "journaled then delivered": "#1565c0",
    "stale read": "#f9a825",
    "refused with procedure": "#ef6c00",
    "conflict": "#8e24aa",
    "expired": "#6d4c41",
    "error": "#c62828",
    "lost": "#000000",
}
STATES = {"up": "#66bb6a", "degraded": "#f9a825", "down": "#c62828", "unknown": "#bdbdbd"}
W, H, PAD = 900, 220, 40


def _x(t: float, seconds: float) -> float:
    return PAD + (W - 2 * PAD) * t / max(seconds, 1e-9)


def _shade(report: dict[str, Any], seconds: float, height: float) -> str:
    out = []
    for fault in report["faults"]:
        x0, x1 = _x(fault["start"], seconds), _x(max(fault["end"], fault["start"] + 0.2), seconds)
        what = f"{fault['kind']} {fault.get('service') or fault.get('site') or ''}"
        out.append(
            f'<rect class="fault" x="{x0:.1f}" y="10" width="{x1 - x0:.1f}" height="{height - 30}"'
            f' fill="#e53935" fill-opacity="0.08"><title>{escape(what)}</title></rect>'
        )
    return "".join(out)


def _axis(seconds: float, height: float, top: float) -> str:
    step = max(1, round(seconds / 10))
    ticks = "".join(
        f'<text x="{_x(t, seconds):.1f}" y="{height - 5}" font-size="10">{t}s</text>'
        for t in range(0, int(seconds) + 1, step)
    )
    return (
        f'<line x1="{PAD}" y1="{height - 20}" x2="{W - PAD}" y2="{height - 20}" stroke="#999"/>'
        f'<text x="2" y="20" font-size="10">{top:g}</text>{ticks}'
    )


def outcomes_plot(report: dict[str, Any]) -> str:
    series = report["series"]
    seconds = series["seconds"]
    columns = series["outcomes"]
    totals = [sum(c[i] for c in columns.values()) for i in range(seconds)]
    top = max(totals, default=0) or 1
    width = (W - 2 * PAD) / seconds
    bars = []
    for i in range(seconds):
        y = H - 20.0
        for outcome in OUTCOMES:
            n = columns.get(outcome, [0] * seconds)[i]
            if not n:
                continue
            h = (H - 40) * n / top
            y -= h
            bars.append(
                f'<rect class="bar" x="{_x(i, seconds):.1f}" y="{y:.1f}" width="{width * 0.9:.1f}"'
                f' height="{h:.1f}" fill="{COLOURS[outcome]}"><title>{i}s: {n} {outcome}</title>'
                "</rect>"
            )
    return _svg("outcomes", _shade(report, seconds, H) + "".join(bars) + _axis(seconds, H, top))


def _line(points: list[list[Any]], seconds: float, top: float, start: float = 0.0) -> str:
    coords = " ".join(
        f"{_x(t - start, seconds):.1f},{H - 20 - (H - 40) * d / top:.1f}" for t, d in points
    )
    return f'<polyline fill="none" stroke="#1565c0" stroke-width="2" points="{coords}"/>'


def depth_plot(report: dict[str, Any]) -> str:
    series = report["series"]
    seconds, points = series["seconds"], series["depth"]
    top = max((d for _, d in points), default=0) or 1
    body = _shade(report, seconds, H) + _line(points, seconds, top) + _axis(seconds, H, top)
    return _svg("depth", body)


def drain_plot(report: dict[str, Any]) -> str:
    """Depth from the last fault's end: how fast the journals emptied once the chain was back."""
    end = report["times"]["last_fault_end"]
    points = [p for p in report["series"]["depth"] if p[0] >= end]
    seconds = max(1.0, (points[-1][0] - end) if points else 1.0)
    top = max((d for _, d in points), default=0) or 1
    return _svg("drain", _line(points, seconds, top, start=end) + _axis(seconds, H, top))


def states_plot(report: dict[str, Any]) -> str:
    series = report["series"]
    seconds = series["seconds"]
    faulted = {f"{f['service']}@{f['dc']}" for f in report["faults"] if f.get("service")}
    lanes = [
        k
        for k, v in sorted(series["dc_states"].items())
        if k in faulted or any(s in ("down", "degraded") for _, s in v)
    ]
    height = 30 + 16 * max(1, len(lanes))
    rows = []
    for row, lane in enumerate(lanes):
        y = 10 + 16 * row
        changes = series["dc_states"][lane]
        for i, (t, state) in enumerate(changes):
            t1 = changes[i + 1][0] if i + 1 < len(changes) else seconds
            x0, x1 = _x(t, seconds), _x(t1, seconds)
            rows.append(
                f'<rect class="state" x="{x0:.1f}" y="{y}" width="{max(0.5, x1 - x0):.1f}"'
                f' height="12" fill="{STATES.get(state, "#bdbdbd")}">'
                f"<title>{escape(lane)}: {escape(state)} from {t:g}s</title></rect>"
            )
        rows.append(f'<text x="{W - PAD + 4}" y="{y + 10}" font-size="10">{escape(lane)}</text>')
    if not lanes:
        rows.append(f'<text x="{PAD}" y="24" font-size="12">no state seen (no monitor)</text>')
    shade = _shade(report, seconds, height + 20)
    return _svg("states", shade + "".join(rows), height=height, width=W + 160)


def _svg(name: str, body: str, *, height: int = H, width: int = W) -> str:
    return (
        f'<svg class="plot" id="plot-{name}" role="img" viewBox="0 0 {width} {height}"'
        f' width="100%" xmlns="http://www.w3.org/2000/svg">{body}</svg>'
    )


def _legend() -> str:
    return "".join(
        f'<span class="key"><i style="background:{c}"></i>{escape(o)}</span>'
        for o, c in COLOURS.items()
    )


def _table(report: dict[str, Any]) -> str:
    head = "".join(f"<th>{escape(o)}</th>" for o in OUTCOMES)
    rows = []
    for row in report["outcomes"]:
        cells = "".join(f"<td>{row['counts'].get(o, '')}</td>" for o in OUTCOMES)
        rows.append(
            f"<tr><td>{escape(row['service'])}.{escape(row['operation'])}</td>"
            f"<td>{escape(row['target_group'])}</td>{cells}<td>{row['total']}</td></tr>"
        )
    return (
        f"<table><tr><th>operation</th><th>target group</th>{head}<th>total</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def render(report: dict[str, Any]) -> str:
    passed = report["verdict"]["passed"]
    scenario = report["scenario"]
    expectations = "".join(
        f'<tr class="{"met" if e["met"] else "missed"}"><td>{"met" if e["met"] else "MISSED"}</td>'
        f"<td>{escape(e['name'])}</td><td>{escape(e['expected'])}</td>"
        f"<td>{escape(e['measured'])}</td><td>{escape(e['detail'])}</td></tr>"
        for e in report["expectations"]
    )
    ledger = report["ledger"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>garde drill {escape(scenario["name"])}: {"passed" if passed else "missed"}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1100px; color: #222; }}
.verdict {{ font-size: 1.6rem; font-weight: bold; padding: .6rem 1rem; border-radius: 6px;
  color: white; background: {"#2e7d32" if passed else "#c62828"}; }}
table {{ border-collapse: collapse; font-size: .85rem; margin: .5rem 0 1rem; }}
td, th {{ border: 1px solid #ddd; padding: 2px 6px; text-align: left; }}
tr.missed td {{ background: #ffebee; }} tr.met td:first-child {{ color: #2e7d32; }}
.key {{ margin-right: 1rem; font-size: .8rem; }}
.key i {{ display: inline-block; width: .8rem; height: .8rem; margin-right: .3rem; }}
</style></head><body>
<h1>Drill {escape(scenario["name"])}</h1>
<p>{escape(scenario["description"])}<br><small>{escape(scenario["source"])}</small></p>
<p class="verdict" id="verdict">{
        "Every expectation held"
        if passed
        else f"{report['verdict']['missed']} expectation(s) missed"
    }</p>
<p id="summary">{escape(report["summary"])}</p>
<h2>Expectations</h2>
<table id="expectations"><tr><th></th><th>what</th><th>expected</th><th>measured</th>
<th>detail</th></tr>{expectations}</table>
<h2>What the ledger says</h2>
<p>{ledger["acknowledged"]} writes acknowledged, {ledger["lost"]} lost,
{ledger["duplicates"]} business effects applied twice; {ledger["effects"]} effects in all
(counted from {escape(ledger["counted_from"])}).</p>
<h2>Requests per second, by outcome</h2>
<p>Shaded: the faults of the timeline.</p>{_legend()}
{outcomes_plot(report)}
<h2>Journal depth</h2>{depth_plot(report)}
<h2>Data centers, as the monitor saw them</h2>{states_plot(report)}
<h2>Drain, from the last fault's end</h2>{drain_plot(report)}
<h2>Requests by service, operation and target group</h2>{_table(report)}
</body></html>
"""
