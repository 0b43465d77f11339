"""The parity self-check: plant single faults in the native side and see whether parity finds them.

A fault library per family (`fault_library`): weight faults (one tensor per component
perturbed by `rel` of its RMS, seeded), config faults (one numeric field per component config
moved by a few percent) and code faults injected at run time through the loaded pipeline
(stage methods and module attributes wrapped for one run and restored; no source edit).

For each fault, the ground truth comes from the native side alone: the *first changed*
checkpoint is the first one where the faulty native run differs at all (bitwise) from the
clean native run in the same mode. A fault that changes nothing and no config is *not
exercised* by the request and is left out of the rates. Then parity (the same tolerance
table as `workbench parity`, calibrated in fast/fp32 modes) judges the faulty run:
*detected* when the verdict fails, *localised* when its first finding is the planted config
field (config faults) or its first divergent checkpoint is the first changed one. The sha256
gate and the config diff (issue 16, item 6) would refuse or flag the weight and config faults
before any run; `gate_refuses` records that, and the numeric rates are reported without it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from workbench.parity.capture import CaptureSet

#: Weight fault sizes (relative to the tensor's RMS): 1e-2 is the issue's detection target in
#: fast mode, 1e-3 sits under bf16 resolution and is planted in exact and fp32 modes only.
WEIGHT_RELS = {"exact": (1e-2, 1e-3), "fp32": (1e-2, 1e-3), "fast": (1e-2,)}
#: Config fields planted per component folder (first present wins), and the factor applied.
CONFIG_FIELDS = ("latents_std", "scaling_factor", "flow_shift", "shift", "sigma_max", "eps", "norm_eps",
                 "layer_norm_epsilon", "rms_norm_eps")
CONFIG_FACTOR = 1.02


@dataclass
class Fault:
    id: str
    category: str                 # weight | config | code
    component: str
    description: str
    plant_files: Callable[[Path], dict[str, Any]] | None = None   # edits converted/, returns what it changed
    patch: Callable[[Any], contextlib.AbstractContextManager] | None = None  # pipe -> context for one run
    rel: float | None = None


# ---- weight and config faults (files) --------------------------------------------------------

def _safetensors(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors"))


def pick_tensor(folder: Path) -> tuple[Path, str] | None:
    """The tensor a weight fault perturbs: the largest float tensor of >= 2 dims (decoder side
    first when the module has an encoder and a decoder: text-to-X pipelines decode only)."""
    from safetensors import safe_open

    candidates = []
    for path in _safetensors(folder):
        with safe_open(str(path), "pt") as f:
            for key in f.keys():
                sl = f.get_slice(key)
                shape, dtype = sl.get_shape(), sl.get_dtype()
                if len(shape) >= 2 and dtype in ("F32", "BF16", "F16"):
                    numel = 1
                    for s in shape:
                        numel *= s
                    candidates.append((key.startswith("decoder."), numel, key, path))
    if not candidates:
        return None
    _, _, key, path = max(candidates)
    return path, key


def scratch_converted(converted: Path, case: Path, component: str) -> Path:
    """`case/converted` for a fault planted in `component`, without copying the model: every
    other entry is a symbolic link to the original, and the component's folder is a real folder
    whose files are links too. A planting function replaces the one link it edits by a file of
    its own (`_detach`), so the original is never written; at full size (29 GB of converted/) a
    fault then costs one rewritten file, not a copy of everything."""
    out = case / "converted"
    out.mkdir(parents=True)
    for entry in sorted(Path(converted).iterdir()):
        if entry.name == component and entry.is_dir():
            (out / entry.name).mkdir()
            for inner in sorted(entry.iterdir()):
                (out / entry.name / inner.name).symlink_to(inner.resolve())
        else:
            (out / entry.name).symlink_to(entry.resolve())
    return out


def _detach(path: Path) -> None:
    """Drop a link before its file is rewritten (the content was read already): the write
    then makes a new file in the scratch folder instead of going through to the original."""
    if path.is_symlink():
        path.unlink()


def perturb_weight(folder: Path, rel: float, seed: int = 0) -> dict[str, Any]:
    from safetensors.torch import load_file, save_file

    path, key = pick_tensor(folder)
    state = load_file(str(path))
    w = state[key]
    rms = float(w.double().pow(2).mean().sqrt()) or 1.0
    noise = torch.randn(w.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    state[key] = (w.double() + rel * rms * noise).to(w.dtype)
    del noise
    _detach(path)
    save_file(state, str(path), metadata={"format": "pt"})
    return {"file": str(path.relative_to(folder.parent)), "tensor": key, "rel": rel}


def config_field(folder: Path) -> tuple[Path, str] | None:
    for path in sorted(folder.glob("*.json")):
        if "token" in path.name:
            continue
        data = json.loads(path.read_text())
        for name in CONFIG_FIELDS:
            value = data.get(name)
            if isinstance(value, list) and value and isinstance(value[0], (int, float)):
                return path, name
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value != 0:
                return path, name
    return None


def perturb_config(folder: Path) -> dict[str, Any]:
    from workbench.io import atomic_write_text

    path, name = config_field(folder)
    data = json.loads(path.read_text())
    value = data[name]
    if isinstance(value, list):
        value = list(value)
        value[0] = value[0] * CONFIG_FACTOR
        where = f"{name}[0]"
    else:
        value = value * CONFIG_FACTOR
        where = name
    data[name] = value
    _detach(path)
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return {"file": str(path.relative_to(folder.parent)), "field": where}


# ---- code faults (run-time patches) ------------------------------------------------------------

@contextlib.contextmanager
def _patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    had = name in vars(obj) if hasattr(obj, "__dict__") else False
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        if had:
            setattr(obj, name, old)
        else:
            delattr(obj, name)


def _stages(pipe, cls_name: str) -> list:
    return [s for s in pipe.stages if any(c.__name__ == cls_name for c in type(s).__mro__)]


def _patch_each(stages: list, attr: str, wrap: Callable[[Any], Any]):
    """Replace `stage.<attr>` by `wrap(original)` on every stage for the `with` block; None when
    the family has no such stage (the fault does not apply: LTX-2's joint loop has its own)."""
    if not stages:
        return None
    stack = contextlib.ExitStack()
    for stage in stages:
        stack.enter_context(_patched(stage, attr, wrap(getattr(stage, attr))))
    return stack


def cfg_scale_minus_one(pipe):
    """CFG computed with (g - 1) in place of g: the guided prediction, not the recorded scale."""
    return _patch_each(_stages(pipe, "DenoisingStage"), "guided",
                       lambda _o: lambda m, x, t, b, s, *a, **k: _o(m, x, t, b, s - 1.0, *a, **k))


def _swap_branches(original):
    def swapped(model, latents, t, batch, which):
        if which == "both":
            uncond, cond = original(model, latents, t, batch, which).chunk(2)
            return torch.cat([cond, uncond])
        return original(model, latents, t, batch, {"cond": "uncond", "uncond": "cond"}.get(which, which))
    return swapped


def cfg_branches_swapped(pipe):
    """cond and uncond predictions exchanged (a swapped concatenation order)."""
    return _patch_each(_stages(pipe, "DenoisingStage"), "predict", _swap_branches)


def negative_prompt_ignored(pipe):
    """The negative prompt replaced by the empty string."""
    return _patch_each(_stages(pipe, "TextEncodingStage"), "negative",
                       lambda _o: lambda b: "" if _o(b) is not None else None)


def _inverse_denormalisation(vae) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """z -> the latents before denormalisation, for a VAE whose stats are in its config/buffers."""
    cfg = vae.config
    if isinstance(getattr(vae, "latents_mean", None), torch.Tensor):  # LTX-2: z = x * std / sf + mean
        sf = float(getattr(cfg, "scaling_factor", 1.0) or 1.0)
        return lambda z: (z - vae.latents_mean.view(1, -1, *[1] * (z.dim() - 2)).to(z)) * sf / \
            vae.latents_std.view(1, -1, *[1] * (z.dim() - 2)).to(z)
    mean, std = getattr(cfg, "latents_mean", None), getattr(cfg, "latents_std", None)
    if mean is not None and std is not None:  # Wan: z = x * std + mean
        return lambda z: (z - torch.tensor(mean).view(1, -1, *[1] * (z.dim() - 2)).to(z)) / \
            torch.tensor(std).view(1, -1, *[1] * (z.dim() - 2)).to(z)
    return None


def decode_without_denormalisation(pipe):
    """The VAE decodes the latents as sampled, without latents_mean/std (or scaling) applied."""
    vae = pipe.get_module("vae")
    inverse = _inverse_denormalisation(vae) if vae is not None else None
    if inverse is None:
        return None
    original = vae.decode
    return _patched(vae, "decode", lambda z, *a, _o=original, **k: _o(inverse(z), *a, **k))


@contextlib.contextmanager
def _no_unit_clamp():
    original = torch.Tensor.clamp

    def clamp(self, *args, **kwargs):
        if args == (0, 1) or (args[:1] == (0,) and kwargs.get("max") == 1):
            return self
        return original(self, *args, **kwargs)
    torch.Tensor.clamp = clamp
    try:
        yield
    finally:
        torch.Tensor.clamp = original


def _unclamped(original):
    def decode(latents, batch):
        with _no_unit_clamp():
            return original(latents, batch)
    return decode


def output_clamp_dropped(pipe):
    """Frames left unclamped: `.clamp(0, 1)` skipped during the decoding stages."""
    return _patch_each([s for s in pipe.stages if getattr(s, "kind", None) == "frames"], "decode", _unclamped)


def denoiser_norm_eps(pipe):
    """Every norm of the denoiser with eps x 10 (e.g. 1e-6 -> 1e-5: a porter's default)."""
    model = pipe.get_module("transformer")
    if model is None:
        return None
    # an `eps` held by the module itself (norm layers), not a model's config attribute
    norms = [m for m in model.modules() if isinstance(vars(m).get("eps"), float) and m.eps > 0]
    if not norms:
        return None
    stack = contextlib.ExitStack()
    for m in norms:
        stack.enter_context(_patched(m, "eps", m.eps * 10))
    return stack


def ltx2_audio_cfg_uses_video_scale(pipe):
    """LTX-2: the audio stream guided with the video stream's CFG scale (its step meta shows it too)."""
    import workbench.families.ltx2.stages as ltx2_stages

    original = ltx2_stages.resolve_guidance

    def resolve(batch):
        from dataclasses import replace

        g = original(batch)
        return {"video": g["video"], "audio": replace(g["audio"], guidance_scale=g["video"].guidance_scale)}
    return _patched(ltx2_stages, "resolve_guidance", resolve)


CODE_FAULTS = {
    "cfg_scale_minus_one": cfg_scale_minus_one,
    "cfg_branches_swapped": cfg_branches_swapped,
    "negative_prompt_ignored": negative_prompt_ignored,
    "decode_without_denormalisation": decode_without_denormalisation,
    "output_clamp_dropped": output_clamp_dropped,
    "denoiser_norm_eps_x10": denoiser_norm_eps,
}
FAMILY_CODE_FAULTS = {"ltx2": {"audio_cfg_uses_video_scale": ltx2_audio_cfg_uses_video_scale}}


def fault_library(family, converted: Path, mode: str) -> list[Fault]:
    """Every fault that applies to this family's converted directory in `mode`."""
    from workbench.portstate.modules import pipeline_modules
    from workbench.runtime.manifest import read_manifest

    faults: list[Fault] = []
    for name in pipeline_modules(family.pipeline_class, read_manifest(converted)):
        folder = converted / name
        if not folder.is_dir():
            continue
        picked = pick_tensor(folder)
        if picked is not None:
            for rel in WEIGHT_RELS[mode]:
                faults.append(Fault(f"weight:{name}:{rel:g}", "weight", name,
                                    f"{name} {picked[1]} + {rel:g} x RMS noise",
                                    plant_files=lambda c, n=name, r=rel: perturb_weight(c / n, r), rel=rel))
        if config_field(folder) is not None:
            _, field_name = config_field(folder)
            faults.append(Fault(f"config:{name}:{field_name}", "config", name, f"{name} {field_name} x {CONFIG_FACTOR}",
                                plant_files=lambda c, n=name: perturb_config(c / n)))
    for fid, make in {**CODE_FAULTS, **FAMILY_CODE_FAULTS.get(family.name, {})}.items():
        faults.append(Fault(f"code:{fid}", "code", "pipeline", (make.__doc__ or fid).strip().splitlines()[0],
                            patch=make))
    return faults


# ---- running ---------------------------------------------------------------------------------

def first_changed(clean: CaptureSet, faulty: CaptureSet) -> str | None:
    """The first checkpoint (clean run's order) where the faulty native run differs at all: its
    tensor, or the call arguments parity compares in its step meta (a guidance scale the native
    loop used is a difference at the first checkpoint that records it)."""
    from workbench.parity.compare import MATCHING_META

    for c in clean:
        if c.name not in faulty:
            return c.name
        other = faulty[c.name]
        if other.tensor.shape != c.tensor.shape or other.tensor.dtype != c.tensor.dtype \
                or not torch.equal(other.tensor, c.tensor):
            return c.name
        if any(other.meta.get(key) != c.meta.get(key) for key in MATCHING_META):
            return c.name
    extra = [n for n in faulty.names() if n not in clean]
    return extra[0] if extra else None


@dataclass
class FaultResult:
    id: str
    category: str
    component: str
    description: str
    rel: float | None
    planted: dict[str, Any] = field(default_factory=dict)
    applicable: bool = True
    exercised: bool = False
    first_changed: str | None = None
    config_differences: list[dict[str, Any]] = field(default_factory=list)
    detected: bool = False
    detected_numerically: bool = False
    localised: bool = False
    first_finding: str | None = None
    first_divergence: str | None = None
    gate_refuses: bool | None = None
    # max over checkpoints of max_abs / bound and mean_abs / bound (1 = at the bound): how far over
    # (or under) the line the fault landed, which says more than pass/fail when tuning k
    worst_ratio: float | None = None
    worst_mean_ratio: float | None = None
    # the same faulty run judged the pre-issue-16 way (fixed table, no config diff): the "before"
    fixed_detected: bool | None = None
    fixed_localised: bool | None = None
    seconds: float = 0.0
    error: str | None = None


def _native_pipe(converted: Path, device: torch.device, mode: str):
    from workbench.api.generate import load_pipeline
    from workbench.parity.runner import load_native_fp32

    if mode == "fp32":
        return load_native_fp32(converted, device)
    return load_pipeline(converted, device=device, mode=mode, progress=False)


def _forget_pipelines(under: Path) -> None:
    """Drop load_pipeline's cached pipelines of a scratch copy (one per fault would pile up)."""
    from workbench.api import generate

    prefix = str(Path(under).resolve())
    for key in [k for k in generate._PIPELINES if str(k[0]).startswith(prefix)]:
        generate._PIPELINES.pop(key, None)


def _gate_refuses(family, converted: Path) -> bool | None:
    from workbench.errors import WorkbenchError
    from workbench.portstate.gates import check_model_files
    from workbench.runtime.manifest import read_manifest

    try:
        check_model_files(family, read_manifest(converted))
        return False
    except WorkbenchError:
        return True
    except Exception:  # noqa: BLE001 - no port state: the gate cannot say
        return None


def run_selfcheck(family_name: str, *, mode: str = "exact", device: str = "cpu", model_dir: str | Path | None = None,
                  preset: str | None = None, request: dict | None = None, only: tuple[str, ...] = (),
                  categories: tuple[str, ...] = (),
                  on_progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Plant every fault of the library (or those whose id starts with one of `only`, or of the
    given categories) one at a time; return the JSON-ready result with per-fault rows and rates.
    `on_progress` gets the result so far (`"partial": True`) after the setup and after each fault:
    a full-size run takes many minutes, and what it measured is kept if it is stopped."""
    from workbench import registry
    from workbench.errors import ParameterError
    from workbench.families.offline import quiet_hf
    from workbench.parity.runner import (MODES, compare_run, diff_configs, parity_tolerances, resolve_model_dir,
                                         run_native, run_reference)
    from workbench.parity.tolerances import tolerances_for
    from workbench.references import versions
    from workbench.runtime.device import resolve_device

    if mode not in MODES:
        raise ParameterError(f"--mode {mode!r}: expected one of {MODES}")
    family = registry.get_family(family_name)
    dev = resolve_device(device)
    if mode == "exact" and dev.type != "cpu":
        raise ParameterError("--mode exact runs on CPU; use --mode fp32 or fast on CUDA")
    quiet_hf()
    root = resolve_model_dir(family, model_dir)
    params = family.sampling_params(preset, request)
    if mode == "fast":
        params = params.replace(stage_overrides=family.fast.stage_overrides + tuple(params.stage_overrides))
    start = time.perf_counter()
    reference = run_reference(family, root / "official", params, dev, mode=mode)
    table = parity_tolerances(family, root, params, dev, mode, reference)
    clean_pipe = _native_pipe(root / "converted", dev, mode)
    clean, _ = run_native(root / "converted", params, dev, mode=mode, pipe=clean_pipe)
    again, _ = run_native(root / "converted", params, dev, mode=mode, pipe=clean_pipe)
    repeatable = first_changed(clean, again) is None  # else "first changed" would mean nothing
    clean_verdict = compare_run(family, root, params, dev, mode, reference, clean, preset=preset, table=table)
    clean_verdict.config_differences = diff_configs(root)
    setup_s = time.perf_counter() - start

    fixed = tolerances_for(mode) if mode in ("fast", "fp32") else None
    library = fault_library(family, root / "converted", mode)
    if only:
        library = [f for f in library if f.id.startswith(tuple(only))]
    if categories:
        library = [f for f in library if f.category in categories]
    rows: list[FaultResult] = []
    result = {
        "family": family.name, "mode": mode, "device": str(dev), "preset": preset or family.default_preset,
        "parameters": params.to_json_dict(), "versions": versions(),
        "tolerance": table.mode + (" (calibrated)" if clean_verdict.calibration else " (fixed table)"),
        "calibration": {k: v for k, v in clean_verdict.calibration.items() if k != "floors"},
        "clean": {"passed": clean_verdict.passed, "first_finding": clean_verdict.first_finding,
                  "repeatable": repeatable,
                  "worst_ratio_to_bound": _worst_ratio(clean_verdict),
                  "worst_mean_ratio_to_bound": _worst_ratio(clean_verdict, mean=True)},
        "setup_s": setup_s, "faults": [],
        # modules saved in bf16/fp16 that the fp32 mode upcast on load (exact), as the official side does
        "upcast_on_load": [dict(u, folder=Path(u["folder"]).name) for u in getattr(clean_pipe, "upcast_on_load", [])],
    }

    def snapshot(partial: bool) -> dict[str, Any]:
        result["faults"] = [r.__dict__ for r in rows]
        result["rates"] = rates(rows)
        result["total_s"] = time.perf_counter() - start
        result["partial"] = partial
        if not partial:
            del result["partial"]
        return result

    if on_progress is not None:
        on_progress(snapshot(True))
    with tempfile.TemporaryDirectory(prefix="workbench-selfcheck-") as scratch:
        for fault in library:
            rows.append(_run_fault(family, fault, root, Path(scratch), params, dev, mode, reference, clean, clean_pipe,
                                   table, preset, fixed))
            if on_progress is not None:
                on_progress(snapshot(True))
    return snapshot(False)


def _worst_ratio(verdict, mean: bool = False) -> float | None:
    """max over checkpoints of max_abs (or mean_abs) / its bound (how close a run came to failing)."""
    ratios = []
    for c in verdict.checkpoints:
        if not (c.metrics and c.tolerance):
            continue
        value, bound = ((c.metrics.mean_abs_diff, c.tolerance.max_mean_abs) if mean
                        else (c.metrics.max_abs_diff, c.tolerance.max_abs))
        if value is not None and bound:
            ratios.append(value / bound)
    return max(ratios) if ratios else None


def _run_fault(family, fault: Fault, root: Path, scratch: Path, params, dev, mode, reference, clean, clean_pipe,
               table, preset, fixed=None) -> FaultResult:
    from workbench.parity.runner import compare_run, diff_configs, run_native

    row = FaultResult(fault.id, fault.category, fault.component, fault.description, fault.rel)
    start = time.perf_counter()
    try:
        if fault.plant_files is not None:
            case = scratch / fault.id.replace(":", "_")
            scratch_converted(root / "converted", case, fault.component)
            (case / "official").symlink_to((root / "official").resolve())
            row.planted = fault.plant_files(case / "converted")
            row.config_differences = diff_configs(case)
            row.gate_refuses = _gate_refuses(family, case / "converted")
            try:
                faulty, _ = run_native(case / "converted", params, dev, mode=mode,
                                       pipe=_native_pipe(case / "converted", dev, mode))
            finally:
                _forget_pipelines(case)
                shutil.rmtree(case)
        else:
            context = fault.patch(clean_pipe)
            if context is None:
                row.applicable = False
                return row
            with context:
                faulty, _ = run_native(root / "converted", params, dev, mode=mode, pipe=clean_pipe)
        row.first_changed = first_changed(clean, faulty)
        row.exercised = row.first_changed is not None or bool(row.config_differences)
        verdict = compare_run(family, root, params, dev, mode, reference, faulty, preset=preset, table=table)
        row.detected_numerically = not verdict.passed
        row.worst_ratio, row.worst_mean_ratio = _worst_ratio(verdict), _worst_ratio(verdict, mean=True)
        if fixed is not None:
            before = compare_run(family, root, params, dev, mode, reference, faulty, preset=preset, table=fixed)
            row.fixed_detected = not before.passed
            first_fixed = before.first_divergence
            row.fixed_localised = row.fixed_detected and first_fixed is not None and \
                first_fixed.name == row.first_changed
        verdict.config_differences = row.config_differences
        row.detected = not verdict.passed
        row.first_finding = verdict.first_finding
        first = verdict.first_divergence
        row.first_divergence = first.name if first else None
        if fault.category == "config" and row.config_differences:
            d = row.config_differences[0]
            row.localised = (d["file"], d["field"]) == (row.planted["file"], row.planted["field"])
        else:
            row.localised = row.detected and row.first_divergence is not None and \
                row.first_divergence == row.first_changed
    except Exception as exc:  # a fault that breaks the native run is reported, not fatal
        row.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    finally:
        row.seconds = time.perf_counter() - start
    return row


def _rate(rows: list[FaultResult], attr: str) -> dict[str, Any]:
    rows = [r for r in rows if getattr(r, attr) is not None]  # "before" is not judged in exact mode
    n = len(rows)
    k = sum(bool(getattr(r, attr)) for r in rows)
    return {"count": k, "of": n, "rate": (k / n) if n else None}


def rates(rows: list[FaultResult]) -> dict[str, Any]:
    """Detection and localisation over exercised faults: all, per category, weights per size; the
    numeric rates count only what the verdict's checkpoints caught (no config diff, no sha gate)."""
    exercised = [r for r in rows if r.applicable and r.exercised and r.error is None]
    groups: dict[str, list[FaultResult]] = {"all": exercised}
    for cat in ("weight", "config", "code"):
        groups[cat] = [r for r in exercised if r.category == cat]
    for rel in sorted({r.rel for r in exercised if r.rel is not None}, reverse=True):
        groups[f"weight>={rel:g}" if rel >= 1e-2 else f"weight {rel:g}"] = [
            r for r in exercised if r.category == "weight" and r.rel == rel]
    groups["code+config"] = [r for r in exercised if r.category in ("code", "config")]
    out = {name: {"detected": _rate(g, "detected"), "localised": _rate(g, "localised"),
                  "detected_numerically": _rate(g, "detected_numerically"),
                  "before_fixed_table_detected": _rate(g, "fixed_detected"),
                  "before_fixed_table_localised": _rate(g, "fixed_localised")} for name, g in groups.items()}
    out["planted"] = len(rows)
    out["not_applicable"] = [r.id for r in rows if not r.applicable]
    out["not_exercised"] = [r.id for r in rows if r.applicable and not r.exercised and r.error is None]
    out["errors"] = [f"{r.id}: {r.error}" for r in rows if r.error]
    return out


def summary_lines(result: dict[str, Any]) -> list[str]:
    r = result["rates"]
    lines = [f"selfcheck {result['family']} mode={result['mode']} device={result['device']} ({result['tolerance']}): "
             f"clean run {'passes' if result['clean']['passed'] else 'FAILS: ' + str(result['clean']['first_finding'])}"
             f" [max {result['clean']['worst_ratio_to_bound'] or 0:.2f}x, mean "
             f"{result['clean']['worst_mean_ratio_to_bound'] or 0:.2f}x bound]"]
    for row in result["faults"]:
        status = ("n/a" if not row["applicable"] else "error" if row["error"] else "not exercised"
                  if not row["exercised"] else ("detected" if row["detected"] else "MISSED")
                  + (", localised" if row["localised"] else ", mislocalised" if row["detected"] else ""))
        ratio = "" if row.get("worst_ratio") is None else \
            f" [max {row['worst_ratio']:.2f}x, mean {row['worst_mean_ratio'] or 0:.2f}x bound]"
        lines.append(f"  {row['id']:<44} {status:<26}{ratio} first changed {row['first_changed']}; "
                     f"finding {(row['first_finding'] or '')[:90]}")
    for name in ("all", "weight", "config", "code", "code+config"):
        g = r[name]
        if g["detected"]["of"]:
            lines.append(f"{name:>12}: detected {g['detected']['count']}/{g['detected']['of']}, localised "
                         f"{g['localised']['count']}/{g['localised']['of']}")
    before = r["all"]["before_fixed_table_detected"]
    if result["mode"] != "exact" and before["of"]:
        lines.append(f"      before: fixed table, no config diff: detected {before['count']}/{before['of']}, "
                     f"localised {r['all']['before_fixed_table_localised']['count']}/{before['of']}")
    for key in (k for k in r if k.startswith("weight") and k != "weight"):
        g = r[key]
        lines.append(f"{key:>12}: detected {g['detected']['count']}/{g['detected']['of']}, localised "
                     f"{g['localised']['count']}/{g['localised']['of']}")
    if r["not_exercised"]:
        lines.append(f"not exercised by this request: {', '.join(r['not_exercised'])}")
    if r["errors"]:
        lines += [f"error: {e}" for e in r["errors"]]
    return lines
