"""Measuring runs: wall time with device syncs, per-module time, and PerfRecords for them."""

from __future__ import annotations

import os
import subprocess
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

import torch

from workbench.perf.records import (
    PerfRecord,
    detect_gpu_type,
    hardware_profile_id,
    recipe_fingerprint,
    software_profile_id,
)
from workbench.runtime.device import synchronize


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    """Run `fn` and return (result, seconds), synchronising the device before and after."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return result, time.perf_counter() - start


def cuda_seconds(fn: Callable[[], Any], iters: int = 10, warmup: int = 2) -> float:
    """Mean seconds per call of `fn` on the current CUDA stream (events, after warm-up calls)."""
    for _ in range(warmup):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters / 1e3


class ModuleTimer:
    """Total forward time per named module (or method), synchronising around each call.

    The syncs serialise the device, so use it for a component breakdown run, not for the
    end-to-end latency run.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._undo: list[Callable[[], None]] = []

    def wrap(self, name: str, owner: Any, attribute: str = "forward") -> None:
        original = getattr(owner, attribute)

        def timed_call(*args, **kwargs):
            out, seconds = timed(lambda: original(*args, **kwargs), self.device)
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds
            self.calls[name] = self.calls.get(name, 0) + 1
            return out

        setattr(owner, attribute, timed_call)
        self._undo.append(lambda: delattr(owner, attribute) if attribute in vars(owner) else None)

    def remove(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()


@contextmanager
def peak_memory(device: torch.device) -> Iterator[dict[str, float | None]]:
    """Peak allocated device memory (MB) inside the block; None off CUDA."""
    out: dict[str, float | None] = {"peak_mb": None}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    yield out
    if device.type == "cuda":
        out["peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20


def git_commit() -> str:
    """HEAD's short hash, with `+dirty` when tracked files differ from it (the measured code is
    then not that commit), or "unknown" outside a git checkout. $WORKBENCH_COMMIT, when set, wins:
    a copy of the tree measured on another machine (no .git there) names the commit it came from."""
    if os.environ.get("WORKBENCH_COMMIT", "").strip():
        return os.environ["WORKBENCH_COMMIT"].strip()
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                 text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+dirty" if changed else head


def make_record(*, model_id: str, workload_id: str, variant_id: str, recipe: dict[str, Any], latency_s: float,
                frames: int | None = None, run_source: str = "benchmark", exact: bool = True,
                **metrics: Any) -> PerfRecord:
    """A benchmark record; throughput is output frames per second of end-to-end latency.
    `exact`: the output is held to parity (False for an approximate speed-up)."""
    extra = metrics.pop("extra", {})
    return PerfRecord(
        model_id=model_id, timestamp=datetime.now(timezone.utc).isoformat(), commit=git_commit(),
        gpu_type=detect_gpu_type(), workload_id=workload_id, variant_id=variant_id,
        recipe_fingerprint=recipe_fingerprint(recipe), hardware_profile_id=hardware_profile_id(),
        software_profile_id=software_profile_id(), success=True, run_source=run_source, baseline_eligible=True,
        latency_s=latency_s, throughput_fps=(frames / latency_s) if frames else None, extra=extra, exact=exact,
        **metrics)
