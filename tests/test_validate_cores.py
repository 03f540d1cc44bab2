"""Preparing a sheet uses the cores the process may run on, not the machine's count."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from conftest import Project, contact_rows

from dialer import pipeline
from dialer.campaign import load_campaign


@pytest.fixture
def affinity() -> Iterator[set[int]]:
    """The cores this thread may use; restored after the test."""
    before = os.sched_getaffinity(0)
    yield before
    os.sched_setaffinity(0, before)


def _pool_started(project: Project, monkeypatch: pytest.MonkeyPatch) -> bool:
    project.write_sheet(contact_rows(20))
    project.write_campaign()
    monkeypatch.setattr(pipeline, "PARALLEL_FROM_BYTES", 0)  # this small sheet counts as large
    stream = pipeline.open_contacts(load_campaign(project.campaign))
    try:
        return stream.pool is not None
    finally:
        stream.close()


def test_a_process_pinned_to_one_core_prepares_in_one_process(
    project: Project, monkeypatch: pytest.MonkeyPatch, affinity: set[int]
) -> None:
    """`taskset -c 0 dialer validate`: workers on the same core would only add pickling."""
    os.sched_setaffinity(0, {min(affinity)})
    assert not _pool_started(project, monkeypatch)


def test_a_process_with_two_cores_starts_workers(
    project: Project, monkeypatch: pytest.MonkeyPatch, affinity: set[int]
) -> None:
    if len(affinity) < 2:
        pytest.skip("this machine gives the tests one core")
    assert _pool_started(project, monkeypatch)
