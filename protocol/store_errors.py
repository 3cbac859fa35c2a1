"""The store's exception tree; each error carries the HTTP status and machine-readable reason code.

    StoreError (protocol.errors.ConsentryError)      .status .code
    ├── BadRequest            400   malformed_request, unsupported_version
    ├── Unauthenticated       401   auth_missing, auth_bad_signature, auth_stale, auth_replayed, unknown_key
    ├── Forbidden             403   token_invalid, not_a_steward, device_mismatch, subject_not_yours
    ├── NotFound              404   unknown_batch, unknown_tree_size
    ├── Conflict              409   chain_broken, chain_out_of_order, batch_id_reused, not_approved,
    │                               batch_rejected, batch_erased, already_decided, already_stored,
    │                               checkpoint_regressed, checkpoint_forked, checkpoint_unproven,
    │                               checkpoint_not_extending, proof_malformed, key_taken,
    │                               request_id_reused
    ├── RequestTimeout        408   body_too_slow, head_too_slow (a body under the minimum rate or past
    │                               its read deadline; a request head not complete in time)
    ├── PayloadTooLarge       413   body_too_large
    ├── Unprocessable         422   malformed_request, schema_version_unsupported, privacy_check_failed,
    │                               header_mismatch, batch_signature_invalid, batch_undecryptable,
    │                               payload_mismatch, approval_signature_invalid, checkpoint_signature_invalid,
    │                               erasure_signature_invalid, proof_invalid
    ├── Unavailable           503   backend_unavailable, busy, key_busy, too_many_connections,
    │                               erasure_unfinished (the client retries; Retry-After)
    └── UntrustedStore        -     tls_untrusted (client side: the store's TLS certificate is not the
                                    pinned one, so the client sent nothing)

Only ``store.app`` turns these into HTTP responses (one boundary); the client turns responses
back into the same classes, so agent code handles one tree.
"""

from __future__ import annotations

from typing import Any, ClassVar

from protocol.errors import ConsentryError


class StoreError(ConsentryError):
    status: ClassVar[int] = 400

    def __init_subclass__(cls, *, status: int | None = None, **kwargs: Any) -> None:
        # Each class of the tree names its HTTP status once, in its class line: class X(StoreError, status=N).
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class BadRequest(StoreError, status=400): ...


class Unauthenticated(StoreError, status=401): ...


class Forbidden(StoreError, status=403): ...


class NotFound(StoreError, status=404): ...


class Conflict(StoreError, status=409): ...


class RequestTimeout(StoreError, status=408): ...


class PayloadTooLarge(StoreError, status=413): ...


class Unprocessable(StoreError, status=422): ...


class Unavailable(StoreError, status=503): ...


class UntrustedStore(StoreError, status=0):  # no HTTP exchange took place
    """Raised by the client, never answered by a store: the TLS handshake failed certificate verification."""


# Every answerable error, by status: the tree above (UntrustedStore, status 0, never comes from a store).
_BY_STATUS: dict[int, type[StoreError]] = {cls.status: cls for cls in StoreError.__subclasses__() if cls.status}


def error_for_status(status: int, code: str, message: str) -> StoreError:
    """The StoreError subclass for an HTTP status (used by the client to rebuild server errors)."""
    return _BY_STATUS.get(status, StoreError)(code, message)
