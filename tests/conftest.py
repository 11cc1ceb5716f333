"""Shared fixtures: a tiny shop written to disk once per session."""

from __future__ import annotations

import pytest

from hoprec.data.database import load_database
from hoprec.data.fake import QUERY, make_fake_shop
from hoprec.data.schema import load_schema


@pytest.fixture(scope="session")
def fake_shop(tmp_path_factory):
    """Path of the fake shop's schema.yaml (files beside it)."""
    return make_fake_shop(tmp_path_factory.mktemp("fakeshop"))


@pytest.fixture(scope="session")
def fake_db(fake_shop):
    return load_database(load_schema(fake_shop))


@pytest.fixture(scope="session")
def fake_query():
    return QUERY
