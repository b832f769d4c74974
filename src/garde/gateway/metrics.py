"""Prometheus metrics as plain counters, rendered only when scraped.

A prometheus-client call per request costs more than the rest of the hot path's
bookkeeping; dictionary increments keyed by label tuples cost almost nothing, and the text
exposition format is simple enough to write on scrape.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, str], int] = defaultdict(int)
        """(operation label, outcome) -> count."""
        self.attempts: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        """(service, data center, result) -> count."""
        self.rejected: defaultdict[int, int] = defaultdict(int)
        self.latency: defaultdict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self.latency_sum: defaultdict[str, float] = defaultdict(float)
        self.retries = 0
        self.budget_refusals = 0
        self.hedges = 0
        """Retry-safe calls also sent to a second data center because the first was slow."""
        self.hedge_refusals = 0
        """Hedges the hedge budget refused."""
        self.gauges: list[Callable[[], Iterable[tuple[str, str, dict[str, str], float]]]] = []

    def observe(self, service: str, seconds: float) -> None:
        self.latency[service][bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum[service] += seconds

    def snapshot(self) -> dict[str, object]:
        """The counters as JSON-ready data (``add`` takes it back), for other workers."""
        return {
            "requests": [[*key, n] for key, n in self.requests.items()],
            "attempts": [[*key, n] for key, n in self.attempts.items()],
            "rejected": [[status, n] for status, n in self.rejected.items()],
            "latency": dict(self.latency),
            "latency_sum": dict(self.latency_sum),
            "retries": self.retries,
            "budget_refusals": self.budget_refusals,
            "hedges": self.hedges,
            "hedge_refusals": self.hedge_refusals,
        }

    def add(self, snapshot: dict[str, Any]) -> None:
        """Add another worker's counters (a ``snapshot``) to these."""
        for label, outcome, n in snapshot["requests"]:
            self.requests[(label, outcome)] += n
        for service, dc, result, n in snapshot["attempts"]:
            self.attempts[(service, dc, result)] += n
        for status, n in snapshot["rejected"]:
            self.rejected[int(status)] += n
        for service, counts in snapshot["latency"].items():
            mine = self.latency[service]
            for i, n in enumerate(counts):
                mine[i] += n
        for service, seconds in snapshot["latency_sum"].items():
            self.latency_sum[service] += seconds
        self.retries += snapshot["retries"]
        self.budget_refusals += snapshot["budget_refusals"]
        self.hedges += snapshot.get("hedges", 0)
        self.hedge_refusals += snapshot.get("hedge_refusals", 0)

    def render(self) -> str:
        out: list[str] = []

        def family(name: str, kind: str, text: str) -> None:
            out.append(f"# HELP {name} {text}")
            out.append(f"# TYPE {name} {kind}")

        family("garde_gateway_requests_total", "counter", "Requests by operation and outcome.")
        for (label, outcome), count in sorted(self.requests.items()):
            service, _, operation = label.partition(".")
            out.append(
                f'garde_gateway_requests_total{{service="{service}",operation="{operation}",'
                f'outcome="{outcome}"}} {count}'
            )
        family("garde_gateway_upstream_attempts_total", "counter", "Attempts per data center.")
        for (service, dc, result), count in sorted(self.attempts.items()):
            out.append(
                f'garde_gateway_upstream_attempts_total{{service="{service}",'
                f'data_center="{dc}",result="{result}"}} {count}'
            )
        family("garde_gateway_rejected_total", "counter", "Requests refused as bad input.")
        for status, count in sorted(self.rejected.items()):
            out.append(f'garde_gateway_rejected_total{{status="{status}"}} {count}')
        family("garde_gateway_retries_total", "counter", "Retries on another data center.")
        out.append(f"garde_gateway_retries_total {self.retries}")
        family(
            "garde_gateway_retry_budget_exhausted_total", "counter", "Retries the budget refused."
        )
        out.append(f"garde_gateway_retry_budget_exhausted_total {self.budget_refusals}")
        family(
            "garde_gateway_hedges_total",
            "counter",
            "Retry-safe calls also sent to another data center because the first was slow.",
        )
        out.append(f"garde_gateway_hedges_total {self.hedges}")
        family(
            "garde_gateway_hedge_budget_exhausted_total", "counter", "Hedges the budget refused."
        )
        out.append(f"garde_gateway_hedge_budget_exhausted_total {self.hedge_refusals}")
        family("garde_gateway_request_seconds", "histogram", "Time to answer the caller.")
        for service, counts in sorted(self.latency.items()):
            total = 0
            for bound, count in zip((*BUCKETS, float("inf")), counts, strict=True):
                total += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                out.append(
                    f'garde_gateway_request_seconds_bucket{{service="{service}",le="{le}"}} {total}'
                )
            out.append(
                f'garde_gateway_request_seconds_sum{{service="{service}"}}'
                f" {self.latency_sum[service]:.6f}"
            )
            out.append(f'garde_gateway_request_seconds_count{{service="{service}"}} {total}')
        seen: set[str] = set()
        for gauge in self.gauges:
            for name, text, labels, value in gauge():
                if name not in seen:
                    family(name, "gauge", text)
                    seen.add(name)
                rendered = ",".join(f'{k}="{v}"' for k, v in labels.items())
                out.append(f"{name}{{{rendered}}} {value}" if labels else f"{name} {value}")
        return "\n".join(out) + "\n"
