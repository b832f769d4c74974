"""The monitor: probes every service in every data center, derives what the state means for
the chain and for each profession, keeps incidents and bounded history, and publishes them
(status page, JSON API, feeds, alerts, SLA reports).

Layout: ``targets`` (what to probe, from the catalog), ``probes`` (one check), ``scheduler``
(when), ``state`` (hysteresis, quorum, service state, impact), ``incidents`` and
``maintenance``, ``history`` (aggregation), ``store/`` (SQLite, PostgreSQL), ``web/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from garde.faces import lazy

if TYPE_CHECKING:
    from garde.monitor.agent import ProbeAgent
    from garde.monitor.alerts import AppriseChannel, Channel, Notifier, WebhookChannel
    from garde.monitor.config import (
        AgentSettings,
        MonitorSettings,
        load_agent_settings,
        load_monitor_settings,
    )
    from garde.monitor.deliveries import Subscriptions, open_subscriptions
    from garde.monitor.formats import incident_json, maintenance_json, parse_time, when
    from garde.monitor.maintenance import WindowNames, check_rrule, check_scope, plan_window
    from garde.monitor.observed import MIN_COVERAGE, MIN_OBSERVED, duration
    from garde.monitor.service import Monitor
    from garde.monitor.settings import load_probe_settings
    from garde.monitor.sla import sla_csv, sla_json, sla_report
    from garde.monitor.store import open_store
    from garde.monitor.store.base import Incident, Retention, Store
    from garde.monitor.subscriptions import SubscriptionRules
    from garde.monitor.targets import ProbeSettings, targets_from_catalog
    from garde.monitor.web.app import create_app
    from garde.monitor.web.pages import render_sla
    from garde.monitor.web.server import serve
    from garde.monitor.web.site import templates

_FACE = {
    "AgentSettings": "garde.monitor.config",
    "load_agent_settings": "garde.monitor.config",
    "load_monitor_settings": "garde.monitor.config",
    "MonitorSettings": "garde.monitor.config",
    "AppriseChannel": "garde.monitor.alerts",
    "Channel": "garde.monitor.alerts",
    "check_rrule": "garde.monitor.maintenance",
    "check_scope": "garde.monitor.maintenance",
    "plan_window": "garde.monitor.maintenance",
    "WindowNames": "garde.monitor.maintenance",
    "create_app": "garde.monitor.web.app",
    "duration": "garde.monitor.observed",
    "Incident": "garde.monitor.store.base",
    "incident_json": "garde.monitor.formats",
    "load_probe_settings": "garde.monitor.settings",
    "maintenance_json": "garde.monitor.formats",
    "MIN_COVERAGE": "garde.monitor.observed",
    "MIN_OBSERVED": "garde.monitor.observed",
    "Monitor": "garde.monitor.service",
    "Notifier": "garde.monitor.alerts",
    "open_store": "garde.monitor.store",
    "open_subscriptions": "garde.monitor.deliveries",
    "SubscriptionRules": "garde.monitor.subscriptions",
    "Subscriptions": "garde.monitor.deliveries",
    "parse_time": "garde.monitor.formats",
    "ProbeAgent": "garde.monitor.agent",
    "ProbeSettings": "garde.monitor.targets",
    "render_sla": "garde.monitor.web.pages",
    "Retention": "garde.monitor.store.base",
    "serve": "garde.monitor.web.server",
    "sla_csv": "garde.monitor.sla",
    "sla_json": "garde.monitor.sla",
    "sla_report": "garde.monitor.sla",
    "Store": "garde.monitor.store.base",
    "targets_from_catalog": "garde.monitor.targets",
    "templates": "garde.monitor.web.site",
    "WebhookChannel": "garde.monitor.alerts",
    "when": "garde.monitor.formats",
}
"""What other parts (and the CLI) may use, and where it lives. Anything else is inside the
part and free to change. Loaded on first use, so importing the part costs nothing."""

__all__ = [
    "MIN_COVERAGE",
    "MIN_OBSERVED",
    "AgentSettings",
    "AppriseChannel",
    "Channel",
    "Incident",
    "Monitor",
    "MonitorSettings",
    "Notifier",
    "ProbeAgent",
    "ProbeSettings",
    "Retention",
    "Store",
    "SubscriptionRules",
    "Subscriptions",
    "WebhookChannel",
    "WindowNames",
    "check_rrule",
    "check_scope",
    "create_app",
    "duration",
    "incident_json",
    "load_agent_settings",
    "load_monitor_settings",
    "load_probe_settings",
    "maintenance_json",
    "open_store",
    "open_subscriptions",
    "parse_time",
    "plan_window",
    "render_sla",
    "serve",
    "sla_csv",
    "sla_json",
    "sla_report",
    "targets_from_catalog",
    "templates",
    "when",
]

__getattr__ = lazy(__name__, _FACE, globals())
