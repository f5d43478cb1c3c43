"""Permissions across users, over HTTP, with the reference document's examples/06_permissions.jac.

READ/CONNECT/WRITE, perm_grant / perm_revoke / allow_root / disallow_root, as the
reference documents them: a user's nodes are private; spawning a walker on
another user's node by id needs READ (else 404, the same answer as for a node
that does not exist); writes without WRITE are refused (not saved) and reported
in `data.warnings`; traversal only sees what the walker's user may read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from jacscale_core.testing import TestApp
from tests.auth.helpers import FAST_ENV, PERMISSIONS_APP, new_user


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with TestApp(PERMISSIONS_APP, tmp_path_factory.mktemp("perm-data"), env=FAST_ENV) as c:
        yield c


class User:
    """One registered user driving the permissions app."""

    def __init__(self, client: TestClient, name: str) -> None:
        self.client = client
        info = new_user(client, name)
        self.name = name
        self.root_id: str = info["root_id"]
        self.headers: dict[str, str] = info["headers"]

    def call(self, walker: str, body: dict[str, Any] | None = None, node: str | None = None) -> Any:
        path = f"/walker/{walker}" + (f"/{node}" if node else "")
        return self.client.post(path, json=body or {}, headers=self.headers)

    def ok(
        self, walker: str, body: dict[str, Any] | None = None, node: str | None = None
    ) -> dict[str, Any]:
        resp = self.call(walker, body, node)
        assert resp.status_code == 200, f"{self.name} {walker}: {resp.status_code} {resp.text}"
        data: dict[str, Any] = resp.json()["data"]
        return data

    def post(self, text: str, share: str = "none") -> str:
        node = self.ok("create_post", {"text": text, "share": share})["reports"][0]
        assert node["_jac_type"] == "Post" and node["text"] == text
        return str(node["_jac_id"])

    def feed(self) -> list[str]:
        return list(self.ok("feed")["reports"][0])

    def like(self, post_id: str) -> Any:
        return self.call("like_post", node=post_id)


def users(client: TestClient, *names: str) -> list[User]:
    return [User(client, n) for n in names]


def owner_likes(owner: User, post_id: str) -> int:
    """The owner likes the post (always allowed) and gets the new stored count.

    The owner's like itself is saved, so each call adds one: tests count it.
    """
    return int(owner.ok("like_post", node=post_id)["reports"][0])


def assert_denied_write(resp: Any) -> None:
    assert resp.status_code == 200, resp.text
    warnings = resp.json()["data"].get("warnings") or []
    assert warnings, f"expected a permission warning: {resp.text}"
    assert warnings[0]["required"] == "WRITE" and warnings[0]["target_type"] == "Post"


def assert_hidden(resp: Any) -> None:
    assert resp.status_code == 404, resp.text
    assert resp.json()["error"]["code"] == "NOT_FOUND"


# -- two users -------------------------------------------------------------------


def test_posts_are_private_by_default(client: TestClient) -> None:
    alice, bob = users(client, "alice", "bob")
    post = alice.post("alice private")
    assert "alice private" in alice.feed()
    assert "alice private" not in bob.feed()
    assert_hidden(bob.like(post))
    assert owner_likes(alice, post) == 1


def test_spawning_on_another_users_node_needs_read(client: TestClient) -> None:
    alice, bob = users(client, "alice", "bob")
    post = alice.post("by id")
    missing = "0" * 32
    hidden, absent = bob.like(post), bob.like(missing)
    assert hidden.status_code == absent.status_code == 404
    same = hidden.json()["error"]["message"].replace(post, "<id>")
    assert same == absent.json()["error"]["message"].replace(missing, "<id>"), (
        "a hidden node and a missing one get the same answer"
    )
    assert_hidden(bob.call("feed", node=alice.root_id))
    assert bob.call("like_post", node="not-a-node-id").status_code == 422
    alice.ok("share_with", {"target_root_id": bob.root_id, "level": "read"})
    assert_denied_write(bob.like(post))
    assert owner_likes(alice, post) == 1, "bob's like was refused and not saved"


def test_perm_grant_read_shares_with_everyone_read_only(client: TestClient) -> None:
    alice, bob = users(client, "alice", "bob")
    post = alice.post("hello world", share="read")
    assert "hello world" in bob.feed()
    assert_denied_write(bob.like(post))
    assert owner_likes(alice, post) == 1, "the refused like was not saved"


def test_perm_grant_write_lets_everyone_write(client: TestClient) -> None:
    alice, bob = users(client, "alice", "bob")
    post = alice.post("write me", share="write")
    resp = bob.like(post)
    assert resp.status_code == 200 and not resp.json()["data"].get("warnings")
    assert resp.json()["data"]["reports"] == [1]
    assert owner_likes(alice, post) == 2


def test_perm_revoke_removes_public_access(client: TestClient) -> None:
    alice, bob = users(client, "alice", "bob")
    post = alice.post("briefly public", share="read")
    assert "briefly public" in bob.feed()
    alice.ok("unshare")
    assert "briefly public" not in bob.feed()
    assert_hidden(bob.like(post))
    assert "briefly public" in alice.feed()


def test_anonymous_callers_cannot_reach_protected_walkers(client: TestClient) -> None:
    (alice,) = users(client, "alice")
    post = alice.post("members only", share="read")
    assert client.post(f"/walker/like_post/{post}", json={}).status_code == 401
    assert client.post("/walker/feed", json={}).status_code == 401


def test_write_access_for_one_root(client: TestClient) -> None:
    alice, bob = users(client, "alice", "bob")
    post = alice.post("bob may edit")
    alice.ok("share_with", {"target_root_id": bob.root_id, "level": "write"})
    assert bob.like(post).json()["data"]["reports"] == [1]
    assert owner_likes(alice, post) == 2
    alice.ok("unshare", {"target_root_id": bob.root_id})
    assert_hidden(bob.like(post))
    assert owner_likes(alice, post) == 3, "bob's refused like was not saved"


# -- three users -----------------------------------------------------------------


def test_allow_root_shares_with_one_user_only(client: TestClient) -> None:
    alice, bob, carol = users(client, "alice", "bob", "carol")
    post = alice.post("for bob")
    alice.ok("share_with", {"target_root_id": bob.root_id, "level": "read"})
    assert "for bob" in bob.feed()
    assert "for bob" not in carol.feed()
    assert_denied_write(bob.like(post))
    assert_hidden(carol.like(post))


def test_read_for_one_write_for_another(client: TestClient) -> None:
    alice, bob, carol = users(client, "alice", "bob", "carol")
    post = alice.post("mixed")
    alice.ok("share_with", {"target_root_id": bob.root_id, "level": "read"})
    alice.ok("share_with", {"target_root_id": carol.root_id, "level": "write"})
    assert_denied_write(bob.like(post))
    assert carol.like(post).json()["data"]["reports"] == [1]
    assert owner_likes(alice, post) == 2
    alice.ok("unshare", {"target_root_id": bob.root_id})
    assert "mixed" not in bob.feed()
    assert_hidden(bob.like(post))
    assert "mixed" in carol.feed(), "disallowing bob leaves carol's access alone"
    assert carol.like(post).json()["data"]["reports"] == [3]


def test_public_read_plus_private_write(client: TestClient) -> None:
    alice, bob, carol = users(client, "alice", "bob", "carol")
    post = alice.post("everyone reads", share="read")
    alice.ok("share_with", {"target_root_id": carol.root_id, "level": "write"})
    assert "everyone reads" in bob.feed() and "everyone reads" in carol.feed()
    assert_denied_write(bob.like(post))
    assert carol.like(post).json()["data"]["reports"] == [1]
    alice.ok("unshare")  # perm_revoke: public access gone, carol's own grant stays
    assert "everyone reads" not in bob.feed()
    assert "everyone reads" in carol.feed()


def test_traversal_only_sees_readable_nodes(client: TestClient) -> None:
    alice, bob, carol = users(client, "alice", "bob", "carol")
    alice.post("a-secret")
    alice.post("a-public", share="read")
    bob.post("b-second")
    bob.post("b-for-carol")
    bob.ok("share_with", {"target_root_id": carol.root_id})
    carol_feed = carol.feed()
    assert "a-public" in carol_feed
    assert "b-for-carol" in carol_feed and "b-second" in carol_feed  # bob shared both of his
    assert "a-secret" not in carol_feed
    bob_feed = bob.feed()
    assert "a-secret" not in bob_feed and "a-public" in bob_feed
    assert {"b-second", "b-for-carol"} <= set(bob_feed)
    alice_feed = alice.feed()
    assert "b-second" not in alice_feed and "b-for-carol" not in alice_feed


# -- CONNECT: linking to another user's node ----------------------------------------

BOARD_APP = """
node Board { has name: str; }
node Note { has text: str; }

