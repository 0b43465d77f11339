"""Shared builders: valid records of one cohort that a test overrides field by field."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pytest

from workbench.perf import PerfRecord, PerfStore, recipe_fingerprint

RECIPE = recipe_fingerprint({"prompt": "a red fox", "steps": 30, "guidance_scale": 5.0, "height": 480, "width": 832})
START = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def record_dict(index: int = 0, **overrides: Any) -> dict[str, Any]:
    """A valid record as decoded JSON; `index` spaces timestamps one hour apart."""
    data: dict[str, Any] = {
        "model_id": "wan2.1-t2v-1.3b", "timestamp": (START + timedelta(hours=index)).isoformat(),
        "commit": f"c{index:04d}", "gpu_type": "NVIDIA H200", "workload_id": "t2v", "variant_id": "bf16",
        "recipe_fingerprint": RECIPE, "hardware_profile_id": "hw-0123456789abcdef",
        "software_profile_id": "sw-fedcba9876543210", "success": True, "run_source": "benchmark",
        "baseline_eligible": True, "latency_s": 10.0, "throughput_fps": 8.1, "peak_memory_mb": 20000.0,
        "text_encoder_s": 0.8, "dit_s": 8.5, "vae_decode_s": 0.7, "extra": {"steps": 30},
    }
    data.update(overrides)
    return data


@pytest.fixture
def make_record() -> Callable[..., PerfRecord]:
    return lambda index=0, **overrides: PerfRecord.from_dict(record_dict(index, **overrides), "test")


@pytest.fixture
def store(tmp_path: Path):
    with PerfStore(tmp_path / "perf.sqlite") as opened:
        yield opened
