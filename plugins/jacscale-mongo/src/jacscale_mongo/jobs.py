"""The scheduler's JobStore on MongoDB, when the graph store is the Mongo one.

Two collections in the app's database: `jacscale_scheduler_leases` (the leader
lease: `{_id: name, holder, expires}`) and `jacscale_scheduler_jobs` (one
document per job, `_id` = job id). Taking the lease is one `find_one_and_update`
filtered on "mine or expired" with upsert: when another holder's unexpired
lease exists the upsert collides on `_id` and the caller is refused. A fire is
claimed by an `update_one` filtered on the `next_run` it read (compare-and-set).
Every server sharing the database shares one lease and one set of jobs; their
clocks should agree to well within `lease_seconds` (NTP does).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import pymongo
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from jacscale_ext.scheduler.jobs import Job
from jacscale_mongo.client import translate
from jacscale_mongo.graph_store import MongoGraphStore

T = TypeVar("T")
LEASES = "jacscale_scheduler_leases"
JOBS = "jacscale_scheduler_jobs"


def _job(doc: dict[str, Any]) -> Job:
    return Job.from_doc({**doc, "job_id": doc["_id"], "args": json.loads(doc["args"])})


def _doc(job: Job) -> dict[str, Any]:
    doc = job.to_doc()
    doc["_id"] = doc.pop("job_id")
    # As JSON text: a user's argument values may hold keys MongoDB refuses ("$x", "a.b").
    doc["args"] = json.dumps(doc["args"])
    return doc


class MongoJobStore:
    """`jacscale_ext.scheduler.jobs.JobStore` in the Mongo graph store's database."""

    def __init__(self, store: MongoGraphStore) -> None:
        """Use the graph store's client and database (indexes are made on first use)."""
        self._store = store
        self.location = store.location
        db = store._client[store.database]  # noqa: SLF001 - one client per store, shared
        self._leases = db[LEASES]
        self._jobs = db[JOBS]
        self._indexed = False

    def _run(self, action: str, fn: Callable[[], T]) -> T:
        try:
            if not self._indexed:
                self._jobs.create_index([("owner", 1), ("created_at", 1), ("_id", 1)], name="owner")
                self._jobs.create_index([("next_run", 1)], name="next_run")
                self._indexed = True
            return fn()
        except DuplicateKeyError:
            raise
        except PyMongoError as exc:
            raise translate(exc, self._store.uri, action) from None

    # -- lease -----------------------------------------------------------------
    def acquire_lease(self, name: str, holder: str, ttl: float, now: float) -> bool:
        """Take or renew the lease (see JobStore.acquire_lease)."""
        query = {"_id": name, "$or": [{"holder": holder}, {"expires": {"$lte": now}}]}
        try:
            doc = self._run(
                "taking the scheduler lease",
                lambda: self._leases.find_one_and_update(
                    query,
                    {"$set": {"holder": holder, "expires": now + ttl}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                ),
            )
        except DuplicateKeyError:
            return False  # another holder's lease exists and has not expired
        return doc is not None and doc.get("holder") == holder

    def release_lease(self, name: str, holder: str) -> None:
        """Drop the lease if `holder` has it."""
        self._run(
            "releasing the scheduler lease",
            lambda: self._leases.delete_one({"_id": name, "holder": holder}),
        )

    def lease_holder(self, name: str, now: float) -> str | None:
        """The current holder, or None."""
        doc = self._run(
            "reading the scheduler lease",
            lambda: self._leases.find_one({"_id": name, "expires": {"$gt": now}}),
        )
        return str(doc["holder"]) if doc else None

    # -- jobs ------------------------------------------------------------------
    def insert(self, job: Job) -> None:
        """Add a job."""
        self._run("adding a job", lambda: self._jobs.insert_one(_doc(job)))

    def get(self, job_id: str) -> Job | None:
        """The job, or None."""
        doc = self._run("reading a job", lambda: self._jobs.find_one({"_id": {"$eq": job_id}}))
        return _job(doc) if doc else None

    def owned_by(self, owner: str, limit: int, offset: int) -> tuple[list[Job], int]:
        """A page of `owner`'s jobs and their total."""
        query = {"owner": {"$eq": owner}}

        def page() -> tuple[list[Job], int]:
            cursor = (
                self._jobs.find(query)
                .sort([("created_at", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)])
                .skip(offset)
                .limit(limit)
            )
            return [_job(d) for d in cursor], self._jobs.count_documents(query)

        return self._run("listing jobs", page)

    def all(self) -> list[Job]:
        """Every job."""
        return self._run(
            "listing jobs",
            lambda: [_job(d) for d in self._jobs.find({}).sort([("created_at", 1), ("_id", 1)])],
        )

    def save(self, job: Job) -> bool:
        """Replace a job."""
        result = self._run(
            "updating a job", lambda: self._jobs.replace_one({"_id": job.job_id}, _doc(job))
        )
        return result.matched_count == 1

    def delete(self, job_id: str) -> bool:
        """Delete a job."""
        result = self._run(
            "deleting a job", lambda: self._jobs.delete_one({"_id": {"$eq": job_id}})
        )
        return result.deleted_count == 1

    def delete_owned_by(self, owner: str) -> int:
        """Delete every job of `owner`."""
        result = self._run(
            "deleting jobs", lambda: self._jobs.delete_many({"owner": {"$eq": owner}})
        )
        return int(result.deleted_count)

    def due(self, now: float, limit: int) -> list[Job]:
        """Jobs due at `now`, earliest first."""
        query = {"next_run": {"$ne": None, "$lte": now}}
        return self._run(
            "reading due jobs",
            lambda: [_job(d) for d in self._jobs.find(query).sort("next_run", 1).limit(limit)],
        )

    def claim(self, job_id: str, expected: float, next_run: float | None) -> bool:
        """Compare-and-set `next_run`."""
        result = self._run(
            "claiming a fire",
            lambda: self._jobs.update_one(
                {"_id": job_id, "next_run": expected}, {"$set": {"next_run": next_run}}
            ),
        )
        return result.matched_count == 1

    def record_run(self, job_id: str, at: float, status: str, error: str | None) -> None:
        """Note a finished fire."""
        self._run(
            "recording a run",
            lambda: self._jobs.update_one(
                {"_id": job_id},
                {"$set": {"last_run": at, "last_status": status, "last_error": error},
                 "$inc": {"run_count": 1}},
            ),
        )  # fmt: skip

    def close(self) -> None:
        """Nothing of its own to close (the graph store owns the client)."""
