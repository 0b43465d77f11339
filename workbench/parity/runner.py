"""Pipeline parity: run the official reference and the native port on the same inputs,
capture every checkpoint on both sides, and compare them into a verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from workbench.api.params import SamplingParam
from workbench.errors import ParameterError, WorkbenchError
from workbench.parity.capture import CaptureHooks, CaptureSet
from workbench.runtime.hooks import PipelineHooks

MODES = ("exact", "fast", "fp32")
#: Modes whose tolerances come from a measured noise floor (parity/calibration.py).
CALIBRATED_MODES = ("fast", "fp32")


@dataclass
class ParityRun:
    verdict: Any  # workbench.parity.verdict.Verdict
    reference: CaptureSet
    native: CaptureSet
    params: SamplingParam
    model_dir: Path


@dataclass(frozen=True)
class Probe:
    """One request of a family's probe set: an edge path the preset does not exercise."""

    name: str
    purpose: str
    request: Mapping[str, Any] = field(default_factory=dict)


def parity_probes(family) -> list[Probe]:
    """The family's probe set: `PARITY_PROBES` (name, purpose, request) of the `probes` module next
    to its reference module (`workbench/families/<folder>/probes.py`); none when it has no such module."""
    import importlib

    package = family.reference.__name__.rpartition(".")[0]
    try:
        module = importlib.import_module(f"{package}.probes")
    except ModuleNotFoundError as exc:
        if exc.name != f"{package}.probes":
            raise
        return []
    return [Probe(p["name"], p["purpose"], dict(p["request"])) for p in getattr(module, "PARITY_PROBES", ())]


SKIPPED_COMPONENT_GATE = "SKIPPED (--skip-component-gate): component parity records were not checked"


def resolve_model_dir(family, model_dir: str | Path | None) -> Path:
    from workbench.references import ensure_reference

    if model_dir is None:
        return ensure_reference(family)
    model_dir = Path(model_dir)
    for side in ("official", "converted"):
        if not (model_dir / side / "model_index.json").is_file():
            raise ParameterError(
                f"--model-dir {model_dir}: expected {side}/model_index.json (build one with "
                f"`workbench build-reference {family.name} --out {model_dir}`)")
    check_model_dir_family(family, model_dir)
    return model_dir


def check_model_dir_family(family, model_dir: Path) -> None:
    """The directory's native pipeline class is the family's (exact class resolution): a build of
    another family is named as such instead of failing later on a field that family lacks."""
    from workbench import registry
    from workbench.runtime.manifest import read_manifest

    manifest = read_manifest(model_dir / "converted")
    try:
        held = registry.resolve_pipeline_class(manifest)
    except WorkbenchError:
        held = None
    if held is not family.pipeline_class:
        others = sorted(f.name for f in registry.FAMILIES.values() if held is not None and f.pipeline_class is held)
        owner = f" (family {', '.join(others)})" if others else ""
        raise ParameterError(f"--model-dir {model_dir}: converted/model_index.json holds {manifest.class_name}{owner}, "
                             f"not {family.pipeline_class.__name__} of family {family.name}")


def load_native_fp32(converted_dir: Path, device: torch.device):
    """The native pipeline with every module in fp32 (whatever dtype its files were saved in),
    as the fp32 mode's official side is loaded (`from_pretrained(torch_dtype=float32)` upcasts
    the same files); manifest classes, nothing compiled. A module saved in bf16/fp16 (the
    full-size UMT5) is upcast on load, which is exact; `pipe.upcast_on_load` records which."""
    from workbench.runtime.loader import exact_fp32_upcast
    from workbench.runtime.manifest import read_manifest
    from workbench.runtime.pipeline import ComposedPipeline

    names = read_manifest(converted_dir).enabled_modules
    with exact_fp32_upcast() as upcasts:
        pipe = ComposedPipeline.from_pretrained(converted_dir, device=device,
                                                module_dtypes={n: torch.float32 for n in names}, progress=False)
    pipe.upcast_on_load = upcasts
    return pipe


def load_native(converted_dir: Path, device: str | torch.device = "cpu", mode: str = "exact",
                compile: bool = False, progress: bool = False):
    """The native pipeline as `mode` runs it (fp32 mode: every module in fp32, nothing compiled)."""
    from workbench.api.generate import load_pipeline
    from workbench.runtime.device import resolve_device

    if mode == "fp32":
        return load_native_fp32(Path(converted_dir), resolve_device(device))
    return load_pipeline(converted_dir, device=device, mode=mode, compile=compile, progress=progress)


