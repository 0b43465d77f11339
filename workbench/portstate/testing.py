"""The component parity test every family folder's tests share (`tests/families/<family>/test_components.py`).

Each recorded component is rerun for real (official class vs workbench loader, seeded
input, exact fp32 CPU) and must pass, and its committed record must say so: a record
that running contradicts fails the test.
"""

from __future__ import annotations


def component_params(family_name: str) -> list:
    """One pytest param per recorded component; a family without readable records gets one
    param (None) whose test fails with the reason, instead of an empty (skipped) set."""
    import pytest

    from workbench import registry
    from workbench.errors import WorkbenchError
    from workbench.portstate.state import load_family_state

    try:
        names = [c.name for c in load_family_state(registry.get_family(family_name)).components]
    except WorkbenchError:
        names = []
    return [pytest.param(n, id=n) for n in names] or [pytest.param(None, id="no-records")]


def assert_component_parity(family_name: str, component: str | None) -> None:
    from workbench import registry
    from workbench.portstate.components import check_component
    from workbench.portstate.state import load_family_state
    from workbench.references import ensure_reference

    family = registry.get_family(family_name)
    state = load_family_state(family)
    assert component is not None and state.components, (
        f"{state.path}: no components recorded for {family_name}: build the reference and run "
        f"`workbench status {family_name} --run`")
    result = check_component(family, ensure_reference(family), component)
    assert result.passed, result.line()
    assert result.evidence.max_abs_diff == 0.0, result.line()
    record = state.component(component, result.cls) or state.component(component)
    assert (record.status, record.cls) == ("non_skip_pass", result.cls), (
        f"{state.path}: {component} is recorded {record.status} for {record.cls} but running gives "
        f"{result.status} for {result.cls}: run `workbench component-parity {family_name}`")
