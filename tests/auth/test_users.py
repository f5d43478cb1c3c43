"""User records: identity uniqueness (also under concurrency), stale claims, deletion."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import pytest
from starlette.testclient import TestClient

from jacscale_core.errors import ApiError
from jacscale_core.testing import TestApp
from jacscale_core.testing.memory_docs import MemoryDocs
from jacscale_ext.auth import users as users_mod
from jacscale_ext.auth.accounts import Accounts
from jacscale_ext.auth.passwords import FAST_FOR_TESTS, PasswordHasher
from jacscale_ext.auth.schemas import RegisterForm
from jacscale_ext.auth.throttle import FailureThrottle
from jacscale_ext.auth.tokens import TokenService
from jacscale_ext.auth.users import IdentityTaken, UserRecord, UserStore, identity_key, new_user_id
from tests.auth.helpers import FAST_ENV, TODO_APP, auth_state


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with TestApp(TODO_APP, tmp_path_factory.mktemp("users-data"), env=FAST_ENV) as c:
        yield c


@pytest.fixture(params=["memory", "app-store"])
def store(request: pytest.FixtureRequest) -> UserStore:
    if request.param == "memory":
        return UserStore(MemoryDocs())
    client: TestClient = request.getfixturevalue("app_client")
    return UserStore(client.app.state.jacscale.store.docs)  # type: ignore[attr-defined]


def record(user_id: str, email: str) -> UserRecord:
    return UserRecord(user_id=user_id, root_id="r" * 32, email=email, created_at=time.time())


def test_claims_are_exclusive_under_concurrency(store: UserStore) -> None:
    key = identity_key("email", f"race-{new_user_id()}@example.com")
    contenders = [new_user_id() for _ in range(12)]

    def claim(user_id: str) -> bool:
        try:
            store.claim_identities(user_id, [key])
            return True
        except IdentityTaken:
            return False

    with ThreadPoolExecutor(max_workers=6) as pool:
        won = list(pool.map(claim, contenders))
    assert won.count(True) == 1
    assert store.user_id_for(key) == contenders[won.index(True)]


def test_all_or_none(store: UserStore) -> None:
    taken = identity_key("username", f"taken-{new_user_id()[:8]}")
    store.claim_identities(new_user_id(), [taken])
    fresh = identity_key("email", f"fresh-{new_user_id()}@example.com")
    with pytest.raises(IdentityTaken) as info:
        store.claim_identities(new_user_id(), [fresh, taken])
    assert info.value.kind == "username"
    assert store.user_id_for(fresh) is None, "the first claim was rolled back"


def test_stale_claim_without_user_is_taken_over(
    store: UserStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = identity_key("email", f"stale-{new_user_id()}@example.com")
    crashed = new_user_id()
    store.claim_identities(crashed, [key])  # the process died before writing the user
    with pytest.raises(IdentityTaken):
        store.claim_identities(new_user_id(), [key])
    monkeypatch.setattr(users_mod, "STALE_CLAIM_SECONDS", -1.0)
    winner = new_user_id()
    store.claim_identities(winner, [key])
    assert store.user_id_for(key) == winner


def test_a_live_users_claim_is_never_taken_over(
    store: UserStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    email = f"live-{new_user_id()}@example.com"
    owner = new_user_id()
    store.claim_identities(owner, [identity_key("email", email)])
    store.insert(record(owner, email))
    monkeypatch.setattr(users_mod, "STALE_CLAIM_SECONDS", -1.0)
    with pytest.raises(IdentityTaken):
        store.claim_identities(new_user_id(), [identity_key("email", email)])


def test_password_change_moves_the_session_generation(store: UserStore) -> None:
    email = f"gen-{new_user_id()}@example.com"
    user_id = new_user_id()
    store.claim_identities(user_id, [identity_key("email", email)])
    store.insert(record(user_id, email))
    rehashed = store.set_password(user_id, "$argon2id$new", new_session=False)
    assert rehashed.session_gen == 0
    changed = store.set_password(user_id, "$argon2id$newer", new_session=True)
    assert changed.session_gen == 1
    stored = store.get(user_id)
    assert (
        stored is not None and stored.session_gen == 1 and stored.password_hash == "$argon2id$newer"
    )
    with pytest.raises(KeyError):
        store.set_password(new_user_id(), "x", new_session=True)


def test_delete_frees_identities(store: UserStore) -> None:
    email = f"del-{new_user_id()}@example.com"
    user_id = new_user_id()
    store.claim_identities(user_id, [identity_key("email", email)])
    store.insert(record(user_id, email))
    assert store.delete(user_id)
    assert store.get(user_id) is None and store.find(identity_key("email", email)) is None
    assert not store.delete(user_id)


def _accounts(docs: Any) -> tuple[Accounts, list[str]]:
    roots: list[str] = []

    async def create_root() -> str:
        roots.append(new_user_id())
        return roots[-1]

    accounts = Accounts(
        store=UserStore(docs),
        hasher=PasswordHasher(FAST_FOR_TESTS),
        tokens=TokenService("t" * 40),
        throttle=FailureThrottle({}),
        create_root=create_root,
    )
    return accounts, roots


def test_concurrent_registrations_of_one_email() -> None:
    accounts, _ = _accounts(MemoryDocs())
    outcomes: list[str] = []

    async def one() -> None:
        try:
            await accounts.register(RegisterForm("same@example.com", None, "pw-123456"))
            outcomes.append("ok")
        except ApiError as exc:
            outcomes.append(exc.code)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(one)

    anyio.run(main)
    assert sorted(outcomes) == ["IDENTITY_TAKEN"] * 9 + ["ok"]


def test_failed_root_creation_releases_the_claim() -> None:
    docs = MemoryDocs()
    accounts, _ = _accounts(docs)

    async def broken_root() -> str:
        raise RuntimeError("store down")

    accounts.create_root = broken_root

    async def main() -> None:
        with pytest.raises(RuntimeError):
            await accounts.register(RegisterForm("x@example.com", "xname", "pw-123456"))

    anyio.run(main)
    assert docs.get("identities", "email:x@example.com") is None
    assert docs.get("identities", "username:xname") is None


def test_app_store_keeps_users_in_documents(app_client: TestClient) -> None:
    resp = app_client.post(
        "/user/register", json={"email": "Doc@Example.com", "password": "pw-123456"}
    )
    user_id = resp.json()["user_id"]
    docs = auth_state(app_client).accounts.store.docs
    stored = docs.get("users", user_id)
    assert stored is not None and stored["email"] == "doc@example.com"
    assert stored["password_hash"].startswith("$argon2id$v=19$m=64,t=1,p=1$")
    identity = docs.get("identities", "email:doc@example.com")
    assert identity is not None and identity["user_id"] == user_id