def run_native(converted_dir: Path, params: SamplingParam, device: str | torch.device = "cpu",
               mode: str = "exact", compile: bool = False, progress: bool = False, pipe=None,
               hooks=None, capture: CaptureSet | None = None) -> tuple[CaptureSet, Any]:
    """One native run with capture; `pipe` reuses a loaded pipeline, `hooks` adds observers,
    `capture` is filled in place (so a caller keeps what was captured when the run raises)."""
    from workbench.runtime.device import resolve_device
    from workbench.runtime.hooks import HookList

    capture = CaptureSet() if capture is None else capture
    run_hooks = CaptureHooks(capture) if hooks is None else HookList([CaptureHooks(capture), hooks])
    pipe = pipe or load_native(converted_dir, device, mode, compile, progress)
    if mode == "fp32":
        from workbench.parity.calibration import attention_backend, strict_numerics

        with strict_numerics(), attention_backend(base_setting_backend(resolve_device(device))):
            batch = pipe(params, hooks=run_hooks)
        return capture, batch
    batch = pipe(params, hooks=run_hooks)
    return capture, batch


class _RunProgress(PipelineHooks):
    """Where a run got to: the stages that finished and the last denoising step of the current one."""

    def __init__(self):
        self.finished: list[str] = []
        self.step: int | None = None

    def on_stage_end(self, stage, batch) -> None:
        self.finished.append(stage.name)
        self.step = None

    def on_step_end(self, step, timestep, batch, info) -> None:
        self.step = step


def run_native_partial(converted_dir: Path, params: SamplingParam, device: str | torch.device = "cpu",
                       mode: str = "exact", compile: bool = False,
                       progress: bool = False) -> tuple[CaptureSet, Any, dict[str, Any] | None]:
    """`run_native`, but a native side that raises (not a bad request: a WorkbenchError still
    propagates) returns the checkpoints captured so far and `native_error` {"stage", "step",
    "message"}: the stage that raised and, in a denoising loop, the step it was on."""
    from workbench.runtime.stages import StepHookedStage

    pipe = load_native(converted_dir, device, mode, compile, progress)
    capture = CaptureSet()
    where = _RunProgress()
    try:
        _, batch = run_native(converted_dir, params, device, mode=mode, pipe=pipe, hooks=where, capture=capture)
    except WorkbenchError:
        raise
    except Exception as exc:  # the port is wrong somewhere: keep what was captured, name where
        stages = list(pipe.stages)
        stage = stages[len(where.finished)] if len(where.finished) < len(stages) else None
        step = None
        if isinstance(stage, StepHookedStage):
            step = 0 if where.step is None else where.step + 1
        message = " ".join(f"{type(exc).__name__}: {exc}".split())
        return capture, None, {"stage": stage.name if stage is not None else "(after the last stage)",
                               "step": step, "message": message[:500]}
    return capture, batch, None


def base_setting_backend(device: torch.device) -> str:
    """The one SDPA backend both sides of fp32 parity run on (calibration.FP32_BACKENDS)."""
    from workbench.parity.calibration import FP32_BACKENDS

    return FP32_BACKENDS.get(device.type, ("math", "math"))[0]


def load_official(family, official_dir: Path, device: torch.device, mode: str = "exact"):
    """The official pipeline: fp32 as saved (exact), loaded the official fast way (bf16), or
    every module in fp32 (fp32 mode: a module saved in bf16 is upcast, as the native side is)."""
    if mode == "fp32":
        return family.reference.load_official(official_dir, device, dtype=torch.float32)
    if mode == "fast":
        return family.reference.load_official(official_dir, device, dtype=family.fast.reference_dtype,
                                              fp32_modules=family.fast.reference_fp32_modules)
    return family.reference.load_official(official_dir, device)


def run_reference(family, official_dir: Path, params: SamplingParam, device: torch.device,
                  mode: str = "exact") -> CaptureSet:
    """One official run, loaded as `load_official` loads it for `mode`."""
    from workbench.families.offline import quiet_hf

    if mode == "fp32":
        from workbench.parity.calibration import base_setting, run_official

        return run_official(family, official_dir, params, device, base_setting(family, mode, device))
    quiet_hf()
    pipe = load_official(family, official_dir, device, mode) if mode == "fast" else None
    try:
        capture, _ = family.reference.run_reference(official_dir, params, device, pipe=pipe)
    except (ValueError, TypeError) as exc:
        raise WorkbenchError(f"official {family.official_pipeline} rejected the request: {exc}") from exc
    return capture


