"""IT's fleet page: devices, versions, policy drift, stale devices and errors, with filters; and the
consent figures it may show, only as counts over groups of at least k devices.

Served on 127.0.0.1 on the operator's own machine (``consentry store fleet --page``), like the steward's
review page but separate: it talks to the store with the operator key, and it cannot act (no forms that
change anything), so it reads only. What it deliberately cannot show is in docs/it.md. Drawn by
admin/templates/fleet.html.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from kit.web import templates
from kit.web.server import Request, Response
from protocol.timeutil import utc_display

TITLE = "Consentry: fleet"
NAV = (("/", "Fleet"),)
FILTERS = ("label", "version", "stale", "drift", "errors", "retired")

ClientFactory = Callable[[], AbstractContextManager[Any]]  # -> kit.store_client.StoreClient (operator key)


def filters_from(query: dict[str, str]) -> dict[str, Any]:
    """The page's query string as fleet filters: yes/no for the flags, text for label and version."""
    found: dict[str, Any] = {}
    for name in FILTERS:
        value = (query.get(name) or "").strip()
        if not value:
            continue
        if name in ("label", "version"):
            found[name] = value[:64]
        elif value in ("yes", "no"):
            found[name] = value == "yes"
    return found


def _when(epoch: int | None) -> str:
    return "never" if epoch is None else utc_display(epoch)


def _count(value: int | None, k: int) -> str:
    return f"withheld (under {k} on one side)" if value is None else str(value)


class FleetPage:
    """One read-only page: the fleet report the store computes, drawn as tables."""

    title = TITLE

    def __init__(self, client: ClientFactory) -> None:
        self.client = client

    def handle(self, request: Request) -> Response:
        import httpx

        from protocol.store_errors import StoreError

        if request.method != "GET" or request.path != "/":
            return self._message(request, "There is no such page here.", 404)
        try:
            with self.client() as client:
                report = client.fleet(**filters_from(request.query))
        except StoreError as exc:
            return self._message(request, f"The store refused: {exc.code}: {exc.message}", 409)
        except httpx.TransportError as exc:
            return self._message(request, f"Cannot reach the store ({type(exc).__name__}).", 502)
        html = templates.page(
            "admin",
            "fleet.html",
            title=TITLE,
            nonce=request.nonce,
            nav=NAV,
            here="/",
            **report_context(report, request.query),
        )
        return Response.html(html)

    def _message(self, request: Request, message: str, status: int) -> Response:
        return Response.html(
            templates.message_page(TITLE, message, request.nonce, nav=NAV, here="/", plain=True), status
        )


def report_context(report: Any, query: dict[str, str]) -> dict[str, Any]:
    """What fleet.html shows of the report: the filter form, the devices, the fleet figures (k-suppressed)."""
    k = report.min_group_size
    devices = [
        {
            "device_kid": d.device_kid,
            "label": d.label,
            "agent_version": d.agent_version,
            "policy_drift": d.policy_drift,
            "policy_digest": d.policy_digest,
            "stale": d.stale,
            "last_seen": _when(d.last_seen),
            "error_class": d.error_class,
            "skew": "-" if d.clock_skew_seconds is None else f"{d.clock_skew_seconds:+d} s",
            "ledger_head": d.ledger_head,
            "retired": d.retired,
        }
        for d in report.devices
    ]
    cells = [
        (
            c.label,
            c.devices,
            _count(c.shipping_devices, k),
            _count(c.devices_with_backlog, k),
            _count(c.devices_with_capture_errors, k),
        )
        for c in report.cells
    ]
    return {
        "filters": FILTERS,
        "query": query,
        "report": report,
        "devices": devices,
        "expected": report.expected_policy_digest or "none reported yet",
        "k": k,
        "cells": cells,
    }
