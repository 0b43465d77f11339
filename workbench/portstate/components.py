"""Component parity: every module a family's pipeline loads, official vs the workbench loader.

Official side: the class the official manifest names, loaded with its own
`from_pretrained` from `official/<name>` (parameters then cloned into aligned storage,
as the reference runner does: unaligned memory-mapped weights move CPU matmuls by ~1e-7).
Native side: `workbench.runtime.loader.load_module` on `converted/<name>`. Both run one
seeded probe input (probes.py); every output tensor is compared at the tolerance (0 by
default: exact, fp32 CPU). This module is the only writer of component statuses.
"""

from __future__ import annotations

import copy
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from workbench.errors import ComponentLoadError
from workbench.portstate import state as S
from workbench.portstate.modules import component_type, pipeline_modules
from workbench.portstate.probes import ProbeContext, probe_for
from workbench.runtime.manifest import ModuleSpec, read_manifest

EXACT = 0.0


def parity_test_id(family_name: str, module: str) -> str:
    """The pytest node that reruns one component's check (tests/families/<family>/test_components.py)."""
    return f"tests/families/{family_name}/test_components.py::test_component_parity[{module}]"


def spec_label(spec: ModuleSpec) -> str:
    return f"{spec.library}.{spec.class_name}"


def origin_of(spec: ModuleSpec) -> str:
    return "port" if spec.library == "workbench" else "reuse"


def official_class(spec: ModuleSpec) -> type:
    """diffusers and transformers classes by name; a pipeline-folder token (diffusers writes
    `["stable_audio", "StableAudioProjectionModel"]`) from `diffusers.pipelines.<token>`."""
    if spec.library in ("diffusers", "transformers"):
        module = importlib.import_module(spec.library)
    else:
        module = importlib.import_module(f"diffusers.pipelines.{spec.library}")
    cls = getattr(module, spec.class_name, None)
    if not isinstance(cls, type):
        raise ComponentLoadError(f"official module {spec.name!r}: {module.__name__} has no class {spec.class_name!r}")
    return cls


def load_official(official_dir: Path, spec: ModuleSpec) -> Any:
    from workbench.families.offline import clone_parameters, refuse_pickle_weights

    cls, folder = official_class(spec), Path(official_dir) / spec.name
    refuse_pickle_weights(folder)
    safetensors_only = {"use_safetensors": True} if issubclass(cls, torch.nn.Module) else {}  # models only
    module = cls.from_pretrained(str(folder), **safetensors_only)
    return clone_parameters(module) if isinstance(module, torch.nn.Module) else module


def load_native(converted_dir: Path, spec: ModuleSpec) -> Any:
    from workbench.runtime.loader import load_module

    return load_module(converted_dir, spec, torch.device("cpu"))


def compare_outputs(reference: dict[str, torch.Tensor],
                    native: dict[str, torch.Tensor]) -> tuple[dict[str, float | None], list[str]]:
    """Per output: max abs diff (None when not comparable), and every problem found."""
    diffs: dict[str, float | None] = {}
    problems = []
    for key in reference.keys() | native.keys():
        if key not in native or key not in reference:
            diffs[key] = None
            problems.append(f"{key}: only in {'official' if key in reference else 'native'} output")
            continue
        a, b = reference[key], native[key]
        if a.shape != b.shape or a.dtype != b.dtype:
            diffs[key] = None
            problems.append(f"{key}: official {tuple(a.shape)} {a.dtype} vs native {tuple(b.shape)} {b.dtype}")
            continue
        if not (torch.isfinite(a.double()).all() and torch.isfinite(b.double()).all()):
            diffs[key] = None
            problems.append(f"{key}: non-finite values")
            continue
        diffs[key] = float((a.double() - b.double()).abs().max()) if a.numel() else 0.0
    return dict(sorted(diffs.items())), problems


