"""The store's HTTP API (FastAPI): routes, the request-size limit, and the one place errors become HTTP.

``create_app(backend, keys, settings)`` builds the ASGI app; run it under uvicorn (``vault.store.server``).
Every rejection is a 4xx whose JSON body is ``{"error": {"code": <reason>, "message": <text>}}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from vault.errors import UnsupportedVersion, VaultError
from vault.release.approval import Approval
from vault.release.auditlog import ConsistencyProof, InclusionProof, LogEntry, LogReceipt, TreeHead
from vault.release.batch import SealedBatch
from vault.release.checkpoint import LedgerCheckpoint
from vault.release.erasure import ErasureRequest
from vault.release.fields import b64encode
from vault.release.manifest import BatchManifest
from vault.store import audit
from vault.store.auth import Authenticator, SignedRequest, enroll
from vault.store.backend import StoreBackend
from vault.store.errors import StoreError, Unprocessable
from vault.store.keys import StoreKeys
from vault.store.models import (
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
from vault.store.service import StoreService
from vault.store.settings import Clock, StoreSettings, SystemClock

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

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
        (503, "backend unavailable; retry"),
    )
}


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"code": code, "message": message}})


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413 before any route sees them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _error(400, "malformed_request", "invalid Content-Length")(scope, receive, send)
                return
            if int(declared) > self.max_bytes:
                await _error(413, "body_too_large", f"the limit is {self.max_bytes} bytes")(scope, receive, send)
                return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            total += len(body)
            if total > self.max_bytes:
                await _error(413, "body_too_large", f"the limit is {self.max_bytes} bytes")(scope, receive, send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        whole = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": whole, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def signed_request(
    request: Request,
    consentry_key: Annotated[str | None, Header(max_length=80)] = None,
    consentry_timestamp: Annotated[str | None, Header(max_length=20)] = None,
    consentry_nonce: Annotated[str | None, Header(max_length=64)] = None,
    consentry_signature: Annotated[str | None, Header(max_length=200)] = None,
) -> SignedRequest:
    """The signed parts of the request; checked by ``Authenticator`` in the route."""
    target = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string") or b""
    text = target.decode("latin-1") + (("?" + query.decode("latin-1")) if query else "")
    return SignedRequest(
        method=request.method,
        target=text,
        body=await request.body(),
        key=consentry_key,
        timestamp=consentry_timestamp,
        nonce=consentry_nonce,
        signature=consentry_signature,
    )


Signed = Annotated[SignedRequest, Depends(signed_request)]


def create_app(
    backend: StoreBackend, keys: StoreKeys, settings: StoreSettings, *, clock: Clock | None = None
) -> FastAPI:
    clock = clock or SystemClock()
    service = StoreService(backend, keys, settings, clock)
    auth = Authenticator(backend, settings, clock)
    info = StoreInfo(
        store_public_key=b64encode(keys.seal.public_bytes),
        log_public_key=b64encode(keys.log.public_bytes),
        approvals_required=settings.stewards.approvals_required,
        stewards=dict(settings.stewards.keys),
    )
    app = FastAPI(
        title="Consentry store",
        version="1",
        description="The on-prem store: enrollment, steward review, verified batch upload, erasure, audit log.",
        responses=ERRORS,
    )
    app.state.service = service

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
        return _error(exc.status_code, codes.get(exc.status_code, f"http_{exc.status_code}"), str(exc.detail)[:300])

    @app.exception_handler(VaultError)
    async def _vault(request: Request, exc: VaultError) -> JSONResponse:
        return _error(422, "invalid", type(exc).__name__)

    @app.get("/v1/health", response_model=Health, tags=["store"])
    def health() -> Health:
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
        return service.submit_manifest(auth.authenticate(signed, "device"), body)

    @app.get("/v1/batches/{batch_id}", response_model=BatchStatus, tags=["agent"])
    def batch_status(signed: Signed, batch_id: str = BATCH_ID) -> BatchStatus:
        return service.batch_status(auth.authenticate(signed, "device"), batch_id)

    @app.post("/v1/uploads", response_model=LogReceipt, tags=["agent"])
    def upload(body: SealedBatch, signed: Signed) -> LogReceipt:
        return service.upload(auth.authenticate(signed, "device"), body)

    @app.post("/v1/batches/{batch_id}/withdrawal", response_model=BatchStatus, tags=["agent"])
    def withdraw(signed: Signed, batch_id: str = BATCH_ID) -> BatchStatus:
        return service.withdraw(auth.authenticate(signed, "device"), batch_id)

    @app.post("/v1/checkpoints", response_model=CheckpointAck, tags=["agent"])
    def checkpoint(body: LedgerCheckpoint, signed: Signed) -> CheckpointAck:
        return service.checkpoint(auth.authenticate(signed, "device"), body)

    @app.post("/v1/erasures", response_model=LogReceipt, tags=["agent"])
    def erase(body: ErasureRequest, signed: Signed) -> LogReceipt:
        return service.erase(auth.authenticate(signed, "device"), body)

    @app.get("/v1/steward/queue", response_model=list[QueueItem], tags=["steward"])
    def steward_queue(signed: Signed) -> list[QueueItem]:
        auth.authenticate(signed, "steward")
        return service.queue()

    @app.get("/v1/steward/batches/{batch_id}", response_model=BatchReview, tags=["steward"])
    def steward_show(signed: Signed, batch_id: str = BATCH_ID) -> BatchReview:
        auth.authenticate(signed, "steward")
        return service.review(batch_id)

    @app.post("/v1/steward/batches/{batch_id}/decisions", response_model=BatchStatus, tags=["steward"])
    def steward_decide(body: Approval, signed: Signed, batch_id: str = BATCH_ID) -> BatchStatus:
        return service.decide(auth.authenticate(signed, "steward"), batch_id, body)

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
        start: Annotated[int, Query(ge=0, le=2**53)], end: Annotated[int, Query(ge=0, le=2**53)]
    ) -> list[LogEntry]:
        if not start <= end <= start + 1000:
            raise Unprocessable("malformed_request", "need start <= end <= start + 1000")
        with backend.transaction() as tx:
            return audit.entries(tx, start, end)

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app