walker make_board {
    has level: str = "none";
    can go with Root entry {
        b = here ++> Board(name="board");
        if self.level == "read" { perm_grant(b[0], READ); }
        if self.level == "connect" { perm_grant(b[0], CONNECT); }
        if self.level == "write" { perm_grant(b[0], WRITE); }
        report b[0];
    }
}

walker pin_note {
    has text: str;
    can go with Board entry { here ++> Note(text=self.text); }
}

walker notes {
    can go with Board entry { report [n.text for n in [here -->(?:Note)]]; }
}
"""


@pytest.mark.parametrize(
    ("level", "may_connect"), [("read", False), ("connect", True), ("write", True)]
)
def test_connecting_to_another_users_node_needs_connect(
    tmp_path: Any, level: str, may_connect: bool
) -> None:
    app_dir = tmp_path / "board"
    app_dir.mkdir()
    (app_dir / "app.jac").write_text(BOARD_APP)
    with TestApp(app_dir / "app.jac", tmp_path / "data", env=FAST_ENV) as c:
        alice, bob = users(c, "alice", "bob")
        board = alice.ok("make_board", {"level": level})["reports"][0]["_jac_id"]
        resp = bob.call("pin_note", {"text": "from bob"}, node=board)
        assert resp.status_code == 200, resp.text
        denied = [
            w for w in resp.json()["data"].get("warnings") or [] if w["required"] == "CONNECT"
        ]
        assert bool(denied) is not may_connect, resp.text
        expected = [["from bob"]] if may_connect else [[]]
        assert bob.ok("notes", node=board)["reports"] == expected
        # bob's note is bob's: alice traverses her board but cannot read it
        assert alice.ok("notes", node=board)["reports"] == [[]]
        carol = User(c, "carol")
        assert carol.ok("notes", node=board)["reports"] == [[]]
