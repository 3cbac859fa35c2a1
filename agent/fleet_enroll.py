"""Enrolling this computer's device key with IT's fleet enrollment secret (the agent does it on first start)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agent.shipping import ShippingError
from vault import outbox
from vault.policy import MachinePolicy
from vault.vault import Vault


def enroll_with_secret(vault: Vault, policy: MachinePolicy, secret: str, now: datetime, **client_kwargs: Any) -> str:
    """Register this device's key with the policy's store using the fleet secret; returns the device kid.

    As with a one-time token, the store's keys are compared with the policy's first, so a wrong URL
    sends nothing; enrolling again after a lost answer is harmless.
    """
    from kit.store_client import StoreClient

    if policy.store is None:
        raise ShippingError("the machine policy names no store to enroll with")
    with StoreClient(policy.store.url, signer=vault.device_key, tls_ca=policy.store.tls_ca, **client_kwargs) as client:
        info = client.info()
        if info.store_public_key != policy.store.public_key:
            raise ShippingError("the store's key is not the one in the machine policy; not enrolled")
        if policy.store.log_key is not None and info.log_public_key != policy.store.log_key:
            raise ShippingError("the store's log key is not the one in the machine policy; not enrolled")
        response = client.enroll_with_secret(secret)
    enrolled = outbox.Enrollment(
        url=policy.store.url,
        store_public_key=response.store.store_public_key,
        log_public_key=response.store.log_public_key,
    )
    outbox.record_enrollment(vault, enrolled, now)
    return response.device_kid
