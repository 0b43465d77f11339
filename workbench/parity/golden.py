"""Golden artifacts in `reference_outputs/<family>/<preset>/`.

The official pipeline's captured checkpoints (safetensors) and a manifest with versions,
parameters, and sha256 of every tensor and of the model directory. Tests compare the
native output against them under the cross-host regression tolerance (not bitwise: the
goldens may have been blessed on another CPU), which catches drift when a dependency or
the port changes. Only `workbench bless` rewrites them, swapping goldens and notebooks in
as one change.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.parity.capture import CaptureSet

MANIFEST = "manifest.json"


def reference_outputs_root() -> Path:
    env = os.environ.get("WORKBENCH_REFERENCE_OUTPUTS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "reference_outputs"


def golden_dir(family: str, preset: str) -> Path:
    return reference_outputs_root() / family / preset


def tensor_sha256(capture: CaptureSet) -> dict[str, str]:
    return {c.name: hashlib.sha256(c.tensor.contiguous().numpy().tobytes()).hexdigest() for c in capture}


def capture_goldens(family_name: str, preset: str | None = None) -> tuple[CaptureSet, dict]:
    """Run the official pipeline on the cached tiny build: the golden capture for `preset`
    and its manifest (versions, parameters, numeric environment, sha256 of every tensor and
    of the model directory)."""
    from workbench import registry
    from workbench.parity.numeric_env import describe
    from workbench.parity.runner import run_reference
    from workbench.references import builder_fingerprint, ensure_reference, tree_sha256, versions
    from workbench.runtime.device import resolve_device

    family = registry.get_family(family_name)
    preset = preset or family.default_preset
    params = family.sampling_params(preset)
    model_dir = ensure_reference(family)
    capture = run_reference(family, model_dir / "official", params, resolve_device("cpu"))
    manifest = {
        "family": family.name, "preset": preset, "official_pipeline": family.official_pipeline,
        "versions": versions(), "numeric_environment": describe(), "seed": params.seed,
        "parameters": params.to_json_dict(), "builder_fingerprint": builder_fingerprint(family),
        # sha256 of the build on the blessing host: informative only, since the random init
        # itself differs by a few ulp between CPU vector paths (hence the regression tolerance)
        "model_dir_sha256": {side: tree_sha256(model_dir / side) for side in ("official", "converted")},
        "tensor_sha256": tensor_sha256(capture),
    }
    return capture, manifest


def write_goldens(directory: Path, capture: CaptureSet, manifest: dict) -> Path:
    """Write a capture and its manifest into `directory` (a staging directory of `workbench bless`)."""
    capture.save(directory)
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return directory


def load_golden(family: str, preset: str) -> tuple[CaptureSet, dict]:
    directory = golden_dir(family, preset)
    if not (directory / MANIFEST).is_file():
        raise WorkbenchError(f"{directory}: no golden artifacts; create them with `workbench bless {family}`")
    manifest = json.loads((directory / MANIFEST).read_text())
    capture = CaptureSet.load(directory)
    stored = tensor_sha256(capture)
    corrupt = [n for n, h in manifest["tensor_sha256"].items() if stored.get(n) != h]
    if corrupt:
        raise WorkbenchError(f"{directory}: tensors {corrupt} do not match the sha256 in {MANIFEST}")
    return capture, manifest


def regress(family: str, preset: str, capture: CaptureSet, model_dir: Path | None = None):
    """Compare a capture (native or official, from this host) with the committed goldens under
    the cross-host regression tolerance.

    The build the capture ran on must be the blessed one. With `model_dir` given, its files
    decide: byte-identical to the blessed build passes whatever changed in the builder's
    source (an edit that builds the same weights needs no re-bless); a different build is
    refused when the builder changed (re-bless) or when the numeric environment is the
    blessing's (the random init is then deterministic, so the build should match). Without
    `model_dir` the builder's fingerprint must match. The verdict's `numeric_environment`
    gate says whether this host's numeric environment differs from the blessing's.
    """
    from workbench import registry
    from workbench.parity.compare import compare_captures
    from workbench.parity.numeric_env import describe, mismatch
    from workbench.references import builder_fingerprint, tree_sha256

    golden, manifest = load_golden(family, preset)
    directory = golden_dir(family, preset)
    note = mismatch(manifest.get("numeric_environment"), describe())
    built = builder_fingerprint(registry.get_family(family))
    same_builder = manifest.get("builder_fingerprint") == built
    rebless = (f"{directory}: blessed from builder {manifest.get('builder_fingerprint')}, this checkout builds "
               f"{built}: re-bless with `workbench bless {family}`")
    if model_dir is None:
        if not same_builder:
            raise WorkbenchError(rebless)
    else:
        here = {side: tree_sha256(Path(model_dir) / side) for side in ("official", "converted")}
        if here != manifest["model_dir_sha256"]:
            if not same_builder:
                raise WorkbenchError(f"{rebless} (the build in {model_dir} differs from the blessed one)")
            if note is None:
                raise WorkbenchError(f"{directory}: same numeric environment as the blessing, but the build in "
                                     f"{model_dir} differs from the blessed one ({here} vs {manifest['model_dir_sha256']})")
    verdict = compare_captures(golden, capture, mode="regression", family=family, preset=preset,
                               parameters=manifest["parameters"])
    verdict.gates["numeric_environment"] = note or "same numeric environment as the blessing"
    return verdict
