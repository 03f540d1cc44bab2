"""The ledger states facts and the gate judges them: `Facts.accounted_for` (what the ledger and
its rebuild mean by "this person is accounted for") is the gate's verdict under the default
policy, for every status a record can hold, so the two cannot drift apart."""

from __future__ import annotations

import pytest

from dialer.core.statuses import Status
from dialer.engine.gate import Gate
from dialer.ledger.facts import NO_FACTS, Facts


@pytest.mark.parametrize("retryable", [False, True])
@pytest.mark.parametrize("status", [None, *Status])
def test_accounted_for_is_the_gates_default_verdict(status: Status | None, retryable: bool):
    facts = Facts(status=status, reason="earlier", retryable=retryable)
    assert facts.accounted_for == (Gate(None).judge(facts) is not None)


def test_no_record_is_not_accounted_for():
    assert not NO_FACTS.accounted_for
