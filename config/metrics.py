"""Prometheus metrics, defined once here so that every layer can count without importing the edge.

The edge (``api/app.py``) counts requests, latency and errors; the worker reports the job queue at scrape
time; webhook deliveries and exports observe ``WEBHOOK_DELIVERY_FAILURES`` and ``EXPORT_DURATION``.
Each process keeps its own figures, as Prometheus expects of a scraped target.
"""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "dropdesk_graphql_requests",
    "GraphQL requests by operation name and HTTP status",
    ["operation", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "dropdesk_graphql_request_duration_seconds",
    "Time to answer a GraphQL request, by operation name",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
ERRORS = Counter(
    "dropdesk_errors",
    "Errors answered, by code (GraphQL extensions.code or the edge's refusal code)",
    ["code"],
    registry=REGISTRY,
)
JOB_QUEUE_DEPTH = Gauge(
    "dropdesk_job_queue_depth", "Jobs waiting or running, by status", ["status"], registry=REGISTRY
)
JOB_OLDEST_DUE_AGE = Gauge(
    "dropdesk_job_oldest_due_age_seconds",
    "How long the oldest queued job has been due (0 when none is)",
    registry=REGISTRY,
)
WEBHOOK_DELIVERY_FAILURES = Counter(
    "dropdesk_webhook_delivery_failures",
    "Outbound webhook delivery attempts that failed, by topic",
    ["topic"],
    registry=REGISTRY,
)
EXPORT_DURATION = Histogram(
    "dropdesk_export_duration_seconds",
    "Time an export took from start to its file, by format and outcome",
    ["format", "outcome"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
    registry=REGISTRY,
)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_OPERATION_NAMES = 200
_seen_operations: set[str] = set()


def operation_label(name: str | None) -> str:
    """Operation names come from clients: only well-formed ones, and a bounded number, become labels."""
    if not name or not _NAME.match(name):
        return "anonymous" if not name else "other"
    if name in _seen_operations:
        return name
    if len(_seen_operations) >= MAX_OPERATION_NAMES:
        return "other"
    _seen_operations.add(name)
    return name
