"""The monitor's web side: status page (no JavaScript), JSON API, feeds, metrics, SLA."""
