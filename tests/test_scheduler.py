"""@schedule and /jobs in-process: static jobs on the system root, dynamic jobs per user,
bad input, failures, the missed-fire policy, `jacscale jobs`.

Real servers (several workers, several servers, a killed leader) are in
tests/test_scheduler_servers.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.testclient import TestClient

from jacscale_core.app import create_app
from jacscale_core.config import ConfigError
from jacscale_core.memory import SYSTEM_ROOT_ID
from jacscale_core.plugins import hookimpl
from jacscale_core.principal import Principal
from jacscale_core.testing import TestApp
from jacscale_ext.scheduler.config import SchedulerConfig
from jacscale_ext.scheduler.jobs import Job
from jacscale_ext.scheduler.service import Scheduler
from jacscale_ext.scheduler.sqlite_jobs import SqliteJobStore
from jacscale_ext.scheduler.state import STATE_KEY
from jacscale_ext.scheduler.triggers import TriggerError, make_trigger
from jacscale_ext.sqlite_store import SqliteGraphStore
from tests.fixtures.servers import EXAMPLES, TEST_APPS

APP = TEST_APPS / "scheduler_app.jac"
WAIT_SECONDS = 30.0  # generous: the machine is shared; nothing here asserts speed


def wait_for(check: Callable[[], Any], what: str, timeout: float = WAIT_SECONDS) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def login(client: TestClient, email: str) -> dict[str, str]:
    creds = {"email": email, "password": "correct horse battery"}
    assert client.post("/user/register", json=creds).status_code == 201
    token = client.post("/user/login", json=creds).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


class FireLog:
    """A plugin recording jacscale_job_fired calls."""

    def __init__(self) -> None:
        self.fires: list[tuple[str, bool, bool]] = []

    @hookimpl
    def jacscale_job_fired(self, name: str, static: bool, success: bool) -> None:
        """Record one fire."""
        self.fires.append((name, static, success))


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        name: tmp_path / f"{name.lower()}.txt"
        for name in ("BEAT_FILE", "REMIND_FILE", "EXPLODE_FILE")
    }


@pytest.fixture
def served(tmp_path: Path, files: dict[str, Path]) -> Iterator[tuple[TestClient, FireLog]]:
    fires = FireLog()
    env = {k: str(v) for k, v in files.items()}
    with TestApp(APP, tmp_path / "data", env=env, plugins=[fires]) as client:
        yield client, fires


def run_on_system_root(client: TestClient, walker: str) -> Any:
    """Run an ordinary walker on the system root (no HTTP route leads there)."""
    ctx = client.app.state.jacscale  # type: ignore[attr-defined]
    system = Principal(user_id="system", root_id=SYSTEM_ROOT_ID.hex)

    async def run() -> Any:
        result = await ctx.executor.run(ctx.program.endpoints[walker], {}, system)
        return result.reports

    return client.portal.call(run)  # type: ignore[union-attr]


def test_scheduled_targets_are_not_http_endpoints(served: tuple[TestClient, FireLog]) -> None:
    client, _ = served
    headers = login(client, "a@example.com")
    for path in ("/walker/beat", "/walker/remind", "/function/explode", "/function/nightly"):
        assert client.post(path, json={}, headers=headers).status_code == 404, path
    assert client.post("/walker/ordinary", json={}, headers=headers).status_code == 200
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    names = {p.split("/")[2] for p in paths if p.startswith(("/walker/", "/function/"))}
    assert names == {"ordinary", "reminders", "beats"}
    assert set(paths["/jobs"]) == {"get", "post"}
    assert set(paths["/jobs/{job_id}"]) == {"get", "put", "delete"}
    body = paths["/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["walker_or_function"]["enum"] == ["explode", "remind"]


def test_static_interval_job_fires_on_the_system_root(
    served: tuple[TestClient, FireLog], files: dict[str, Path]
) -> None:
    client, fires = served
    wait_for(lambda: len(lines(files["BEAT_FILE"])) >= 2, "two beats")
    # The Beat node is on the system root, not on a user's.
    assert wait_for(
        lambda: run_on_system_root(client, "beats").value[0] >= 2, "beats on system root"
    )
    headers = login(client, "b@example.com")
    assert client.post("/walker/beats", json={}, headers=headers).json()["data"]["reports"] == [0]
    assert ("beat", True, True) in fires.fires
    # Static jobs are not users' jobs.
    assert client.get("/jobs", headers=headers).json()["data"]["total"] == 0


def test_dynamic_job_crud_and_it_runs_as_its_creator(
    served: tuple[TestClient, FireLog], files: dict[str, Path]
) -> None:
    client, _ = served
    alice, bob = login(client, "alice@example.com"), login(client, "bob@example.com")
    body = {"walker_or_function": "remind", "trigger": "interval", "interval": 1,
            "args": {"text": "water"}}  # fmt: skip
    created = client.post("/jobs", json=body, headers=alice)
    assert created.status_code == 201, created.text
    job = created.json()["data"]
    assert job["walker_or_function"] == "remind" and job["trigger"] == "interval"
    assert job["interval"] == 1.0 and job["status"] == "active" and job["run_count"] == 0
    assert job["next_run_at"].endswith("Z") and job["last_run_at"] is None
    assert (job["name"], job["is_walker"], job["static"]) == (
        "remind",
        True,
        False,
    )  # jac-scale's names
    job_id = job["job_id"]

    # It runs as alice, on alice's root.
    wait_for(lambda: "water" in lines(files["REMIND_FILE"]), "the reminder to fire")
    mine = client.post("/walker/reminders", json={}, headers=alice).json()["data"]["reports"][0]
    assert mine and set(mine) == {"water"}
    assert client.post("/walker/reminders", json={}, headers=bob).json()["data"]["reports"] == [[]]
    seen = wait_for(
        lambda: (
            (j := client.get(f"/jobs/{job_id}", headers=alice).json()["data"])["run_count"] >= 1
            and j["last_status"] == "succeeded"
            and j
        ),
        "the run to be recorded",
    )
    assert seen["last_run_at"] is not None and seen["last_error"] is None

    listing = client.get("/jobs", headers=alice).json()["data"]
    assert listing["total"] == 1 and [j["job_id"] for j in listing["jobs"]] == [job_id]
    assert client.get("/jobs", headers=bob).json()["data"]["jobs"] == []

    # Update: a cron trigger far away; the next run follows it.
    updated = client.put(f"/jobs/{job_id}", json={"trigger": "cron", "cron": "0 0 1 1 *"},
                         headers=alice)  # fmt: skip
    assert updated.status_code == 200, updated.text
    data = updated.json()["data"]
    assert data["trigger"] == "cron" and data["interval"] is None
    assert data["next_run_at"].endswith("-01-01T00:00:00.000Z")
    assert data["args"] == {"text": "water"}

    # Bob can neither see, change nor delete it.
    assert client.get(f"/jobs/{job_id}", headers=bob).status_code == 404
    assert client.put(f"/jobs/{job_id}", json={"trigger": "interval", "interval": 5},
                      headers=bob).status_code == 404  # fmt: skip
    assert client.delete(f"/jobs/{job_id}", headers=bob).status_code == 404
    assert client.get(f"/jobs/{job_id}", headers=alice).json()["data"]["trigger"] == "cron"

    deleted = client.delete(f"/jobs/{job_id}", headers=alice)
    assert deleted.json()["data"] == {"deleted": True, "job_id": job_id}
    assert client.get(f"/jobs/{job_id}", headers=alice).status_code == 404
    assert client.delete(f"/jobs/{job_id}", headers=alice).status_code == 404


def test_a_date_job_fires_once_then_shows_completed(
    served: tuple[TestClient, FireLog], files: dict[str, Path]
) -> None:
    client, _ = served
    user = login(client, "once@example.com")
    when = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    body = {
        "walker_or_function": "remind",
        "trigger": "date",
        "date": when,
        "args": {"text": "once"},
    }
    job_id = client.post("/jobs", json=body, headers=user).json()["data"]["job_id"]
    job = wait_for(
        lambda: (
            (j := client.get(f"/jobs/{job_id}", headers=user).json()["data"])["run_count"] and j
        ),
        "the one fire",
    )
    assert job["status"] == "completed" and job["next_run_at"] is None
    assert job["last_status"] == "succeeded" and job["run_count"] == 1
    assert lines(files["REMIND_FILE"]).count("once") == 1


def test_paging(served: tuple[TestClient, FireLog]) -> None:
    client, _ = served
    user = login(client, "pager@example.com")
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    ids = []
    for _ in range(5):
        r = client.post("/jobs", json={"walker_or_function": "remind", "trigger": "date", "date": later},
                        headers=user)  # fmt: skip
        ids.append(r.json()["data"]["job_id"])
    page = client.get("/jobs?limit=2&offset=3", headers=user).json()["data"]
    assert page["total"] == 5 and page["count"] == 2 and page["limit"] == 2 and page["offset"] == 3
    assert [j["job_id"] for j in page["jobs"]] == ids[3:5]
    for query in ("limit=0", "limit=501", "limit=x", "offset=-1"):
        r = client.get(f"/jobs?{query}", headers=user)
        assert r.status_code == 422, query
        assert r.json()["error"]["details"][0]["loc"][0] == "query"


FUTURE = (datetime.now(UTC) + timedelta(days=30)).isoformat()
PAST = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()


@pytest.mark.parametrize(
    ("body", "status", "loc"),
    [
        ({"walker_or_function": "nope", "trigger": "interval", "interval": 5}, 404, None),
        ({"walker_or_function": "ordinary", "trigger": "interval", "interval": 5}, 400, None),
        ({"walker_or_function": "beat", "trigger": "interval", "interval": 5}, 400, None),
        ({"walker_or_function": "_note", "trigger": "interval", "interval": 5}, 404, None),
        ({"walker_or_function": "remind", "trigger": "cron", "cron": "61 * * * *"}, 422, "cron"),
        ({"walker_or_function": "remind", "trigger": "cron", "cron": "* * * *"}, 422, "cron"),
        ({"walker_or_function": "remind", "trigger": "cron", "cron": "0 0 31 2 *"}, 422, "cron"),
        ({"walker_or_function": "remind", "trigger": "cron", "cron": 5}, 422, "cron"),
        ({"walker_or_function": "remind", "trigger": "date", "date": PAST}, 422, "date"),
        ({"walker_or_function": "remind", "trigger": "date", "date": "tomorrow"}, 422, "date"),
        ({"walker_or_function": "remind", "trigger": "interval", "interval": 0}, 422, "interval"),
        ({"walker_or_function": "remind", "trigger": "interval", "interval": -3}, 422, "interval"),
        ({"walker_or_function": "remind", "trigger": "interval", "interval": 0.2}, 422, "interval"),
        ({"walker_or_function": "remind", "trigger": "interval", "interval": "5"}, 422, "interval"),
        (
            {"walker_or_function": "remind", "trigger": "interval", "interval": True},
            422,
            "interval",
        ),
        ({"walker_or_function": "remind", "trigger": "interval"}, 422, "interval"),
        ({"walker_or_function": "remind", "trigger": "hourly"}, 422, "trigger"),
        ({"walker_or_function": "remind", "interval": 5}, 422, "trigger"),
        (
            {
                "walker_or_function": "remind",
                "trigger": "interval",
                "interval": 5,
                "cron": "* * * * *",
            },
            422,
            "cron",
        ),
        (
            {"walker_or_function": "remind", "trigger": "date", "date": FUTURE, "color": 1},
            422,
            "color",
        ),
        (
            {
                "walker_or_function": "remind",
                "trigger": "date",
                "date": FUTURE,
                "args": {"text": 5},
            },
            422,
            "args",
        ),
        (
            {
                "walker_or_function": "remind",
                "trigger": "date",
                "date": FUTURE,
                "args": {"nope": 1},
            },
            422,
            "args",
        ),
        (
            {"walker_or_function": "remind", "trigger": "date", "date": FUTURE, "args": [1]},
            422,
            "args",
        ),
        ({"trigger": "interval", "interval": 5}, 422, "walker_or_function"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_problem_and_stores_nothing(
    served: tuple[TestClient, FireLog], body: dict[str, Any], status: int, loc: str | None
) -> None:
    client, _ = served
    user = login(client, "bad@example.com")
    r = client.post("/jobs", json=body, headers=user)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["message"]
    if loc is not None:
        assert error["details"][0]["loc"][:2] == ["body", loc], error
    assert client.get("/jobs", headers=user).json()["data"]["total"] == 0


def test_requests_without_a_user_or_with_a_bad_body(served: tuple[TestClient, FireLog]) -> None:
    client, _ = served
    body = {"walker_or_function": "remind", "trigger": "interval", "interval": 5}
    assert client.post("/jobs", json=body).status_code == 401
    assert client.get("/jobs").status_code == 401
    assert client.get("/jobs/x").status_code == 401
    assert (
        client.post("/jobs", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    )
    user = login(client, "body@example.com")
    assert client.post("/jobs", content=b"{not json", headers={**user, "Content-Type": "application/json"}
                       ).status_code == 422  # fmt: skip
    assert client.post("/jobs", content=b"[1]", headers={**user, "Content-Type": "application/json"}
                       ).status_code == 422  # fmt: skip
    assert client.post("/jobs", content=b"a=b", headers={**user, "Content-Type": "text/plain"}
                       ).status_code == 415  # fmt: skip
    created = client.post("/jobs", json=body, headers=user).json()["data"]["job_id"]
    for bad in ({"trigger": "interval", "interval": -1}, {"interval": 5}, {"walker_or_function": "x",
                "trigger": "interval", "interval": 5}, {"trigger": "date", "date": PAST}):  # fmt: skip
        r = client.put(f"/jobs/{created}", json=bad, headers=user)
        assert r.status_code == 422, (bad, r.text)
    assert client.get(f"/jobs/{created}", headers=user).json()["data"]["interval"] == 5.0


def test_a_failing_fire_is_recorded_counted_and_the_job_goes_on(
    served: tuple[TestClient, FireLog], files: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    client, fires = served
    user = login(client, "boom@example.com")
    body = {"walker_or_function": "explode", "trigger": "interval", "interval": 1}
    job_id = client.post("/jobs", json=body, headers=user).json()["data"]["job_id"]
    job = wait_for(
        lambda: (
            (j := client.get(f"/jobs/{job_id}", headers=user).json()["data"])["run_count"] >= 2
            and j
        ),
        "two failed fires",
    )
    assert job["last_status"] == "failed" and "boom" in job["last_error"]
    assert job["status"] == "active"
    assert len(lines(files["EXPLODE_FILE"])) >= 2
    assert fires.fires.count(("explode", False, False)) >= 2
    failed = [
        r for r in caplog.records if r.name == "jacscale.scheduler" and "explode" in r.getMessage()
    ]
    assert failed and "request_id=" in failed[0].getMessage()


def test_a_deleted_users_jobs_are_deleted(served: tuple[TestClient, FireLog]) -> None:
    client, _ = served
    user = login(client, "leaving@example.com")
    body = {"walker_or_function": "remind", "trigger": "cron", "cron": "0 9 * * *"}
    assert client.post("/jobs", json=body, headers=user).status_code == 201
    store = client.app.state.jacscale.state[STATE_KEY].store  # type: ignore[attr-defined]
    assert any(not j.static for j in store.all())
    r = client.request(
        "DELETE", "/user/me", json={"password": "correct horse battery"}, headers=user
    )
    assert r.status_code == 200, r.text
    assert [j for j in store.all() if not j.static] == []


def test_dynamic_jobs_survive_a_restart(tmp_path: Path, files: dict[str, Path]) -> None:
    env = {k: str(v) for k, v in files.items()}
    with TestApp(APP, tmp_path / "data", env=env) as client:
        user = login(client, "stay@example.com")
        body = {
            "walker_or_function": "remind",
            "trigger": "interval",
            "interval": 1,
            "args": {"text": "again"},
        }
        job_id = client.post("/jobs", json=body, headers=user).json()["data"]["job_id"]
        wait_for(lambda: "again" in lines(files["REMIND_FILE"]), "a first fire")
    before = len(lines(files["REMIND_FILE"]))
    with TestApp(APP, tmp_path / "data", env=env) as client:
        creds = {"email": "stay@example.com", "password": "correct horse battery"}
        token = client.post("/user/login", json=creds).json()["access_token"]
        user = {"Authorization": f"Bearer {token}"}
        assert [j["job_id"] for j in client.get("/jobs", headers=user).json()["data"]["jobs"]] == [
            job_id
        ]
        wait_for(lambda: len(lines(files["REMIND_FILE"])) > before, "fires after the restart")


def test_settings_are_checked(tmp_path: Path) -> None:
    app = tmp_path / "app.jac"
    app.write_text(APP.read_text())
    (tmp_path / "jac.toml").write_text("[plugins.scale.scheduler]\nlease_seconds = 0.1\n")
    with pytest.raises(ConfigError, match="lease_seconds"):
        create_app(app, data_dir=tmp_path / "data")
    (tmp_path / "jac.toml").write_text('[plugins.scale.scheduler]\nmissed_fires = "sometimes"\n')
    with pytest.raises(ConfigError, match="missed_fires"):
        create_app(app, data_dir=tmp_path / "data")


def test_triggers() -> None:
    now = datetime(2030, 1, 1, 12, 30, tzinfo=UTC).timestamp()
    cron = make_trigger("cron", cron="0 9 * * 1", now=now)  # Mondays 09:00 UTC; 2030-01-07 is one
    assert cron.first_fire(now) == datetime(2030, 1, 7, 9, 0, tzinfo=UTC).timestamp()
    sunday = make_trigger("cron", cron="0 0 * * 0", now=now)  # standard cron: 0 = Sunday
    assert datetime.fromtimestamp(sunday.first_fire(now) or 0, UTC).weekday() == 6
    every = make_trigger("interval", interval=2.5, now=now)
    assert every.first_fire(now) == now + 2.5
    assert every.after_fire(now, now + 1) == now + 2.5  # keeps the cadence
    assert every.after_fire(now, now + 100) == now + 102.5  # missed: continues from now
    naive = make_trigger("date", date="2030-01-02 00:00:00", now=now)
    assert naive.date == datetime(2030, 1, 2, tzinfo=UTC).timestamp()
    assert naive.after_fire(naive.date or 0, now) is None
    zoned = make_trigger("date", date="2030-01-02T01:00:00+01:00", now=now)
    assert zoned.date == naive.date
    with pytest.raises(TriggerError) as info:
        make_trigger("date", date="2029-01-01T00:00:00Z", now=now)
    assert info.value.field == "date"


class _Executor:
    def __init__(self) -> None:
        self.runs: list[str] = []

    async def run(self, endpoint: Any, args: dict[str, Any], principal: Principal) -> None:
        self.runs.append(principal.root_id)


def _scheduler(tmp_path: Path, **config: Any) -> tuple[Scheduler, SqliteJobStore, _Executor]:
    graph = SqliteGraphStore(tmp_path / "jacscale.db")
    store = SqliteJobStore(graph)
    endpoint = SimpleNamespace(name="remind", kind="walker", schedule=object(),
                               decode=lambda data, loc_root="body": data)  # fmt: skip
    executor = _Executor()
    app = SimpleNamespace(
        program=SimpleNamespace(endpoints={"remind": endpoint}),
        executor=executor,
        hook=SimpleNamespace(jacscale_job_fired=lambda **_: None),
    )
    return Scheduler(app, store, SchedulerConfig(**config)), store, executor  # type: ignore[arg-type]


@pytest.mark.parametrize(("policy", "fires"), [("run_once", 1), ("skip", 0)])
def test_missed_fires_follow_the_policy(tmp_path: Path, policy: str, fires: int) -> None:
    scheduler, store, executor = _scheduler(tmp_path, missed_fires=policy, misfire_grace_seconds=30)
    now = time.time()
    # Due two hours ago (no server ran), every 10 minutes: 12 fires missed.
    job = Job(job_id="j1", name="remind", kind="walker", static=False, owner="u", root_id="ab" * 16,
              trigger="interval", interval=600.0, created_at=now - 9000, next_run=now - 7200)  # fmt: skip
    store.insert(job)

    async def dispatch() -> None:
        await scheduler._dispatch(job)  # noqa: SLF001 - the policy decision under test
        await asyncio.gather(*scheduler.running.values())

    asyncio.run(dispatch())
    assert len(executor.runs) == fires
    stored = store.get("j1")
    assert stored is not None and stored.next_run is not None
    assert now < stored.next_run <= time.time() + 600  # resumed from now, not 12 fires behind
    assert stored.run_count == fires
    # A fire only a little late (within the grace) runs under both policies.
    late = Job(job_id="j2", name="remind", kind="walker", static=False, owner="u", root_id="cd" * 16,
               trigger="interval", interval=600.0, created_at=now, next_run=time.time() - 2)  # fmt: skip
    store.insert(late)
    asyncio.run(scheduler._dispatch(late))  # noqa: SLF001
    assert len(executor.runs) == fires + 1


def test_an_overlapping_leader_cannot_fire_a_claimed_fire_again(tmp_path: Path) -> None:
    first, store, executor = _scheduler(tmp_path)
    second, _, executor2 = _scheduler(tmp_path)
    job = Job(job_id="j", name="remind", kind="walker", static=False, owner="u", root_id="ab" * 16,
              trigger="interval", interval=60.0, next_run=time.time() - 1)  # fmt: skip
    store.insert(job)

    async def both() -> None:
        await first._dispatch(job)  # noqa: SLF001
        await second._dispatch(job)  # noqa: SLF001 - read the same due job before the claim
        await asyncio.gather(*first.running.values(), *second.running.values())

    asyncio.run(both())
    assert len(executor.runs) + len(executor2.runs) == 1


def test_jacscale_jobs_lists_static_and_dynamic_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from jacscale_core.cli import main

    data = tmp_path / "data"
    with TestApp(APP, data) as client:
        user = login(client, "cli@example.com")
        body = {"walker_or_function": "remind", "trigger": "cron", "cron": "15 4 * * *"}
        job_id = client.post("/jobs", json=body, headers=user).json()["data"]["job_id"]
    assert main(["jobs", str(APP), "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(rows) == {"beat", "nightly", "remind"}
    assert "every 1s" in rows["beat"] and "static" in rows["beat"]
    assert "cron 0 3 * * *" in rows["nightly"] and "T03:00:00.000Z" in rows["nightly"]
    assert "cron 15 4 * * *" in rows["remind"] and "T04:15:00.000Z" in rows["remind"]
    assert job_id in rows["remind"]


def test_the_example_program(tmp_path: Path) -> None:
    with TestApp(EXAMPLES / "10_scheduler.jac", tmp_path) as client:
        user = login(client, "ex@example.com")
        assert client.post("/walker/heartbeat", json={}, headers=user).status_code == 404
        body = {
            "walker_or_function": "remind",
            "trigger": "interval",
            "interval": 1,
            "args": {"text": "tea"},
        }
        assert client.post("/jobs", json=body, headers=user).status_code == 201
        found = wait_for(
            lambda: client.post("/walker/my_reminders", json={}, headers=user).json()["data"][
                "reports"
            ][0],
            "a reminder",
        )
        assert found[0]["text"] == "tea"
