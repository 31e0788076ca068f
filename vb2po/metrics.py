"""Every Prometheus metric vb2po exports, in one place (prefix vb2po_, base units)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Producer
ROWS_READ = Counter("vb2po_producer_rows_read_total", "Visma rows read by the producer", ["company"])
EVENTS_PUBLISHED = Counter("vb2po_producer_events_published_total", "Events published", ["company", "event_type"])
BAD_ROWS = Counter("vb2po_producer_bad_rows_total", "Rows sent to the dead-letter topic", ["company", "reason"])
POLL_DURATION = Histogram("vb2po_producer_poll_duration_seconds", "Duration of one poll of one company", ["company"])
CURSOR_LAG = Gauge("vb2po_producer_cursor_lag_seconds", "Age of the newest published Visma change", ["company"])
LAST_POLL_SUCCESS = Gauge("vb2po_producer_last_success_timestamp_seconds", "Unix time of the last successful poll", ["company"])
PUBLISHED_BEHIND_CURSOR = Counter(
    "vb2po_producer_published_behind_cursor_total", "Payments published from behind the cursor: late commits the re-scan "
    "found (by=rescan), and what the safety-net sweep published, first or again (by=sweep)", ["company", "by"])
PRODUCER_ERRORS = Counter("vb2po_producer_errors_total", "Failed polls by error kind", ["company", "kind"])

# Consumer
EVENTS_CONSUMED = Counter("vb2po_consumer_events_consumed_total", "Events taken from Kafka", ["event_type"])
EVENTS_APPLIED = Counter("vb2po_consumer_events_applied_total", "Events applied to PowerOffice", ["event_type"])
EVENTS_SKIPPED = Counter("vb2po_consumer_events_skipped_total", "Events skipped as already applied", ["event_type", "why"])
DEAD_LETTERED = Counter("vb2po_consumer_dead_letters_total", "Events sent to the dead-letter topic", ["event_type", "reason"])
MARKERS_WRITTEN = Counter("vb2po_consumer_markers_written_total", "Processed markers written into Visma", ["company"])
APPLY_LATENCY = Histogram(
    "vb2po_consumer_apply_latency_seconds", "From the Visma change to the PowerOffice registration",
    buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 86400),
)
TRANSIENT_RETRIES = Counter("vb2po_consumer_retries_total", "Transient failures retried", ["reason"])
DEAD_LETTERED_OPEN = Gauge("vb2po_consumer_dead_lettered_payments_open", "Payments (and other items) with a dead letter "
                           "not yet redriven, counted once however often they were delivered (every consumer instance "
                           "reports the same total: take max)")
REFERENCE_CHECKS = Counter("vb2po_consumer_reference_checks_total", "Vouchers looked up in PowerOffice by their reference "
                           "after an outcome vb2po could not trust, by what was found", ["outcome"])
CRASH_GUARD = Counter("vb2po_consumer_crash_guard_total", "Records left in flight by a session that stopped, run alone "
                      "(isolate), or dead-lettered unapplied (give_up) because sessions died while they ran alone",
                      ["verdict"])
APPLIED_LOG_FAILURES = Counter("vb2po_consumer_applied_log_failures_total",
                               "Applied payments whose record could not be written to the applied topic")


# Operator surface (admin API, reconcile)
ADMIN_REQUESTS = Counter("vb2po_admin_requests_total", "Admin API requests by action and outcome", ["action", "outcome"])
AUDIT_WRITE_FAILURES = Counter("vb2po_admin_audit_write_failures_total", "Audit entries that reached the log line only")
RECONCILE_OPEN_DIFFERENCES = Gauge(
    "vb2po_reconcile_open_differences", "Invoices whose outstanding amount differs between Visma and PowerOffice, "
    "as found by the last reconcile", ["client", "kind"],
)
SETTINGS_VERSION = Gauge("vb2po_settings_version", "Version of the integration settings this process applied "
                         "(0: the file's; each change through the admin API adds one)")
RECONCILE_LAST_RUN = Gauge("vb2po_reconcile_last_run_timestamp_seconds", "Unix time the last reconcile finished", ["client"])

# PowerOffice
PO_REQUESTS = Counter("vb2po_poweroffice_requests_total", "PowerOffice API calls by endpoint and status", ["endpoint", "status"])
RATE_LIMIT_WAIT = Counter("vb2po_poweroffice_rate_limit_wait_seconds_total", "Time spent waiting on the client-side rate limit")
CONSUMER_LAG = Gauge("vb2po_consumer_lag_records", "Records behind the partition end, per assigned partition",
                     ["topic", "partition"])
BLOCKED_CUSTOMERS = Gauge("vb2po_credit_blocked_customers", "Customers this service currently keeps blocked in PowerOffice",
                          ["company"])
