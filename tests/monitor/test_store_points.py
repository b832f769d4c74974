"""``aggregates_at``: a few series' rows by key, on SQLite and PostgreSQL."""

from __future__ import annotations

from garde.monitor.store.base import Aggregate, Resolution, Store


def test_rows_of_named_targets_at_named_buckets(store: Store) -> None:
    hours = [3600 * h for h in range(1000, 1010)]
    store.add_aggregates(
        [
            Aggregate(Resolution.HOUR, target, bucket, n=360, up=350 + i, observed=3600.0)
            for i, bucket in enumerate(hours)
            for target in ("a@dc1", "a@dc2", "b@dc1")
        ]
        + [Aggregate(Resolution.DAY, "a@dc1", 0, n=8640, up=8640)]
    )
    found = store.aggregates_at(Resolution.HOUR, [*hours[2:5], 1], ["a@dc1", "a@dc2", "z"])
    assert [(r.target, r.bucket, r.up) for r in found] == [
        (target, hours[i], 350 + i) for i in (2, 3, 4) for target in ("a@dc1", "a@dc2")
    ]
    many = store.aggregates_at(Resolution.HOUR, list(range(0, 3600 * 1200, 3600)), ["b@dc1"])
    assert [r.bucket for r in many] == hours, "more buckets than one statement takes"
    assert store.aggregates_at(Resolution.HOUR, [], ["a@dc1"]) == []
