"""`port_state.yaml`: the machine-readable state of a port, one file per family folder.

The file is keyed by family name (a folder may hold several families). Per family:
- `components`: every module the native pipeline loads, with a status that only running
  changes (`workbench component-parity` / `workbench status --run`) and the evidence of
  that run;
- `questions` (Q001), `issues` (I001), `escape_hatches` (E001): hand-written rows with
  stable ids; a resolved row stays, with its resolution;
- `decisions` (D001): what was decided and why;
- `gates`: the recorded results of the gates that run the pipeline (smoke, pipeline
  parity, example), written by `workbench status --run`.
Every schema error names the file and the field.
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import PortStateError

STATE_FILE = "port_state.yaml"

# Component statuses. A run writes the last three, always with evidence; `blocked` is set
# by hand and names the open issue that blocks the component.
PENDING_STATUS = {"reuse": "reuse_pending", "port": "port_pending"}
RUN_STATUS = {"pass": "non_skip_pass", "fail": "failed", "no_probe": "reuse_proven"}
COMPONENT_STATUSES = ("reuse_pending", "port_pending", "reuse_proven", "non_skip_pass", "failed", "blocked")
STATUS_MEANING = {
    "reuse_pending": "reuses the official class, no parity run yet",
    "port_pending": "native class, no parity run yet",
    "reuse_proven": "official class and byte-identical files, but no probe compared outputs",
    "non_skip_pass": "outputs compared on seeded inputs and matched",
    "failed": "the last parity run did not match (or could not run)",
    "blocked": "blocked by an open issue",
}
ORIGINS = ("reuse", "port")  # reuse: the official diffusers/transformers class; port: a native class
ROW_PREFIX = {"questions": "Q", "issues": "I", "escape_hatches": "E"}
ROW_LABEL = {"questions": "question", "issues": "issue", "escape_hatches": "escape hatch"}
ROW_STATUSES = ("open", "resolved")
RECORDED_GATES = ("smoke", "pipeline_parity", "example")  # component parity is computed from components
GATE_RESULTS = ("pass", "fail", "not_run")

HEADER = """\
# Port state (machine-readable): the source of PORT_STATUS.md.
# Component statuses, their evidence and the gate records are written by running
# `workbench component-parity FAMILY` / `workbench status FAMILY --run`; never by hand.
# Questions (Qnnn), issues (Innn), escape hatches (Ennn) and decisions (Dnnn) are edited by
# hand; ids are stable and resolved rows stay, with their resolution.
"""


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Evidence:
    """What one component parity run measured."""

    result: str                       # pass | fail | no_probe
    max_abs_diff: float | None        # over every compared output (None when nothing was compared)
    tolerance: float
    outputs: dict[str, float | None]  # per compared output: max abs diff
    probe: str
    weights_sha256: str               # the converted module folder that was checked
    date: str
    versions: dict[str, str]
    test_id: str                      # the pytest node that reruns this check
    command: str                      # what wrote this record
    detail: str = ""                  # why it failed, or why no probe ran

    FIELDS = ("result", "max_abs_diff", "tolerance", "outputs", "probe", "weights_sha256", "date", "versions",
              "test_id", "command", "detail")

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.FIELDS}
        if not self.detail:
            del out["detail"]
        return out


@dataclass
class ComponentRecord:
    name: str
    type: str          # tokenizer | text_encoder | transformer | vae | scheduler | ... (from the module name)
    cls: str           # "library.Class" as the converted manifest names it
    origin: str        # reuse | port
    status: str
    parity_test: str   # pytest node id of the component parity test
    evidence: Evidence | None = None
    blocked_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "class": self.cls, "origin": self.origin,
                               "status": self.status, "parity_test": self.parity_test}
        if self.blocked_by:
            out["blocked_by"] = self.blocked_by
        if self.evidence is not None:
            out["evidence"] = self.evidence.to_dict()
        return out


@dataclass
class Row:
    """An open question, issue or escape hatch; kept after resolution, with the resolution."""

    id: str
    title: str
    status: str = "open"
    resolution: str | None = None
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"id": self.id, "title": self.title, "status": self.status}
        if self.detail:
            out["detail"] = self.detail
        if self.resolution:
            out["resolution"] = self.resolution
        return out


@dataclass
class Decision:
    id: str
    decision: str
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "decision": self.decision, "why": self.why}


@dataclass
class GateRecord:
    """The recorded result of a gate that runs the pipeline."""

    result: str        # pass | fail | not_run
    detail: str
    date: str
    versions: dict[str, str]
    command: str
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"result": self.result, "detail": self.detail, "date": self.date, "versions": self.versions,
               "command": self.command}
        if self.seconds is not None:
            out["seconds"] = round(self.seconds, 2)
        return out


@dataclass
class FamilyState:
    family: str
    path: Path
    components: list[ComponentRecord] = field(default_factory=list)
    questions: list[Row] = field(default_factory=list)
    issues: list[Row] = field(default_factory=list)
    escape_hatches: list[Row] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    gates: dict[str, GateRecord] = field(default_factory=dict)

    def component(self, name: str, cls: str | None = None) -> ComponentRecord | None:
        """The record of module `name`; with `cls` ("library.Class"), the record of that class, so
        a variant's scheduler and the default's coexist (records are keyed by (module, class))."""
        return next((c for c in self.components if c.name == name and (cls is None or c.cls == cls)), None)

    def rows(self, kind: str) -> list[Row]:
        return getattr(self, kind)

    def open_rows(self) -> list[Row]:
        return [r for kind in ROW_PREFIX for r in self.rows(kind) if r.status == "open"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "components": [c.to_dict() for c in self.components],
            **{kind: [r.to_dict() for r in self.rows(kind)] for kind in ROW_PREFIX},
            "decisions": [d.to_dict() for d in self.decisions],
            "gates": {g: self.gates[g].to_dict() for g in RECORDED_GATES if g in self.gates},
        }


# ---- where the file lives -------------------------------------------------------------

def family_package(family) -> str:
    """The package of the family's code: the one that holds its reference module."""
    return family.reference_module.rpartition(".")[0]


