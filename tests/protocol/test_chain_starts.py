"""The two chains start from a named hash each: the consent ledger's and a device's batch chain."""

from __future__ import annotations

import protocol
import protocol.fields
import protocol.ledger_chain


def test_each_chain_names_its_own_starting_hash() -> None:
    """One value, two meanings: the names say which chain they start, and no shared name is left."""
    from protocol.ledger_chain import LEDGER_START_HASH
    from protocol.manifest import NO_PREVIOUS_BATCH

    assert LEDGER_START_HASH == NO_PREVIOUS_BATCH == "0" * 64  # the bytes on disk and on the wire stay the same
    assert protocol.NO_PREVIOUS_BATCH == NO_PREVIOUS_BATCH
    for module in (protocol.fields, protocol.ledger_chain):
        assert not hasattr(module, "GENESIS_HASH"), module.__name__
    assert "GENESIS_HASH" not in protocol.__all__
