"""store() and LocalStorage: the Storage interface, path confinement, configuration."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.datastructures import UploadFile

from jac_scale.factories.storage_factory import StorageFactory, StorageType
from jacscale_core.context import AppContext
from jacscale_core.current import running, standalone_app
from jacscale_core.plugins import hookimpl
from jacscale_ext import local_storage
from jacscale_ext.local_storage import CHUNK_SIZE, LocalStorage, StoragePathError, store


@pytest.fixture
def current(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppContext]:
    """The current app: a fresh app directory without jac.toml and JAC_STORAGE_* variables."""
    app = tmp_path / "app"
    app.mkdir()
    for var in ("JAC_STORAGE_TYPE", "JAC_STORAGE_PATH", "JAC_STORAGE_CREATE_DIRS"):
        monkeypatch.delenv(var, raising=False)
    with running(standalone_app(app)) as ctx:
        yield ctx


@pytest.fixture
def app_dir(current: AppContext) -> Path:
    """The current app's directory."""
    return current.app_dir


@pytest.fixture
def storage(app_dir: Path) -> LocalStorage:
    """LocalStorage on <app>/files."""
    return LocalStorage(base_path="./files")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A secret file outside every storage folder."""
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    return secret


# ----- the Storage interface -------------------------------------------------------


def test_relative_base_path_resolves_against_the_app_dir(
    app_dir: Path, storage: LocalStorage
) -> None:
    assert storage.root == (app_dir / "files").resolve()
    assert storage.root.is_dir()
    assert storage.base_path == "./files"


def test_upload_download_from_bytes_file_object_and_path(
    storage: LocalStorage, tmp_path: Path
) -> None:
    assert storage.upload(b"raw bytes", "a/bytes.bin") == "a/bytes.bin"
    assert storage.upload(io.BytesIO(b"file object"), "a/obj.bin") == "a/obj.bin"
    local = tmp_path / "local.txt"
    local.write_bytes(b"from a path")
    assert storage.upload(str(local), "b/path.txt") == "b/path.txt"
    assert storage.upload(io.StringIO("text é"), "b/text.txt") == "b/text.txt"
    assert storage.download("a/bytes.bin") == b"raw bytes"
    assert storage.download("a/obj.bin") == b"file object"
    assert storage.download("b/path.txt") == b"from a path"
    assert storage.download("b/text.txt") == "text é".encode()


def test_uploaded_files_get_the_usual_permissions(storage: LocalStorage) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    storage.upload(b"x", "perm.txt")
    assert (storage.root / "perm.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_upload_overwrites(storage: LocalStorage) -> None:
    storage.upload(b"one", "f.txt")
    storage.upload(b"two", "f.txt")
    assert storage.download("f.txt") == b"two"


def test_upload_accepts_a_starlette_upload_file_or_its_file(storage: LocalStorage) -> None:
    upload = UploadFile(file=io.BytesIO(b"uploaded"), filename="x.dat")
    storage.upload(upload.file, "documents/one.dat")
    upload.file.seek(0)
    storage.upload(upload, "documents/two.dat")
    assert storage.download("documents/one.dat") == b"uploaded"
    assert storage.download("documents/two.dat") == b"uploaded"


def test_upload_refuses_what_is_not_a_file(storage: LocalStorage) -> None:
    with pytest.raises(TypeError, match="upload source must be a path, bytes or a file object"):
        storage.upload(12345, "x.bin")  # type: ignore[arg-type]
    assert list(storage.list_files(recursive=True)) == []


class _ChunkReader(io.RawIOBase):
    """A 5 MiB stream that records each read size and can fail part-way."""

    def __init__(self, total: int, fail_after: int | None = None) -> None:
        self.left = total
        self.fail_after = fail_after
        self.sizes: list[int] = []
        self.sent = 0

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        self.sizes.append(size)
        if self.fail_after is not None and self.sent >= self.fail_after:
            raise ConnectionResetError("client went away")
        n = self.left if size < 0 else min(size, self.left)
        self.left -= n
        self.sent += n
        return b"x" * n


def test_upload_streams_in_chunks(storage: LocalStorage) -> None:
    reader = _ChunkReader(5 * CHUNK_SIZE + 7)
    storage.upload(reader, "big.bin")
    assert reader.sizes and all(0 < size <= CHUNK_SIZE for size in reader.sizes)
    assert storage.get_metadata("big.bin")["size"] == 5 * CHUNK_SIZE + 7


def test_a_failed_upload_leaves_nothing_behind(storage: LocalStorage) -> None:
    storage.upload(b"old", "keep.bin")
    with pytest.raises(ConnectionResetError):
        storage.upload(_ChunkReader(5 * CHUNK_SIZE, fail_after=2 * CHUNK_SIZE), "keep.bin")
    assert storage.download("keep.bin") == b"old"
    assert sorted(p.name for p in storage.root.iterdir()) == ["keep.bin"]


def test_download_to_a_path_and_a_file_object(storage: LocalStorage, tmp_path: Path) -> None:
    storage.upload(b"payload", "p.bin")
    target = tmp_path / "out.bin"
    assert storage.download("p.bin", str(target)) is None
    assert target.read_bytes() == b"payload"
    sink = io.BytesIO()
    assert storage.download("p.bin", sink) is None
    assert sink.getvalue() == b"payload"


def test_download_missing_and_folder(storage: LocalStorage) -> None:
    with pytest.raises(FileNotFoundError, match="File not found: nope.txt"):
        storage.download("nope.txt")
    storage.upload(b"x", "dir/f.txt")
    with pytest.raises(IsADirectoryError):
        storage.download("dir")


def test_exists_metadata_and_list_files(storage: LocalStorage) -> None:
    storage.upload(b"12345", "documents/a.txt")
    storage.upload(b"1", "documents/sub/b.txt")
    storage.upload(b"1", "top.txt")
    assert storage.exists("documents/a.txt") and storage.exists("documents")
    assert not storage.exists("documents/zzz.txt")
    meta = storage.get_metadata("documents/a.txt")
    assert meta["size"] == 5 and meta["name"] == "a.txt" and meta["is_dir"] is False
    assert isinstance(meta["modified"], float) and isinstance(meta["created"], float)
    assert storage.get_metadata("documents")["is_dir"] is True
    assert list(storage.list_files()) == ["documents", "top.txt"]
    assert list(storage.list_files("documents")) == ["documents/a.txt", "documents/sub"]
    assert list(storage.list_files("documents", recursive=True)) == [
        "documents/a.txt",
        "documents/sub/b.txt",
    ]
    assert list(storage.list_files(recursive=True)) == [
        "documents/a.txt",
        "documents/sub/b.txt",
        "top.txt",
    ]
    assert list(storage.list_files("missing")) == []
    with pytest.raises(FileNotFoundError):
        storage.get_metadata("missing.txt")


def test_copy_move_delete(storage: LocalStorage) -> None:
    storage.upload(b"data", "a.txt")
    assert storage.copy("a.txt", "copies/b.txt") is True
    assert storage.move("copies/b.txt", "moved/c.txt") is True
    assert storage.download("a.txt") == storage.download("moved/c.txt") == b"data"
    assert not storage.exists("copies/b.txt")
    assert storage.copy("missing", "x") is False
    assert storage.move("missing", "x") is False
    assert storage.copy("moved", "moved2") is True  # folders too
    assert storage.download("moved2/c.txt") == b"data"
    assert storage.delete("moved") is True  # a folder with its content
    assert storage.delete("a.txt") is True
    assert storage.delete("a.txt") is False
    assert list(storage.list_files(recursive=True)) == ["moved2/c.txt"]


def test_get_url_is_a_file_url(storage: LocalStorage) -> None:
    storage.upload(b"x", "u.txt")
    assert storage.get_url("u.txt") == (storage.root / "u.txt").as_uri()


def test_create_dirs_false_does_not_create_the_folder(app_dir: Path) -> None:
    quiet = LocalStorage(base_path="./not-there", create_dirs=False)
    assert not (app_dir / "not-there").exists()
    assert quiet.exists("x") is False
    with pytest.raises(FileNotFoundError, match="does not exist"):
        quiet.upload(b"x", "x.txt")
    assert not (app_dir / "not-there").exists()


def test_bad_base_path(app_dir: Path) -> None:
    with pytest.raises(ValueError, match="base_path must be a non-empty path"):
        LocalStorage(base_path="")


# ----- confinement ---------------------------------------------------------------

BAD_PATHS = [
    "../secret.txt",
    "../../etc/passwd",
    "a/../../secret.txt",
    "a/../b.txt",
    "/etc/passwd",
    "//etc/passwd",
    "nul\x00byte",
]


@pytest.mark.parametrize("path", BAD_PATHS)
@pytest.mark.parametrize(
    "call",
    [
        lambda s, p: s.download(p),
        lambda s, p: s.upload(b"x", p),
        lambda s, p: s.exists(p),
        lambda s, p: s.delete(p),
        lambda s, p: s.get_metadata(p),
        lambda s, p: s.copy(p, "x"),
        lambda s, p: s.copy("x", p),
        lambda s, p: s.move(p, "x"),
        lambda s, p: s.move("x", p),
        lambda s, p: list(s.list_files(p)),
        lambda s, p: s.get_url(p),
    ],
)
def test_escaping_paths_are_refused(
    storage: LocalStorage, outside: Path, path: str, call: Any
) -> None:
    storage.upload(b"inside", "x")
    with pytest.raises(StoragePathError):
        call(storage, path)
    assert outside.read_text() == "top secret"
    assert storage.download("x") == b"inside"


@pytest.mark.parametrize("path", ["", ".", "./", "a/.."])
def test_the_storage_folder_itself_cannot_be_deleted_or_overwritten(
    storage: LocalStorage, path: str
) -> None:
    storage.upload(b"x", "keep.txt")
    with pytest.raises(StoragePathError):
        storage.delete(path)
    with pytest.raises(StoragePathError):
        storage.upload(b"y", path)
    assert storage.download("keep.txt") == b"x"


def test_symlinks_out_of_storage_are_refused(storage: LocalStorage, outside: Path) -> None:
    os.symlink(outside, storage.root / "link.txt")
    os.symlink(outside.parent, storage.root / "linkdir")
    for path in ("link.txt", "linkdir/secret.txt"):
        with pytest.raises(StoragePathError, match="leads outside the storage folder"):
            storage.download(path)
        with pytest.raises(StoragePathError):
            storage.get_metadata(path)
        with pytest.raises(StoragePathError):
            storage.copy(path, "stolen.txt")
    with pytest.raises(StoragePathError):
        storage.upload(b"overwrite", "link.txt")
    with pytest.raises(StoragePathError):
        list(storage.list_files("linkdir"))
    assert list(storage.list_files()) == []
    assert list(storage.list_files(recursive=True)) == []
    assert outside.read_text() == "top secret"


def test_deleting_a_symlink_removes_only_the_link(storage: LocalStorage, outside: Path) -> None:
    os.symlink(outside, storage.root / "link.txt")
    assert storage.delete("link.txt") is True
    assert not (storage.root / "link.txt").is_symlink()
    assert outside.read_text() == "top secret"


def test_copying_a_folder_keeps_links_as_links(storage: LocalStorage, outside: Path) -> None:
    storage.upload(b"x", "dir/f.txt")
    os.symlink(outside, storage.root / "dir" / "link.txt")
    assert storage.copy("dir", "dir2") is True
    assert (storage.root / "dir2" / "link.txt").is_symlink()
    with pytest.raises(StoragePathError):
        storage.download("dir2/link.txt")


def test_symlinks_inside_storage_work(storage: LocalStorage) -> None:
    storage.upload(b"real", "real.txt")
    os.symlink(storage.root / "real.txt", storage.root / "alias.txt")
    assert storage.download("alias.txt") == b"real"


# ----- store() configuration -------------------------------------------------------


def test_store_defaults(app_dir: Path) -> None:
    backend = store()
    assert isinstance(backend, LocalStorage)
    assert backend.root == (app_dir / "storage").resolve()


def test_store_honours_its_arguments(app_dir: Path) -> None:
    backend = store(base_path="./uploads", create_dirs=False)
    assert backend.root == (app_dir / "uploads").resolve()
    assert not (app_dir / "uploads").exists()
    assert store(base_path="./uploads").root.is_dir()


def test_env_beats_arguments(
    app_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("JAC_STORAGE_PATH", str(tmp_path / "from-env"))
    monkeypatch.setenv("JAC_STORAGE_CREATE_DIRS", "false")
    backend = store(base_path="./uploads")
    assert backend.root == (tmp_path / "from-env").resolve()
    assert not backend.root.exists()


def test_jac_toml_beats_env(app_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (app_dir / "jac.toml").write_text(
        '[storage]\nstorage_type = "local"\nbase_path = "./from-toml"\ncreate_dirs = true\n'
    )
    monkeypatch.setenv("JAC_STORAGE_PATH", "./from-env")
    monkeypatch.setenv("JAC_STORAGE_CREATE_DIRS", "false")
    monkeypatch.setenv("JAC_STORAGE_TYPE", "nonexistent")
    backend = store(base_path="./uploads")
    assert backend.root == (app_dir / "from-toml").resolve()
    assert backend.root.is_dir()


def test_jac_toml_keys_are_used_one_by_one(app_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (app_dir / "jac.toml").write_text("[storage]\ncreate_dirs = false\n")
    monkeypatch.setenv("JAC_STORAGE_PATH", "./from-env")
    backend = store(base_path="./uploads")
    assert backend.root == (app_dir / "from-env").resolve()
    assert not backend.root.exists()


def test_an_edited_jac_toml_is_read_again(app_dir: Path) -> None:
    toml = app_dir / "jac.toml"
    toml.write_text('[storage]\nbase_path = "./first"\n')
    assert store().root == (app_dir / "first").resolve()
    toml.write_text('[storage]\nbase_path = "./second"\n')
    later = toml.stat().st_mtime + 2
    os.utime(toml, (later, later))
    assert store().root == (app_dir / "second").resolve()


def test_jac_toml_in_a_parent_directory_is_found(app_dir: Path) -> None:
    (app_dir.parent / "jac.toml").write_text('[storage]\nbase_path = "./parent-files"\n')
    assert store().root == (app_dir / "parent-files").resolve()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[storage]\ncreate_dirs = "yes"\n', r"\[storage\] create_dirs must be true or false"),
        ("[storage]\nbase_path = 3\n", r"\[storage\] base_path must be a non-empty string"),
        ('[storage]\nbase_path = ""\n', r"\[storage\] base_path must be a non-empty string"),
        ("[storage]\nstorage_type = 1\n", r"\[storage\] storage_type must be a string"),
        ('storage = "local"\n', r"\[storage\] must be a table"),
    ],
)
def test_bad_jac_toml_values_name_the_key(app_dir: Path, toml: str, message: str) -> None:
    (app_dir / "jac.toml").write_text(toml)
    with pytest.raises(ValueError, match=message):
        store()


def test_bad_create_dirs_env_names_the_variable(
    app_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAC_STORAGE_CREATE_DIRS", "maybe")
    with pytest.raises(ValueError, match="JAC_STORAGE_CREATE_DIRS must be true or false"):
        store()


def test_unknown_storage_type_is_named(app_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAC_STORAGE_TYPE", "s3")
    with pytest.raises(ValueError, match="unknown storage type 's3'"):
        store()


def test_relative_paths_follow_the_current_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert local_storage.app_dir() == Path.cwd()
    other = tmp_path / "other"
    other.mkdir()
    with running(standalone_app(other)):
        assert local_storage.app_dir() == other.resolve()
        assert LocalStorage("rel").root == (other / "rel").resolve()
    assert LocalStorage("rel").root == (tmp_path / "rel").resolve()


# ----- the hook and StorageFactory ---------------------------------------------------


class _MemoryBackend:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config


class _MemoryPlugin:
    @hookimpl
    def jacscale_storage_backend(self, storage_type: str, config: dict[str, Any]) -> Any:
        return _MemoryBackend(config) if storage_type == "memory" else None


@pytest.fixture
def memory_plugin(current: AppContext) -> None:
    """A "memory" storage backend on the current app's plugin manager."""
    current.pm.register(_MemoryPlugin(), name="test-memory-storage")