@dataclass
class ComponentResult:
    name: str
    type: str
    cls: str
    origin: str
    status: str
    evidence: S.Evidence

    @property
    def passed(self) -> bool:
        return self.status == "non_skip_pass"

    def line(self) -> str:
        e = self.evidence
        diff = "-" if e.max_abs_diff is None else f"{e.max_abs_diff:.3e}"
        return f"{self.name:<16} {self.cls:<40} {self.status:<14} max abs diff {diff}" + (
            f"  ({e.detail})" if e.detail else "")


def _run_probe(official_dir: Path, converted_dir: Path, name: str, official_spec: ModuleSpec,
               native_spec: ModuleSpec, folder_package: str, seed: int):
    """(probe name, per-output diffs, problems), or None for the probe name when none fits."""
    reference = load_official(official_dir, official_spec)
    native = load_native(converted_dir, native_spec)
    probe = probe_for(folder_package, component_type(name), reference)
    if probe is None:
        return None, {}, []
    inputs = probe.inputs(reference, ProbeContext(official_dir, name, seed))
    with torch.no_grad():
        ref_out = probe.run(reference, copy.deepcopy(inputs))
        nat_out = probe.run(native, copy.deepcopy(inputs))
    diffs, problems = compare_outputs(ref_out, nat_out)
    return probe.name, diffs, problems


def cached_tree_sha256(root: Path) -> str:
    """`references.tree_sha256(root)`, with each file's digest cached by (path, size, mtime_ns)
    under `$WORKBENCH_CACHE/sha256/`: a full-size folder (tens of GB) is read once, not on every
    parity run."""
    import hashlib
    import json

    from workbench.io import atomic_write_text
    from workbench.references import cache_root

    root = Path(root).resolve()
    store = cache_root() / "sha256" / (hashlib.sha256(str(root).encode()).hexdigest()[:16] + ".json")
    try:
        known = json.loads(store.read_text())
    except (OSError, ValueError):
        known = {}
    h, fresh = hashlib.sha256(), {}
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        rel, st = str(f.relative_to(root)), f.stat()
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
        entry = known.get(rel)
        if entry is None or entry[0] != stamp:
            digest = hashlib.sha256()
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 24), b""):
                    digest.update(chunk)
            entry = [stamp, digest.hexdigest()]
        fresh[rel] = entry
        h.update(rel.encode() + b"\0")
        h.update(bytes.fromhex(entry[1]))
    if fresh != known:
        store.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(store, json.dumps(fresh, indent=0, sort_keys=True) + "\n")
    return h.hexdigest()


def check_component(family, model_dir: Path, name: str, *, tolerance: float = EXACT, seed: int = 0,
                    command: str = "", versions: dict[str, str] | None = None) -> ComponentResult:
    """Run one component's parity check (never raises for a mismatch: the result says it)."""
    from workbench.references import tree_sha256
    from workbench.references import versions as current_versions

    official_dir, converted_dir = Path(model_dir) / "official", Path(model_dir) / "converted"
    native_spec = read_manifest(converted_dir).modules.get(name)
    official_spec = read_manifest(official_dir).modules.get(name)
    label = spec_label(native_spec) if native_spec else "missing.Missing"
    folder = converted_dir / name
    evidence = S.Evidence(result="fail", max_abs_diff=None, tolerance=tolerance, outputs={}, probe="none",
                          weights_sha256=tree_sha256(folder) if folder.is_dir() else "missing", date=S.now_utc(),
                          versions=versions or current_versions(), test_id=parity_test_id(family.name, name),
                          command=command or f"workbench component-parity {family.name}")
    result = ComponentResult(name, component_type(name), label, origin_of(native_spec) if native_spec else "reuse",
                             "failed", evidence)
    if native_spec is None or native_spec.disabled or official_spec is None or official_spec.disabled:
        side = "converted" if native_spec is None or native_spec.disabled else "official"
        evidence.detail = f"the {side} manifest does not enable module {name!r}"
        return result
    try:
        probe_name, diffs, problems = _run_probe(official_dir, converted_dir, name, official_spec, native_spec,
                                                 S.family_package(family), seed)
    except Exception as exc:  # a load or probe failure is a failed check, recorded with its reason
        evidence.detail = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        return result
    if probe_name is None:
        identical = (spec_label(official_spec) == label
                     and tree_sha256(official_dir / name) == evidence.weights_sha256)
        evidence.result = "no_probe" if identical else "fail"
        evidence.detail = (f"no probe for {official_spec.class_name}: add one to "
                           f"{S.family_package(family).replace('.', '/')}/component_probes.py"
                           + ("" if identical else "; the converted module differs from the official one"))
        result.status = S.RUN_STATUS[evidence.result]
        return result
    evidence.probe, evidence.outputs = probe_name, diffs
    finite = [d for d in diffs.values() if d is not None]
    evidence.max_abs_diff = max(finite) if finite else None
    over = [f"{k}: {d:.3e} > {tolerance:g}" for k, d in diffs.items() if d is not None and d > tolerance]
    problems += over
    if not diffs:
        problems.append("the probe returned no outputs")
    evidence.result = "fail" if problems else "pass"
    evidence.detail = "; ".join(problems)[:300]
    result.status = S.RUN_STATUS[evidence.result]
    return result


