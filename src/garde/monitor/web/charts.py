"""A service's history as people read it: availability and response-time charts over 24 h,
7 d, 30 d or 90 d (``/services/{id}?period=7d``), with their table, in fr/nl/en.

Every figure is over the time **observed**: a bucket nobody probed is drawn as "not
observed" and counts neither as up nor as down, and the page says how much of the period
was observed (``Observed``, the same rule as the SLA report and the status page). The
charts read the hour and day rows the monitor keeps as it records probes (never raw
results), so a page costs a few hundred rows whatever the history's length.

The SVG is drawn here, server-side, in the page's own units (no script): labelled axes,
Belgian time on the time axis, ``<title>``/``<desc>`` for screen readers and a table with
the same numbers.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from garde.catalog import Catalog
from garde.locales import ZONE, local_time
from garde.monitor.history import SERVICE_PREFIX, SERVICE_SAMPLE_INTERVAL
from garde.monitor.observed import Observed, row_seconds
from garde.monitor.store.base import Aggregate, Resolution, Store
from garde.monitor.web.i18n import labels, span
from garde.monitor.web.requests import HttpProblem, language
from garde.monitor.web.site import Site
from garde.monitor.web.svg import availability_class

HOUR, DAY = 3600, 86400


@dataclass(frozen=True, slots=True)
class Period:
    name: str
    seconds: int
    step: int
    """Seconds per bar (hour rows are summed four by four over 7 days)."""
    resolution: Resolution


PERIODS = {
    p.name: p
    for p in (
        Period("24h", DAY, HOUR, Resolution.HOUR),
        Period("7d", 7 * DAY, 4 * HOUR, Resolution.HOUR),
        Period("30d", 30 * DAY, DAY, Resolution.DAY),
        Period("90d", 90 * DAY, DAY, Resolution.DAY),
    )
}
DEFAULT_PERIOD = "24h"

_WORDS: dict[str, dict[str, str]] = {
    "history_of": {"en": "History: {name}", "fr": "Historique : {name}", "nl": "Historiek: {name}"},
    "period": {"en": "Period", "fr": "Période", "nl": "Periode"},
    "availability": {"en": "Availability", "fr": "Disponibilité", "nl": "Beschikbaarheid"},
    "response_time": {
        "en": "Response time (mean)",
        "fr": "Temps de réponse (moyenne)",
        "nl": "Antwoordtijd (gemiddelde)",
    },
    "belgian_time": {"en": "Belgian time", "fr": "heure belge", "nl": "Belgische tijd"},
    "observed_share": {
        "en": "{share} of the period observed ({span} of {total})",
        "fr": "{share} de la période observée ({span} sur {total})",
        "nl": "{share} van de periode waargenomen ({span} van {total})",
    },
    "over_observed_only": {
        "en": "Figures are over the time observed only: a time when no probe ran counts"
        " neither as up nor as down.",
        "fr": "Les chiffres ne portent que sur le temps observé : un moment sans sonde ne"
        " compte ni comme disponible ni comme indisponible.",
        "nl": "De cijfers gelden alleen voor de waargenomen tijd: een moment zonder meting"
        " telt niet als beschikbaar en niet als onbeschikbaar.",
    },
    "not_observed": {"en": "not observed", "fr": "non observé", "nl": "niet waargenomen"},
    "insufficient": {
        "en": "insufficient data",
        "fr": "données insuffisantes",
        "nl": "onvoldoende gegevens",
    },
    "service_level": {
        "en": "the service (down when no data center answers)",
        "fr": "le service (indisponible quand aucun centre ne répond)",
        "nl": "de dienst (onbeschikbaar als geen datacenter antwoordt)",
    },
    "data_center": {"en": "Data center", "fr": "Centre de données", "nl": "Datacenter"},
    "start": {"en": "Start", "fr": "Début", "nl": "Begin"},
    "observed": {"en": "Observed", "fr": "Observé", "nl": "Waargenomen"},
    "table": {
        "en": "The numbers, as a table",
        "fr": "Les chiffres, en tableau",
        "nl": "De cijfers, als tabel",
    },
    "per_step": {
        "en": "one bar per {step}",
        "fr": "une barre par {step}",
        "nl": "één staaf per {step}",
    },
    "no_latency": {
        "en": "No successful probe in this period.",
        "fr": "Aucune sonde réussie sur cette période.",
        "nl": "Geen geslaagde meting in deze periode.",
    },
    "back": {"en": "Status page", "fr": "Page d'état", "nl": "Statuspagina"},
    "latency_desc": {
        "en": "Mean response time per data center, in milliseconds; highest {peak}.",
        "fr": "Temps de réponse moyen par centre de données, en millisecondes ; maximum {peak}.",
        "nl": "Gemiddelde antwoordtijd per datacenter, in milliseconden; hoogste {peak}.",
    },
}
_PERIOD_NAMES = {
    "24h": {"en": "24 hours", "fr": "24 heures", "nl": "24 uur"},
    "7d": {"en": "7 days", "fr": "7 jours", "nl": "7 dagen"},
    "30d": {"en": "30 days", "fr": "30 jours", "nl": "30 dagen"},
    "90d": {"en": "90 days", "fr": "90 jours", "nl": "90 dagen"},
}


def words(lang: str) -> dict[str, str]:
    """The page's labels: the status page's and the charts' own."""
    own = {key: texts.get(lang, texts["en"]) for key, texts in _WORDS.items()}
    return {**labels(lang), **own}


