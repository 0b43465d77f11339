"""The pipeline handoff report: what a reviewer checks before accepting a port, computed.

Every field comes from the registry, the tiny build's manifests, the loaded native
pipeline, the family config and presets, the official pipeline's call signature and the
recorded gates; the port state contributes only ids, titles and decisions. Nothing here
runs a gate (`workbench status FAMILY --run` does).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workbench.portstate import state as S
from workbench.portstate.gates import blockers, read_gates
from workbench.portstate.gates import next_step as compute_next_step


@dataclass
class ModuleRow:
    name: str
    pipeline: str     # required | optional | unused
    converted: str    # library.Class | disabled | absent
    official: str
    loaded: bool
    verdict: str      # match | mismatch: why | unused: why


@dataclass
class DefaultRow:
    field: str
    family: str
    source: str
    official: str     # the official __call__ default, or "-" when the field is not a call argument
    verdict: str      # match | differs | not a call argument


@dataclass
class PresetRow:
    preset: str
    workload: str
    keys: list[str]
    undeclared: list[str]           # keys that are not SamplingParam fields
    overrides: dict[str, list[str]]  # field -> [official default, preset value]


@dataclass
class HandoffReport:
    family: str
    workload: str
    official_pipeline: str
    model_dir: str
    modules: list[ModuleRow]
    class_resolution: dict[str, str]
    presets: list[PresetRow]
    stage_chain: list[str]
    defaults: list[DefaultRow]
    official_defaults_not_recorded: dict[str, str]
    detectors: list[str]
    gates: dict[str, dict[str, Any]]
    comparison_target: str
    decisions: list[str]
    open_rows: list[str]
    blockers: list[str] = field(default_factory=list)
    next_step: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_text(self) -> str:
        out = [f"handoff: {self.family} ({self.workload}) ports {self.official_pipeline}",
               f"model dir: {self.model_dir}", "", "required modules emitted vs model_index:"]
        out += _columns(["module", "pipeline", "converted", "official", "loaded", "verdict"],
                        [[m.name, m.pipeline, m.converted, m.official, "yes" if m.loaded else "no", m.verdict]
                         for m in self.modules])
        out += ["", "class resolution:"] + [f"  {k}: {v}" for k, v in self.class_resolution.items()]
        chain = " -> ".join(self.stage_chain) or "none (the pipeline did not load)"
        out += ["", f"stage chain: {chain}", "", "config defaults vs the official call defaults:"]
        out += _columns(["field", "family", "official", "verdict", "source"],
                        [[d.field, d.family, d.official, d.verdict, d.source] for d in self.defaults])
        if self.official_defaults_not_recorded:
            out.append("  official call defaults of SamplingParam fields not in the family config: " + ", ".join(
                f"{k}={v}" for k, v in self.official_defaults_not_recorded.items()))
        out += ["", "presets (keys vs SamplingParam fields):"]
        for p in self.presets:
            undeclared = f"UNDECLARED {', '.join(p.undeclared)}" if p.undeclared else "all declared"
            changes = ", ".join(f"{k} {o} -> {v}" for k, (o, v) in p.overrides.items()) or "none"
            out.append(f"  {p.preset}, {p.workload}: {len(p.keys)} keys, {undeclared}; overrides: {changes}")
        out += ["", "registry detectors:"] + [f"  {d}" for d in self.detectors]
        out += ["", "gates:"] + [f"  {name}: {g['result']} ({g['detail']})" + (f" [{g['date']}]" if g["date"] else "")
                                 for name, g in self.gates.items()]
        out += [f"  comparison target: {self.comparison_target}"]
        out += ["", "decisions:"] + ([f"  {d}" for d in self.decisions] or ["  none"])
        out += ["", "open questions / issues / escape hatches:"] + ([f"  {r}" for r in self.open_rows] or ["  none"])
        out += ["", "blockers:"] + ([f"  {b}" for b in self.blockers] or ["  none"])
        out += ["", f"next step: {self.next_step}"]
        return "\n".join(out)


def _columns(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
    return ["  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [headers, *rows]]


def _short(value: Any, limit: int = 48) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def official_pipeline_class(family) -> type:
    library, _, name = family.official_pipeline.rpartition(".")
    return getattr(importlib.import_module(library), name)


def official_call_defaults(family) -> dict[str, Any]:
    params = inspect.signature(official_pipeline_class(family).__call__).parameters
    return {n: p.default for n, p in params.items() if p.default is not inspect.Parameter.empty}


def module_rows(pipeline_cls: type, converted, official, loaded: set[str] | None) -> list[ModuleRow]:
    """One row per module named anywhere; `loaded` is None when the pipeline did not load."""
    from workbench.portstate.components import spec_label
    from workbench.portstate.modules import required_modules

    required = required_modules(pipeline_cls, converted)
    optional = set(pipeline_cls._optional_config_modules)
    names = list(dict.fromkeys([*converted.modules, *official.modules, *required]))

    def label(manifest, name):
        spec = manifest.modules.get(name)
        return "absent" if spec is None else "disabled" if spec.disabled else spec_label(spec)

    rows = []
    for name in names:
        role = "required" if name in required else "optional" if name in optional else "unused"
        conv, off = label(converted, name), label(official, name)
        present = conv not in ("absent", "disabled")
        if role == "required" and not present:
            verdict = f"mismatch: required but {conv} in the converted model_index"
        elif role == "unused" and present:
            verdict = "unused: in model_index, not loaded by the pipeline"
        elif present and off not in (conv, "absent", "disabled") and not conv.startswith("workbench."):
            verdict = f"mismatch: converted {conv} reuses another class than the official {off}"
        elif loaded is not None and (name in loaded) != (present and role != "unused"):
            verdict = "mismatch: the loaded modules differ from the manifest"
        else:
            verdict = "match"
        rows.append(ModuleRow(name, role, conv, off, name in (loaded or ()), verdict))
    return rows


def default_rows(family) -> tuple[list[DefaultRow], dict[str, str]]:
    from workbench.api.params import SamplingParam

    official = official_call_defaults(family)
    rows = []
    for name, sourced in family.defaults.items():
        if name in official:
            verdict = "match" if official[name] == sourced.value else "differs"
            rows.append(DefaultRow(name, _short(sourced.value), sourced.source, _short(official[name]), verdict))
        else:
            rows.append(DefaultRow(name, _short(sourced.value), sourced.source, "-", "not a call argument"))
    fields = set(SamplingParam.field_names())
    missing = {n: _short(v) for n, v in official.items() if n in fields and n not in family.defaults}
    return rows, missing


def preset_rows(family) -> list[PresetRow]:
    from workbench import registry
    from workbench.api.params import SamplingParam, family_fields_of

    fields = set(SamplingParam.field_names()) | set(family_fields_of(family.name))   # + its declared fields
    defaults = family.default_values()
    rows = []
    for p in registry.PRESETS.for_family(family.name):
        overrides = {k: [_short(defaults.get(k), 24), _short(v, 24)] for k, v in p.defaults.items()
                     if k in defaults and defaults[k] != v}
        rows.append(PresetRow(f"{p.name}@v{p.version}" + (" (default)" if p.name == family.default_preset else ""),
                              p.workload_type.name, sorted(p.defaults),
                              sorted(k for k in p.defaults if k not in fields),
                              overrides))
    return rows


def detector_lines(family, converted, converted_dir: Path) -> list[str]:
    from workbench import registry

    lines = []
    for i, d in enumerate(family.detectors):
        parts = [f"class_names={list(d.class_names)}" if d.class_names else "",
                 f"path_substrings={list(d.path_substrings)}" if d.path_substrings else "",
                 f"metadata keys={sorted(d.metadata)}" if d.metadata else ""]
        score = d.score(converted.class_name, str(converted_dir.resolve()), converted.metadata)
        lines.append(f"detector {i}: " + ", ".join(p for p in parts if p) + f"; scores {score} on the tiny build")
    chosen = registry.family_for_manifest(converted, converted_dir)
    lines.append(f"tiny build selects family {chosen.name!r}: " + ("match" if chosen is family else "MISMATCH"))
    return lines


def build_handoff(family, model_dir: str | Path | None = None) -> HandoffReport:
    from workbench import registry
    from workbench.api.generate import load_pipeline
    from workbench.errors import WorkbenchError
    from workbench.families.offline import quiet_hf
    from workbench.parity.runner import resolve_model_dir
    from workbench.runtime.manifest import read_manifest

    quiet_hf()
    root = resolve_model_dir(family, model_dir)
    converted, official = read_manifest(root / "converted"), read_manifest(root / "official")
    try:
        pipe = load_pipeline(root / "converted", device="cpu", mode="exact", progress=False)
        loaded, chain, load_error = set(pipe.modules), list(pipe.stage_names), ""
    except WorkbenchError as exc:  # reported as a blocker: the rest of the report still helps
        loaded, chain, load_error = None, [], str(exc)
    resolved = registry.resolve_pipeline_class(converted)
    official_name = family.official_pipeline.rpartition(".")[2]
    resolution = {
        "converted _class_name": f"{converted.class_name} -> {resolved.__name__} "
                                 f"({'match' if resolved is family.pipeline_class else 'MISMATCH'}: family declares "
                                 f"{family.pipeline_class.__name__})",
        "official _class_name": f"{official.class_name} "
                                f"({'match' if official.class_name == official_name else 'MISMATCH'}: family ports "
                                f"{family.official_pipeline})",
    }
    defaults, not_recorded = default_rows(family)
    state = S.load_family_state(family)
    gates = read_gates(state)
    report = HandoffReport(
        family=family.name, workload=family.workload.name, official_pipeline=family.official_pipeline,
        model_dir=str(root), modules=module_rows(family.pipeline_class, converted, official, loaded),
        class_resolution=resolution, presets=preset_rows(family), stage_chain=chain,
        defaults=defaults, official_defaults_not_recorded=not_recorded,
        detectors=detector_lines(family, converted, root / "converted"),
        gates={g.gate: {"result": g.result, "detail": g.detail, "date": g.date} for g in gates},
        comparison_target=(f"{family.official_pipeline} built offline from the same seeded weights "
                           f"(official/ next to converted/), exact mode (CPU fp32), preset {family.default_preset}"),
        decisions=[f"{d.id} {d.decision}" for d in state.decisions],
        open_rows=[f"{r.id} {r.title}" for r in state.open_rows()])
    computed = [f"the native pipeline does not load: {load_error}"] if load_error else []
    computed += [f"module {m.name}: {m.verdict}" for m in report.modules if m.verdict.startswith("mismatch")]
    computed += [f"class resolution: {k}: {v}" for k, v in resolution.items() if "MISMATCH" in v]
    computed += [line for line in report.detectors if line.endswith("MISMATCH")]
    computed += [f"preset {p.preset}: undeclared keys {p.undeclared}" for p in report.presets if p.undeclared]
    report.blockers = computed + blockers(state, gates)
    report.next_step = (f"fix {computed[0]}" if computed else compute_next_step(family, state, gates))
    return report
