"""Golden artifacts in `reference_outputs/<family>/<preset>/`.

The official pipeline's captured checkpoints (safetensors) and a manifest with versions,
parameters, and sha256 of every tensor and of the model directory. Tests compare the
native output against them, which catches drift when a dependency changes. Only
`workbench bless` rewrites them, and it swaps the whole directory in atomically.
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


def bless(family_name: str, preset: str | None = None) -> Path:
    """Run the official pipeline on the cached tiny build and write the goldens for `preset`."""
    from workbench import registry
    from workbench.io import atomic_directory
    from workbench.parity.runner import run_reference
    from workbench.references import ensure_reference, tree_sha256, versions
    from workbench.runtime.device import resolve_device

    family = registry.get_family(family_name)
    preset = preset or family.default_preset
    params = family.sampling_params(preset)
    model_dir = ensure_reference(family)
    capture = run_reference(family, model_dir / "official", params, resolve_device("cpu"))
    manifest = {
        "family": family.name, "preset": preset, "official_pipeline": family.official_pipeline,
        "versions": versions(), "seed": params.seed, "parameters": params.to_json_dict(),
        "model_dir_sha256": {side: tree_sha256(model_dir / side) for side in ("official", "converted")},
        "tensor_sha256": tensor_sha256(capture),
    }
    with atomic_directory(golden_dir(family.name, preset)) as tmp:
        capture.save(tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return golden_dir(family.name, preset)


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
