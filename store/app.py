"""The store's HTTP API (FastAPI): routes, each route's gate rule, and the one place errors become HTTP.

``create_app(backend, keys, settings)`` builds the ASGI app; run it under uvicorn (``store.server``).
Every request passes ``store.gate.RequestGate`` first (sender, then body size, then body).
Every rejection is a 4xx (503: retry) whose JSON body is ``{"error": {"code": <reason>, "message": <text>}}``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from protocol.approval import Approval
from protocol.auditlog import ConsistencyProof, InclusionProof, LogEntry, LogReceipt, TreeHead
from protocol.batch import SealedBatch
from protocol.checkpoint import LedgerCheckpoint
from protocol.erasure import ErasureReceipt, ErasureRequest
from protocol.errors import ConsentryError, UnsupportedVersion
from protocol.fields import b64encode
from protocol.manifest import BatchManifest
from protocol.store_api import (
    BatchReview,
    BatchStatus,
    CheckpointAck,
    EnrollRequest,
    EnrollResponse,
    ErrorBody,
    Health,
    QueueItem,
    StoreInfo,
)
from protocol.store_errors import StoreError, Unauthenticated
from store import audit
from store.auth import Authenticator, Principal, Role, enroll
from store.backend import StoreBackend
from store.gate import PRINCIPAL_KEY, RequestGate, Rule, error_response
from store.key_purge import KeyTablePurge
from store.keys import StoreKeys
from store.releases.governance_api import add_release_routes, release_rules
from store.review_set_routes import RULES as REVIEW_SET_RULES
from store.review_set_routes import add_review_set_routes
from store.review_sets import ReviewSets
from store.service import StoreService
from store.settings import StoreClock, StoreSettings, SystemClock

BATCH_ID = Path(pattern=r"^[0-9a-f]{32}$", description="32 lowercase hex digits")
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "malformed or unsupported version"),
        (401, "missing, stale, replayed or badly signed request"),
        (403, "not allowed for this key"),
        (404, "unknown batch or tree size"),
        (409, "conflicts with the store's state (chain, approvals, replays)"),
        (413, "request body too large"),
        (422, "well-formed but invalid (signatures, manifest, payload, privacy checks)"),
        (405, "method not allowed here (the Allow header lists the methods)"),
        (503, "backend unavailable or busy with other large uploads; retry (Retry-After)"),
    )
}


ENTRIES_PAGE = 1000  # log entries per request
_error = error_response


def _principal(
    request: Request,
    consentry_key: Annotated[str | None, Header(max_length=72, description="device:<kid> or steward:<kid>")] = None,
    consentry_timestamp: Annotated[str | None, Header(max_length=12, description="UTC seconds")] = None,
    consentry_nonce: Annotated[str | None, Header(max_length=32, description="32 hex digits, fresh")] = None,
    consentry_signature: Annotated[str | None, Header(max_length=88, description="Ed25519, base64")] = None,
) -> Principal:
    """The sender ``RequestGate`` verified (headers declared here so the schema documents them)."""
    found = request.scope.get(PRINCIPAL_KEY)
    if not isinstance(found, Principal):
        # Only reachable if a signed route had no gate rule: refuse rather than serve it unauthenticated.
        raise Unauthenticated("auth_missing", "this endpoint needs a signed request (Consentry-* headers)")
    return found


Signed = Annotated[Principal, Depends(_principal)]

# What each route takes (by route name): who may call it and its largest body. Sizes are generous for
# what honest clients send; only uploads may be large (max_body_bytes).
SMALL_BODY = 64 * 1024
MANIFEST_BODY = 1024 * 1024
ENROLL_BODY = 4 * 1024


def route_rules(settings: StoreSettings) -> dict[str, Rule]:
    device: tuple[Role, ...] = ("device",)
    steward: tuple[Role, ...] = ("steward",)
    return {
        "health": Rule((), 0),
        "store_info": Rule((), 0),
        "enroll_device": Rule((), ENROLL_BODY),
        "submit_manifest": Rule(device, MANIFEST_BODY),
        "batch_status": Rule(device, 0),
        "upload": Rule(device, settings.max_body_bytes),
        "withdraw": Rule(device, 0),
        "checkpoint": Rule(device, SMALL_BODY),
        "erase": Rule(device, SMALL_BODY),
        "steward_queue": Rule(steward, 0),
        "steward_show": Rule(steward, 0),
        "steward_decide": Rule(steward, SMALL_BODY),
        "log_head": Rule((), 0),
        "log_head_at": Rule((), 0),
        "log_consistency": Rule((), 0),
        "log_inclusion": Rule((), 0),
        "log_entries": Rule(("device", "steward"), 0),
        **release_rules(steward),  # store/releases/governance_api.py
        **REVIEW_SET_RULES,  # store/review_set_routes.py
    }


def create_app(
    backend: StoreBackend,
    keys: StoreKeys,
    settings: StoreSettings,
    *,
    clock: StoreClock | None = None,
    erase_from_releases: Callable[[str], AbstractContextManager[tuple[str, ...]]] | None = None,
    min_group_size: int | None = None,  # the fleet view's k (store.fleet); None: its default, 5
) -> FastAPI:
    clock = clock or SystemClock()
    service = StoreService(backend, keys, settings, clock, erase_from_releases=erase_from_releases)
    auth = Authenticator(backend, settings, clock)
    info = StoreInfo(
        store_public_key=b64encode(keys.seal.public_bytes),
        log_public_key=b64encode(keys.log.public_bytes),
        approvals_required=settings.stewards.approvals_required,
        stewards=dict(settings.stewards.keys),
    )
    key_purge = KeyTablePurge(backend, settings.key_purge_retry_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        key_purge.start()
        yield
        key_purge.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="Consentry store",
        version="1",
        description="The on-prem store: enrollment, steward review, verified batch upload, erasure, audit log.",
        responses=ERRORS,
        # The interactive docs map every endpoint for anyone who asks: opt-in (store serve --docs).
        openapi_url="/openapi.json" if settings.api_docs else None,
        docs_url="/docs" if settings.api_docs else None,
        redoc_url="/redoc" if settings.api_docs else None,
    )
    app.state.service = service
    app.state.settings = settings  # the server's connection rules come from them too (store.server)

    @app.exception_handler(StoreError)
    async def _store_error(request: Request, exc: StoreError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(UnsupportedVersion)
    async def _version(request: Request, exc: UnsupportedVersion) -> JSONResponse:
        return _error(400, "unsupported_version", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        # Never echo the input back: it may be a record.
        return _error(422, "malformed_request", f"{where}: {first.get('msg', 'invalid')}"[:300])

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        # Starlette's own refusals (unparsable body, unknown path, wrong method) in our error shape.
        codes = {
            400: "malformed_request",
            404: "not_found",
            405: "method_not_allowed",
            415: "unsupported_media_type",
        }
        code = codes.get(exc.status_code, f"http_{exc.status_code}")
        # Keep Starlette's headers: a 405 must say which methods the resource allows (RFC 9110 15.5.6).
        return _error(exc.status_code, code, str(exc.detail)[:300], exc.headers)

    @app.exception_handler(ConsentryError)
    async def _vault(request: Request, exc: ConsentryError) -> JSONResponse:
        return _error(422, "invalid", type(exc).__name__)

    @app.get("/v1/health", response_model=Health, tags=["store"])
    async def health() -> Health:
        return Health()

    @app.get("/v1/info", response_model=StoreInfo, tags=["store"])
    def store_info() -> StoreInfo:
        return info

    @app.post("/v1/enroll", response_model=EnrollResponse, tags=["agent"])
    def enroll_device(body: EnrollRequest) -> EnrollResponse:
        device = enroll(backend, body, clock.now())
        return EnrollResponse(device_kid=device.kid, enrolled_at=device.enrolled_at, store=info)

    @app.post("/v1/manifests", response_model=BatchStatus, tags=["agent"])
    def submit_manifest(body: BatchManifest, signed: Signed) -> BatchStatus:
        return service.submit_manifest(signed, body)

    @app.get("/v1/batches/{batch_id}", response_model=BatchStatus, tags=["agent"])
    def batch_status(signed: Signed, batch_id: str = BATCH_ID) -> BatchStatus:
        return service.batch_status(signed, batch_id)

    @app.post("/v1/uploads", response_model=LogReceipt, tags=["agent"])
    def upload(body: SealedBatch, signed: Signed) -> LogReceipt:
        return service.upload(signed, body)

    @app.post("/v1/batches/{batch_id}/withdrawal", response_model=BatchStatus, tags=["agent"])
    def withdraw(signed: Signed, batch_id: str = BATCH_ID) -> BatchStatus:
        return service.withdraw(signed, batch_id)

    @app.post("/v1/checkpoints", response_model=CheckpointAck, tags=["agent"])
    def checkpoint(body: LedgerCheckpoint, signed: Signed) -> CheckpointAck:
        return service.checkpoint(signed, body)

    @app.post("/v1/erasures", response_model=ErasureReceipt, tags=["agent"])
    def erase(body: ErasureRequest, signed: Signed) -> ErasureReceipt:
        return service.erase(signed, body)

    @app.get("/v1/steward/queue", response_model=list[QueueItem], tags=["steward"])
    def steward_queue(signed: Signed) -> list[QueueItem]:
        return service.queue()

    @app.get("/v1/steward/batches/{batch_id}", response_model=BatchReview, tags=["steward"])
    def steward_show(signed: Signed, batch_id: str = BATCH_ID) -> BatchReview:
        return service.review(batch_id)

    @app.post("/v1/steward/batches/{batch_id}/decisions", response_model=BatchStatus, tags=["steward"])
    def steward_decide(body: Approval, signed: Signed, batch_id: str = BATCH_ID) -> BatchStatus:
        return service.decide(signed, batch_id, body)

    @app.get("/v1/log/head", response_model=TreeHead, tags=["log"])
    def log_head() -> TreeHead:
        with backend.transaction() as tx:
            return audit.latest_head(tx, keys.log, clock.now())

    @app.get("/v1/log/heads/{size}", response_model=TreeHead, tags=["log"])
    def log_head_at(size: Annotated[int, Path(ge=1, le=2**53)]) -> TreeHead:
        with backend.transaction() as tx:
            return audit.head_at(tx, size)

    @app.get("/v1/log/consistency", response_model=ConsistencyProof, tags=["log"])
    def log_consistency(
        first: Annotated[int, Query(ge=1, le=2**53)], second: Annotated[int, Query(ge=1, le=2**53)]
    ) -> ConsistencyProof:
        with backend.transaction() as tx:
            return audit.consistency(tx, first, second)

    @app.get("/v1/log/inclusion", response_model=InclusionProof, tags=["log"])
    def log_inclusion(
        index: Annotated[int, Query(ge=0, le=2**53)], size: Annotated[int, Query(ge=1, le=2**53)]
    ) -> InclusionProof:
        with backend.transaction() as tx:
            return audit.inclusion(tx, index, size)

    @app.get("/v1/log/entries", response_model=list[LogEntry], tags=["log"])
    def log_entries(
        signed: Signed,
        start: Annotated[int, Query(ge=0, le=2**53)],
        limit: Annotated[int, Query(ge=1, le=ENTRIES_PAGE, description="at most this many entries")] = ENTRIES_PAGE,
    ) -> list[LogEntry]:
        """Entries ``start`` .. ``start + limit - 1`` that exist: fewer (or none) at the end of the log.

        A steward gets every one; a device only those about its own batches and subjects.
        """
        with backend.transaction() as tx:
            end = min(start + limit, tx.log_size())
            if start >= end:
                return []
            if signed.role == "device":
                return audit.entries_of_device(tx, start, end, signed.kid)
            return audit.entries(tx, start, end)

    add_release_routes(app, Signed, backend, keys, settings, clock)  # stewards' release review (issue 15)
    add_review_set_routes(app, ReviewSets(backend, keys, settings, clock), _principal)
    rules = route_rules(settings)
    # Fleet enrollment, heartbeats and IT's fleet report live in their own modules (store.fleet_api).
    from store.fleet_api import add_fleet_routes

    rules |= add_fleet_routes(
        app, backend, clock, info, **({} if min_group_size is None else {"min_group_size": min_group_size})
    )
    unruled = [r.name for r in app.routes if isinstance(r, APIRoute) and r.name not in rules]
    if unruled:
        raise RuntimeError(f"routes without a gate rule: {unruled}")  # a programming error, caught by any test
    app.add_middleware(RequestGate, router=app.router, rules=rules, auth=auth, settings=settings)
    return app
