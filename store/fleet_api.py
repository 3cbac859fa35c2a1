"""The store's fleet routes: enrollment with a fleet secret, device heartbeats, and IT's fleet report.

``add_fleet_routes`` adds them to the app ``store.app.create_app`` builds and returns their gate rules:

    POST /v1/fleet/enroll       anyone (the secret and the key proof are checked)  -> EnrollResponse
    POST /v1/fleet/heartbeats   devices, exactly HEARTBEAT_BYTES                    -> HeartbeatAck
    GET  /v1/fleet/devices      operators (keys added with `consentry store operator add`) -> FleetReport
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Query, Request

from protocol.fleet import HEARTBEAT_BYTES, FleetReport, HeartbeatAck, SecretEnrollRequest, decode_heartbeat
from protocol.store_api import EnrollResponse, StoreInfo
from protocol.store_errors import Unauthenticated, Unprocessable
from store import fleet_db
from store.auth import Principal
from store.backend import StoreBackend
from store.enrollment import enroll_with_secret
from store.fleet import DEFAULT_MIN_GROUP_SIZE, FleetFilter, fleet_report, record_heartbeat
from store.gate import PRINCIPAL_KEY, Rule
from store.settings import StoreClock

ENROLL_BODY = 4 * 1024


def _signed(request: Request) -> Principal:
    found = request.scope.get(PRINCIPAL_KEY)
    if not isinstance(found, Principal):  # a route without a gate rule: refuse rather than serve it
        raise Unauthenticated("auth_missing", "this endpoint needs a signed request (Consentry-* headers)")
    return found


def add_fleet_routes(
    app: FastAPI,
    backend: StoreBackend,
    clock: StoreClock,
    info: StoreInfo,
    *,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
) -> dict[str, Rule]:
    """Create the fleet tables if needed, add the routes, and return their gate rules (by route name)."""
    fleet_db.ensure_tables(backend)

    @app.post("/v1/fleet/enroll", response_model=EnrollResponse, tags=["agent"])
    def fleet_enroll(body: SecretEnrollRequest) -> EnrollResponse:
        device = enroll_with_secret(backend, body, clock.now())
        return EnrollResponse(device_kid=device.kid, enrolled_at=device.enrolled_at, store=info)

    @app.post("/v1/fleet/heartbeats", response_model=HeartbeatAck, tags=["agent"])
    async def fleet_heartbeat(request: Request) -> HeartbeatAck:
        signed = _signed(request)
        try:
            heartbeat = decode_heartbeat(await request.body())
        except ValueError as exc:
            raise Unprocessable("malformed_request", str(exc).splitlines()[0][:200]) from None
        return record_heartbeat(backend, signed.kid, heartbeat, clock.now())

    @app.get("/v1/fleet/devices", response_model=FleetReport, tags=["fleet"])
    def fleet_devices(
        request: Request,
        label: Annotated[str | None, Query(max_length=64)] = None,
        version: Annotated[str | None, Query(max_length=32)] = None,
        stale: bool | None = None,
        drift: bool | None = None,
        errors: bool | None = None,
        retired: bool | None = None,
        expected_policy: Annotated[str | None, Query(pattern=r"^[0-9a-f]{64}$")] = None,
    ) -> FleetReport:
        _signed(request)
        where = FleetFilter(label=label, version=version, stale=stale, drift=drift, errors=errors, retired=retired)
        return fleet_report(
            backend, clock.now(), min_group_size=min_group_size, expected_policy_digest=expected_policy, where=where
        )

    return {
        "fleet_enroll": Rule((), ENROLL_BODY),
        "fleet_heartbeat": Rule(("device",), HEARTBEAT_BYTES),
        "fleet_devices": Rule(("operator",), 0),
    }
