"""PORT_STATUS.md: generated from port_state.yaml and the registry, never written by hand.

One file per family folder, one section per family registered from that folder. The
rendering reads records only (nothing runs), so it is deterministic: a test regenerates
it in memory and fails when the committed file differs.
"""

from __future__ import annotations

from pathlib import Path

from workbench.portstate import state as S
from workbench.portstate.gates import blockers, read_gates
from workbench.portstate.gates import next_step as compute_next_step

STATUS_FILE = "PORT_STATUS.md"
NOTES_FILE = "PORT_NOTES.md"  # optional hand-written notes next to it, linked when present


def families_by_folder() -> dict[Path, list]:
    """Registered families grouped by the folder their port state lives in, in registry order."""
    from workbench import registry

    groups: dict[Path, list] = {}
    for family in registry.FAMILIES.values():
        groups.setdefault(S.state_dir(family), []).append(family)
    return groups


def status_path(family) -> Path:
    return S.state_dir(family) / STATUS_FILE


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(headers: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _diff(value: float | None) -> str:
    return "-" if value is None else f"{value:.3e}"


def render_family(family) -> list[str]:
    state = S.load_family_state(family)
    gates = read_gates(state)
    lines = [f"## {family.name}", "",
             f"{family.description or family.name}. Workload {family.workload.name}; native "
             f"`{family.pipeline_class.__name__}` ports `{family.official_pipeline}`; default preset "
             f"`{family.default_preset}`.", "", "### Gates", ""]
    lines += _table(["#", "gate", "result", "detail", "recorded"],
                    [[i, g.title, g.result, g.detail, g.date or "-"] for i, g in enumerate(gates, 1)])
    found = blockers(state, gates)
    lines += ["", f"**Next step:** {compute_next_step(family, state, gates)}", "",
              "**Blockers:** " + ("; ".join(found) if found else "none"), "", "### Components", ""]
    lines += _table(["component", "type", "class", "origin", "status", "max abs diff", "parity test", "recorded"],
                    [[c.name, c.type, f"`{c.cls}`", c.origin, c.status + (f" ({c.blocked_by})" if c.blocked_by else ""),
                      _diff(c.evidence.max_abs_diff) if c.evidence else "-", f"`{c.parity_test}`",
                      c.evidence.date if c.evidence else "-"] for c in state.components])
    lines += ["", "Statuses: " + "; ".join(f"`{k}` {v}" for k, v in S.STATUS_MEANING.items()) + ".", ""]
    rows = [(kind, r) for kind in S.ROW_PREFIX for r in state.rows(kind)]
    open_rows = [[r.id, S.ROW_LABEL[kind], r.title, r.detail or "-"] for kind, r in rows if r.status == "open"]
    resolved = [[r.id, S.ROW_LABEL[kind], r.title, r.resolution] for kind, r in rows if r.status == "resolved"]
    lines += ["### Open questions, issues and escape hatches", ""]
    lines += _table(["id", "kind", "title", "detail"], open_rows) if open_rows else ["none"]
    lines += ["", "### Resolved (kept with their resolution)", ""]
    lines += _table(["id", "kind", "title", "resolution"], resolved) if resolved else ["none"]
    lines += ["", "### Decisions", ""]
    lines += (_table(["id", "decision", "why"], [[d.id, d.decision, d.why] for d in state.decisions])
              if state.decisions else ["none"])
    return lines + [""]


def render_folder(families: list) -> str:
    names = ", ".join(f.name for f in families)
    commands = " / ".join(f"`workbench status {f.name} --write`" for f in families)
    lines = [f"# Port status: {names}", "",
             f"<!-- Generated from {S.STATE_FILE} and the registry by {commands}. Do not edit: "
             "tests/portstate/test_port_status.py fails when this file is stale. -->", ""]
    notes = S.family_folder(families[0]) / NOTES_FILE
    if notes.is_file():
        lines += [f"How the port works and what was measured: [{NOTES_FILE}]({NOTES_FILE}).", ""]
    for family in families:
        lines += render_family(family)
    return "\n".join(lines).rstrip("\n") + "\n"


def render_for(family) -> tuple[Path, str]:
    """The PORT_STATUS.md path of the family's folder and its expected content."""
    folder = S.state_dir(family)
    return folder / STATUS_FILE, render_folder(families_by_folder()[folder])


def write_status(family) -> Path:
    from workbench.io import atomic_write_text

    path, text = render_for(family)
    return atomic_write_text(path, text)


def is_current(family) -> bool:
    path, text = render_for(family)
    return path.is_file() and path.read_text() == text
