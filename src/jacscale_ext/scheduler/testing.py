"""The JobStore contract (scheduler lease + jobs): every store's job store must pass it.

Use it from a test module with a `job_store_factory` fixture returning a callable
that opens a job store over the same backing data each time it is called (two
calls = two processes sharing it):

    from jacscale_ext.scheduler.testing import *  # noqa: F403 - the contract's tests
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

from jacscale_ext.scheduler.jobs import Job, JobStore

JobStoreFactory = Callable[[], JobStore]
T0 = 1_900_000_000.0  # a fixed "now": the contract never depends on the clock


def make_job(owner: str = "alice", next_run: float | None = T0 + 10, created: float = T0) -> Job:
    """A dynamic interval job of `owner`."""
    return Job(
        job_id=uuid.uuid4().hex, name="remind", kind="walker", static=False, owner=owner,
        root_id=uuid.uuid4().hex, trigger="interval", interval=5.0, args={"text": "hi"},
        created_at=created, updated_at=created, next_run=next_run,
    )  # fmt: skip


def test_job_contract_lease_is_exclusive_until_it_expires(
    job_store_factory: JobStoreFactory,
) -> None:
    a, b = job_store_factory(), job_store_factory()
    lease = f"lease-{uuid.uuid4().hex[:8]}"
    assert a.acquire_lease(lease, "A", 5.0, T0)
    assert not b.acquire_lease(lease, "B", 5.0, T0 + 1)
    assert a.acquire_lease(lease, "A", 5.0, T0 + 2)  # renewal: now valid until T0 + 7
    assert not b.acquire_lease(lease, "B", 5.0, T0 + 6.5)
    assert a.lease_holder(lease, T0 + 6.5) == "A"
    # A stopped renewing: after expiry B takes over and A is refused.
    assert b.lease_holder(lease, T0 + 7.5) is None
    assert b.acquire_lease(lease, "B", 5.0, T0 + 7.5)
    assert not a.acquire_lease(lease, "A", 5.0, T0 + 8)
    a.release_lease(lease, "A")  # not A's: nothing happens
    assert a.lease_holder(lease, T0 + 8) == "B"
    b.release_lease(lease, "B")
    assert a.lease_holder(lease, T0 + 8) is None
    assert a.acquire_lease(lease, "A", 5.0, T0 + 8)


def test_job_contract_one_winner_when_many_race_for_the_lease(
    job_store_factory: JobStoreFactory,
) -> None:
    stores = [job_store_factory() for _ in range(6)]
    lease = f"race-{uuid.uuid4().hex[:8]}"
    start = threading.Barrier(len(stores))
    wins: list[str] = []

    def contend(i: int) -> None:
        start.wait()
        if stores[i].acquire_lease(lease, f"H{i}", 5.0, T0):
            wins.append(f"H{i}")

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(wins) == 1, wins
    assert stores[0].lease_holder(lease, T0) == wins[0]


def test_job_contract_jobs_crud_and_owner_pages(job_store_factory: JobStoreFactory) -> None:
    store, other = job_store_factory(), job_store_factory()
    owner = f"u-{uuid.uuid4().hex[:8]}"
    jobs = [make_job(owner, created=T0 + i) for i in range(5)]
    for job in reversed(jobs):
        store.insert(job)
    store.insert(make_job("someone-else"))
    page, total = other.owned_by(owner, 2, 1)
    assert total == 5
    assert [j.job_id for j in page] == [jobs[1].job_id, jobs[2].job_id]
    got = other.get(jobs[0].job_id)
    assert got == jobs[0]
    assert other.get("no-such-job") is None
    got.interval, got.next_run = 9.5, T0 + 99
    got.args = {"text": "changed", "meta": {"$where": "1", "a.b": [1, None]}}  # any JSON
    assert store.save(got)
    assert other.get(got.job_id) == got
    ghost = make_job(owner)
    assert not store.save(ghost)
    assert store.delete(jobs[4].job_id)
    assert not store.delete(jobs[4].job_id)
    assert other.owned_by(owner, 50, 0)[1] == 4
    assert store.delete_owned_by(owner) == 4
    assert other.owned_by(owner, 50, 0) == ([], 0)
    assert all(j.owner != owner for j in other.all())


def test_job_contract_due_claim_and_record(job_store_factory: JobStoreFactory) -> None:
    store, other = job_store_factory(), job_store_factory()
    owner = f"u-{uuid.uuid4().hex[:8]}"
    later = make_job(owner, next_run=T0 - 1)
    sooner = make_job(owner, next_run=T0 - 5)
    future = make_job(owner, next_run=T0 + 60)
    done = make_job(owner, next_run=None)
    for job in (later, sooner, future, done):
        store.insert(job)
    due = [j.job_id for j in other.due(T0, 100) if j.owner == owner]
    assert due == [sooner.job_id, later.job_id]
    # Claim by compare-and-set: only the first of two claimers of one fire wins.
    assert store.claim(sooner.job_id, T0 - 5, T0 + 5)
    assert not other.claim(sooner.job_id, T0 - 5, T0 + 5)
    assert [j.job_id for j in other.due(T0, 100) if j.owner == owner] == [later.job_id]
    assert other.claim(later.job_id, T0 - 1, None)  # a finished one-shot job
    assert other.get(later.job_id).next_run is None  # type: ignore[union-attr]
    store.record_run(sooner.job_id, T0, "failed", "ValueError: boom")
    store.record_run(sooner.job_id, T0 + 5, "succeeded", None)
    seen = other.get(sooner.job_id)
    assert seen is not None
    assert (seen.run_count, seen.last_run, seen.last_status, seen.last_error) == (
        2, T0 + 5, "succeeded", None,
    )  # fmt: skip
    assert seen.next_run == T0 + 5
