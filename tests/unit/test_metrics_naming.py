"""Every metric in vb2po/metrics.py follows Prometheus naming: the vb2po_ prefix, base units,
_total on counters, labels of bounded cardinality; promtool finds nothing to lint; the README
lists each one. (The end-to-end check on real scrapes: tests/integration/test_prometheus_end_to_end.py.)"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from vb2po import metrics

README = Path(__file__).resolve().parents[2] / "README.md"
# Ids of single facts: a label per event, customer or invoice would make a series per value.
UNBOUNDED_LABELS = {"event_id", "customer", "customer_no", "invoice", "invoice_no", "jno", "entno", "offset", "key",
                    "source_key", "user", "token", "error", "message", "path", "url"}
NOT_BASE_UNITS = re.compile(r"_(ms|msec|milliseconds|microseconds|us|minutes|hours|days|kilobytes|kb|mb|percent)(_|$)")


def all_metrics() -> dict[str, MetricWrapperBase]:
    return {name: m for name, m in vars(metrics).items() if isinstance(m, MetricWrapperBase)}


def exposed_name(metric: MetricWrapperBase) -> str:
    return metric._name + ("_total" if isinstance(metric, Counter) else "")


def test_names_prefix_units_and_counter_suffix():
    assert len(all_metrics()) >= 20
    for attr, metric in all_metrics().items():
        name = exposed_name(metric)
        assert name.startswith("vb2po_"), attr
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), attr
        assert not NOT_BASE_UNITS.search(name), f"{name}: use base units (seconds, bytes, ratios)"
        assert name.endswith("_total") == isinstance(metric, Counter), f"{name}: _total on counters only"
        if isinstance(metric, (Gauge, Histogram)) and re.search(r"latency|duration|wait|timestamp|age", name):
            assert name.endswith("_seconds"), f"{name}: times are in seconds"
        assert metric._documentation, f"{name} has no help text"


def test_labels_are_of_bounded_cardinality():
    for attr, metric in all_metrics().items():
        labels = set(metric._labelnames)
        assert not labels & UNBOUNDED_LABELS, f"{attr}: label(s) {labels & UNBOUNDED_LABELS} grow without bound"
        assert "le" not in labels and "quantile" not in labels


def test_the_poweroffice_endpoint_label_hides_ids():
    from vb2po.poweroffice.client import endpoint_label

    assert endpoint_label("/Projects/12345") == "/Projects/{id}"
    assert endpoint_label("/Vouchers/BankJournals") == "/Vouchers/BankJournals"
    assert endpoint_label("/Customers/0b0f8c4e-3c7a-4f8e-9d2a-0c1d2e3f4a5b") == "/Customers/{id}"


def test_promtool_finds_nothing_to_lint_with_every_metric_in_use():
    assert shutil.which("promtool"), "promtool missing: it comes with Debian's prometheus (run make deps)"
    registry = CollectorRegistry()
    for metric in all_metrics().values():  # the same definitions, registered afresh with one label set each
        cls = type(metric)
        kwargs = {"buckets": metric._upper_bounds} if isinstance(metric, Histogram) else {}
        copy = cls(exposed_name(metric), metric._documentation, metric._labelnames, registry=registry, **kwargs)
        child = copy.labels(*["x"] * len(metric._labelnames)) if metric._labelnames else copy
        {Counter: lambda c: c.inc(), Gauge: lambda c: c.set(1), Histogram: lambda c: c.observe(1)}[cls](child)
    result = subprocess.run(["promtool", "check", "metrics"], input=generate_latest(registry), capture_output=True,
                            timeout=60)
    assert (result.returncode, result.stdout + result.stderr) == (0, b"")


def test_the_readme_lists_every_metric():
    text = README.read_text()
    missing = [exposed_name(m) for m in all_metrics().values() if f"`{exposed_name(m)}`" not in text]
    assert missing == [], "add them to the metrics table under ## Monitoring in README.md"
