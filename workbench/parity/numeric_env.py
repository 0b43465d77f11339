"""The numeric environment a CPU run computes in, and the pins that make it repeatable.

Parity compares two implementations in one process, so the host's float rounding cancels.
Regression compares against tensors blessed on some other host: there the vector path
torch dispatches to (ATEN_CPU_CAPABILITY), MKL's code path (Intel vs AMD, MKL_CBWR) and
oneDNN's ISA all move results by a few ulp, even `torch.randn`. Blessing records this
environment in every golden manifest and executed notebook, and a regression run on a
different one says so plainly instead of showing a mysterious 1e-6 diff.

The pins are environment variables read once, when torch loads its kernels: they must be
set before `import torch`, so they are applied to child processes (blessing's notebook
kernels, the capability-matrix test), never to the running interpreter.
"""

from __future__ import annotations

import os
import platform
import re
from typing import Any, Mapping

#: Variables that pick a numeric code path; recorded with every golden whatever their value.
NUMERIC_VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "OMP_NUM_THREADS")

#: What `workbench bless` and the regression tests pin. Measured on one AVX-512 host over every
#: combination (benchmarks/results/numeric_spread.json): MKL_CBWR=COMPATIBLE (MKL's same code
#: path on Intel and AMD) and ONEDNN_MAX_CPU_ISA=AVX2 (no AVX-512-only oneDNN kernels) each move
#: results, but alone they leave the spread between torch's own vector paths (avx2 vs avx512:
#: 6.8e-06 relative). Fixing ATEN_CPU_CAPABILITY=avx2 too, the widest path every x86-64 host of
#: this kind has, makes a pinned run reproduce the goldens bitwise on the blessing host; other
#: hosts are held by the cross-host tolerance (parity/tolerances.py REGRESSION_BY_KIND), which
#: covers every unpinned combination as well.
PINS: Mapping[str, str] = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "AVX2"}

#: The values `ATEN_CPU_CAPABILITY` accepts on x86-64, slowest first.
CAPABILITIES = ("default", "avx2", "avx512")


def pinned_environ(base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """A copy of `base` (default: os.environ) with the pins set, for a child process."""
    env = dict(os.environ if base is None else base)
    env.update(PINS)
    env.update(extra)
    return env


def _cpu_model() -> tuple[str, str]:
    vendor, model = platform.processor() or "unknown", "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "vendor_id":
                    vendor = value
                elif key == "model name":
                    model = value
                    break
    except OSError:
        pass
    return vendor, model


def supported_capabilities() -> tuple[str, ...]:
    """The ATEN_CPU_CAPABILITY values this CPU can run (default always; avx2/avx512 by flags)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    out = ["default"]
    if {"avx2", "fma"} <= set(flags):
        out.append("avx2")
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= set(flags):
        out.append("avx512")
    return tuple(out)


def describe() -> dict[str, Any]:
    """This process's numeric environment (torch must be importable)."""
    import torch

    match = re.search(r"\bBLAS_INFO=([^,\s]+)", torch.__config__.show())
    blas = match.group(1) if match else "unknown"
    vendor, model = _cpu_model()
    return {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "blas": blas,
        "mkl": bool(torch.backends.mkl.is_available()),
        "cpu_vendor": vendor,
        "cpu_model": model,
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "variables": {name: os.environ.get(name) for name in NUMERIC_VARIABLES},
    }


def _short(env: Mapping[str, Any]) -> str:
    vendor = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}.get(env.get("cpu_vendor", ""), env.get("cpu_vendor", "?"))
    pins = ",".join(f"{k}={v}" for k, v in sorted((env.get("variables") or {}).items()) if v) or "no pins"
    return f"{env.get('cpu_capability', '?')}/{vendor} ({env.get('cpu_model', '?')}; {pins})"


def mismatch(blessed: Mapping[str, Any] | None, current: Mapping[str, Any]) -> str | None:
    """One plain sentence when the numeric environment differs from the blessing's, else None."""
    if not blessed:
        return "blessed without a recorded numeric environment: cross-host tolerance applies"
    keys = ("cpu_capability", "blas", "cpu_vendor", "cpu_model", "variables")
    if all(blessed.get(k) == current.get(k) for k in keys):
        return None
    return f"blessed on {_short(blessed)}, running on {_short(current)}: cross-host tolerance applies"
