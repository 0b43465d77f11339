"""Sweep cases that fail the way infrastructure fails. Ray workers import this module from
the checkout shipped to them, so the real executor and case code run around each fault."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from workbench.sweep import Case


def faulty(case: Case, cls: type, **extra) -> Case:
    """`case` as an instance of the fault class `cls` (same inputs, hence the same case id)."""
    return cls(**{f.name: getattr(case, f.name) for f in fields(case)}, **extra)


@dataclass(frozen=True)
class Dies(Case):
    """Logs each attempt's pid to `<attempts_dir>/<case-id>` and kills its own process on
    the first `deaths` attempts (os._exit: no exception, no cleanup, as when a worker is
    OOM-killed or its node goes away)."""

    attempts_dir: str = ""
    deaths: int = 1

    def __call__(self):
        log = Path(self.attempts_dir) / self.key
        with log.open("a") as f:
            f.write(f"{os.getpid()}\n")
        if len(log.read_text().splitlines()) <= self.deaths:
            os._exit(1)
        return super().__call__()


@dataclass(frozen=True)
class Interrupted(Case):
    """Ctrl-C arriving while this case runs."""

    def __call__(self):
        raise KeyboardInterrupt
