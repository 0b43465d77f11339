"""The gates of a port, in order: component parity -> smoke -> pipeline parity -> example.

Reading (`read_gates`) runs nothing: component parity is computed from the component
records, the other gates come from their last recorded run, and a gate counts only while
every gate before it passes. Running (`run_gates`) runs each gate on the cached tiny
build in order, stops opening gates at the first one that does not pass (later ones are
recorded `not_run`), and writes every result into port_state.yaml.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from workbench.errors import GateError, PortStateError
from workbench.portstate import state as S

GATES = ("component_parity", "smoke", "pipeline_parity", "example")
TITLES = {"component_parity": "component parity", "smoke": "smoke", "pipeline_parity": "pipeline parity",
          "example": "example"}
REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_TIMEOUT_S = 600


@dataclass
class GateResult:
    gate: str
    result: str          # pass | fail | not_run | unrecorded
    detail: str
    date: str | None = None

    @property
    def passed(self) -> bool:
        return self.result == "pass"

    @property
    def title(self) -> str:
        return TITLES[self.gate]


# ---- component parity (computed from the records) ----------------------------------------

def lacking_components(state: S.FamilyState) -> list[S.ComponentRecord]:
    return [c for c in state.components if c.status != "non_skip_pass"]


def component_gate(state: S.FamilyState) -> GateResult:
    if not state.components:
        return GateResult("component_parity", "fail", "no components recorded")
    lacking = lacking_components(state)
    dates = [c.evidence.date for c in state.components if c.evidence]
    date = max(dates) if dates else None
    n = len(state.components)
    if lacking:
        listed = ", ".join(f"{c.name} ({c.status})" for c in lacking)
        return GateResult("component_parity", "fail", f"{n - len(lacking)}/{n} non_skip_pass; lacking: {listed}", date)
    worst = max((c.evidence.max_abs_diff or 0.0) for c in state.components)
    return GateResult("component_parity", "pass", f"{n}/{n} non_skip_pass, max abs diff {worst:.3e}", date)


def check_component_gate(family, manifest) -> str:
    """Refuse pipeline parity unless every module the pipeline loads from `manifest` has a
    non_skip_pass record for the class it names; return what was checked, for the verdict."""
    from workbench.portstate.components import spec_label
    from workbench.portstate.modules import pipeline_modules

    fix = (f"run `workbench component-parity {family.name}` (or pass --skip-component-gate to debug "
           f"pipeline parity without component records)")
    try:
        state = S.load_family_state(family)
    except PortStateError as exc:
        raise GateError(f"component gate: {exc}; {fix}") from None
    modules = pipeline_modules(family.pipeline_class, manifest)
    lacking = []
    for name in modules:
        spec = manifest.modules.get(name)
        record = (state.component(name, spec_label(spec)) if spec is not None else None) or state.component(name)
        if record is None:
            lacking.append(f"{name} (no record)")
        elif record.status != "non_skip_pass":
            lacking.append(f"{name} ({record.status})")
        elif spec is not None and spec_label(spec) != record.cls:
            lacking.append(f"{name} (record is for {record.cls}, manifest names {spec_label(spec)})")
    if lacking:
        raise GateError(f"{family.name}: pipeline parity is gated on component parity; "
                        f"{', '.join(lacking)} lack non_skip_pass in {state.path}; {fix}")
    return f"passed: {len(modules)}/{len(modules)} components non_skip_pass ({state.path.name})"


def check_model_files(family, manifest) -> str:
    """Refuse pipeline parity when a component folder the pipeline loads is not the one its
    non_skip_pass record covered (sha256 of the folder's files, `Evidence.weights_sha256`):
    a perturbed weight or edited config is then caught here, before any run. Run after
    `check_component_gate`; returns what was checked, for the verdict."""
    from workbench.portstate.components import cached_tree_sha256
    from workbench.portstate.modules import pipeline_modules

    state = S.load_family_state(family)
    converted = Path(manifest.path).parent
    changed = []
    for name in pipeline_modules(family.pipeline_class, manifest):
        record = state.component(name)
        folder = converted / name
        if record is None or record.evidence is None or not folder.is_dir():
            continue
        found = cached_tree_sha256(folder)
        if found != record.evidence.weights_sha256:
            changed.append(f"{name} (recorded {record.evidence.weights_sha256}, found {found})")
    if changed:
        raise GateError(f"{family.name}: the model files differ from those component parity passed on: "
                        f"{', '.join(changed)} in {converted}; rerun `workbench component-parity {family.name} "
                        f"--model-dir {converted.parent}` for these files (or --skip-component-gate to debug)")
    return f"passed: sha256 of every component folder in {converted.name}/ matches its non_skip_pass record"


# ---- gates that run the pipeline ---------------------------------------------------------------

def _tensors(output) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (list, tuple)):
        return [t for item in output for t in _tensors(item)]
    return []


def run_smoke(family) -> tuple[str, str]:
    """The native pipeline end to end on the tiny build, default preset, exact mode on CPU."""
    from workbench.api.generate import generate

    result = generate(family.name, device="cpu", mode="exact", progress=False)
    tensors = _tensors(result.output)
    shapes = ", ".join(str(tuple(t.shape)) for t in tensors)
    where = f"preset {family.default_preset}, cpu exact: {len(result.stage_timings)} stages, output {shapes or 'none'}"
    if not tensors or not all(t.numel() for t in tensors):
        return "fail", f"{where}: empty output"
    if not all(torch.isfinite(t.float()).all() for t in tensors):
        return "fail", f"{where}: non-finite values"
    return "pass", f"{where}, finite"


def run_pipeline_parity(family) -> tuple[str, str]:
    """Exact-mode parity against the official pipeline on the tiny build, default preset."""
    from workbench.parity.runner import run_parity

    verdict = run_parity(family.name, mode="exact", device="cpu").verdict
    checkpoints = verdict.checkpoints
    diffs = [c.metrics.max_abs_diff for c in checkpoints if c.metrics is not None]
    passed = sum(c.passed for c in checkpoints)
    detail = (f"exact, preset {verdict.preset}, vs {family.official_pipeline} (official/ of the tiny build): "
              f"{passed}/{len(checkpoints)} checkpoints pass, max abs diff {max(diffs, default=float('nan')):.3e}")
    first = verdict.first_divergence
    if first is not None:
        detail += f"; first divergence {first.name}: {first.reason}"
    return ("pass" if verdict.passed else "fail"), detail


def example_path(family) -> Path:
    return REPO_ROOT / "examples" / f"{family.name}.py"


def run_example(family) -> tuple[str, str]:
    """`python examples/<family>.py` with no arguments, in a scratch directory; exit 0 passes."""
    path = example_path(family)
    rel = path.relative_to(REPO_ROOT)
    if not path.is_file():
        return "fail", f"{rel} does not exist"
    env = dict(os.environ)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + paths)
    with tempfile.TemporaryDirectory(prefix="workbench-example-") as scratch:
        try:
            proc = subprocess.run([sys.executable, str(path)], cwd=scratch, env=env, capture_output=True, text=True,
                                  timeout=EXAMPLE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return "fail", f"{rel} ran past {EXAMPLE_TIMEOUT_S} s"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        return "fail", f"{rel} exited {proc.returncode}: {last[:200]}"
    return "pass", f"{rel} exited 0"


RUNNERS = {"smoke": run_smoke, "pipeline_parity": run_pipeline_parity, "example": run_example}


# ---- reading and running -----------------------------------------------------------------------

def read_gates(state: S.FamilyState) -> list[GateResult]:
    """Every gate in order, from the records; a gate counts only while the earlier ones pass."""
    results = [component_gate(state)]
    for gate in GATES[1:]:
        record = state.gates.get(gate)
        current = (GateResult(gate, record.result, record.detail, record.date) if record
                   else GateResult(gate, "unrecorded", "never run"))
        blocker = next((r for r in results if not r.passed), None)
        if blocker is not None and current.passed:
            current = GateResult(gate, "not_run", f"blocked by {blocker.title}; last recorded pass {record.date}",
                                 record.date)
        results.append(current)
    return results


def run_gates(family, command: str = "") -> tuple[list, S.FamilyState]:
    """Run every gate in order and record the results; returns (component results, state)."""
    from workbench.portstate.components import apply_results, load_or_init_state, run_component_parity
    from workbench.references import versions

    command = command or f"workbench status {family.name} --run"
    state = load_or_init_state(family)
    components = run_component_parity(family, command=command)
    apply_results(state, components)
    S.save_family_state(state)  # the pipeline parity gate reads these records
    found = versions()
    blocker = None if component_gate(state).passed else TITLES["component_parity"]
    for gate in GATES[1:]:
        start = time.perf_counter()
        if blocker is not None:
            result, detail = "not_run", f"blocked: {blocker} did not pass"
        else:
            try:
                result, detail = RUNNERS[gate](family)
            except Exception as exc:  # a crashing gate is a failing gate, recorded with its reason
                result, detail = "fail", f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        state.gates[gate] = S.GateRecord(result, detail, S.now_utc(), found, command,
                                         None if result == "not_run" else time.perf_counter() - start)
        if result != "pass" and blocker is None:
            blocker = TITLES[gate]
    S.save_family_state(state)
    return components, state


# ---- what a reviewer needs next ---------------------------------------------------------------

def blockers(state: S.FamilyState, gates: list[GateResult]) -> list[str]:
    out = [f"component {c.name}: {c.status}" + (f" (blocked by {c.blocked_by})" if c.blocked_by else "")
           for c in lacking_components(state)]
    out += [f"gate {g.title}: {g.result}" for g in gates[1:] if not g.passed]
    out += [f"{i.id} {i.title}" for i in state.issues if i.status == "open"]
    return out


def next_step(family, state: S.FamilyState, gates: list[GateResult]) -> str:
    name = family.name
    if not state.components:
        return f"build the reference and record the components: `workbench status {name} --run`"
    first = next((g for g in gates if not g.passed), None)
    if first is None:
        open_ids = [r.id for r in state.open_rows()]
        tail = "next phase: quality regression"
        return f"all gates pass; open rows {', '.join(open_ids)}; {tail}" if open_ids else f"all gates pass; {tail}"
    if first.gate == "component_parity":
        c = lacking_components(state)[0]
        if c.status == "blocked":
            return f"resolve {c.blocked_by} (blocks component {c.name})"
        if c.status == "failed":
            return f"fix component {c.name} ({c.evidence.detail}); then `workbench component-parity {name}`"
        if c.status == "reuse_proven":
            folder = S.family_package(family).replace(".", "/")
            return f"add a probe for {c.cls} to {folder}/component_probes.py; then `workbench component-parity {name}`"
        return f"run component parity: `workbench component-parity {name}`"
    if first.result == "fail":
        return f"fix the {first.title} gate ({first.detail}); then `workbench status {name} --run`"
    return f"run the gates: `workbench status {name} --run`"
