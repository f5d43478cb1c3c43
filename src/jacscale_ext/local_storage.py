"""store(): file storage for Jac programs, and the built-in "local" backend.

`store(base_path="./uploads", create_dirs=True)` is the Jac builtin (the kernel
asks the `jacscale_store_builtin` hook, which this module answers). It reads
`[storage]` from the app's jac.toml and the JAC_STORAGE_* environment variables,
then asks the `jacscale_storage_backend` hook for the backend; this module
answers for "local" with `LocalStorage`.

Priority for each setting, as the jac-scale reference documents it:
jac.toml `[storage]` > environment > the arguments of `store()` > defaults.

LocalStorage confines every path to its base directory: `..` components,
absolute paths and symlinks that lead outside are refused with StoragePathError.
Relative base paths resolve against the current app's directory
(`jacscale_core.current`; the working directory outside an app).
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import IO, Any

from jacscale_core.context import AppContext
from jacscale_core.current import active_app, current_app
from jacscale_core.plugins import hookimpl

DEFAULT_BASE_PATH = "./storage"
DEFAULT_STORAGE_TYPE = "local"
CHUNK_SIZE = 1024 * 1024

ENV_TYPE = "JAC_STORAGE_TYPE"
ENV_PATH = "JAC_STORAGE_PATH"
ENV_CREATE_DIRS = "JAC_STORAGE_CREATE_DIRS"

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}



def app_dir() -> Path:
    """The directory relative storage paths resolve against: the current app's."""
    app = active_app()
    return app.app_dir if app is not None else Path.cwd()


class StoragePathError(ValueError):
    """A storage path is not allowed (escapes the base directory, absolute, empty, too long)."""

    api_code = "BAD_REQUEST"  # a walker that lets this escape answers 400


class StorageNotFound(FileNotFoundError):
    """No file or folder at a storage path (a walker that lets this escape answers 404)."""

    api_code = "NOT_FOUND"


class StorageIsAFolder(IsADirectoryError):
    """A file operation was given a folder (a walker that lets this escape answers 400)."""

    api_code = "BAD_REQUEST"


class StorageNotAFolder(NotADirectoryError):
    """A path goes through a file as if it were a folder (answers 400 when it escapes)."""

    api_code = "BAD_REQUEST"


# Most filesystems refuse longer names (ENAMETOOLONG) and paths.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4000
# Upload temporary files: ".upload.<32 hex>.part", beside their target (a name of
# its own length: a 255-byte target name still fits).
_PART_RE = re.compile(r"^\.upload\.[0-9a-f]{32}\.part$")


def is_upload_temp(name: str) -> bool:
    """True for the temporary file of an upload in progress (never listed)."""
    return name.endswith(".part") and _PART_RE.match(name) is not None


