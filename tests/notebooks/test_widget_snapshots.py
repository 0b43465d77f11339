"""Executed notebooks keep their widgets: the widget state in the run's copy, and a static
PNG snapshot in the same output bundle that survives the bless path's normalization."""

from __future__ import annotations

import base64

import nbformat
from nbconvert import HTMLExporter

from tests.notebooks.conftest import write_notebook
from workbench import notebooks as runner
from workbench.commands.bless import bless_family

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def _snapshot_notebook(directory):
    return write_notebook(directory / "01_widget.ipynb", 'family: str = "x"  # family',
                          "import ipywidgets as w\nfrom workbench.notebook_helpers import snapshot_box\n"
                          f"snapshot_box([w.IntSlider(value=3, description='steps')], {PNG!r})")


def _bundle(path):
    nb = nbformat.read(path, as_version=4)
    [output] = nb.cells[-1].outputs
    return nb, output["data"]


def test_run_keeps_widget_state_and_snapshot_and_its_html_shows_the_snapshot(tmp_path):
    nbs = tmp_path / "nbs"
    _snapshot_notebook(nbs)
    [result] = runner.run_family("wan_t2v", out=tmp_path / "run", progress=False, notebooks_dir=nbs)
    assert result.status == "ok", result.detail
    nb, data = _bundle(result.output)
    state = nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    assert data[WIDGET_VIEW]["model_id"] in state  # the live widget can be restored...
    assert any(m["state"].get("description") == "steps" for m in state.values())
    assert base64.b64decode(data["image/png"]) == PNG  # ...and the snapshot is there without a kernel
    nb.metadata.pop("widgets")
    body, _ = HTMLExporter().from_notebook_node(nb)
    assert "data:image/png;base64," in body and "VBox(children" not in body


def test_bless_normalization_keeps_the_snapshot(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_REFERENCE_OUTPUTS", str(tmp_path / "ref"))
    nbs = tmp_path / "nbs"
    _snapshot_notebook(nbs)
    (target,) = bless_family("wan_t2v", only="notebooks", progress=False, notebooks_dir=nbs)
    nb, data = _bundle(target / "01_widget.ipynb")
    assert "widgets" not in nb.metadata and data[WIDGET_VIEW]["model_id"] == "not-stored"
    assert base64.b64decode(data["image/png"]) == PNG
    assert nb.metadata.workbench.numeric_environment
