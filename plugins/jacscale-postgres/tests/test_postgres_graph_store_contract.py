"""PostgresGraphStore passes the GraphStore contract on a real PostgreSQL, plus what only it has.

Each test gets its own database on the session's server (tests/fixtures/postgres_server.py).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from jacscale_postgres.changes import ChangeReader
from jacscale_postgres.connection import PostgresUnavailable
from jacscale_postgres.graph_store import PostgresGraphStore
from jacscale_postgres.schema import MIGRATIONS, migrate
from jacscale_postgres.testing import PostgresServer

from jacscale_core.config import ConfigError
from jacscale_core.store import RecordWrite, WriteConflict
from jacscale_core.testing import free_port
from jacscale_core.testing.store_contract import *  # noqa: F403 - the contract's tests run here
from jacscale_core.testing.store_contract import StoreFactory, closing_factory, node


@pytest.fixture
def db_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database."""
    return postgres_server.fresh_database("contract")


@pytest.fixture
def store_factory(db_url: str) -> Iterator[StoreFactory]:
    """Opens stores on one database: two calls behave like two servers."""
    yield from closing_factory(lambda: PostgresGraphStore(db_url, pool_size=4))


@pytest.fixture
def store(store_factory: Callable[[], PostgresGraphStore]) -> PostgresGraphStore:
    """One store on a fresh database."""
    return store_factory()


def test_schema_is_versioned_and_migrated_once_by_concurrent_servers(db_url: str) -> None:
    errors: list[BaseException] = []
    applied: list[list[int]] = []

    def start() -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as conn:
                applied.append(migrate(conn))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    # Exactly one server applied the migrations; the others found them done.
    assert sorted(applied, key=len) == [[], [], [], [v for v, _, _ in MIGRATIONS]]
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT version FROM jacscale_schema ORDER BY version").fetchall()
    assert [r[0] for r in rows] == [v for v, _, _ in MIGRATIONS]


def test_a_database_from_a_newer_jacscale_is_refused(db_url: str) -> None:
    first = PostgresGraphStore(db_url)
    first.prepare()
    first.close()
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO jacscale_schema (version, description) VALUES (999, 'future')")
    store = PostgresGraphStore(db_url)
    with pytest.raises(ConfigError, match="schema version 999, newer"):
        store.prepare()
    store.close()


def test_edges_keep_insertion_order_under_concurrent_appends(
    store_factory: Callable[[], PostgresGraphStore],
) -> None:
    one, two = store_factory(), store_factory()
    root = node()
    one.apply([root])
    added: list[list[uuid.UUID]] = [[], []]
    errors: list[BaseException] = []

    def append(store: PostgresGraphStore, lane: int) -> None:
        try:
            for _ in range(40):
                edge = uuid.uuid4()
                store.apply([RecordWrite(op="update", id=root.id, edges_added=(edge,))])
                added[lane].append(edge)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(s, i)) for i, s in enumerate((one, two))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    stored = one.load([root.id])[root.id]
    assert len(stored.edges) == 80 and stored.version == 81
    # Each lane's appends appear in the order that lane made them.
    for lane in added:
        positions = [stored.edges.index(e) for e in lane]
        assert positions == sorted(positions)


def test_compare_and_set_lets_exactly_one_of_two_writers_win(
    store_factory: Callable[[], PostgresGraphStore],
) -> None:
    one, two = store_factory(), store_factory()
    w = node()
    one.apply([w])
    one.apply([RecordWrite(op="update", id=w.id, state=b"first", expect_version=1)])
    with pytest.raises(WriteConflict) as info:
        two.apply([RecordWrite(op="update", id=w.id, state=b"second", expect_version=1)])
    assert (info.value.expected, info.value.actual) == (1, 2)
    assert one.load([w.id])[w.id].state == b"first"


def test_poll_sees_a_slow_transaction_that_commits_a_lower_number_later(
    store_factory: Callable[[], PostgresGraphStore], db_url: str
) -> None:
    """A transaction that drew its change number first but commits last is not skipped."""
    reader = store_factory()
    writer = store_factory()
    reader.poll_changes()
    slow_id, fast = uuid.uuid4(), node()
    writer.apply([node()])  # a row to read past
    with psycopg.connect(db_url) as slow:
        slow.execute("SELECT pg_current_xact_id()")
        slow.execute(
            "INSERT INTO jacscale_changes (id, writer) VALUES (%s, 1)", (slow_id,)
        )  # drew number n, not committed yet
        writer.apply([fast])  # number n+1, committed
        first = reader.poll_changes()
        assert first is not None and fast.id in first and slow_id not in first
        slow.commit()
    second = reader.poll_changes()
    assert second == [slow_id]
    assert reader.poll_changes() == []