def run_parity(family_name: str, *, preset: str | None = None, request: Mapping[str, Any] | None = None,
               mode: str = "exact", model_dir: str | Path | None = None, device: str = "cpu",
               compile: bool = False, skip_component_gate: bool = False, calibrate: bool = True,
               drilldown: bool = True, probes: bool = False) -> ParityRun:
    """Pipeline parity; refused (GateError) while a module the pipeline loads lacks a
    non_skip_pass component record for the very files it loads, unless `skip_component_gate`
    (debugging only, recorded). The converted configs are diffed against the official ones
    first; in fast and fp32 modes the tolerances are calibrated (`calibrate=False`: the fixed
    fallback table, said so per checkpoint).

    When the first divergence is a denoiser checkpoint, that step is re-run on both sides with
    module capture (`workbench.parity.drilldown`) and `verdict.drilldown` names the first
    divergent module (`drilldown=False` skips it). With `probes`, the family's probe set runs
    after the request, each probe over it (`verdict.probes`, one row each)."""
    from workbench import registry
    from workbench.families.offline import quiet_hf
    from workbench.parity.drilldown import drill_down, triggers_drilldown
    from workbench.portstate.gates import check_component_gate, check_model_files
    from workbench.runtime.device import resolve_device
    from workbench.runtime.manifest import read_manifest

    if mode not in MODES:
        raise ParameterError(f"--mode {mode!r}: expected one of {MODES}")
    family = registry.get_family(family_name)
    params = family.sampling_params(preset, request)
    dev = resolve_device(device)
    if mode == "exact" and dev.type != "cpu":
        raise ParameterError(f"--mode exact runs on CPU in fp32 (got --device {device}); use --mode fp32 "
                             f"(structure at real size) or --mode fast (precision) on CUDA")
    quiet_hf()
    root = resolve_model_dir(family, model_dir)
    # Checked before anything runs; recorded in the verdict either way.
    manifest = read_manifest(root / "converted")
    gates = {"component_parity": SKIPPED_COMPONENT_GATE if skip_component_gate
             else check_component_gate(family, manifest)}
    if not skip_component_gate:  # issue 16: the records hold for these very files
        gates["model_files"] = check_model_files(family, manifest)
    # Native first: its input validation gives the clearer error for a bad request.
    if mode == "fast":
        params = params.replace(stage_overrides=family.fast.stage_overrides + tuple(params.stage_overrides))
    config_differences = diff_configs(root)
    native, _, native_error = run_native_partial(root / "converted", params, dev, mode=mode, compile=compile)
    reference = run_reference(family, root / "official", params, dev, mode=mode)
    verdict = compare_run(family, root, params, dev, mode, reference, native, preset=preset, calibrate=calibrate)
    verdict.gates = gates
    verdict.native_error = native_error  # a partial verdict: the checkpoints before the native side raised
    verdict.config_differences = config_differences
    if drilldown and native_error is None and triggers_drilldown(verdict):
        verdict.drilldown = drill_down(family, root, params, verdict.first_divergence, mode=mode, device=dev,
                                       compile=compile)
    if probes:
        verdict.probes = run_probes(family_name, preset=preset, request=request, mode=mode, model_dir=root,
                                    device=device, compile=compile, skip_component_gate=skip_component_gate,
                                    calibrate=calibrate)
    return ParityRun(verdict, reference, native, params, root)


def parity_tolerances(family, root: Path, params: SamplingParam, device: torch.device, mode: str,
                      reference: CaptureSet | None = None, calibrate: bool = True):
    """The tolerance table of a parity run: calibrated in fast and fp32 modes (measuring or
    reusing the floors), the fixed table otherwise."""
    from workbench.parity.tolerances import tolerances_for

    if mode in CALIBRATED_MODES and calibrate:
        from workbench.parity.calibration import CalibratedTolerances
        from workbench.parity.calibration import calibrate as measure

        return CalibratedTolerances(measure(family, root, params, device, mode, reference))
    return tolerances_for(mode)


def compare_run(family, root: Path, params: SamplingParam, device: torch.device, mode: str, reference: CaptureSet,
                native: CaptureSet, *, preset: str | None = None, calibrate: bool = True, table=None):
    """The verdict of one pair of runs, with floor, k and tolerance source on every checkpoint."""
    from workbench.parity.calibration import annotate
    from workbench.parity.compare import compare_captures

    table = table or parity_tolerances(family, root, params, device, mode, reference, calibrate)
    verdict = compare_captures(reference, native, mode=mode, tolerances=table, family=family.name,
                               preset=preset or family.default_preset, parameters=params.to_json_dict())
    annotate(verdict, table)
    return verdict