def percent(value: float, lang: str, digits: int = 2) -> str:
    """``99.95 %`` (``99,95 %`` in French and Dutch)."""
    text = f"{value * 100:.{digits}f}"
    return (text.replace(".", ",") if lang in ("fr", "nl") else text) + "\u202f%"


# -- the numbers ----------------------------------------------------------------------------


@dataclass(slots=True)
class Slot:
    """One bar: the rows of one step of one series."""

    start: int
    n: int = 0
    up: int = 0
    latency_sum: float = 0.0
    observed: float = 0.0

    @property
    def availability(self) -> float | None:
        return self.up / self.n if self.n else None

    @property
    def latency(self) -> float | None:
        return self.latency_sum / self.up if self.up else None


@dataclass(slots=True)
class Series:
    target: str
    label: str
    slots: list[Slot]
    observed: Observed
    n: int = 0
    up: int = 0

    @property
    def availability(self) -> float | None:
        """Over the samples taken (the time observed), None when too little was."""
        return self.observed.figure(self.up / self.n if self.n else None)


@dataclass
class ServiceHistory:
    service: str
    period: Period
    first: int
    now: float
    service_series: Series
    data_centers: list[Series] = field(default_factory=list)


def service_history(
    catalog: Catalog, store: Store, service_id: str, period: Period, now: float
) -> ServiceHistory:
    """The rows of ``service_id``'s own series and of its data centers over ``period``."""
    service = catalog.services[service_id]
    # As many bars as the period has steps, the last one the step going on now (so far).
    end = -(-int(now) // period.step) * period.step
    first = end - period.seconds
    steps = list(range(first, end, period.step))
    own = SERVICE_PREFIX + service_id
    dcs = {f"{service_id}@{dc}": dc for dc in service.endpoints}
    size = period.resolution.seconds
    buckets = list(range(first, end, size))
    rows = store.aggregates_at(period.resolution, buckets, [own, *dcs])
    by_target: dict[str, list[Aggregate]] = {}
    for row in rows:
        by_target.setdefault(row.target, []).append(row)
    interval = service.probe.interval

    def series(target: str, label: str, every: float) -> Series:
        slots = {start: Slot(start) for start in steps}
        total = Series(target, label, list(slots.values()), Observed(0.0, now - first))
        seconds = 0.0
        for row in by_target.get(target, []):
            slot = slots.get(row.bucket - (row.bucket - first) % period.step)
            if slot is None:
                continue
            covered = row_seconds(row, period.resolution.seconds, every)
            slot.n += row.n
            slot.up += row.up
            slot.latency_sum += row.latency_sum
            slot.observed += covered
            total.n += row.n
            total.up += row.up
            seconds += covered
        total.observed = Observed(min(seconds, now - first), now - first)
        return total

    return ServiceHistory(
        service_id,
        period,
        first,
        now,
        series(own, service.name, SERVICE_SAMPLE_INTERVAL),
        [series(tid, dc, interval) for tid, dc in dcs.items()],
    )


# -- the drawings ---------------------------------------------------------------------------

WIDTH, HEIGHT = 360, 170
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 18, 34
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
LINE_STYLES = [("#0969da", ""), ("#bc4c00", "6 3"), ("#8250df", "2 2"), ("#1a7f37", "8 2 2 2")]
"""Colour and dash per data center: told apart without colour too."""
TEXT = 'font-size="10" fill="#424a53" font-family="system-ui, sans-serif"'


def time_ticks(first: int, end: int, period: Period) -> list[tuple[int, str]]:
    """Instants and labels of the time axis, in Belgian time: every 6 h over a day, each
    midnight over 7 days, every 7 days over 30, the 1st and 15th of months over 90."""
    ticks: list[tuple[int, str]] = []
    zone = ZONE
    moment = datetime.fromtimestamp(first, zone).replace(minute=0, second=0, microsecond=0)
    stop = datetime.fromtimestamp(end, zone)
    while moment <= stop:
        stamp = int(moment.timestamp())
        if stamp >= first:
            local = moment
            if period.name == "24h" and local.hour % 6 == 0:
                ticks.append((stamp, local.strftime("%H:%M")))
            elif local.hour == 0 and period.name != "24h":
                day = local.day
                if (
                    period.name == "7d"
                    or (period.name == "30d" and (end - stamp) // DAY % 7 == 0)
                    or (period.name == "90d" and day in (1, 15))
                ):
                    ticks.append((stamp, local.strftime("%d/%m")))
        # Step in UTC (whole hours), so a DST change is neither skipped nor repeated.
        moment = datetime.fromtimestamp(moment.timestamp() + HOUR, zone)
    return ticks


def _x(at: float, first: int, end: int) -> float:
    return LEFT + (at - first) / max(1, end - first) * PLOT_W


def _frame(
    ident: str, title: str, desc: str, y_ticks: list[tuple[float, str]], y_unit: str, body: str,
    x_ticks: list[tuple[int, str]], first: int, end: int, x_unit: str,
) -> str:  # fmt: skip
    parts = [
        f'<svg class="chart" id="{ident}" role="img" aria-labelledby="{ident}-t {ident}-d"'
        f' width="100%" viewBox="0 0 {WIDTH} {HEIGHT}" preserveAspectRatio="xMinYMin meet">',
        f'<title id="{ident}-t">{escape(title)}</title><desc id="{ident}-d">{escape(desc)}</desc>',
    ]
    for y, text in y_ticks:
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eaeef2"/>'
            f'<text class="y-tick" x="{LEFT - 4}" y="{y + 3:.1f}" text-anchor="end" {TEXT}>'
            f"{escape(text)}</text>"
        )
    parts.append(body)
    base = TOP + PLOT_H
    parts.append(
        f'<line class="axis" x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{base}" y2="{base}"'
        ' stroke="#57606a"/>'
        f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{base}" stroke="#57606a"/>'
    )
    for at, text in x_ticks:
        x = _x(at, first, end)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 4}" stroke="#57606a"/>'
            f'<text class="x-tick" x="{x:.1f}" y="{base + 14}" text-anchor="middle" {TEXT}>'
            f"{escape(text)}</text>"
        )
    parts.append(
        f'<text class="x-unit" x="{LEFT + PLOT_W / 2}" y="{HEIGHT - 4}" text-anchor="middle"'
        f" {TEXT}>{escape(x_unit)}</text>"
        f'<text class="y-unit" x="{LEFT - 4}" y="{TOP - 8}" text-anchor="end" {TEXT}>'
        f"{escape(y_unit)}</text></svg>"
    )
    return "".join(parts)


