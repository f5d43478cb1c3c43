"""Login failure throttling: sliding windows per account and per IP."""

from __future__ import annotations

from pathlib import Path

import pytest

from jacscale_core.testing import TestApp
from jacscale_ext.auth.config import AuthConfig
from jacscale_ext.auth.throttle import FailureThrottle, Limit, Throttled
from tests.auth.helpers import (
    FAST_ENV,
    PASSWORD,
    TODO_APP,
    bearer,
    login,
    register,
    unique_email,
    write_app,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def throttle(clock: Clock) -> FailureThrottle:
    return FailureThrottle({"account": Limit(3, 60), "ip": Limit(5, 100)}, clock=clock)


def test_blocks_after_max_failures_with_retry_after(
    throttle: FailureThrottle, clock: Clock
) -> None:
    key = "account:email:a@b.co"
    for _ in range(3):
        throttle.check([key])
        throttle.record_failure([key])
        clock.now += 10
    with pytest.raises(Throttled) as info:
        throttle.check([key])
    # first failure at 1000, window 60 -> free at 1060; now is 1030
    assert info.value.retry_after == 30
    clock.now = 1060.5
    throttle.check([key])


def test_sliding_window_frees_one_slot_at_a_time(throttle: FailureThrottle, clock: Clock) -> None:
    key = "account:x"
    for step in (0, 20, 40):
        clock.now = 1000 + step
        throttle.record_failure([key])
    clock.now = 1061
    throttle.check([key])  # the failure at 1000 left the window
    throttle.record_failure([key])
    with pytest.raises(Throttled) as info:
        throttle.check([key])
    assert info.value.retry_after == 19  # the failure at 1020 leaves at 1080


def test_success_resets_account(throttle: FailureThrottle) -> None:
    for _ in range(3):
        throttle.record_failure(["account:a"])
    throttle.reset("account:a")
    throttle.check(["account:a"])


def test_ip_limit_spans_accounts(throttle: FailureThrottle) -> None:
    for i in range(5):
        throttle.record_failure([f"account:user{i}", "ip:10.0.0.1"])
    with pytest.raises(Throttled) as info:
        throttle.check(["account:user-new", "ip:10.0.0.1"])
    assert info.value.key == "ip:10.0.0.1"
    throttle.check(["account:user-new", "ip:10.0.0.2"])


def test_unknown_kinds_and_zero_limits_are_unlimited(clock: Clock) -> None:
    t = FailureThrottle({"account": Limit(0, 60)}, clock=clock)
    for _ in range(100):
        t.record_failure(["account:a", "other:b"])
    t.check(["account:a", "other:b"])
    assert len(t) == 0


def test_memory_is_bounded(clock: Clock) -> None:
    t = FailureThrottle({"ip": Limit(3, 60)}, max_keys=100, clock=clock)
    for i in range(1000):
        t.record_failure([f"ip:{i}"])
    assert len(t) <= 100
    clock.now += 61
    t.record_failure(["ip:new"])
    t.record_failure([f"ip:{i}" for i in range(200)])
    assert len(t) <= 100


def test_retry_after_is_at_least_one_second(throttle: FailureThrottle, clock: Clock) -> None:
    for _ in range(3):
        throttle.record_failure(["account:z"])
    clock.now += 59.99
    assert throttle.retry_after("account:z") == 1


# -- over HTTP: [plugins.scale.auth] limits, 429 with Retry-After ----------------------

THROTTLE_TOML = """
[plugins.scale.auth]
login_max_failures_per_account = 3
login_max_failures_per_ip = 7
login_window_seconds = 120
"""


def test_login_throttling_over_http(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", TODO_APP.read_text(), THROTTLE_TOML)
    with TestApp(app, tmp_path / "data", env=FAST_ENV) as c:
        victim = unique_email("victim")
        register(c, victim)
        for _ in range(3):
            resp = c.post("/user/login", json={"email": victim, "password": "guess-guess"})
            assert resp.status_code == 401
        resp = c.post("/user/login", json={"email": victim, "password": "guess-guess"})
        assert resp.status_code == 429
        assert resp.json()["error"]["code"] == "RATE_LIMITED"
        assert 1 <= int(resp.headers["retry-after"]) <= 120
        # even the right password waits: no password is checked while locked
        assert (
            c.post("/user/login", json={"email": victim, "password": PASSWORD}).status_code == 429
        )
        # an account that does not exist is throttled exactly the same way
        ghost = unique_email("ghost")
        answers = [
            c.post("/user/login", json={"email": ghost, "password": "x"}).status_code
            for _ in range(4)
        ]
        assert answers == [401, 401, 401, 429]
        # 6 failures from this IP so far; the 7th reaches the per-IP limit for every account
        other = unique_email("other")
        register(c, other)
        assert (
            c.post("/user/login", json={"email": other, "password": "wrong-one"}).status_code == 401
        )
        resp = c.post("/user/login", json={"email": other, "password": PASSWORD})
        assert resp.status_code == 429, "the per-IP limit covers every account"
        assert "retry-after" in resp.headers


def test_success_clears_the_account_counter(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", TODO_APP.read_text(), THROTTLE_TOML)
    with TestApp(app, tmp_path / "data", env=FAST_ENV) as c:
        email = unique_email()
        register(c, email)
        for _ in range(2):
            assert (
                c.post("/user/login", json={"email": email, "password": "nope-nope"}).status_code
                == 401
            )
        login(c, email)
        for _ in range(2):
            assert (
                c.post("/user/login", json={"email": email, "password": "nope-nope"}).status_code
                == 401
            )
        assert login(c, email)["token_type"] == "bearer"


def test_wrong_current_password_is_throttled(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", TODO_APP.read_text(), THROTTLE_TOML)
    with TestApp(app, tmp_path / "data", env=FAST_ENV) as c:
        email = unique_email()
        register(c, email)
        headers = bearer(login(c, email)["access_token"])
        body = {"current_password": "guess-guess", "new_password": "new-password-1"}
        codes = [c.put("/user/password", json=body, headers=headers).status_code for _ in range(4)]
        assert codes == [422, 422, 422, 429]


def test_default_limits() -> None:
    config = AuthConfig()
    assert config.login_max_failures_per_account == 10
    assert config.login_max_failures_per_ip == 50
    assert config.login_window_seconds == 900