def run_component_parity(family, model_dir: Path | None = None, names: list[str] | None = None, *,
                         command: str = "") -> list[ComponentResult]:
    """Check every module the family's pipeline loads from the (cached tiny) build."""
    from workbench.families.offline import quiet_hf
    from workbench.references import ensure_reference, versions

    quiet_hf()
    root = Path(model_dir) if model_dir else ensure_reference(family)
    modules = pipeline_modules(family.pipeline_class, read_manifest(root / "converted"))
    unknown = [n for n in names or [] if n not in modules]
    if unknown:
        from workbench.errors import ParameterError

        raise ParameterError(f"{family.name}: no component {', '.join(unknown)}; components: {', '.join(modules)}")
    found = versions()
    return [check_component(family, root, n, command=command, versions=found) for n in (names or modules)]


def initial_state(family, model_dir: Path | None = None) -> S.FamilyState:
    """A fresh port state: one pending component per module the pipeline loads."""
    from workbench.references import ensure_reference

    root = Path(model_dir) if model_dir else ensure_reference(family)
    manifest = read_manifest(root / "converted")
    components = []
    for name in pipeline_modules(family.pipeline_class, manifest):
        spec = manifest.modules.get(name)
        origin = origin_of(spec) if spec and not spec.disabled else "reuse"
        components.append(S.ComponentRecord(name=name, type=component_type(name),
                                            cls=spec_label(spec) if spec and not spec.disabled else "missing.Missing",
                                            origin=origin, status=S.PENDING_STATUS[origin],
                                            parity_test=parity_test_id(family.name, name)))
    return S.FamilyState(family=family.name, path=S.state_path(family), components=components)


def apply_results(state: S.FamilyState, results: list[ComponentResult]) -> S.FamilyState:
    """Write each result's status and evidence into its component record (adding new ones)."""
    for r in results:
        record = state.component(r.name, r.cls)   # keyed by (module, class): variants coexist
        if record is None:
            record = S.ComponentRecord(r.name, r.type, r.cls, r.origin, r.status, r.evidence.test_id)
            state.components.append(record)
        record.type, record.cls, record.origin = r.type, r.cls, r.origin
        record.status, record.evidence, record.blocked_by = r.status, r.evidence, None
        record.parity_test = r.evidence.test_id
    return state


def load_or_init_state(family, model_dir: Path | None = None) -> S.FamilyState:
    path = S.state_path(family)
    if path.is_file():
        states = S.read_state_file(path)
        if family.name in states:
            return states[family.name]
    return initial_state(family, model_dir)


def record_component_parity(family, model_dir: Path | None = None, names: list[str] | None = None, *,
                            command: str = "") -> tuple[list[ComponentResult], S.FamilyState]:
    """Run the checks and write their statuses and evidence into port_state.yaml (atomically)."""
    state = load_or_init_state(family, model_dir)
    results = run_component_parity(family, model_dir, names, command=command)
    apply_results(state, results)
    S.save_family_state(state)
    return results, state
