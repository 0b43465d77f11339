"""Compare a native capture with its reference, checkpoint by checkpoint, in pipeline order.

The first checkpoint out of tolerance is the first divergence; its debug hint follows the
order of DESIGN section 6 (call args -> schedule -> RNG -> conditioning -> decode), chosen
from the checkpoint's kind and name so it works for every family.
"""

from __future__ import annotations

import re
from typing import Any

from workbench.parity.capture import CaptureSet, Checkpoint
from workbench.parity.metrics import compare_tensors
from workbench.parity.tolerances import Tolerances, specific_hint, tolerances_for
from workbench.parity.verdict import CheckpointResult, Verdict

#: Step meta that are call arguments: when they differ, the sides did not run the same request.
MATCHING_META = ("expert", "guidance_scale")

_STEP_NAME = re.compile(r"^(?:(?P<stream>.+)_)?latents_step_\d+$")

HINTS = {
    "missing": "the side without it never recorded it: check that its stage declares the capture "
               "and that capture hooks were passed to the run",
    "meta": "call arguments differ: check presets/guidance_scale, boundary_ratio and guidance_scale_2 "
            "(which expert runs at which timestep)",
    "embedding": "check tokenizer/prompt cleaning/text encoder weights/max_sequence_length",
    "schedule": "check scheduler config (shift, num_train_timesteps), set_timesteps args",
    "initial_latents": "check RNG: seed, generator device (CPU generator on both sides), latent shape and dtype, "
                       "noise scaling (init_noise_sigma)",
    "conditioning_latents": "check conditioning inputs: image preprocessing (resize/normalize), VAE encode "
                            "(mode vs sample, latents_mean/std), mask construction",
    "first_step": "transformer weights/attention/timestep embedding/guidance scale",
    "later_step": "scheduler step/solver order/guidance at this step/expert switch (boundary, guidance_scale_2)",
    "final_latents": "post-loop latent handling: unpacking/reshaping, denormalisation, dtype casts",
    "decode": "decode scaling (latents_mean/std), VAE weights, slicing/postprocess",
}


def collect_versions() -> dict[str, str]:
    """Versions that decide numerics (one definition: `workbench.references.versions`)."""
    from workbench.references import versions

    return versions()


def pipeline_order(reference: CaptureSet, native: CaptureSet) -> list[str]:
    """Reference order, with native-only checkpoints placed after the native checkpoint they follow."""
    order = reference.names()
    placed = set(order)
    previous: str | None = None
    for name in native.names():
        if name not in placed:
            order.insert(order.index(previous) + 1 if previous is not None else 0, name)
            placed.add(name)
        previous = name
    return order


def compare_captures(reference: CaptureSet, native: CaptureSet, mode: str = "exact",
                     tolerances: Tolerances | None = None, *, family: str = "", preset: str = "",
                     parameters: dict[str, Any] | None = None) -> Verdict:
    """Compare every checkpoint of both runs; the verdict lists them in pipeline order."""
    table = tolerances or tolerances_for(mode)
    results: list[CheckpointResult] = []
    for name in pipeline_order(reference, native):
        ref = reference[name] if name in reference else None
        nat = native[name] if name in native else None
        results.append(_compare_checkpoint(ref, nat, table, results))
    return Verdict(family=family, preset=preset, mode=table.mode, parameters=dict(parameters or {}),
                   versions=collect_versions(), checkpoints=results)


def _compare_checkpoint(ref: Checkpoint | None, nat: Checkpoint | None, table: Tolerances,
                        earlier: list[CheckpointResult]) -> CheckpointResult:
    present = ref if ref is not None else nat
    result = CheckpointResult(name=present.name, kind=present.kind, step=present.step, passed=False,
                              reference_meta=dict(ref.meta) if ref else None,
                              native_meta=dict(nat.meta) if nat else None)
    if ref is None or nat is None:
        result.reason = f"missing in {'reference' if ref is None else 'native'}"
        result.hint = HINTS["missing"]
        return result
    result.tolerance = table.for_checkpoint(ref.name, ref.kind)
    result.metrics = compare_tensors(ref.tensor, nat.tensor, ref.kind)
    passed, reason = result.tolerance.check(result.metrics)
    reasons = [reason] if reason else []
    if nat.kind != ref.kind:
        reasons.append(f"kind differs: reference {ref.kind!r}, native {nat.kind!r}")
    meta_diff = [f"{key} differs: reference {ref.meta.get(key)!r}, native {nat.meta.get(key)!r}"
                 for key in MATCHING_META if ref.meta.get(key) != nat.meta.get(key)]
    reasons += meta_diff
    result.passed = passed and not reasons
    result.reason = "; ".join(reasons)
    if not result.passed:
        first = next((r for r in earlier if not r.passed), None)
        if first is not None:
            result.hint = f"downstream of the first divergence {first.name!r}: fix that first"
        else:
            result.hint = HINTS["meta"] if meta_diff else debug_hint(ref, earlier)
    return result


def debug_hint(checkpoint: Checkpoint, earlier: list[CheckpointResult]) -> str:
    """Where to look when this checkpoint is the first to fail, from its kind and name."""
    name, kind = checkpoint.name, checkpoint.kind
    specific = specific_hint(name, kind, checkpoint.meta, earlier)  # the finer kinds (issue 16)
    if specific is not None:
        return specific
    if kind in ("embedding", "schedule"):
        return HINTS[kind]
    if kind in ("frames", "waveform", "mel"):
        return HINTS["decode"]
    step_match = _STEP_NAME.match(name)
    if step_match:
        stream = step_match.group("stream")
        same_stream_steps = [r for r in earlier if (m := _STEP_NAME.match(r.name)) and m.group("stream") == stream]
        return HINTS["later_step"] if same_stream_steps else HINTS["first_step"]
    if name.endswith("initial_latents"):
        return HINTS["initial_latents"]
    if name.endswith("final_latents"):
        return HINTS["final_latents"]
    return HINTS["conditioning_latents"]
