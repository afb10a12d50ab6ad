"""The one way padm writes a file: complete or not at all.

:func:`atomic_write` yields a temporary path beside the target; when the block succeeds the file is
flushed to disk and renamed onto the target (a reader never sees half a file, a crash leaves the old
file intact); on any failure, Ctrl-C included, the temporary file and any folders it had to create
are removed.  A file-system failure (read-only disk, no permission, disk full, ...) becomes one
:class:`~padm.errors.UserError` naming the path and the cause.  Images, checkpoints, configs, logs,
CSV/JSON files, figures, packed HDF5 files and the compiled kernel all go through it.
"""

from __future__ import annotations

import errno
import os
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
    return str(err) or type(err).__name__


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
    created = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
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
        raise UserError(f"{path}: cannot write ({describe_os_error(err)})") from None
    finally:
        if tmp is not None:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            for folder in created:  # innermost first; only the (still empty) folders made here
                try:
                    folder.rmdir()
                except OSError:
                    break


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


__all__ = ["atomic_write", "write_text", "describe_os_error"]