def test_a_rolled_back_number_is_forgotten(
    store_factory: Callable[[], PostgresGraphStore], db_url: str
) -> None:
    reader, writer = store_factory(), store_factory()
    reader.poll_changes()
    with psycopg.connect(db_url) as dead:
        dead.execute("SELECT pg_current_xact_id()")
        dead.execute("INSERT INTO jacscale_changes (id, writer) VALUES (%s, 1)", (uuid.uuid4(),))
        writer.apply([node()])
        reader.poll_changes()
        assert len(reader._changes.holes) == 1
        dead.rollback()
    writer.apply([node()])
    reader.poll_changes()
    reader.poll_changes()
    assert reader._changes.holes == {}


def test_change_reader_far_behind_drops_everything(db_url: str) -> None:
    store = PostgresGraphStore(db_url)
    store.prepare()
    reader = ChangeReader(writer=7)
    with psycopg.connect(db_url, autocommit=True) as conn:
        reader.start(conn)
        conn.execute(
            "INSERT INTO jacscale_changes (id, writer)"
            " SELECT gen_random_uuid(), 1 FROM generate_series(1, 2500)"
        )
        assert reader.poll(conn) is None
        assert reader.poll(conn) == []
    store.close()


def test_unreachable_server_fails_start_with_the_password_masked() -> None:
    url = f"postgresql://jac:TopSecret42@127.0.0.1:{free_port()}/app?connect_timeout=2"
    store = PostgresGraphStore(url)
    with pytest.raises(PostgresUnavailable) as info:
        store.prepare()
    text = str(info.value)
    assert "jac:***@127.0.0.1" in text and "unreachable" in text, text
    assert "TopSecret42" not in text
    assert store.ping() is False
    store.close()


def test_wrong_password_is_a_clear_start_error(postgres_server: PostgresServer) -> None:
    store = PostgresGraphStore(postgres_server.url(password="not-the-password"))
    with pytest.raises(PostgresUnavailable, match="password authentication failed") as info:
        store.prepare()
    assert "not-the-password" not in str(info.value)
    store.close()


def test_documents_never_run_input_as_sql(store: PostgresGraphStore) -> None:
    docs = store.docs
    docs.insert("users", {"_id": "a", "email": "a@x", "tags": ["x"], "n": None})
    docs.insert("users", {"_id": "b", "email": "b@x"})
    assert docs.find("users", {"email": "a@x' OR '1'='1"}) == []
    assert docs.find("users", {"email' OR '1'='1": "a@x"}) == []
    assert [d["_id"] for d in docs.find("users", {"n": None})] == ["a", "b"]  # missing == None
    assert [d["_id"] for d in docs.find("users", {"tags": ["x"]})] == ["a"]
    assert docs.find("users", {"tags": []}) == []  # equality, not containment
    assert docs.find("other", {}) == []


def test_a_lost_commit_reply_is_settled_by_the_transactions_own_rows(
    store: PostgresGraphStore, db_url: str
) -> None:
    """After a crash a transaction id can be handed out again: its status alone is not proof."""
    store.prepare()

    def transaction(commit: bool, writer: int) -> tuple[int, list[tuple[int, uuid.UUID]]]:
        with psycopg.connect(db_url) as conn:
            xid = int(conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0])
            anchor = uuid.uuid4()
            seq = conn.execute(
                "INSERT INTO jacscale_changes (id, writer) VALUES (%s, %s) RETURNING seq",
                (anchor, writer),
            ).fetchone()[0]
            if commit:
                conn.commit()
            else:
                conn.rollback()
        return xid, [(int(seq), anchor)]

    ours = store._writer
    assert store._settle(*transaction(True, ours)) is True
    assert store._settle(*transaction(False, ours)) is False
    # A committed transaction with that id, but not ours (other rows): not committed.
    xid, _ = transaction(True, ours + 1)
    _, marks = transaction(False, ours)
    assert store._settle(xid, marks) is False


def test_scan_records_yields_every_record_once_in_batches(store: PostgresGraphStore) -> None:
    nodes = [node(edges=(uuid.uuid4(),)) for _ in range(7)]
    store.apply(nodes)
    batches = list(store.scan_records(batch=3))
    assert [len(b) for b in batches] == [3, 3, 1]
    seen = {r.id: r for b in batches for r in b}
    assert set(seen) == {n.id for n in nodes}
    assert all(seen[n.id].edges == n.edges for n in nodes)
