"""A MongoDB wire-protocol TEST DOUBLE. It is not a database and not for production.

No mongod can be installed where the tests run, so this module speaks enough
of the MongoDB wire protocol for PyMongo to treat it as a standalone mongod:
real TCP sockets, real BSON, OP_MSG (plus OP_QUERY / OP_REPLY, which PyMongo
uses for the first `hello` of a connection). Commands run on mongomock, an
in-memory engine, under one lock.

Supported commands: hello / isMaster, ping, buildInfo, endSessions,
killCursors, insert, find, getMore, update, delete, findAndModify, count,
distinct, aggregate (collection level), create, drop, dropDatabase,
createIndexes, listIndexes, dropIndexes, listCollections, listDatabases, and
mongod's testing fail point `configureFailPoint: "failCommand"` (mode "alwaysOn",
"off" or {times: n}; data {failCommands, errorCode, namespace}) to make chosen
commands fail with an error code, as a fault would.
Anything else answers CommandNotFound (59). There is no authentication, no
replication and no transactions (a transaction answers IllegalOperation, as a
standalone mongod does); tests of those are marked `real_mongo`.

`stop()` drops the listener and every open connection, as a killed mongod
would; `start()` listens again on the same port with the data kept.

Run one by hand: `python -m jacscale_mongo.testing --port 27017`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import logging
import socket
import socketserver
import struct
import threading
from collections.abc import Callable
from typing import Any

import bson
import mongomock
from bson.codec_options import CodecOptions
from mongomock.filtering import filter_applies
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

log = logging.getLogger("jacscale_mongo.testing")

OP_REPLY = 1
OP_QUERY = 2004
OP_MSG = 2013
_HEADER = struct.Struct("<iiii")
_CODEC = CodecOptions(document_class=dict, tz_aware=True)
MAX_MESSAGE = 48_000_000
MAX_WIRE_VERSION = 21  # MongoDB 7.0
FIRST_BATCH = 101

Doc = dict[str, Any]


class CommandError(Exception):
    """A command failed the way mongod reports it: {ok: 0, code, codeName, errmsg}."""

    def __init__(self, code: int, code_name: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.code_name = code_name


def _error_reply(code: int, code_name: str, message: str) -> Doc:
    return {"ok": 0.0, "errmsg": message, "code": code, "codeName": code_name}


def _sort_spec(sort: Any) -> list[tuple[str, Any]] | None:
    if not sort:
        return None
    return list(dict(sort).items())


_RANGE = {
    "$gt": lambda key, bound: key > bound,
    "$gte": lambda key, bound: key >= bound,
    "$lt": lambda key, bound: key < bound,
    "$lte": lambda key, bound: key <= bound,
}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _id_candidates(documents: dict[Any, Doc], query: Any) -> list[Doc] | None:
    """The documents an `_id` condition can match, found by key; None: scan them all.

    Like mongod's `_id` index: equality, `$in` and numeric ranges on `_id` do not
    look at every document (mongomock would, which makes a test double slower
    with every write). The full filter is still applied to the candidates.
    """
    if not isinstance(query, dict) or "_id" not in query:
        return None
    spec = query["_id"]
    try:
        if not isinstance(spec, dict):
            found = documents.get(spec)
            return [found] if found is not None else []
        if set(spec) == {"$in"} and isinstance(spec["$in"], list):
            hits = (documents.get(v) for v in dict.fromkeys(spec["$in"]))
            return [d for d in hits if d is not None]
    except TypeError:  # an unhashable _id value (a document or a list)
        return None
    if spec and set(spec) <= set(_RANGE) and all(_is_number(v) for v in spec.values()):
        low = max((v for op, v in spec.items() if op in ("$gt", "$gte")), default=None)
        numbers = [k for k in documents if type(k) is int or type(k) is float]
        if low is not None:
            numbers = [k for k in numbers if k >= low]
        return [
            documents[k] for k in numbers if all(_RANGE[op](k, bound) for op, bound in spec.items())
        ]
    return None


def _with_id_lookups(coll: Any) -> Any:
    """Give one mongomock collection object `_id` lookups instead of full scans."""
    if getattr(coll, "_fake_id_lookups", False):
        return coll
    scan = coll._iter_documents
    store = coll._store

    def iter_documents(query: Any) -> Any:
        candidates = _id_candidates(store._documents, query)
        if candidates is None:
            return scan(query)
        return (doc for doc in candidates if filter_applies(query, doc))

    coll._iter_documents = iter_documents
    coll._fake_id_lookups = True
    return coll


class MongoEngine:
    """Executes decoded command documents on mongomock (thread-safe, one lock)."""

    def __init__(self) -> None:
        self.client: mongomock.MongoClient = mongomock.MongoClient()
        self._lock = threading.Lock()
        self._cursors: dict[int, tuple[str, list[Doc]]] = {}
        self._cursor_ids = itertools.count(1_000_001)
        self._commands: dict[str, Callable[[str, Doc], Doc]] = {
            "hello": self._hello,
            "ismaster": self._hello,
            "ping": lambda db, body: {},
            "buildinfo": self._build_info,
            "endsessions": lambda db, body: {},
            "killcursors": self._kill_cursors,
            "insert": self._insert,
            "find": self._find,
            "getmore": self._get_more,
            "update": self._update,
            "delete": self._delete,
            "findandmodify": self._find_and_modify,
            "count": self._count,
            "distinct": self._distinct,
            "aggregate": self._aggregate,
            "create": self._create,
            "drop": self._drop,
            "dropdatabase": self._drop_database,
            "createindexes": self._create_indexes,
            "listindexes": self._list_indexes,
            "dropindexes": self._drop_indexes,
            "listcollections": self._list_collections,
            "listdatabases": self._list_databases,
            "configurefailpoint": self._configure_fail_point,
        }
        self._fail: Doc | None = None  # the failCommand fail point, while on
        self.connection_id = 0
        self.command_log: list[str] = []

    # ----- dispatch -----------------------------------------------------------

    def run(self, body: Doc) -> Doc:
        """Execute one command document and return the reply document."""
        if not body:
            return _error_reply(59, "CommandNotFound", "empty command")
        name = next(iter(body))
        db = body.get("$db", "admin")
        handler = self._commands.get(name.lower())
        self.command_log.append(name)
        if handler is None:
            return _error_reply(59, "CommandNotFound", f"no such command: '{name}'")
        if body.get("startTransaction") or body.get("autocommit") is False:
            return _error_reply(
                20,
                "IllegalOperation",
                "Transaction numbers are only allowed on a replica set member or mongos",
            )
        failed = self._fail_point_hit(name.lower(), db, body)
        if failed is not None:
            return failed
        try:
            with self._lock:
                reply = handler(db, body)
        except CommandError as exc:
            return _error_reply(exc.code, exc.code_name, str(exc))
        except OperationFailure as exc:
            return _error_reply(exc.code or 2, "BadValue", str(exc))
        except (PyMongoError, ValueError, TypeError, KeyError, NotImplementedError) as exc:
            return _error_reply(2, "BadValue", f"{type(exc).__name__}: {exc}")
        reply.setdefault("ok", 1.0)
        return reply

    def _coll(self, db: str, body: Doc, key: str) -> Any:
        name = body.get(key)
        if not isinstance(name, str) or not name:
            raise CommandError(73, "InvalidNamespace", f"{key} must name a collection")
        return _with_id_lookups(self.client[db][name])

    def _cursor_reply(self, ns: str, docs: list[Doc], batch_size: int | None, single: bool) -> Doc:
        size = FIRST_BATCH if not batch_size else batch_size
        first, rest = docs[:size], docs[size:]
        cursor_id = 0
        if rest and not single:
            cursor_id = next(self._cursor_ids)
            self._cursors[cursor_id] = (ns, rest)
        return {"cursor": {"id": bson.Int64(cursor_id), "ns": ns, "firstBatch": first}}

    # ----- handshake and admin ------------------------------------------------

    def _hello(self, db: str, body: Doc) -> Doc:
        return {
            "helloOk": True,
            "ismaster": True,
            "isWritablePrimary": True,
            "maxBsonObjectSize": 16 * 1024 * 1024,
            "maxMessageSizeBytes": MAX_MESSAGE,
            "maxWriteBatchSize": 100_000,
            "localTime": dt.datetime.now(dt.UTC),
            "logicalSessionTimeoutMinutes": 30,
            "connectionId": self.connection_id,
            "minWireVersion": 0,
            "maxWireVersion": MAX_WIRE_VERSION,
            "readOnly": False,
        }

    def _configure_fail_point(self, db: str, body: Doc) -> Doc:
        if body.get("configureFailPoint") != "failCommand":
            raise CommandError(2, "BadValue", "only the failCommand fail point exists here")
        mode = body.get("mode")
        if mode == "off":
            self._fail = None
            return {}
        data = dict(body.get("data") or {})
        times = None if mode == "alwaysOn" else int(mode["times"])  # type: ignore[index]
        self._fail = {
            "commands": {str(c).lower() for c in data.get("failCommands", [])},
            "code": int(data.get("errorCode", 2)),
            "namespace": data.get("namespace"),
            "times": times,
        }
        return {}

    def _fail_point_hit(self, name: str, db: str, body: Doc) -> Doc | None:
        with self._lock:
            fail = self._fail
            if fail is None or name not in fail["commands"]:
                return None
            target = body.get(next(iter(body)))
            if fail["namespace"] and fail["namespace"] != f"{db}.{target}":
                return None
            if fail["times"] is not None:
                fail["times"] -= 1
                if fail["times"] <= 0:
                    self._fail = None
        return _error_reply(fail["code"], "FailPoint", f"failCommand fail point on {name}")

    def _build_info(self, db: str, body: Doc) -> Doc:
        return {"version": "7.0.0", "versionArray": [7, 0, 0, 0], "gitVersion": "fake-mongo"}

    def _kill_cursors(self, db: str, body: Doc) -> Doc:
        killed: list[Any] = []
        missing: list[Any] = []
        for cursor_id in body.get("cursors", []):
            (killed if self._cursors.pop(int(cursor_id), None) else missing).append(cursor_id)
        return {"cursorsKilled": killed, "cursorsNotFound": missing, "cursorsAlive": []}

    # ----- CRUD ---------------------------------------------------------------

    def _insert(self, db: str, body: Doc) -> Doc:
        coll = self._coll(db, body, "insert")
        ordered = body.get("ordered", True)
        n, errors = 0, []
        for index, doc in enumerate(body.get("documents", [])):
            try:
                coll.insert_one(doc)
                n += 1
            except DuplicateKeyError as exc:
                errors.append({"index": index, "code": 11000, "errmsg": f"E11000 {exc}"})
                if ordered:
                    break
        reply: Doc = {"n": n}
        if errors:
            reply["writeErrors"] = errors
        return reply

    def _find(self, db: str, body: Doc) -> Doc:
        coll = self._coll(db, body, "find")
        cursor = coll.find(body.get("filter") or {}, body.get("projection") or None)
        sort = _sort_spec(body.get("sort"))
        if sort:
            cursor = cursor.sort(sort)
        if body.get("skip"):
            cursor = cursor.skip(int(body["skip"]))
        limit = int(body.get("limit") or 0)
        if limit:
            cursor = cursor.limit(abs(limit))
        docs = list(cursor)
        single = bool(body.get("singleBatch")) or limit < 0
        return self._cursor_reply(f"{db}.{coll.name}", docs, body.get("batchSize"), single)

    def _get_more(self, db: str, body: Doc) -> Doc:
        cursor_id = int(body["getMore"])
        entry = self._cursors.pop(cursor_id, None)
        if entry is None:
            raise CommandError(43, "CursorNotFound", f"cursor id {cursor_id} not found")
        ns, docs = entry
        size = body.get("batchSize") or len(docs)
        batch, rest = docs[:size], docs[size:]
        next_id = 0
        if rest:
            next_id = cursor_id
            self._cursors[cursor_id] = (ns, rest)
        return {"cursor": {"id": bson.Int64(next_id), "ns": ns, "nextBatch": batch}}

    def _update(self, db: str, body: Doc) -> Doc:
        coll = self._coll(db, body, "update")
        n = modified = 0
        upserted: list[Doc] = []
        errors: list[Doc] = []
        for index, spec in enumerate(body.get("updates", [])):
            query, update = spec.get("q") or {}, spec.get("u")
            upsert = bool(spec.get("upsert"))
            if not isinstance(update, dict):
                raise CommandError(9, "FailedToParse", "update pipelines are not supported")
            try:
                if not any(key.startswith("$") for key in update):
                    result = coll.replace_one(query, update, upsert=upsert)
                elif spec.get("multi"):
                    result = coll.update_many(query, update, upsert=upsert)
                else:
                    result = coll.update_one(query, update, upsert=upsert)
            except DuplicateKeyError as exc:
                errors.append({"index": index, "code": 11000, "errmsg": f"E11000 {exc}"})
                if body.get("ordered", True):
                    break
                continue
            n += result.matched_count
            modified += result.modified_count
            if result.upserted_id is not None:
                n += 1
                upserted.append({"index": index, "_id": result.upserted_id})
        reply: Doc = {"n": n, "nModified": modified}
        if upserted:
            reply["upserted"] = upserted
        if errors:
            reply["writeErrors"] = errors
        return reply

    def _delete(self, db: str, body: Doc) -> Doc:
        coll = self._coll(db, body, "delete")
        n = 0
        for spec in body.get("deletes", []):
            query = spec.get("q") or {}
            if spec.get("limit", 0) == 1:
                n += coll.delete_one(query).deleted_count
            else:
                n += coll.delete_many(query).deleted_count
        return {"n": n}

    def _find_and_modify(self, db: str, body: Doc) -> Doc:
        coll = self._coll(db, body, next(iter(body)))
        query = body.get("query") or {}
        sort = _sort_spec(body.get("sort"))
        fields = body.get("fields") or None
        existed = coll.find_one(query, sort=sort) is not None
        if body.get("remove"):
            value = coll.find_one_and_delete(query, projection=fields, sort=sort)
            return {"value": value, "lastErrorObject": {"n": int(value is not None)}}
        update = body.get("update")
        if not isinstance(update, dict):
            raise CommandError(
                9, "FailedToParse", "findAndModify needs remove or an update document"
            )
        upsert = bool(body.get("upsert"))
        new = bool(body.get("new"))
        if any(key.startswith("$") for key in update):
            value = coll.find_one_and_update(
                query, update, projection=fields, sort=sort, upsert=upsert, return_document=new
            )
        else:
            value = coll.find_one_and_replace(
                query, update, projection=fields, sort=sort, upsert=upsert, return_document=new
            )
        last: Doc = {"n": int(existed or upsert), "updatedExisting": existed}
        if upsert and not existed:
            created = value if new and value else coll.find_one(query)
            if created is not None:
                last["upserted"] = created.get("_id")
        return {"value": value, "lastErrorObject": last}

    def _count(self, db: str, body: Doc) -> Doc:
        coll = self._coll(db, body, "count")
        kwargs = {k: int(body[k]) for k in ("skip", "limit") if body.get(k)}
        return {"n": coll.count_documents(body.get("query") or {}, **kwargs)}

    def _distinct(self, db: str, body: Doc) -> Doc:
        coll = self._coll(db, body, "distinct")
        return {"values": coll.distinct(body["key"], body.get("query") or {})}

    def _aggregate(self, db: str, body: Doc) -> Doc:
        coll = self._coll(db, body, "aggregate")
        docs = list(coll.aggregate(body.get("pipeline", [])))
        batch = (body.get("cursor") or {}).get("batchSize")
        return self._cursor_reply(f"{db}.{coll.name}", docs, batch, False)

    # ----- collections, databases, indexes ------------------------------------

    def _create(self, db: str, body: Doc) -> Doc:
        name = body["create"]
        if name in self.client[db].list_collection_names():
            raise CommandError(48, "NamespaceExists", f"Collection {db}.{name} already exists.")
        self.client[db].create_collection(name)
        return {}

    def _drop(self, db: str, body: Doc) -> Doc:
        self.client[db].drop_collection(body["drop"])
        return {}

    def _drop_database(self, db: str, body: Doc) -> Doc:
        self.client.drop_database(db)
        return {}

    def _create_indexes(self, db: str, body: Doc) -> Doc:
        coll = self._coll(db, body, "createIndexes")
        before = len(coll.index_information())
        for spec in body.get("indexes", []):
            options = {k: v for k, v in spec.items() if k in ("name", "unique", "sparse")}
            coll.create_index(list(spec["key"].items()), **options)
        return {"numIndexesBefore": before, "numIndexesAfter": len(coll.index_information())}

    def _list_indexes(self, db: str, body: Doc) -> Doc:
        coll = self._coll(db, body, "listIndexes")
        docs = []
        for name, info in coll.index_information().items():
            doc: Doc = {"v": 2, "key": dict(info["key"]), "name": name}
            if info.get("unique"):
                doc["unique"] = True
            docs.append(doc)
        return self._cursor_reply(f"{db}.{coll.name}", docs, None, False)

    def _drop_indexes(self, db: str, body: Doc) -> Doc:
        coll = self._coll(db, body, "dropIndexes")
        index = body.get("index")
        if index == "*":
            coll.drop_indexes()
        else:
            coll.drop_index(index)
        return {}

    def _list_collections(self, db: str, body: Doc) -> Doc:
        wanted = (body.get("filter") or {}).get("name")
        docs = [
            {"name": name, "type": "collection", "options": {}, "info": {"readOnly": False}}
            for name in sorted(self.client[db].list_collection_names())
            if wanted is None or name == wanted
        ]
        return self._cursor_reply(f"{db}.$cmd.listCollections", docs, None, False)

    def _list_databases(self, db: str, body: Doc) -> Doc:
        names = sorted(self.client.list_database_names())
        return {
            "databases": [{"name": n, "sizeOnDisk": 0, "empty": False} for n in names],
            "totalSize": 0,
        }


# ----- wire protocol -------------------------------------------------------------


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    chunks, remaining = [], size
    while remaining:
        chunk = sock.recv(remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def parse_op_msg(payload: bytes) -> tuple[int, Doc]:
    """Decode an OP_MSG body: (flag bits, command with document sequences merged in)."""
    (flags,) = struct.unpack_from("<I", payload, 0)
    end = len(payload) - (4 if flags & 1 else 0)  # bit 0: checksum present
    pos, body, sequences = 4, None, {}
    while pos < end:
        kind = payload[pos]
        pos += 1
        (size,) = struct.unpack_from("<i", payload, pos)
        section = payload[pos : pos + size]
        pos += size
        if kind == 0:
            body = bson.decode(section, codec_options=_CODEC)
        elif kind == 1:
            name_end = section.index(b"\x00", 4)
            ident = section[4:name_end].decode()
            sequences[ident] = bson.decode_all(section[name_end + 1 :], codec_options=_CODEC)
        else:
            raise ValueError(f"unknown OP_MSG section kind {kind}")
    if body is None:
        raise ValueError("OP_MSG without a body section")
    body.update(sequences)
    return flags, body


def parse_op_query(payload: bytes) -> Doc:
    """Decode an OP_QUERY on `<db>.$cmd` into a command document with `$db` set."""
    name_end = payload.index(b"\x00", 4)
    namespace = payload[4:name_end].decode()
    pos = name_end + 1 + 8  # numberToSkip, numberToReturn
    (size,) = struct.unpack_from("<i", payload, pos)
    query = bson.decode(payload[pos : pos + size], codec_options=_CODEC)
    if "$query" in query:
        query = query["$query"]
    query["$db"] = namespace.split(".", 1)[0]
    return query


def _frame(request_id: int, response_to: int, opcode: int, payload: bytes) -> bytes:
    return _HEADER.pack(16 + len(payload), request_id, response_to, opcode) + payload


class _Handler(socketserver.BaseRequestHandler):
    server: _TCPServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        owner = self.server.owner
        owner._track(sock)
        try:
            self._serve(sock, owner)
        except OSError:
            pass  # the client went away or stop() closed the socket
        finally:
            owner._untrack(sock)

    def _serve(self, sock: socket.socket, owner: FakeMongoServer) -> None:
        request_ids = itertools.count(1)
        while True:
            header = _recv_exact(sock, 16)
            if header is None:
                return
            length, request_id, _, opcode = _HEADER.unpack(header)
            if length < 16 or length > MAX_MESSAGE:
                return
            payload = _recv_exact(sock, length - 16)
            if payload is None:
                return
            if opcode == OP_MSG:
                flags, body = parse_op_msg(payload)
                reply = owner.engine.run(body)
                if flags & 2:  # moreToCome: the client wants no answer (w=0)
                    continue
                data = struct.pack("<I", 0) + b"\x00" + bson.encode(reply, codec_options=_CODEC)
                sock.sendall(_frame(next(request_ids), request_id, OP_MSG, data))
            elif opcode == OP_QUERY:
                reply = owner.engine.run(parse_op_query(payload))
                doc = bson.encode(reply, codec_options=_CODEC)
                data = struct.pack("<iqii", 0, 0, 0, 1) + doc
                sock.sendall(_frame(next(request_ids), request_id, OP_REPLY, data))
            else:
                log.warning("fake mongo: unsupported opcode %s, closing", opcode)
                return


class _TCPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, address: tuple[str, int], owner: FakeMongoServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)


class FakeMongoServer:
    """The test double on 127.0.0.1: start(), stop() (like a kill), start() again."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on `host:port` once started (port 0 picks a free one)."""
        self.host = host
        self.port = port
        self.engine = MongoEngine()
        self._server: _TCPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()

    @property
    def url(self) -> str:
        """`mongodb://127.0.0.1:<port>/` for PyMongo."""
        return f"mongodb://{self.host}:{self.port}/"

    @property
    def running(self) -> bool:
        """True while listening."""
        return self._server is not None

    def start(self) -> FakeMongoServer:
        """Listen (again) and serve connections from a background thread."""
        if self._server is not None:
            return self
        self._server = _TCPServer((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-mongo-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection, as a killed mongod would."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._conns_lock:
            conns = list(self._conns)
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the peer
            sock.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeMongoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track(self, sock: socket.socket) -> None:
        with self._conns_lock:
            self._conns.add(sock)
            self.engine.connection_id += 1

    def _untrack(self, sock: socket.socket) -> None:
        with self._conns_lock:
            self._conns.discard(sock)


def main() -> None:
    """Run the test double in the foreground (for trying the kvstore by hand)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=27017)
    args = parser.parse_args()
    server = FakeMongoServer(port=args.port).start()
    print(f"fake mongo (test double) listening on {server.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
