"""Crash-safe writes: a reader sees the old file or the new one, never half of one.

Everything goes to a hidden temp name in the target's own directory (so `os.replace` is a
rename on one filesystem, atomic on POSIX), is fsynced, then renamed over the target.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from golden_noise.core.errors import GoldenNoiseError, first_few

TEMP_PREFIX = ".tmp-"
ASIDE_PREFIX = ".old-"  # not TEMP_PREFIX: temp cleaners must never remove an aside
ASIDE_MARKER_SUFFIX = ".aside"


def temp_path_for(target: Path, tag: str = "") -> Path:
    """A hidden, unique sibling of `target`; `tag` lets an owner find and clean its own."""
    return target.parent / f"{TEMP_PREFIX}{tag}{uuid.uuid4().hex[:12]}-{target.name}"


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems refuse fsync on directories
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def publish(temp: Path, target: Path) -> None:
    """Fsync a fully written temp file and rename it onto `target`."""
    with open(temp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(temp, target)
    _fsync_dir(target.parent)


def atomic_write_bytes(target: Path, data: bytes, tag: str = "") -> None:
    temp = temp_path_for(target, tag)
    try:
        temp.write_bytes(data)
        publish(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def atomic_write_png(
    target: Path, image: Any, tag: str = "", text: Mapping[str, str] | None = None
) -> None:
    """Save a PIL image as PNG, whole or not at all (an interrupted run leaves no broken image).

    `text` goes into the PNG's tEXt chunks (`Image.open(target).text`), so facts about how
    the image was made travel with it.
    """
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    atomic_write_bytes(target, buffer.getvalue(), tag)


def atomic_write_text(target: Path, text: str, tag: str = "") -> None:
    atomic_write_bytes(target, text.encode("utf-8"), tag)


def atomic_write_json(target: Path, data: Any, tag: str = "", sort_keys: bool = True) -> None:
    atomic_write_text(target, json.dumps(data, indent=2, sort_keys=sort_keys) + "\n", tag)


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a temp directory to fill; on success it replaces `target` as a whole.

    The old directory is moved aside before the new one is renamed in, so a crash leaves
    either the old or the new version under `target` (or, for an instant, the old one under
    an aside name that `recover_directory` puts back).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path_for(target)
    temp.mkdir()
    try:
        yield temp
        refuse_dropping(target, temp)
        _remove_asides_of(target)
        old = None
        if target.exists():
            old = target.with_name(f"{ASIDE_PREFIX}{uuid.uuid4().hex[:12]}-{target.name}")
            atomic_write_text(_marker_of(old), target.name)
            os.replace(target, old)
        os.replace(temp, target)
        _fsync_dir(target.parent)
        if old is not None:
            _remove_aside(old)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def refuse_dropping(target: Path, new: Path) -> None:
    """The new version `new` replaces `target` whole: a file only the old one holds (a user's
    notes, an evaluation saved inside) would be deleted with it, so that is refused."""
    if not target.is_dir():
        return
    kept = {p.relative_to(new) for p in new.rglob("*")}
    dropped = sorted(
        p.relative_to(target).as_posix()
        for p in target.rglob("*")
        if p.relative_to(target) not in kept and not p.is_dir()
    )
    if dropped:
        raise GoldenNoiseError(
            f"{target} holds {first_few(dropped, 4)}, which its new version would not keep "
            f"(the tool replaces {target.name}/ whole); move them out of {target}, then run again"
        )


def _marker_of(aside: Path) -> Path:
    """The file that says an aside is this tool's: written before the old version moves, so
    a user's folder that merely looks like an aside is never deleted or renamed."""
    return aside.with_name(aside.name + ASIDE_MARKER_SUFFIX)


def _asides_of(target: Path) -> list[Path]:
    """`target`'s marked asides, newest first (a marker whose folder is gone counts too)."""
    pattern = re.compile(
        rf"{re.escape(ASIDE_PREFIX)}[0-9a-f]{{12}}-{re.escape(target.name)}"
        rf"{re.escape(ASIDE_MARKER_SUFFIX)}"
    )
    parent = target.parent
    markers = [p for p in parent.iterdir() if pattern.fullmatch(p.name)] if parent.is_dir() else []
    markers.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)
    return [m.with_name(m.name[: -len(ASIDE_MARKER_SUFFIX)]) for m in markers]


def _remove_aside(aside: Path) -> None:
    shutil.rmtree(aside, ignore_errors=True)
    if not aside.exists():
        _marker_of(aside).unlink(missing_ok=True)


def _remove_asides_of(target: Path) -> None:
    """Delete old versions of `target` that a killed replace left aside (marked ones only)."""
    for aside in _asides_of(Path(target)):
        _remove_aside(aside)


def recover_directory(target: Path) -> None:
    """Undo a crash between the two renames of `atomic_directory`: the newest marked aside
    goes back to `target` when `target` is missing; the rest are the tool's leftovers."""
    target = Path(target)
    for aside in _asides_of(target):
        if aside.is_dir() and not target.exists():
            os.replace(aside, target)
            _marker_of(aside).unlink(missing_ok=True)
        else:
            _remove_aside(aside)


def remove_leftovers_of(targets: Iterable[Path]) -> int:
    """Delete temp files that interrupted writes to `targets` left behind (any tag).

    For a writer that owns exactly these targets (one process's share of a folder), so it
    can clean before rewriting them without touching another writer's temp files.
    """
    names: dict[Path, set[str]] = {}
    for target in targets:
        names.setdefault(Path(target).parent, set()).add(Path(target).name)
    removed = 0
    for directory, wanted in names.items():
        for path in directory.glob(f"{TEMP_PREFIX}*") if directory.is_dir() else ():
            if path.is_file() and path.name.split("-", 2)[-1] in wanted:
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def remove_temp_files(directory: Path, tag: str = "") -> int:
    """Delete leftovers of interrupted file writes (all, or only those carrying `tag`): files
    named as `temp_path_for` names them, never a folder or a name of another shape."""
    if not directory.is_dir():
        return 0
    ours = re.compile(rf"{re.escape(TEMP_PREFIX)}{re.escape(tag)}[0-9a-f]{{12}}-.+")
    removed = 0
    for path in directory.glob(f"{TEMP_PREFIX}{tag}*"):
        if ours.fullmatch(path.name) and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed += 1
    return removed