AVAILABILITY_FLOORS = (0.99, 0.9, 0.5, 0.0)
BAR_COLOURS = {"g": "#2da44e", "f": "#bf8700", "p": "#fb8500", "b": "#cf222e"}


def availability_chart(history: ServiceHistory, lang: str) -> str:
    """One bar per step of the service's own series: its height the availability over the
    samples of that step (the y axis starts at a floor so that 99.9 % is not a full bar), a
    grey hatched bar where nothing was observed."""
    t = words(lang)
    series = history.service_series
    end = history.first + len(series.slots) * history.period.step
    seen = [s.availability for s in series.slots if s.availability is not None]
    low = min(seen, default=1.0)
    # Strictly under the lowest bar, so that every observed bar shows.
    floor = next(f for f in AVAILABILITY_FLOORS if low > f or f == 0.0)
    height = PLOT_H

    def y(value: float) -> float:
        return TOP + (1 - (value - floor) / (1 - floor)) * height

    bars = []
    width = PLOT_W / max(1, len(series.slots))
    for slot in series.slots:
        x = _x(slot.start, history.first, end)
        value = slot.availability
        when = local_time(slot.start)
        if value is None:
            bars.append(
                f'<rect class="not-observed" x="{x:.1f}" y="{TOP}" width="{width * 0.85:.2f}"'
                f' height="{height}" fill="#eaeef2"><title>{when}: {t["not_observed"]}</title>'
                "</rect>"
            )
            continue
        top = min(y(value), TOP + height - 1)  # at least a line: observed, even if all down
        colour = BAR_COLOURS[availability_class(value)]
        bars.append(
            f'<rect class="observed" x="{x:.1f}" y="{top:.1f}" width="{width * 0.85:.2f}"'
            f' height="{TOP + height - top:.1f}" fill="{colour}"><title>{when}:'
            f" {percent(value, lang)}</title></rect>"
        )
    middle = floor + (1 - floor) / 2
    y_ticks = [(y(v), percent(v, lang, 1 if floor >= 0.9 else 0)) for v in (floor, middle, 1.0)]
    figure = series.availability
    desc = (
        f"{t['availability']}, {t['service_level']}: "
        + (percent(figure, lang, 3) if figure is not None else t["insufficient"])
        + ". "
        + observed_sentence(series.observed, lang)
    )
    return _frame(
        "availability-chart",
        f"{t['availability']} – {period_name(history.period, lang)}",
        desc,
        y_ticks,
        "%",
        "".join(bars),
        time_ticks(history.first, end, history.period),
        history.first,
        end,
        t["belgian_time"],
    )


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 × 10^k at or above ``value`` (ms)."""
    scale = 1.0
    while scale * 10 < value:
        scale *= 10
    for factor in (1, 2, 5, 10):
        if scale * factor >= value:
            return scale * factor
    return scale * 10


def latency_chart(history: ServiceHistory, lang: str) -> str:
    """A line per data center of its mean response time per step; gaps where none."""
    t = words(lang)
    end = history.first + len(history.service_series.slots) * history.period.step
    values = [
        s.latency * 1000 for dc in history.data_centers for s in dc.slots if s.latency is not None
    ]
    top = nice_ceiling(max(values, default=1.0))
    step = history.period.step

    def y(ms: float) -> float:
        return TOP + (1 - ms / top) * PLOT_H

    lines = []
    for index, dc in enumerate(history.data_centers):
        colour, dash = LINE_STYLES[index % len(LINE_STYLES)]
        segments: list[list[str]] = [[]]
        for slot in dc.slots:
            if slot.latency is None:
                if segments[-1]:
                    segments.append([])
                continue
            x = _x(slot.start + step / 2, history.first, end)
            segments[-1].append(f"{x:.1f},{y(slot.latency * 1000):.1f}")
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        for points in segments:
            if len(points) == 1:
                cx, cy = points[0].split(",")
                lines.append(f'<circle cx="{cx}" cy="{cy}" r="1.8" fill="{colour}"/>')
            elif points:
                lines.append(
                    f'<polyline class="latency" data-dc="{escape(dc.label)}" fill="none"'
                    f' stroke="{colour}" stroke-width="1.6"{dashes} points="{" ".join(points)}"/>'
                )
    y_ticks = [(y(v), f"{v:g}") for v in (0.0, top / 2, top)]
    peak = f"{max(values):.0f} ms" if values else "–"
    return _frame(
        "latency-chart",
        f"{t['response_time']} – {period_name(history.period, lang)}",
        t["latency_desc"].format(peak=peak),
        y_ticks,
        "ms",
        "".join(lines),
        time_ticks(history.first, end, history.period),
        history.first,
        end,
        t["belgian_time"],
    )


def period_name(period: Period, lang: str) -> str:
    return _PERIOD_NAMES[period.name].get(lang, _PERIOD_NAMES[period.name]["en"])


def observed_sentence(observed: Observed, lang: str) -> str:
    """``50 % of the period observed (12 h of 24 h)``."""
    share = observed.coverage or 0.0
    return words(lang)["observed_share"].format(
        share=percent(share, lang, 0), span=span(observed.seconds, lang),
        total=span(observed.period, lang),
    )  # fmt: skip


# -- the page -------------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.0f}"


def history_page(history: ServiceHistory, catalog: Catalog, lang: str) -> dict[str, Any]:
    t = words(lang)
    service = catalog.services[history.service]
    step = history.period.step
    step_words = span(step, lang)
    dcs = history.data_centers
    rows = []
    for index, slot in enumerate(history.service_series.slots):
        rows.append(
            {
                # A day's bar is a UTC day (01:00 or 02:00 in Brussels): its date says it.
                "start": local_time(slot.start)
                if step < DAY
                else datetime.fromtimestamp(slot.start, ZONE).strftime("%Y-%m-%d"),
                "availability": "–" if slot.n == 0 else percent(slot.up / slot.n, lang),
                "observed": span(min(slot.observed, step), lang) if slot.observed else "–",
                "latencies": [_ms(dc.slots[index].latency) for dc in dcs],
            }
        )
    figure = history.service_series.availability
    return {
        "lang": lang,
        "t": t,
        "service": {"id": history.service, "name": service.name_in(lang)},
        "period": history.period.name,
        "period_name": period_name(history.period, lang),
        "periods": [(name, period_name(p, lang)) for name, p in PERIODS.items()],
        "figure": percent(figure, lang, 3) if figure is not None else t["insufficient"],
        "observed": observed_sentence(history.service_series.observed, lang),
        "coverage": history.service_series.observed.coverage or 0.0,
        "per_step": t["per_step"].format(step=step_words),
        "data_centers": [
            {
                "dc": dc.label,
                "figure": percent(dc.availability, lang, 3)
                if dc.availability is not None
                else t["insufficient"],
                "observed": observed_sentence(dc.observed, lang),
                "colour": LINE_STYLES[i % len(LINE_STYLES)][0],
                "dash": LINE_STYLES[i % len(LINE_STYLES)][1],
            }
            for i, dc in enumerate(dcs)
        ],
        "availability_chart": availability_chart(history, lang),
        "latency_chart": latency_chart(history, lang),
        "rows": rows,
        "updated": local_time(history.now),
    }


class ServicePages:
    """``/services/{id}``: one service's history; ``?period=24h|7d|30d|90d``, ``?lang=``."""

    def __init__(self, site: Site) -> None:
        self.site = site

    async def history(self, request: Request) -> Response:
        monitor = self.site.monitor
        sid = request.path_params["id"]
        if sid not in monitor.catalog.services:
            raise HttpProblem(
                404, f"no service {sid!r} in the catalog; the status page lists them (/)"
            )
        name = request.query_params.get("period", DEFAULT_PERIOD)
        period = PERIODS.get(name)
        if period is None:
            raise HttpProblem(
                400, f"period {name!r} is not one of {', '.join(PERIODS)}: use ?period=7d"
            )
        lang = language(request)
        now = monitor.clock.now()

        def render() -> str:
            found = service_history(monitor.catalog, monitor.store, sid, period, now)
            model = history_page(found, monitor.catalog, lang)
            return self.site.env.get_template("service.html").render(**model)

        html = await asyncio.to_thread(render)
        return HTMLResponse(html, headers={"Content-Language": lang, "Cache-Control": "no-cache"})
