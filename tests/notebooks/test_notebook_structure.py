"""Rules every notebook in notebooks/ follows (DESIGN section 8), checked on the sources."""

from __future__ import annotations

import ast
import re

import nbformat
import papermill
import pytest

from tests.notebooks.conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# Calls whose output depends on the machine or the clock (timing, widgets, embedded media).
MACHINE_DEPENDENT = ("tuning_widget", "show_sample", "print_performance", "plot_stage_timings",
                     "measure_performance", "format_newest", "plot_history", "format_ratios", "plot_latency_ratios",
                     "format_breakdown", "plot_breakdown", "run_with_progress", "parity_panel", "show_players")
IGNORE_TAG = "nbval-ignore-output"


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _tags(cell) -> list[str]:
    return list(cell.metadata.get("tags", []))


def test_one_notebook_per_phase():
    assert [p.stem for p in NOTEBOOKS] == ["01_pipeline_wiring", "02_preset_tuning", "03_generation", "04_parity",
                                           "05_trace", "06_performance"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_kernel_and_a_single_typed_commented_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    tagged = [c for c in nb.cells if "parameters" in _tags(c)]
    assert len(tagged) == 1 and tagged[0] is _code_cells(nb)[0]
    source = tagged[0].source
    assigned = []
    lines = source.splitlines()
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom):
            continue
        assert isinstance(node, ast.AnnAssign), f"{path.name}: untyped parameter at line {node.lineno}"
        name = node.target.id
        assigned.append(name)
        line, above = lines[node.lineno - 1], lines[node.lineno - 2]
        assert "#" in line or above.lstrip().startswith("#"), f"{path.name}: parameter {name} has no comment"
    assert assigned[0] == "family"
    # papermill must see every parameter (it skips "X | None" annotations and lines with "=" in the help)
    assert list(papermill.inspect_notebook(str(path))) == assigned


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_prints_its_parameters_and_keeps_cells_thin(path):
    nb = nbformat.read(path, as_version=4)
    cells = _code_cells(nb)
    names = list(papermill.inspect_notebook(str(path)))
    call = re.search(r"nb\.print_parameters\((.*)\)", cells[1].source)
    assert call and call.group(1) == ", ".join(f"{n}={n}" for n in names)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    for cell in cells[1:]:
        tree = ast.parse(cell.source)
        defs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.For, ast.While,
                                                             ast.Lambda))]
        assert not defs, f"{path.name}: logic belongs in workbench/, not in a cell:\n{cell.source}"
        statements = [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom))]
        assert len(statements) <= 4, f"{path.name}: cell too long:\n{cell.source}"
        assert not cell.get("outputs"), f"{path.name}: source notebooks are stored without outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_figures_end_with_show_and_only_machine_dependent_cells_are_ignored(path):
    for cell in _code_cells(nbformat.read(path, as_version=4)):
        if re.search(r"\bplot_\w+\(", cell.source):
            assert cell.source.rstrip().endswith("plt.show()"), cell.source
        machine_dependent = any(f"{name}(" in cell.source for name in MACHINE_DEPENDENT)
        assert (IGNORE_TAG in _tags(cell)) == machine_dependent, cell.source


def test_parity_notebook_takes_a_model_dir_and_shows_the_panel_and_players():
    path = REPO / "notebooks" / "04_parity.ipynb"
    params = papermill.inspect_notebook(str(path))
    assert params["model_dir"]["default"] == "None" and params["model_dir"]["inferred_type_name"] == "Optional[str]"
    sources = [c.source for c in _code_cells(nbformat.read(path, as_version=4))]
    assert any("run_with_progress(family, preset, mode, device, model_dir," in s for s in sources)
    assert any(s.startswith("parity_panel.parity_panel(") for s in sources)
    assert any("show_players(parity)" in s for s in sources) and any("plot_schedules(" in s for s in sources)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_sets_up_warnings_and_the_figure_backend_first(path):
    assert "nb.setup_notebook()" in _code_cells(nbformat.read(path, as_version=4))[1].source
