"""MongoJobStore (scheduler lease + jobs in MongoDB) passes the JobStore contract.

Against the MongoDB wire-protocol TEST DOUBLE (jacscale_mongo/testing.py), and
against a real mongod when MONGODB_URI points at one (`real_mongo`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from jacscale_mongo.graph_store import MongoGraphStore
from jacscale_mongo.jobs import MongoJobStore
from pymongo import MongoClient

from jacscale_ext.scheduler.testing import *  # noqa: F403 - the contract's tests run here
from jacscale_ext.scheduler.testing import JobStoreFactory


@pytest.fixture(params=["test-double", pytest.param("real", marks=pytest.mark.real_mongo)])
def mongo_base_uri(request: pytest.FixtureRequest) -> str:
    """The test double's URL, or (real_mongo) MONGODB_URI."""
    if request.param == "real":
        return str(request.getfixturevalue("real_mongo_uri"))
    return str(request.getfixturevalue("mongo_server"))


@pytest.fixture
def job_store_factory(mongo_base_uri: str) -> Iterator[JobStoreFactory]:
    """Each call opens its own client on one fresh database (dropped afterwards)."""
    name = f"jobs_{uuid.uuid4().hex[:12]}"
    hosts = mongo_base_uri.partition("://")[2].split("/", 1)[0]
    uri = f"mongodb://{hosts}/{name}"
    opened: list[MongoGraphStore] = []

    def factory() -> MongoJobStore:
        graph = MongoGraphStore(uri)
        opened.append(graph)
        return MongoJobStore(graph)

    yield factory
    for graph in opened:
        graph.close()
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=2000)
    try:
        client.drop_database(name)
    finally:
        client.close()
