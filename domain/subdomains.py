"""Every subdomain, imported once by the edges so that its reactions and job handlers are registered.

A new subdomain with handlers (``@reacts_to``, ``@handler``) is added here; nothing else imports this module
except the edges (the app, the worker, the CLI) and the tests.
"""

from __future__ import annotations

from domain import (
    bulk_actions,
    cancellations,
    disputes,
    exports,
    idempotency,
    orders,
    supplier_orders,
    webhooks,
)
from domain.reactions import mark_subdomains_loaded

SUBDOMAINS = (orders, supplier_orders, cancellations, disputes, exports, bulk_actions, idempotency, webhooks)

mark_subdomains_loaded()
