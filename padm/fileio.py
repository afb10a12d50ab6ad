"""The one way padm writes a file: complete or not at all.

:func:`atomic_write` yields a temporary path beside the target; when the block succeeds the file is
flushed to disk and renamed onto the target (a reader never sees half a file, a crash leaves the old
file intact); on any failure, Ctrl-C included, the temporary file and any folders it had to create
are removed.  A file-system failure (read-only disk, no permission, disk full, ...) becomes one
:class:`~padm.errors.UserError` naming the path and the cause.  Images, checkpoints, configs, logs,
CSV/JSON files, figures, packed HDF5 files and the compiled kernel all go through it.

The few writes that cannot be a rename go through the same rules: :func:`atomic_folder` stages a
whole output folder (``padm synth``) and renames it into place, :func:`append_text` adds a record to
a run's logs, :func:`make_folder` creates a folder.  All of them report a file-system failure as one
``UserError`` naming the path, and every file they finish is flushed to disk (:func:`_fsync`) before it
counts as written, so a disk that fills up fails the write that ran out of space, not a later read.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from padm.errors import UserError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def describe_os_error(err: OSError) -> str:
    """``"read-only file system"``, ``"no space left on device"``, ...: the cause in a few words."""
    if err.errno is not None:
        return os.strerror(err.errno).lower()
    text = str(err).strip()
    found = re.search(r"errno\s*=\s*(\d+)", text)  # HDF5 (h5py) puts the C errno into its message
    if found:
        return os.strerror(int(found.group(1))).lower()
    return text.splitlines()[0][:200] if text else type(err).__name__


def cannot(path: str | os.PathLike, err: OSError, what: str = "cannot write") -> UserError:
    """The one-line error of a failed file-system operation: ``"PATH: cannot write (CAUSE)"``."""
    return UserError(f"{path}: {what} ({describe_os_error(err)})")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and its parents that do not exist yet, innermost first."""
    return [p for p in (folder, *folder.parents) if not p.exists()]


def remove_empty(folders: list[Path]) -> None:
    """Remove the folders a write created (innermost first), as long as they are empty."""
    for folder in folders:  # innermost first; only the (still empty) folders made here
        try:
            folder.rmdir()
        except OSError:
            break


def make_folder(path: str | os.PathLike) -> list[Path]:
    """Create ``path`` and its missing parents; returns the folders created (innermost first).

    A failure is a :class:`UserError` naming the folder that could not be made.
    """
    path = Path(path)
    created = _missing_folders(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        remove_empty(created)
        raise cannot(err.filename or path, err, "cannot create folder") from None
    return created


@contextmanager
def atomic_write(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it becomes ``path`` (see the module docstring).

    The temporary name starts with a dot and ends in ``.partial.tmp``, so no half-written file looks
    finished to a glob for its kind; writers that pick a format from the suffix must be told it.  ``overwrite=False`` refuses an existing ``path``.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"output path is a folder: {path}")
    if not overwrite and path.exists():
        raise UserError(f"output file already exists: {path} (use --overwrite to replace it)")
    created = _missing_folders(path.parent)
    tmp: Path | None = None
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:  # e.g. a missing folder under a read-only mount: name that folder
            raise cannot(err.filename or path.parent, err, "cannot create folder") from None
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial.tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        if err.errno == errno.ENOENT and tmp is not None and not tmp.exists():
            raise  # the writer removed its own file: a programming error, not the disk's
        raise cannot(path, err) from None
    finally:
        if tmp is not None:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
        remove_empty(created)


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` (an existing folder
    is swapped out and deleted), on any failure it is deleted with the folders made for it.

    The caller decides whether an existing ``path`` may be replaced.  File-system failures become one
    :class:`UserError` naming ``path``; errors raised inside name ``path`` instead of the temporary folder.
    """
    path = Path(path)
    created = _missing_folders(path.parent)
    tmp: Path | None = None
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise cannot(err.filename or path.parent, err, "cannot create folder") from None
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
        try:
            yield tmp
        except UserError as err:  # "<tmp>/rain/1.png: cannot write (...)" -> "<path>/rain/1.png: ..."
            raise UserError(str(err).replace(str(tmp), str(path))) from None
        _replace_folder(tmp, path)
        tmp = None
    except OSError as err:
        raise cannot(path, err) from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        remove_empty(created)


def _replace_folder(new: Path, out: Path) -> None:
    if not out.exists():
        os.rename(new, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.rename(out, old / "previous")
    try:
        os.rename(new, out)
    except BaseException:
        os.rename(old / "previous", out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def append_text(path: str | os.PathLike, text: str) -> Path:
    """Append ``text`` (UTF-8) to ``path`` (created if missing) and flush it to disk: the records of a
    run's logs.  A failure is one :class:`UserError` naming the file; a reader of the log skips a
    record cut short (``padm.engine.runlog``)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            data = memoryview(text.encode("utf-8"))
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)
        _fsync(path)
    except OSError as err:
        raise cannot(path, err) from None
    return path


__all__ = ["atomic_write", "atomic_folder", "write_text", "append_text", "make_folder", "remove_empty",
           "describe_os_error", "cannot"]
