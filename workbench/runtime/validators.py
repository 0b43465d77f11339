"""Pure checks that stages declare on their inputs and outputs.

A validator takes a value and returns None when it is acceptable, else a short text of
what was found. It never changes the value. `expected` says what a good value is, so the
error reads "stage 'X': field 'y' expected <expected>, got <found>".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch


@dataclass(frozen=True)
class Validator:
    expected: str
    check: Callable[[Any], str | None]

    def __call__(self, value: Any) -> str | None:
        return self.check(value)


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor{tuple(value.shape)} {value.dtype}"
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def not_none() -> Validator:
    return Validator("a value", lambda v: None if v is not None else "None")


def positive_int() -> Validator:
    def check(v):
        ok = isinstance(v, int) and not isinstance(v, bool) and v > 0
        return None if ok else _describe(v)

    return Validator("a positive integer", check)


def multiple_of(n: int, offset: int = 0) -> Validator:
    def check(v):
        ok = isinstance(v, int) and v > 0 and (v - offset) % n == 0
        return None if ok else _describe(v)

    what = f"a positive multiple of {n}" if offset == 0 else f"a positive integer of the form {n}k+{offset}"
    return Validator(what, check)


def number_in(lo: float | None = None, hi: float | None = None, *, optional: bool = False) -> Validator:
    def check(v):
        if v is None and optional:
            return None
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            return _describe(v)  # NaN and +-Infinity (JSON's `Infinity` parses to one) are no numbers here
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            return _describe(v)
        return None

    bounds = f"in [{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
    return Validator(("None or " if optional else "") + f"a finite number {bounds}", check)


def text_prompt() -> Validator:
    def check(v):
        if isinstance(v, str):
            return None
        if isinstance(v, list) and v and all(isinstance(p, str) for p in v):
            return None
        return _describe(v)

    return Validator("a string or a non-empty list of strings", check)


def optional_text() -> Validator:
    t = text_prompt()
    return Validator("None, " + t.expected, lambda v: None if v is None else t(v))


def tensor(ndim: int | None = None, *, finite: bool = True) -> Validator:
    def check(v):
        if not isinstance(v, torch.Tensor):
            return _describe(v)
        if ndim is not None and v.ndim != ndim:
            return _describe(v)
        if finite and v.is_floating_point() and not bool(torch.isfinite(v).all()):
            return f"{_describe(v)} with NaN/Inf values"
        return None

    what = "a tensor" + (f" with {ndim} dims" if ndim is not None else "") + (" of finite values" if finite else "")
    return Validator(what, check)


def optional_tensor(ndim: int | None = None) -> Validator:
    t = tensor(ndim)
    return Validator("None or " + t.expected, lambda v: None if v is None else t(v))


# ---- sizes a model supports, checked before anything is allocated ------------------------------
def available_memory_bytes(device: torch.device | str | None = None) -> int | None:
    """Free memory where a run allocates: the GPU's free memory on CUDA, else the host's
    MemAvailable (Linux); None when unknown."""
    device = torch.device(device or "cpu")
    if device.type == "cuda" and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def fits_in_memory(field: str, value: Any, needed_bytes: int, what: str,
                   device: torch.device | str | None = None) -> tuple[str, str, str] | None:
    """A cross-check result (field, expected, got) when `needed_bytes` (a stated lower bound of
    what the run allocates, `what` says which tensor) is more than the free memory."""
    free = available_memory_bytes(device)
    if free is None or needed_bytes <= free:
        return None
    return (field, f"a size whose {what} fits in memory (needs at least {needed_bytes / 2**30:.1f} GiB, "
                   f"{free / 2**30:.1f} GiB available)", repr(value))
