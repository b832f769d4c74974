"""The monitor: probes every service in every data center, derives what the state means for
the chain and for each profession, keeps incidents and bounded history, and publishes them
(status page, JSON API, feeds, alerts, SLA reports).

Layout: ``targets`` (what to probe, from the catalog), ``probes`` (one check), ``scheduler``
(when), ``state`` (hysteresis, quorum, service state, impact), ``incidents`` and
``maintenance``, ``history`` (aggregation), ``store/`` (SQLite, PostgreSQL), ``web/``.
"""
