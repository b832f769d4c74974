"""Prometheus ``/metrics``: target and service states, latencies, incidents, alerts, lag."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from garde.monitor.state import ServiceStatus, TargetStatus

if TYPE_CHECKING:
    from garde.monitor.service import Monitor

_UP = {TargetStatus.UP: 1.0, TargetStatus.DEGRADED: 1.0, TargetStatus.DOWN: 0.0}


class MonitorCollector(Collector):
    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        m = self.monitor
        snap = m.snapshot
        up = GaugeMetricFamily(
            "garde_monitor_target_up",
            "1 if the target answers (quorum of locations)",
            labels=["target", "service", "dc"],
        )
        latency = GaugeMetricFamily(
            "garde_monitor_target_latency_seconds",
            "Latency of the last probe",
            labels=["target"],
        )
        for tid, view in snap.targets.items():
            if view.status in _UP:
                up.add_metric([tid, view.service, view.dc], _UP[view.status])
            if view.latency is not None:
                latency.add_metric([tid], view.latency)
        yield up
        yield latency
        status = GaugeMetricFamily(
            "garde_monitor_service_status",
            "1 for the service's current status",
            labels=["service", "status"],
        )
        for sid, service in snap.services.items():
            for value in ServiceStatus:
                status.add_metric([sid, value.value], float(service.status is value))
        yield status
        yield GaugeMetricFamily(
            "garde_monitor_open_incidents",
            "Incidents open now",
            value=len(m.incidents.open_incidents()),
        )
        yield CounterMetricFamily(
            "garde_monitor_results",
            "Probe results ingested (local and pushed)",
            value=m.results_ingested,
        )
        alerts = CounterMetricFamily(
            "garde_monitor_notifications", "Notifications by outcome", labels=["outcome"]
        )
        alerts.add_metric(["sent"], m.notifier.sent)
        alerts.add_metric(["muted"], m.notifier.muted)
        alerts.add_metric(["failed"], m.notifier.failed)
        yield alerts
        if m.scheduler is not None:
            stats = m.scheduler.stats
            yield CounterMetricFamily(
                "garde_monitor_probe_overruns",
                "Probes skipped: previous one still running",
                value=stats.overruns,
            )
            lags = sorted(stats.lag_samples[-1000:])
            if lags:
                yield GaugeMetricFamily(
                    "garde_monitor_schedule_lag_p99_seconds",
                    "How late probes start after they are due (p99 of the last 1000)",
                    value=lags[int(0.99 * (len(lags) - 1))],
                )


def render_metrics(monitor: Monitor) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(monitor))
    return generate_latest(registry)
