"""Pipeline parity: run the official reference and the native port on the same inputs,
capture every checkpoint on both sides, and compare them into a verdict."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from workbench.api.params import SamplingParam
from workbench.errors import ParameterError, WorkbenchError
from workbench.parity.capture import CaptureHooks, CaptureSet
from workbench.runtime.hooks import PipelineHooks

MODES = ("exact", "fast")


@dataclass
class ParityRun:
    verdict: Any  # workbench.parity.verdict.Verdict
    reference: CaptureSet
    native: CaptureSet
    params: SamplingParam
    model_dir: Path


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


def run_native(converted_dir: Path, params: SamplingParam, device: str | torch.device = "cpu",
               mode: str = "exact", compile: bool = False, progress: bool = False) -> tuple[CaptureSet, Any]:
    from workbench.api.generate import load_pipeline

    pipe = load_pipeline(converted_dir, device=device, mode=mode, compile=compile, progress=progress)
    capture = CaptureSet()
    batch = pipe(params, hooks=CaptureHooks(capture))
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
    from workbench.api.generate import load_pipeline
    from workbench.runtime.hooks import HookList
    from workbench.runtime.stages import StepHookedStage

    pipe = load_pipeline(converted_dir, device=device, mode=mode, compile=compile, progress=progress)
    capture = CaptureSet()
    where = _RunProgress()
    try:
        batch = pipe(params, hooks=HookList([CaptureHooks(capture), where]))
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
               compile: bool = False, skip_component_gate: bool = False) -> ParityRun:
    """Pipeline parity; refused (GateError) while a module the pipeline loads lacks a
    non_skip_pass component record, unless `skip_component_gate` (debugging only, recorded)."""
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
    native, _, native_error = run_native_partial(root / "converted", params, dev, mode=mode, compile=compile)
    reference = run_reference(family, root / "official", params, dev, mode=mode)
    verdict = compare_captures(reference, native, mode=mode, family=family.name,
                               preset=preset or family.default_preset, parameters=params.to_json_dict())
    verdict.gates = gates
    verdict.native_error = native_error  # a partial verdict: the checkpoints before the native side raised
    return ParityRun(verdict, reference, native, params, root)
