"""What keeps a training run's folder consistent when things go wrong.

- **One process per run folder.**  :class:`RunLock` holds an exclusive ``fcntl.flock`` on
  ``OUT_DIR/train.lock`` while ``padm train`` uses the folder; a second process is refused with the pid
  and host of the first (written into the file).  The operating system releases the lock when its
  process ends, however it ends, so a crashed run never leaves the folder locked.
- **A clean stop on SIGINT / SIGTERM.**  :class:`StopSignals` turns the first Ctrl-C or ``kill`` into a
  request: the loop finishes the step it is in, writes a checkpoint and returns.  A second signal
  acts at once, as usual.
- **No non-finite state on disk.**  A loss or gradient that is NaN or infinite stops the run with
  :class:`NonFiniteError` before the step is logged or saved, so the newest checkpoint is the last
  good one and ``--resume`` continues from it.
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from padm.errors import UserError
from padm.fileio import cannot, make_folder, remove_empty

LOCK_NAME = "train.lock"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class NonFiniteError(UserError):
    """The loss or gradient of a training step is NaN or infinite; nothing of that step was saved."""


def resume_hint(out: Path) -> str:
    """Where a stopped run can continue from, in one sentence."""
    from padm.engine.checkpoint import latest_checkpoint

    found = latest_checkpoint(out)
    if found is None:
        return "no checkpoint was written yet"
    return f"the last good checkpoint is {found}: continue with padm train --resume {out}"


class RunLock:
    """An exclusive lock on a run folder (see the module docstring); a context manager."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None
        self._created: list[Path] = []

    def acquire(self) -> None:
        """Take the lock, creating the folder if needed; :class:`UserError` if another process holds it
        or the folder cannot be written."""
        try:
            import fcntl
        except ImportError:  # no flock on this platform: run unlocked
            return
        self._created = make_folder(self.folder)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:
            remove_empty(self._created)
            raise cannot(self.folder, err, "cannot write into the run folder") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise UserError(f"{self.folder}: in use by another padm train ({holder}); wait for it to end or stop "
                            "it, or choose another --out-dir") from None
        except OSError:  # a file system without locks (some network mounts): run unlocked
            pass
        started = datetime.datetime.now().isoformat(timespec="seconds")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {started}\n".encode(), 0)
        except OSError as err:
            os.close(fd)
            raise cannot(self.path, err) from None
        self._fd = fd

    def release(self) -> None:
        """Let go of the lock; a folder this lock created and nothing else used is removed again."""
        if self._fd is None:
            return
        if self._created and [p.name for p in self.folder.iterdir()] == [LOCK_NAME]:
            self.path.unlink(missing_ok=True)
            remove_empty(self._created)
        os.close(self._fd)  # closing the file releases the flock
        self._fd = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class StopSignals:
    """While active (in the main thread), SIGINT and SIGTERM set :attr:`received` instead of stopping
    the process; the first one also restores the previous handlers, so a second signal acts at once."""

    def __init__(self):
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def name(self) -> str | None:
        return None if self.received is None else signal.Signals(self.received).name

    def _handle(self, signum, _frame) -> None:
        self.received = signum
        self._restore()
        print(f"\n{signal.Signals(signum).name}: stopping after this step with a checkpoint "
              "(send it again to stop at once)", file=sys.stderr, flush=True)

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        self._restore()


def quiet_worker(_worker_id: int) -> None:
    """``worker_init_fn`` of the training DataLoader: Ctrl-C in a terminal reaches the whole process
    group, and the main process (not its data workers) decides how the run stops.  SIGTERM keeps its
    default: the DataLoader itself ends workers that way."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


__all__ = ["LOCK_NAME", "NonFiniteError", "RunLock", "StopSignals", "quiet_worker", "resume_hint"]