def family_folder(family) -> Path:
    package = family_package(family)
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise PortStateError(f"family {family.name!r}: cannot locate package {package!r} of its reference module")
    return Path(list(spec.submodule_search_locations)[0])


ROOT_ENV = "WORKBENCH_PORTSTATE_ROOT"


def state_dir(family) -> Path:
    """Where the family's port_state.yaml and PORT_STATUS.md live: its code folder, or the same
    relative folder under $WORKBENCH_PORTSTATE_ROOT (tests and dry runs write there instead)."""
    root = os.environ.get(ROOT_ENV)
    if root:
        return Path(root).joinpath(*family_package(family).split("."))
    return family_folder(family)


def state_path(family) -> Path:
    return state_dir(family) / STATE_FILE


# ---- reading --------------------------------------------------------------------------

class _Reader:
    """Type checks that name the file and field of every problem."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, message: str):
        raise PortStateError(f"{self.path}: {where}: {message}")

    def mapping(self, value: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
        if not isinstance(value, dict):
            self.fail(where, f"expected a mapping, got {type(value).__name__}")
        unknown = [k for k in value if k not in required + optional]
        if unknown:
            self.fail(f"{where}.{unknown[0]}", f"unknown field; expected {', '.join(required + optional)}")
        missing = [k for k in required if k not in value]
        if missing:
            self.fail(f"{where}.{missing[0]}", "missing")
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(where, f"expected non-empty text, got {value!r}" + (
                " (quote dates and times)" if isinstance(value, (_dt.date, _dt.datetime)) else ""))
        return value

    def optional_text(self, value: Any, where: str) -> str | None:
        return None if value is None else self.text(value, where)

    def choice(self, value: Any, where: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            self.fail(where, f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    def number(self, value: Any, where: str, optional: bool = False) -> float | None:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(where, f"expected a number, got {value!r}")
        return float(value)

    def text_map(self, value: Any, where: str) -> dict[str, str]:
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            self.fail(where, f"expected a mapping of names to text, got {value!r}")
        return dict(value)

    def items(self, value: Any, where: str) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(where, f"expected a list, got {type(value).__name__}")
        return value


def _read_evidence(r: _Reader, raw: Any, where: str) -> Evidence:
    m = r.mapping(raw, where, required=Evidence.FIELDS[:-1], optional=("detail",))
    outputs = m["outputs"]
    if not isinstance(outputs, dict):
        r.fail(f"{where}.outputs", f"expected a mapping of output names to max abs diffs, got {outputs!r}")
    return Evidence(
        result=r.choice(m["result"], f"{where}.result", tuple(RUN_STATUS)),
        max_abs_diff=r.number(m["max_abs_diff"], f"{where}.max_abs_diff", optional=True),
        tolerance=r.number(m["tolerance"], f"{where}.tolerance"),
        outputs={str(k): r.number(v, f"{where}.outputs.{k}", optional=True) for k, v in outputs.items()},
        probe=r.text(m["probe"], f"{where}.probe"),
        weights_sha256=r.text(m["weights_sha256"], f"{where}.weights_sha256"),
        date=r.text(m["date"], f"{where}.date"),
        versions=r.text_map(m["versions"], f"{where}.versions"),
        test_id=r.text(m["test_id"], f"{where}.test_id"),
        command=r.text(m["command"], f"{where}.command"),
        detail=r.optional_text(m.get("detail"), f"{where}.detail") or "",
    )


_CLASS_RE = re.compile(r"^[A-Za-z_][\w]*\.[A-Za-z_]\w*$")


def _read_component(r: _Reader, raw: Any, where: str) -> ComponentRecord:
    m = r.mapping(raw, where, required=("name", "type", "class", "origin", "status", "parity_test"),
                  optional=("evidence", "blocked_by"))
    record = ComponentRecord(
        name=r.text(m["name"], f"{where}.name"), type=r.text(m["type"], f"{where}.type"),
        cls=r.text(m["class"], f"{where}.class"), origin=r.choice(m["origin"], f"{where}.origin", ORIGINS),
        status=r.choice(m["status"], f"{where}.status", COMPONENT_STATUSES),
        parity_test=r.text(m["parity_test"], f"{where}.parity_test"),
        blocked_by=r.optional_text(m.get("blocked_by"), f"{where}.blocked_by"))
    if not _CLASS_RE.match(record.cls):
        r.fail(f"{where}.class", f"expected 'library.Class' as in the converted manifest, got {record.cls!r}")
    run_written = record.status in RUN_STATUS.values()
    if run_written and "evidence" not in m:
        r.fail(f"{where}.evidence", f"missing: status {record.status!r} is written only by a parity run, "
                                    f"with its evidence (run `workbench component-parity`)")
    if "evidence" in m:
        if not run_written:
            r.fail(f"{where}.evidence", f"present with status {record.status!r}; only a run's status carries evidence")
        record.evidence = _read_evidence(r, m["evidence"], f"{where}.evidence")
        if RUN_STATUS[record.evidence.result] != record.status:
            r.fail(f"{where}.status", f"{record.status!r} contradicts its evidence result "
                                      f"{record.evidence.result!r} (expected {RUN_STATUS[record.evidence.result]!r})")
    if record.status in PENDING_STATUS.values() and PENDING_STATUS[record.origin] != record.status:
        r.fail(f"{where}.status", f"{record.status!r} does not fit origin {record.origin!r} "
                                  f"(expected {PENDING_STATUS[record.origin]!r})")
    if record.status == "reuse_proven" and record.origin != "reuse":
        r.fail(f"{where}.status", "'reuse_proven' applies only to origin 'reuse'")
    if (record.status == "blocked") != (record.blocked_by is not None):
        r.fail(f"{where}.blocked_by", "required exactly when status is 'blocked' (name the open issue, e.g. I001)")
    return record


def _read_row(r: _Reader, raw: Any, where: str, prefix: str) -> Row:
    m = r.mapping(raw, where, required=("id", "title", "status"), optional=("resolution", "detail"))
    row = Row(id=r.text(m["id"], f"{where}.id"), title=r.text(m["title"], f"{where}.title"),
              status=r.choice(m["status"], f"{where}.status", ROW_STATUSES),
              resolution=r.optional_text(m.get("resolution"), f"{where}.resolution"),
              detail=r.optional_text(m.get("detail"), f"{where}.detail"))
    if not re.fullmatch(rf"{prefix}\d{{3}}", row.id):
        r.fail(f"{where}.id", f"expected {prefix} and three digits (e.g. {prefix}001), got {row.id!r}")
    if (row.status == "resolved") != (row.resolution is not None):
        r.fail(f"{where}.resolution",
               "required exactly when status is 'resolved' (resolved rows keep their resolution)")
    return row


def _read_gate(r: _Reader, raw: Any, where: str) -> GateRecord:
    m = r.mapping(raw, where, required=("result", "detail", "date", "versions", "command"), optional=("seconds",))
    return GateRecord(result=r.choice(m["result"], f"{where}.result", GATE_RESULTS),
                      detail=r.text(m["detail"], f"{where}.detail"), date=r.text(m["date"], f"{where}.date"),
                      versions=r.text_map(m["versions"], f"{where}.versions"),
                      command=r.text(m["command"], f"{where}.command"),
                      seconds=r.number(m.get("seconds"), f"{where}.seconds", optional=True))


def _unique(r: _Reader, values: list[str], where: str) -> None:
    seen = set()
    for v in values:
        if v in seen:
            r.fail(where, f"duplicate {v!r}")
        seen.add(v)


def parse_family_state(path: Path, family: str, raw: Any) -> FamilyState:
    r = _Reader(path)
    m = r.mapping(raw, family, required=("components",),
                  optional=tuple(ROW_PREFIX) + ("decisions", "gates"))
    state = FamilyState(family=family, path=path)
    state.components = [_read_component(r, c, f"{family}.components[{i}]")
                        for i, c in enumerate(r.items(m["components"], f"{family}.components"))]
    _unique(r, [f"{c.name} ({c.cls})" for c in state.components], f"{family}.components")
    for kind, prefix in ROW_PREFIX.items():
        rows = [_read_row(r, x, f"{family}.{kind}[{i}]", prefix)
                for i, x in enumerate(r.items(m.get(kind), f"{family}.{kind}"))]
        _unique(r, [x.id for x in rows], f"{family}.{kind}")
        setattr(state, kind, rows)
    for i, raw_d in enumerate(r.items(m.get("decisions"), f"{family}.decisions")):
        where = f"{family}.decisions[{i}]"
        d = r.mapping(raw_d, where, required=("id", "decision", "why"))
        decision = Decision(r.text(d["id"], f"{where}.id"), r.text(d["decision"], f"{where}.decision"),
                            r.text(d["why"], f"{where}.why"))
        if not re.fullmatch(r"D\d{3}", decision.id):
            r.fail(f"{where}.id", f"expected D and three digits (e.g. D001), got {decision.id!r}")
        state.decisions.append(decision)
    _unique(r, [d.id for d in state.decisions], f"{family}.decisions")
    gates = m.get("gates") or {}
    if not isinstance(gates, dict):
        r.fail(f"{family}.gates", f"expected a mapping of {', '.join(RECORDED_GATES)}")
    for name, raw_g in gates.items():
        r.choice(name, f"{family}.gates.{name}", RECORDED_GATES)
        state.gates[name] = _read_gate(r, raw_g, f"{family}.gates.{name}")
    open_issues = {x.id for x in state.issues if x.status == "open"}
    for i, c in enumerate(state.components):
        if c.blocked_by is not None and c.blocked_by not in open_issues:
            r.fail(f"{family}.components[{i}].blocked_by",
                   f"{c.blocked_by!r} is not an open issue of {family} (open: {sorted(open_issues) or 'none'})")
    return state


def read_state_file(path: Path) -> dict[str, FamilyState]:
    """Every family section of one file, validated."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise PortStateError(f"{path}: missing") from None
    except yaml.YAMLError as exc:
        raise PortStateError(f"{path}: invalid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PortStateError(f"{path}: expected a mapping of family names to their port state")
    return {str(name): parse_family_state(path, str(name), section) for name, section in raw.items()}


def load_family_state(family) -> FamilyState:
    path = state_path(family)
    hint = f"run `workbench status {family.name} --run` to create it from the tiny build"
    if not path.is_file():
        raise PortStateError(f"{path}: missing: {family.name} has no port state; {hint}")
    states = read_state_file(path)
    if family.name not in states:
        raise PortStateError(f"{path}: no section {family.name!r}; {hint}")
    return states[family.name]


def dump_states(states: dict[str, FamilyState]) -> str:
    import yaml

    class NoAliases(yaml.SafeDumper):
        """Repeated values (the same versions dict) are written out, not as &id anchors."""

        def ignore_aliases(self, data):
            return True

    body = yaml.dump({name: s.to_dict() for name, s in states.items()}, Dumper=NoAliases, sort_keys=False,
                     allow_unicode=True, width=110, default_flow_style=False)
    return HEADER + body


def save_family_state(state: FamilyState) -> Path:
    """Replace this family's section of its file atomically; other sections are kept."""
    from workbench.io import atomic_write_text

    states = read_state_file(state.path) if state.path.is_file() else {}
    states[state.family] = state
    return atomic_write_text(state.path, dump_states(states))
