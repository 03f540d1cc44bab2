"""Worker processes prepare exactly what one process would, in sheet order."""

from __future__ import annotations

from pathlib import Path

from conftest import Project

from dialer.campaign.parse import load_campaign
from dialer.sheets.pipeline import open_contacts

ROOT = Path(__file__).resolve().parent.parent


def _all(campaign, parallel: bool, chunk_rows: int):
    stream = open_contacts(campaign, ROOT / "sample_data" / "contacts.csv", parallel=parallel)
    stream.chunk_rows = chunk_rows
    return [c for chunk in stream.chunks() for c in chunk]


def test_parallel_preparation_equals_sequential(project: Project):
    project.write_campaign(first_line="Hello {{ first_name }}")
    campaign = load_campaign(project.campaign)

    one = _all(campaign, parallel=False, chunk_rows=7)
    many = _all(campaign, parallel=True, chunk_rows=7)  # duplicates span chunk borders

    assert one == many
    assert [c.row for c in many] == sorted(c.row for c in many)
    assert {c.status for c in many} >= {"ready", "invalid", "duplicate"}


def test_pool_is_shut_down_when_the_stream_ends(project: Project):
    project.write_campaign(first_line="Hello {{ first_name }}")
    stream = open_contacts(
        load_campaign(project.campaign), ROOT / "sample_data" / "contacts.csv", parallel=True
    )
    assert stream.pool is not None
    for _ in stream.chunks():
        pass
    assert stream.pool is None
