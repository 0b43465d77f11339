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

MODES = ("exact", "fast")


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
    return model_dir


def run_native(converted_dir: Path, params: SamplingParam, device: str | torch.device = "cpu",
               mode: str = "exact", compile: bool = False, progress: bool = False) -> tuple[CaptureSet, Any]:
    from workbench.api.generate import load_pipeline

    pipe = load_pipeline(converted_dir, device=device, mode=mode, compile=compile, progress=progress)
    capture = CaptureSet()
    batch = pipe(params, hooks=CaptureHooks(capture))
    return capture, batch


def load_official(family, official_dir: Path, device: torch.device, mode: str = "exact"):
    """The official pipeline: fp32 as saved (exact), or loaded the official fast way (bf16)."""
    if mode == "fast":
        return family.reference.load_official(official_dir, device, dtype=family.fast.reference_dtype,
                                              fp32_modules=family.fast.reference_fp32_modules)
    return family.reference.load_official(official_dir, device)


def run_reference(family, official_dir: Path, params: SamplingParam, device: torch.device,
                  mode: str = "exact") -> CaptureSet:
    """One official run, loaded as `load_official` loads it for `mode`."""
    from workbench.families.offline import quiet_hf

    quiet_hf()
    pipe = load_official(family, official_dir, device, mode) if mode == "fast" else None
    try:
        capture, _ = family.reference.run_reference(official_dir, params, device, pipe=pipe)
    except (ValueError, TypeError) as exc:
        raise WorkbenchError(f"official {family.official_pipeline} rejected the request: {exc}") from exc
    return capture


def run_parity(family_name: str, *, preset: str | None = None, request: Mapping[str, Any] | None = None,
               mode: str = "exact", model_dir: str | Path | None = None, device: str = "cpu",
               compile: bool = False, skip_component_gate: bool = False, drilldown: bool = True,
               probes: bool = False) -> ParityRun:
    """Pipeline parity; refused (GateError) while a module the pipeline loads lacks a
    non_skip_pass component record, unless `skip_component_gate` (debugging only, recorded).

    When the first divergence is a denoiser checkpoint, that step is re-run on both sides with
    module capture (`workbench.parity.drilldown`) and `verdict.drilldown` names the first
    divergent module (`drilldown=False` skips it). With `probes`, the family's probe set runs
    after the request, each probe over it (`verdict.probes`, one row each)."""
    from workbench import registry
    from workbench.families.offline import quiet_hf
    from workbench.parity.compare import compare_captures
    from workbench.portstate.gates import check_component_gate
    from workbench.runtime.device import resolve_device
    from workbench.runtime.manifest import read_manifest

    if mode not in MODES:
        raise ParameterError(f"--mode {mode!r}: expected one of {MODES}")
    family = registry.get_family(family_name)
    params = family.sampling_params(preset, request)
    dev = resolve_device(device)
    if mode == "exact" and dev.type != "cpu":
        raise ParameterError(f"--mode exact runs on CPU in fp32 (got --device {device}); use --mode fast on CUDA")
    quiet_hf()
    root = resolve_model_dir(family, model_dir)
    # Checked before anything runs; recorded in the verdict either way.
    gates = {"component_parity": SKIPPED_COMPONENT_GATE if skip_component_gate
             else check_component_gate(family, read_manifest(root / "converted"))}
    # Native first: its input validation gives the clearer error for a bad request.
    if mode == "fast":
        params = params.replace(stage_overrides=family.fast.stage_overrides + tuple(params.stage_overrides))
    native, _ = run_native(root / "converted", params, dev, mode=mode, compile=compile)
    reference = run_reference(family, root / "official", params, dev, mode=mode)
    verdict = compare_captures(reference, native, mode=mode, family=family.name,
                               preset=preset or family.default_preset, parameters=params.to_json_dict())
    verdict.gates = gates
    from workbench.parity.drilldown import drill_down, triggers_drilldown

    if drilldown and triggers_drilldown(verdict):
        verdict.drilldown = drill_down(family, root, params, verdict.first_divergence, mode=mode, device=dev,
                                       compile=compile)
    if probes:
        verdict.probes = run_probes(family_name, preset=preset, request=request, mode=mode, model_dir=root,
                                    device=device, compile=compile, skip_component_gate=skip_component_gate)
    return ParityRun(verdict, reference, native, params, root)


def run_probes(family_name: str, *, preset: str | None = None, request: Mapping[str, Any] | None = None,
               mode: str = "exact", model_dir: str | Path | None = None, device: str = "cpu",
               compile: bool = False, skip_component_gate: bool = False,
               names: list[str] | None = None) -> list[dict[str, Any]]:
    """Parity for each probe of the family (its request over `request`): one verdict row each."""
    from workbench import registry

    family = registry.get_family(family_name)
    rows = []
    for probe in parity_probes(family):
        if names is not None and probe.name not in names:
            continue
        run = run_parity(family_name, preset=preset, request={**dict(request or {}), **probe.request}, mode=mode,
                         model_dir=model_dir, device=device, compile=compile, skip_component_gate=skip_component_gate)
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