def test_other_backends_come_from_the_hook_with_all_toml_keys(
    app_dir: Path, memory_plugin: None
) -> None:
    (app_dir / "jac.toml").write_text('[storage]\nstorage_type = "memory"\nbucket = "b1"\n')
    backend = store(base_path="./uploads")
    assert isinstance(backend, _MemoryBackend)
    assert backend.config == {"bucket": "b1", "base_path": "./uploads", "create_dirs": True}


def test_storage_factory(app_dir: Path, memory_plugin: None) -> None:
    made = StorageFactory.create("local", {"base_path": "./my-files", "create_dirs": True})
    assert isinstance(made, LocalStorage) and made.root == (app_dir / "my-files").resolve()
    assert isinstance(StorageFactory.create(StorageType.LOCAL), LocalStorage)
    assert isinstance(StorageFactory.create("memory", {}), _MemoryBackend)
    default = StorageFactory.get_default()
    assert isinstance(default, LocalStorage) and default.root == (app_dir / "storage").resolve()
    with pytest.raises(ValueError, match="unknown storage type 'nope'"):
        StorageFactory.create("nope")


# ----- in a served app ------------------------------------------------------------------

STORAGE_APP = """
glob storage = store(base_path="./uploads");

walker :pub put_text {
    has path: str;
    has text: str;
    can run with Root entry {
        storage.upload(self.text.encode(), self.path);
        report {"size": storage.get_metadata(self.path)["size"]};
    }
}

walker :pub get_text {
    has path: str;
    can run with Root entry {
        report storage.download(self.path).decode();
    }
}
"""


def test_store_in_a_served_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jacscale_core.testing import TestApp

    app = tmp_path / "app"
    app.mkdir()
    (app / "app.jac").write_text(STORAGE_APP)
    (tmp_path / "secret.txt").write_text("top secret")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative paths must follow the app, not the cwd
    for var in ("JAC_STORAGE_TYPE", "JAC_STORAGE_PATH", "JAC_STORAGE_CREATE_DIRS"):
        monkeypatch.delenv(var, raising=False)
    with TestApp(app / "app.jac", tmp_path / "data") as client:
        put = client.post("/walker/put_text", json={"path": "docs/a.txt", "text": "hello"})
        assert put.status_code == 200, put.text
        assert put.json()["data"]["reports"] == [{"size": 5}]
        got = client.post("/walker/get_text", json={"path": "docs/a.txt"})
        assert got.json()["data"]["reports"] == ["hello"]
        stolen = client.post("/walker/get_text", json={"path": "../secret.txt"})
        assert stolen.status_code >= 400
        assert "top secret" not in stolen.text
        assert "must not contain '..'" in stolen.json()["error"]["message"]
    assert (app / "uploads" / "docs" / "a.txt").read_bytes() == b"hello"
    assert not (elsewhere / "uploads").exists()