class LocalStorage:
    """Files under one base directory on the local filesystem.

    The methods are those of jaclang's `Storage` interface. Paths given to them
    are relative to the base directory, use `/` as separator, and are refused
    when they would leave it. Local paths given as `source` of `upload` or
    `destination` of `download` are the program's own files and are not confined.
    """

    def __init__(self, base_path: str = DEFAULT_BASE_PATH, create_dirs: bool = True) -> None:
        """Serve files under `base_path`, creating it when `create_dirs` is true."""
        if not isinstance(base_path, str | os.PathLike) or not os.fspath(base_path):
            raise ValueError("storage base_path must be a non-empty path")
        self.base_path = os.fspath(base_path)
        self.create_dirs = bool(create_dirs)
        root = Path(self.base_path).expanduser()
        if not root.is_absolute():
            root = app_dir() / root
        if self.create_dirs:
            root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()

    def __repr__(self) -> str:
        """Show the base path as configured."""
        return f"LocalStorage(base_path={self.base_path!r})"

    # ----- path confinement ---------------------------------------------------

    def _lexical(self, path: str, *, allow_root: bool = False) -> Path:
        """`path` joined to the root without following links; refuses escapes."""
        if isinstance(path, os.PathLike):
            path = os.fspath(path)
        if not isinstance(path, str):
            raise StoragePathError(f"storage path must be a string, got {type(path).__name__}")
        if "\x00" in path:
            raise StoragePathError("storage path must not contain NUL characters")
        pure = PurePosixPath(path)
        if pure.is_absolute():
            raise StoragePathError(f"storage path {path!r} is absolute; give a relative path")
        if ".." in pure.parts:
            raise StoragePathError(f"storage path {path!r} must not contain '..'")
        parts = [p for p in pure.parts if p not in ("", ".")]
        if not parts and not allow_root:
            raise StoragePathError("storage path must name a file or folder, got an empty path")
        for part in parts:
            if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
                raise StoragePathError(
                    f"storage path {_short(path)}: the name {_short(part)} is longer than "
                    f"{MAX_NAME_BYTES} bytes"
                )
        joined = self.root.joinpath(*parts)
        if len(os.fsencode(joined)) > MAX_PATH_BYTES:
            raise StoragePathError(f"storage path {_short(path)} is too long")
        return joined

    def _inside(self, candidate: Path) -> bool:
        resolved = candidate.resolve()
        return resolved == self.root or resolved.is_relative_to(self.root)

    def _resolve(self, path: str, *, allow_root: bool = False) -> Path:
        """The real location of `path`, refusing anything (a symlink too) outside the root."""
        lexical = self._lexical(path, allow_root=allow_root)
        resolved = lexical.resolve()
        if not (resolved == self.root or resolved.is_relative_to(self.root)):
            raise StoragePathError(f"storage path {path!r} leads outside the storage folder")
        if resolved == self.root and not allow_root:
            raise StoragePathError(f"storage path {path!r} is the storage folder itself")
        self._require_folders_above(resolved, path)
        return resolved

    def _require_folders_above(self, target: Path, path: str) -> None:
        """Refuse a path that goes through an existing file (`report.txt/x`)."""
        for parent in target.relative_to(self.root).parents:
            if str(parent) == ".":
                continue
            here = self.root / parent
            if here.exists() and not here.is_dir():
                raise StorageNotAFolder(
                    f"storage path {_short(path)}: {parent.as_posix()!r} is a file, not a folder"
                )

    def _relative(self, absolute: Path) -> str:
        return absolute.relative_to(self.root).as_posix()

    def _require_root(self) -> None:
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"storage folder {self.base_path!r} does not exist (create_dirs is off)"
            )

    # ----- the Storage interface ----------------------------------------------

    def upload(
        self,
        source: str | os.PathLike[str] | IO[Any] | bytes | bytearray,
        destination: str,
        metadata: dict[str, str] | None = None,
    ) -> str:
        """Store `source` (a local file path, a binary file object or bytes) at `destination`.

        The data streams to a temporary file beside the target and is renamed
        into place, so a failed upload leaves nothing behind. `metadata` is
        accepted for interface compatibility; the local backend does not keep it.
        Returns the storage path of the new file.
        """
        target = self._resolve(destination)
        if target.is_dir():
            raise StorageIsAFolder(f"storage path {destination!r} is a folder, not a file")
        self._require_root()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".upload.{uuid.uuid4().hex}.part"
        # os.open with 0o666 honours the umask, as a plain open() would.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as out:
                _copy_into(source, out)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return self._relative(target)

    def download(
        self, source: str, destination: str | os.PathLike[str] | IO[Any] | None = None
    ) -> bytes | None:
        """The bytes of `source`, or None after streaming them to `destination`.

        `destination` may be a local file path or a binary file object.
        """
        path = self._resolve(source)
        if not path.exists():
            raise StorageNotFound(f"File not found: {source}")
        if path.is_dir():
            raise StorageIsAFolder(f"storage path {source!r} is a folder, not a file")
        if destination is None:
            return path.read_bytes()
        if isinstance(destination, str | os.PathLike):
            shutil.copyfile(path, destination)
            return None
        with path.open("rb") as fh:
            shutil.copyfileobj(fh, destination, CHUNK_SIZE)
        return None

    def delete(self, path: str) -> bool:
        """Delete a file or a folder with its content; False if nothing was there."""
        lexical = self._lexical(path)
        if lexical.is_symlink() and self._inside(lexical.parent):
            lexical.unlink()  # remove the link itself, wherever it points
            return True
        target = self._resolve(path)
        if target.is_dir():
            shutil.rmtree(target)
            return True
        if target.exists():
            target.unlink()
            return True
        return False

    def exists(self, path: str) -> bool:
        """True when `path` names an existing file or folder in storage."""
        return self._resolve(path, allow_root=True).exists()

    def list_files(self, prefix: str = "", recursive: bool = False) -> Iterator[str]:
        """Yield storage paths under the folder `prefix`, sorted.

        Without `recursive`, the files and folders directly in `prefix`; with it,
        every file below `prefix`. Links leading outside storage are left out.
        """
        base = self._resolve(prefix, allow_root=True)
        if base.is_file():
            yield self._relative(base)
            return
        if not base.is_dir():
            return
        if not recursive:
            for item in sorted(base.iterdir()):
                if not is_upload_temp(item.name) and self._inside(item):
                    yield self._relative(base / item.name)
            return
        found = []
        for dirpath, _dirnames, filenames in os.walk(base):
            for name in filenames:
                item = Path(dirpath) / name
                if not is_upload_temp(name) and self._inside(item) and item.is_file():
                    found.append(self._relative(item))
        yield from sorted(found)

    def get_metadata(self, path: str) -> dict[str, Any]:
        """{"size", "modified", "created", "is_dir", "name"} of `path` (times in epoch seconds)."""
        target = self._resolve(path, allow_root=True)
        try:
            stat = target.stat()
        except FileNotFoundError:
            raise StorageNotFound(f"File not found: {path}") from None
        return {
            "size": stat.st_size,
            "modified": stat.st_mtime,
            "created": stat.st_ctime,
            "is_dir": target.is_dir(),
            "name": PurePosixPath(path).name or target.name,
        }

    def copy(self, source: str, destination: str) -> bool:
        """Copy a file or folder within storage; False if `source` does not exist."""
        src = self._resolve(source)
        dst = self._resolve(destination)
        if not src.exists():
            return False
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            # symlinks=True copies links as links, so nothing outside is read in.
            shutil.copytree(src, dst, symlinks=True)
        else:
            shutil.copy2(src, dst)
        return True

    def move(self, source: str, destination: str) -> bool:
        """Move a file or folder within storage; False if `source` does not exist."""
        src = self._resolve(source)
        dst = self._resolve(destination)
        if not src.exists():
            return False
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(src, dst)
        return True

    def get_url(self, path: str, expires_in: int | None = 3600) -> str:
        """A file:// URL for `path` (local files have no HTTP URL; `expires_in` is ignored)."""
        return self._resolve(path).as_uri()


