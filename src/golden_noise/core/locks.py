"""One process at a time on a folder: an advisory lock that the OS drops when its holder dies,
so a second run on the same output is refused at once and a killed run never blocks its
resume."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from golden_noise.core.errors import GoldenNoiseError


def hold_lock(path: Path, busy: str) -> int:
    """Lock the file `path` (created if missing) and write our pid into it; the handle to
    `os.close` when done. `busy` completes "another process (pid N) ..." for the refusal."""
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
    return handle
