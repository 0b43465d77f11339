"""Atomic file writes: a reader never sees a half-written file, and a crash loses nothing."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(target: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to `target`; move it over `target` only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or target.suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; the result reads like any file
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(target: str | Path, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)


def atomic_write_bytes(target: str | Path, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


TMP_DIR_TAG = ".tmp-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def clean_stale_directories(target: str | Path) -> list[Path]:
    """Remove what a killed `atomic_directory(target)` left next to `target`.

    A staging directory is named `.NAME.tmp-HOST-PID-XXXX`: one whose process is gone (same
    host) is removed; one of a live process, or of another host, is left alone. A backup
    `.NAME.old` is restored when the swap was killed between its two renames (no `target`),
    and removed when the new directory is already in place.
    """
    import socket

    target = Path(target)
    removed: list[Path] = []
    if not target.parent.is_dir():
        return removed
    host = socket.gethostname()
    live = False
    for stale in target.parent.glob(f".{target.name}{TMP_DIR_TAG}*"):
        tag = stale.name[len(f".{target.name}{TMP_DIR_TAG}"):]
        stale_host, _, pid = tag.rpartition("-")[0].rpartition("-")  # HOST-PID-random
        if stale_host != host or not pid.isdigit() or _pid_alive(int(pid)) or not stale.is_dir():
            live = True  # a build in progress (here or elsewhere): its swap may be between renames
            continue
        shutil.rmtree(stale, ignore_errors=True)
        removed.append(stale)
    backup = target.with_name(f".{target.name}.old")
    if backup.is_dir() and not live:
        if target.exists():
            shutil.rmtree(backup)
        else:
            os.replace(backup, target)
    return removed


@contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Build a directory under a temporary name and swap it in whole on success.

    Leftovers of a killed earlier build of the same target are cleaned first
    (`clean_stale_directories`); the staging name carries host and pid for that.
    """
    import socket

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_directories(target)
    prefix = f".{target.name}{TMP_DIR_TAG}{socket.gethostname()}-{os.getpid()}-"
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        for path in tmp.rglob("*"):
            os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~_UMASK)
        backup = None
        if target.exists():
            backup = target.with_name(f".{target.name}.old")
            if backup.exists():
                shutil.rmtree(backup)
            os.replace(target, backup)
        os.replace(tmp, target)
        if backup is not None:
            shutil.rmtree(backup)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


# ---- output paths checked before any work ----------------------------------------------------
def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _check_can_create_in(directory: Path, flag: str, shown: Path) -> None:
    """`directory` (or its nearest existing ancestor) is a directory this process can write in."""
    from workbench.errors import ParameterError

    base = _nearest_existing(directory)
    if not base.is_dir():
        raise ParameterError(f"{flag} {shown}: {base} is a file, not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".workbench-probe-", dir=base)
    except OSError as exc:
        raise ParameterError(f"{flag} {shown}: cannot write in {base} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


def check_output_file(path: str | Path, flag: str) -> Path:
    """Refuse, before any work, an output file that could not be written (ParameterError naming `flag`).

    The path may not be a directory or a special file (a device, a fifo: an atomic replace
    would swap it out), and its directory must exist or be creatable, and be writable.
    """
    from workbench.errors import ParameterError

    path = Path(path)
    if path.is_dir():
        raise ParameterError(f"{flag} {path}: is a directory, expected a file path")
    if os.path.lexists(path) and not path.is_file():
        raise ParameterError(f"{flag} {path}: exists and is not a regular file")
    _check_can_create_in(path.parent, flag, path)
    return path


def check_output_dir(path: str | Path, flag: str) -> Path:
    """Refuse, before any work, an output directory that is a file or could not be created/written."""
    from workbench.errors import ParameterError

    path = Path(path)
    if os.path.lexists(path) and not path.is_dir():
        raise ParameterError(f"{flag} {path}: is a file, expected a directory")
    _check_can_create_in(path, flag, path)
    return path


# ---- several directories swapped in as one --------------------------------------------------
class DirectorySwap:
    """Stage several directories under `root`, then swap them all in as one change.

    Each `stage(target)` gives an empty directory to fill. `commit()` writes a journal of the
    (staged, target) pairs before the first rename, so a process killed midway leaves a
    journal that the next `DirectorySwap` on the same root finishes (every staged directory
    was complete before the journal was written). Staging directories without a journal are
    leftovers of a run killed before its commit: they are removed. Callers hold
    `root/.swap.lock` for the whole transaction, so two of them never interleave.
    """

    JOURNAL = ".swap-journal.json"
    PREFIX = ".staging-"

    def __init__(self, root: str | Path, label: str):
        import fcntl

        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.root / ".swap.lock", "w")
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self.recover()
        self.staging = Path(tempfile.mkdtemp(prefix=f"{self.PREFIX}{label}-", dir=self.root))
        self.pairs: list[tuple[Path, Path]] = []

    def stage(self, target: str | Path) -> Path:
        staged = self.staging / str(len(self.pairs))
        staged.mkdir()
        self.pairs.append((staged, Path(target)))
        return staged

    def commit(self) -> None:
        import json

        for staged, _ in self.pairs:
            os.chmod(staged, 0o777 & ~_UMASK)
            for path in staged.rglob("*"):
                os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~_UMASK)
        atomic_write_text(self.root / self.JOURNAL, json.dumps([[str(s), str(t)] for s, t in self.pairs]))
        self._apply()

    def close(self) -> None:
        if self.staging.exists():
            shutil.rmtree(self.staging)
        self._lock.close()

    def recover(self) -> None:
        """Finish an interrupted commit; drop staging directories nothing will commit."""
        import json

        if (self.root / self.JOURNAL).is_file():
            self.pairs = [(Path(s), Path(t)) for s, t in json.loads((self.root / self.JOURNAL).read_text())]
            self._apply()
        for stale in self.root.glob(f"{self.PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)

    def _apply(self) -> None:
        for staged, target in self.pairs:
            if not staged.exists():
                continue  # swapped in before the interruption
            target.parent.mkdir(parents=True, exist_ok=True)
            backup = staged.with_name(staged.name + ".old")
            if target.exists():
                if backup.exists():
                    shutil.rmtree(backup)
                os.replace(target, backup)
            os.replace(staged, target)
        for staged, _ in self.pairs:
            backup = staged.with_name(staged.name + ".old")
            if backup.exists():
                shutil.rmtree(backup)
        (self.root / self.JOURNAL).unlink(missing_ok=True)

    def __enter__(self) -> "DirectorySwap":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.commit()
        finally:
            self.close()