def _short(text: str) -> str:
    """`text` quoted for an error message, cut to 80 characters."""
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _copy_into(source: Any, out: IO[bytes]) -> None:
    """Stream `source` (path, bytes, or file object, text or binary) into `out`."""
    if isinstance(source, bytes | bytearray | memoryview):
        out.write(source)
        return
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as fh:
            shutil.copyfileobj(fh, out, CHUNK_SIZE)
        return
    reader = source
    read = getattr(source, "read", None)
    # A Starlette UploadFile has an async read(); its `.file` is the sync file.
    if (read is None or _is_async(read)) and hasattr(source, "file"):
        reader = source.file
        read = getattr(reader, "read", None)
    if read is None or _is_async(read):
        raise TypeError(
            f"upload source must be a path, bytes or a file object, got {type(source).__name__}"
        )
    while True:
        chunk = reader.read(CHUNK_SIZE)
        if not chunk:
            break
        out.write(chunk.encode("utf-8") if isinstance(chunk, str) else chunk)


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn)


# ----- configuration and store() ----------------------------------------------


def _parse_bool(value: str, where: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{where} must be true or false, got {value!r}")


def storage_config(
    base_path: str = DEFAULT_BASE_PATH,
    create_dirs: bool = True,
    app: AppContext | None = None,
) -> tuple[str, dict[str, Any]]:
    """The storage type and backend config: jac.toml > environment > arguments > defaults.

    The config holds every key of `[storage]` (other backends read their own)
    with `base_path` and `create_dirs` resolved. `app` defaults to the current one.
    """
    app = current_app() if app is None else app
    env = app.settings.env
    section = app.read_toml().get("storage", {})
    if not isinstance(section, Mapping):
        raise ValueError("jac.toml [storage] must be a table")
    config: dict[str, Any] = dict(section)

    storage_type = section.get("storage_type") or env.get(ENV_TYPE) or DEFAULT_STORAGE_TYPE
    if not isinstance(storage_type, str):
        raise ValueError("jac.toml [storage] storage_type must be a string")
    config.pop("storage_type", None)

    if "base_path" in section:
        base_path = section["base_path"]
        if not isinstance(base_path, str) or not base_path:
            raise ValueError("jac.toml [storage] base_path must be a non-empty string")
    elif env.get(ENV_PATH):
        base_path = env[ENV_PATH]
    config["base_path"] = base_path

    if "create_dirs" in section:
        create_dirs = section["create_dirs"]
        if not isinstance(create_dirs, bool):
            raise ValueError("jac.toml [storage] create_dirs must be true or false")
    elif env.get(ENV_CREATE_DIRS):
        create_dirs = _parse_bool(env[ENV_CREATE_DIRS], ENV_CREATE_DIRS)
    config["create_dirs"] = create_dirs
    return storage_type, config


def create_storage(
    storage_type: str, config: Mapping[str, Any] | None = None, app: AppContext | None = None
) -> Any:
    """The backend a plugin of `app` (the current one) provides for `storage_type`."""
    app = current_app() if app is None else app
    storage_type = str(storage_type)
    backend = app.pm.hook.jacscale_storage_backend(
        storage_type=storage_type, config=dict(config or {})
    )
    if backend is None:
        raise ValueError(
            f"unknown storage type {storage_type!r}: no installed plugin provides it "
            f"(built in: {DEFAULT_STORAGE_TYPE!r})"
        )
    return backend


def store(
    base_path: str = DEFAULT_BASE_PATH, create_dirs: bool = True, app: AppContext | None = None
) -> Any:
    """The configured storage backend (the Jac `store()` builtin) of `app` (the current one)."""
    app = current_app() if app is None else app
    storage_type, config = storage_config(base_path, create_dirs, app)
    return create_storage(storage_type, config, app)


@hookimpl(trylast=True)
def jacscale_store_builtin(app: AppContext, base_path: str, create_dirs: bool) -> Any:
    """Answer `store()`: the backend jac.toml, the environment and the arguments choose."""
    return store(base_path, create_dirs, app)


@hookimpl(trylast=True)
def jacscale_storage_backend(storage_type: str, config: dict[str, Any]) -> LocalStorage | None:
    """Provide the "local" backend."""
    if storage_type != DEFAULT_STORAGE_TYPE:
        return None
    return LocalStorage(
        base_path=config.get("base_path", DEFAULT_BASE_PATH),
        create_dirs=config.get("create_dirs", True),
    )
