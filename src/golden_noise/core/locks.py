"""One process at a time on a folder: an advisory lock that the OS drops when its holder dies,
so a second run on the same output is refused at once and a killed run never blocks its
resume."""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from golden_noise.core.errors import GoldenNoiseError


@dataclass
class FileLock:
    """A held lock file; `release` lets the next process in."""

    path: Path
    handle: int | None
    created: bool  # the file did not exist before this lock

    def release(self, refused: bool = False) -> None:
        """Close the lock (again: a no-op). A `refused` run also removes the lock file it
        created, leaving the folder as it found it."""
        if self.handle is not None:
            os.close(self.handle)
            self.handle = None
        if refused and self.created:
            self.path.unlink(missing_ok=True)


def hold_lock(path: Path, busy: str) -> FileLock:
    """Lock the file `path` (created if missing) and write our pid into it. `busy` completes
    "another process (pid N) ..." for the refusal."""
    created = not path.exists()
    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise GoldenNoiseError(f"cannot create the lock file {path}: {exc}") from exc
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(handle, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(handle)
        raise GoldenNoiseError(f"another process (pid {holder}) {busy}") from None
    os.ftruncate(handle, 0)
    os.pwrite(handle, str(os.getpid()).encode(), 0)
    return FileLock(path, handle, created)
