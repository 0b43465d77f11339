"""Calibrated tolerances: the noise floor of a parity mode, measured on the reference itself.

Fast mode changes numerics legitimately (reduced precision, another attention kernel, other
module dtypes); a fixed tolerance wide enough for that on every model lets real faults through,
one tight enough fails clean ports. So each checkpoint's bound comes from the official pipeline
disagreeing with itself under exactly those changes, on the same device, inputs and request:
the *floor* of a checkpoint is the largest max (and mean) abs diff between the parity
reference and any variant (`tolerances.CALIBRATION[mode].variants`), and the native side passes
while it stays within k x floor + eps (`Calibration` in tolerances.py says how).

The floors are cached per (official model files, device, dtype, request, variants, versions,
CPU numeric environment and thread count)
under `$WORKBENCH_CACHE/calibration/`; the verdict records the key and whether it was reused.
Floors are kept per checkpoint name, whatever the kind: a checkpoint without one (a kind or
name the calibration never saw) falls back to the fixed table and says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from workbench.parity.capture import CaptureSet
from workbench.parity.metrics import compare_tensors
from workbench.parity.numeric_env import NUMERIC_VARIABLES
from workbench.parity.tolerances import CALIBRATION, Calibration, Tolerance, Tolerances, tolerances_for

#: Bumped when what a floor means changes, so stale cache entries are not reused.
CALIBRATION_VERSION = 2

#: SDPA backend of the fp32 mode's base run per device type, and of its CPU "attention" variant.
#: On CUDA only efficient and math compute fp32, and math at full size (Wan 2.1, 32760 tokens)
#: needs ~100 GB for the attention matrix: the CUDA variant is "kernels" (autotuned cuDNN
#: convolutions, non-deterministic algorithms allowed) on the same efficient backend.
FP32_BACKENDS = {"cpu": ("math", "flash"), "cuda": ("efficient", "efficient")}


@dataclass(frozen=True)
class Setting:
    """How the official pipeline is loaded and run: dtype, modules kept fp32, SDPA backend."""

    name: str
    dtype: Any = None                 # None: as saved
    fp32_modules: tuple[str, ...] = ()
    backend: str | None = None        # None: torch's default choice
    description: str = ""
    autotune: bool = False            # cuDNN autotuning and non-deterministic algorithms allowed
    fallback: bool = False            # `attention_backend(..., fallback=True)`: other kernels for inputs it cannot take

    def describe(self) -> str:
        dtype = "as saved" if self.dtype is None else str(self.dtype).removeprefix("torch.")
        keep = f", fp32 {list(self.fp32_modules)}" if self.fp32_modules else ""
        attention = f"{self.backend or 'default'}" + (" (else efficient/math)" if self.fallback else "")
        return f"{dtype}{keep}, attention {attention}" + (", autotuned kernels" if self.autotune else "")


#: Backends with no fp32 kernel on CUDA: a fast-mode variant that names one keeps it for the
#: bf16/fp16 attention (the DiT's) and lets the inputs it cannot take (the Wan VAE's fp32
#: attention) run on efficient, then math: restricting the whole pipeline to the one backend
#: left those with no kernel ("No available kernel", H200 full-size Wan 2.1, 2026-12-02).
HALF_ONLY_BACKENDS = ("cudnn", "flash")


@contextlib.contextmanager
def attention_backend(backend: str | None, fallback: bool = False):
    """SDPA on one backend for the block (None: leave torch's choice). With `fallback` (fast
    mode's attention variant on CUDA, a backend of HALF_ONLY_BACKENDS), that backend comes first
    by priority and efficient, then math, serve only the inputs it has no kernel for; without it
    (the fp32 mode: one backend on both sides) the backend is the only one allowed."""
    if backend is None:
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    names = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
             "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}
    if fallback and backend in HALF_ONLY_BACKENDS:
        with sdpa_kernel([names[backend], SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH], set_priority=True):
            yield
        return
    with sdpa_kernel([names[backend]]):
        yield


@contextlib.contextmanager
def strict_numerics():
    """fp32 as fp32: TF32 off for matmuls and convolutions, deterministic algorithms where torch
    has them (warn-only: an op without one still runs), restored afterwards."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.backends.cudnn.benchmark, torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled())
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = saved[:3]
        torch.use_deterministic_algorithms(saved[3], warn_only=saved[4])


@contextlib.contextmanager
def autotuned():
    """cuDNN autotuning on and deterministic algorithms off, inside `strict_numerics` (restored by it)."""
    torch.backends.cudnn.benchmark = True
    torch.use_deterministic_algorithms(False)
    yield


def official_modules(official_dir: Path) -> list[str]:
    from workbench.runtime.manifest import read_manifest

    return list(read_manifest(official_dir).enabled_modules)


def base_setting(family, mode: str, device: torch.device) -> Setting:
    """How the parity reference itself is run in `mode`."""
    if mode == "fast":
        return Setting("base", family.fast.reference_dtype, tuple(family.fast.reference_fp32_modules), None,
                       "the official pipeline loaded the official fast way")
    if mode == "fp32":
        return Setting("base", torch.float32, (), FP32_BACKENDS.get(device.type, ("math", "math"))[0],
                       "the official pipeline with every module in fp32, one attention backend")
    raise ValueError(f"mode {mode!r} is not calibrated")


def variant_settings(family, mode: str, device: torch.device, official_dir: Path) -> list[Setting]:
    """The legitimate changes of `mode`, each as a setting of the official pipeline (variants that
    would equal the base, e.g. no module whose dtype differs, are left out)."""
    base = base_setting(family, mode, device)
    if mode == "fp32":
        if device.type == "cuda":
            return [Setting("kernels", torch.float32, (), base.backend, "cuDNN autotuned convolutions, "
                            "non-deterministic algorithms allowed", autotune=True)]
        other = FP32_BACKENDS.get(device.type, ("math", "math"))[1]
        return [Setting("attention", torch.float32, (), other, f"SDPA {other} instead of {base.backend}")]
    fast = family.fast
    other_backend = "math" if device.type != "cuda" else (fast.attention_backends[0] if fast.attention_backends
                                                          else "math")
    # The native fast run keeps fp32 every module it does not cast (module_dtypes) or casts to fp32.
    native_fp32 = tuple(n for n in official_modules(official_dir)
                        if fast.module_dtypes.get(n, torch.float32) == torch.float32)
    fallback = other_backend in HALF_ONLY_BACKENDS
    out = [Setting("attention", base.dtype, base.fp32_modules, other_backend,
                   f"SDPA {other_backend} instead of torch's default"
                   + (" (efficient/math only for inputs it has no kernel for: fp32)" if fallback else ""),
                   fallback=fallback)]
    if set(native_fp32) != set(base.fp32_modules):
        out.append(Setting("precision", base.dtype, native_fp32, None,
                           "the native fast module dtypes (fp32 only where native keeps fp32)"))
        out.append(Setting("attention+precision", base.dtype, native_fp32, other_backend, "both changes at once",
                           fallback=fallback))
    out.append(Setting("fp32", None, (), None, "the official pipeline as saved (fp32), the precision fast mode drops"))
    wanted = CALIBRATION[mode].variants
    return [s for s in out if s.name in wanted]


def run_official(family, official_dir: Path, params, device: torch.device, setting: Setting) -> CaptureSet:
    """One official run under `setting` (fp32 settings also under `strict_numerics`)."""
    from workbench.errors import WorkbenchError
    from workbench.families.offline import quiet_hf

    quiet_hf()
    pipe = family.reference.load_official(official_dir, device, dtype=setting.dtype, fp32_modules=setting.fp32_modules)
    strict = strict_numerics() if setting.dtype == torch.float32 else contextlib.nullcontext()
    try:
        with strict, attention_backend(setting.backend, setting.fallback), (autotuned() if setting.autotune else contextlib.nullcontext()):
            capture, _ = family.reference.run_reference(official_dir, params, device, pipe=pipe)
    except (ValueError, TypeError) as exc:
        raise WorkbenchError(f"official {family.official_pipeline} rejected the request: {exc}") from exc
    return capture


# ---- the cache -----------------------------------------------------------------------------------

def files_fingerprint(directory: Path) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime_ns) of every file: a copy made with its times kept shares it."""
    directory = Path(directory)
    return sorted((str(p.relative_to(directory)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in directory.rglob("*") if p.is_file())


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type


def cache_key(family, official_dir: Path, params, device: torch.device, mode: str) -> tuple[str, dict[str, Any]]:
    from workbench.references import versions

    base = base_setting(family, mode, device)
    fields_ = {"version": CALIBRATION_VERSION, "family": family.name, "mode": mode,
               "files": files_fingerprint(official_dir), "device": device_label(device),
               "dtype": base.describe(), "request": params.to_json_dict(),
               "variants": [s.describe() + f" ({s.name})" for s in variant_settings(family, mode, device, official_dir)],
               "calibration": repr(CALIBRATION[mode]), "versions": versions(),
               # CPU numerics depend on the vector path and the thread count (reduction order)
               "numeric_env": {v: os.environ.get(v) for v in NUMERIC_VARIABLES},
               "threads": torch.get_num_threads()}
    digest = hashlib.sha256(json.dumps(fields_, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return digest, fields_


def cache_path(key: str) -> Path:
    from workbench.references import cache_root

    return cache_root() / "calibration" / f"{key}.json"


# ---- floors and bounds ---------------------------------------------------------------------------

@dataclass
class Floors:
    """Per checkpoint: {"max_abs", "mean_abs", "scale", "mean_scale", "psnr", "by_variant": {...}}."""

    mode: str
    key: str
    checkpoints: dict[str, dict[str, Any]]
    variants: dict[str, str]
    base: str
    cached: bool = False
    path: str = ""
    key_fields: dict[str, Any] = field(default_factory=dict)


def measure_floors(base: CaptureSet, variants: Mapping[str, CaptureSet]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for c in base:
        scale = float(c.tensor.double().abs().max()) if c.tensor.numel() else 0.0
        mean_scale = float(c.tensor.double().abs().mean()) if c.tensor.numel() else 0.0
        row: dict[str, Any] = {"kind": c.kind, "dtype": str(c.tensor.dtype).removeprefix("torch."), "scale": scale,
                               "mean_scale": mean_scale, "by_variant": {}}
        usable = True
        for name, capture in variants.items():
            if c.name not in capture:
                row["by_variant"][name] = {"error": "not recorded"}
                usable = False
                continue
            m = compare_tensors(c.tensor, capture[c.name].tensor, c.kind)
            if m.error:
                row["by_variant"][name] = {"error": m.error}
                usable = False
                continue
            row["by_variant"][name] = {"max_abs": m.max_abs_diff, "mean_abs": m.mean_abs_diff, "psnr": m.psnr}
        if usable and variants:
            rows = row["by_variant"].values()
            row["max_abs"] = max(r["max_abs"] for r in rows)
            row["mean_abs"] = max(r["mean_abs"] for r in rows)
            psnrs = [r["psnr"] for r in rows if r.get("psnr") is not None]
            row["psnr"] = min(psnrs) if psnrs else None
        out[c.name] = row
    return out


def calibrate(family, root: Path, params, device: torch.device, mode: str, reference: CaptureSet | None = None,
              *, use_cache: bool = True) -> Floors:
    """The floors of `mode` for this request (cached); `reference` is the parity reference if
    already run (the base setting), so it is not run twice."""
    from workbench.io import atomic_write_text

    official_dir = Path(root) / "official"
    key, key_fields = cache_key(family, official_dir, params, device, mode)
    path = cache_path(key)
    settings = variant_settings(family, mode, device, official_dir)
    base = base_setting(family, mode, device)
    if use_cache and path.is_file():
        try:
            data = json.loads(path.read_text())
            return Floors(mode, key, data["checkpoints"], data["variants"], data["base"], cached=True,
                          path=str(path), key_fields=key_fields)
        except (OSError, ValueError, KeyError):
            pass  # unreadable entry: measure again and overwrite it
    if reference is None:
        reference = run_official(family, official_dir, params, device, base)
    runs = {s.name: run_official(family, official_dir, params, device, s) for s in settings}
    floors = Floors(mode, key, measure_floors(reference, runs),
                    {s.name: f"{s.describe()}: {s.description}" for s in settings},
                    f"{base.describe()}: {base.description}", path=str(path), key_fields=key_fields)
    payload = {"key": key, "key_fields": key_fields, "checkpoints": floors.checkpoints, "variants": floors.variants,
               "base": floors.base}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(payload, indent=1, sort_keys=True, default=str) + "\n")
    return floors


def calibrated_tolerance(row: Mapping[str, Any], spec: Calibration) -> Tolerance:
    """k x floor + eps on max and mean abs diff; frames may pass on PSNR, capped (see `Calibration`)."""
    eps = spec.eps_rel_for(row.get("dtype")) * row["scale"]
    k = spec.k_for(row.get("kind"))
    max_abs = k * row["max_abs"] + eps
    alternative = None
    if row["kind"] == "frames" and row.get("psnr") is not None and row["psnr"] != float("inf"):
        alternative = Tolerance(min_psnr=row["psnr"] - spec.psnr_margin_db, rescue_max_abs=spec.rescue_multiple * max_abs)
    return Tolerance(max_abs=max_abs, max_mean_abs=k * row["mean_abs"] + eps, alternative=alternative)


class CalibratedTolerances(Tolerances):
    """A mode's table where every checkpoint with a measured floor gets its calibrated bound and
    the others the fixed fallback; `source(name)` says which, `floor(name)` the floor used."""

    def __init__(self, floors: Floors, fallback: Tolerances | None = None):
        super().__init__(floors.mode, (fallback or tolerances_for(floors.mode)).by_kind,
                         (fallback or tolerances_for(floors.mode)).by_name)
        object.__setattr__(self, "floors", floors)
        object.__setattr__(self, "spec", CALIBRATION[floors.mode])

    def _row(self, name: str) -> dict[str, Any] | None:
        row = self.floors.checkpoints.get(name)
        return row if row is not None and "max_abs" in row else None

    def for_checkpoint(self, name: str, kind: str) -> Tolerance:
        row = self._row(name)
        if row is None or row.get("kind") != kind:
            return super().for_checkpoint(name, kind)
        return calibrated_tolerance(row, self.spec)

    def source(self, name: str, kind: str) -> str:
        row = self.floors.checkpoints.get(name)
        if row is None:
            return "fixed fallback: no floor measured for this checkpoint (the reference never recorded it)"
        if "max_abs" not in row:
            errors = "; ".join(f"{v}: {r['error']}" for v, r in row["by_variant"].items() if "error" in r)
            return f"fixed fallback: the floor could not be measured ({errors})"
        if row.get("kind") != kind:
            return f"fixed fallback: the floor was measured for kind {row.get('kind')!r}, not {kind!r}"
        return "calibrated"

    def floor(self, name: str) -> float | None:
        row = self._row(name)
        return None if row is None else row["max_abs"]

    def record(self) -> dict[str, Any]:
        """What the verdict keeps of the calibration (`Verdict.calibration`)."""
        f, spec = self.floors, self.spec
        return {"mode": f.mode, "key": f.key, "cached": f.cached, "path": f.path, "k": spec.k,
                "k_by_kind": dict(spec.k_by_kind),
                "eps_rel": "one ulp of the checkpoint's dtype at its scale (tolerances.EPS_REL_BY_DTYPE)",
                "rescue_multiple": spec.rescue_multiple, "psnr_margin_db": spec.psnr_margin_db,
                "sides_compared": f"official ({f.base}) vs official under each variant",
                "base": f.base, "variants": f.variants, "source": spec.source,
                "device": f.key_fields.get("device"), "dtype": f.key_fields.get("dtype"),
                "floors": {n: {k: r.get(k) for k in ("max_abs", "mean_abs", "scale", "dtype")}
                           for n, r in f.checkpoints.items()}}


def annotate(verdict, table: Tolerances) -> None:
    """Write floor, k and tolerance_source into every checkpoint result of `verdict`."""
    calibrated = isinstance(table, CalibratedTolerances)
    for c in verdict.checkpoints:
        if calibrated:
            c.tolerance_source = table.source(c.name, c.kind)
            if c.tolerance_source == "calibrated":
                c.floor, c.k = table.floor(c.name), table.spec.k_for(c.kind)
        elif table.mode == "exact":
            c.tolerance_source = "fixed: exact mode, bitwise or <= 1e-6 (DESIGN section 6)"
        else:
            c.tolerance_source = f"fixed fallback: {table.mode} mode was run without calibration"
    if calibrated:
        verdict.calibration = table.record()