#: Config keys that name or date a file rather than configure the model.
IGNORED_CONFIG_KEYS = ("_class_name", "_diffusers_version", "_name_or_path", "_official_class_name",
                       "transformers_version", "architectures", "_commit_hash")


def diff_configs(root: Path) -> list[dict[str, Any]]:
    """Every difference between the `converted/` and `official/` component configs (each component
    folder's *.json except tokenizer vocabularies), as {"file", "field", "official", "native"}.
    model_index.json is the pipeline's manifest, not a component config: its classes differ by
    design and the native side may carry metadata the official class ignores. A converter that renames fields would declare its mapping
    here; none of ours does (converted configs are copies)."""
    import json

    root = Path(root)
    out: list[dict[str, Any]] = []
    official, converted = root / "official", root / "converted"
    for path in sorted(official.glob("*/*.json")):
        rel = path.relative_to(official)
        if rel.name in ("tokenizer.json", "vocab.json", "merges.txt") or rel.name.startswith("special_tokens"):
            continue
        other = converted / rel
        if not other.is_file():
            continue  # a module the converted side does not ship is the manifest's and the gate's business
        try:
            a, b = json.loads(path.read_text()), json.loads(other.read_text())
        except ValueError as exc:
            raise WorkbenchError(f"config diff: {rel} is not valid JSON: {exc}") from None
        _diff_values(str(rel), "", a, b, out)
    return out


def _diff_values(file: str, where: str, a: Any, b: Any, out: list[dict[str, Any]]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if key in IGNORED_CONFIG_KEYS:
                continue
            field_name = f"{where}.{key}" if where else str(key)
            if key not in a or key not in b:
                out.append({"file": file, "field": field_name, "official": a.get(key, "<absent>"),
                            "native": b.get(key, "<absent>")})
            else:
                _diff_values(file, field_name, a[key], b[key], out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _diff_values(file, f"{where}[{i}]", x, y, out)
    elif a != b or type(a) is not type(b) and not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
        out.append({"file": file, "field": where, "official": a, "native": b})


def run_probes(family_name: str, *, preset: str | None = None, request: Mapping[str, Any] | None = None,
               mode: str = "exact", model_dir: str | Path | None = None, device: str = "cpu",
               compile: bool = False, skip_component_gate: bool = False, calibrate: bool = True,
               names: list[str] | None = None) -> list[dict[str, Any]]:
    """Parity for each probe of the family (its request over `request`): one verdict row each."""
    from workbench import registry

    family = registry.get_family(family_name)
    rows = []
    for probe in parity_probes(family):
        if names is not None and probe.name not in names:
            continue
        run = run_parity(family_name, preset=preset, request={**dict(request or {}), **probe.request}, mode=mode,
                         model_dir=model_dir, device=device, compile=compile, skip_component_gate=skip_component_gate,
                         calibrate=calibrate)
        first = run.verdict.first_divergence
        drill = run.verdict.drilldown
        rows.append({"name": probe.name, "purpose": probe.purpose, "request": dict(probe.request),
                     "passed": run.verdict.passed, "checkpoints": len(run.verdict.checkpoints),
                     "first_divergence": None if first is None else first.name,
                     "reason": "" if first is None else first.reason, "hint": "" if first is None else first.hint,
                     "first_module": None if drill is None else drill.get("first_module")})
    return rows


def format_probes(rows: list[dict[str, Any]]) -> str:
    """The probe rows as a fixed-width table (empty when there are none)."""
    if not rows:
        return ""
    width = max(len("probe"), *(len(r["name"]) for r in rows))
    lines = [f"{'probe':<{width}}  result  first divergence"]
    for row in rows:
        where = "" if row["passed"] else f"{row['first_divergence']}: {row['reason']}"
        if row.get("first_module"):
            where += f" (module {row['first_module']})"
        lines.append(f"{row['name']:<{width}}  {'pass' if row['passed'] else 'FAIL':<6}  {where}")
    failed = [r for r in rows if not r["passed"]]
    lines += [f"probe {r['name']} ({r['purpose']}): hint: {r['hint']}" for r in failed]
    return "\n".join(lines)
