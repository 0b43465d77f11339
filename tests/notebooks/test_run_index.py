"""The run index: per notebook its verdict, first divergence, key parameters, date, commit,
a thumbnail and a link to an HTML rendering; the title names the family."""

from __future__ import annotations

import json
import re

from tests.notebooks.conftest import write_notebook
from workbench import notebooks as runner


def _parity_like(directory):
    """Prints a failing verdict the way notebook 04 does, draws a figure, then raises."""
    write_notebook(directory / "04_parity.ipynb",
                   'from typing import Optional\nfamily: str = "x"  # family\nseed: int = 0  # seed\nsteps: Optional[int] = None  # steps\n'
                   'out_dir: str = "artifacts"  # files',
                   "import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0])\nplt.show()",
                   "print('verdict: FAIL (3 of 9 checkpoints within exact-mode tolerance)')\n"
                   "raise RuntimeError('first divergence at timesteps: max abs diff 1.2e+02 > 1e-06')")
    return directory


def test_index_shows_verdict_divergence_parameters_date_commit_thumbnail_and_html(tmp_path):
    nbs = _parity_like(tmp_path / "nbs")
    out = tmp_path / "run"
    [result] = runner.run_family("wan_t2v", out=out, settings={"seed": 3}, progress=False, notebooks_dir=nbs)
    assert result.status == "failed" and result.detail.startswith("cell 3 "), result.detail
    assert (result.verdict, result.first_divergence) == ("FAIL", "timesteps")
    assert result.key_parameters == {"seed": 3}  # family, paths and None values left out
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", result.date)
    assert re.fullmatch(r"[0-9a-f]{10}(-dirty)?", result.commit)
    assert result.thumbnail.read_bytes()[:4] == b"\x89PNG"
    page = result.html.read_text()
    assert result.html.name == "04_parity.html" and "<html" in page and "data:image/png;base64," in page

    index = (out / "index.html").read_text()
    assert "<title>workbench run: wan_t2v</title>" in index
    assert "href='04_parity.html'" in index and "href='04_parity.ipynb'" in index
    for shown in (">FAIL<", "<td>timesteps</td>", "seed=3", result.date, result.commit, "class='thumb'"):
        assert shown in index, shown
    assert "04_parity.thumb.png" not in index  # inlined, not listed among the files the notebook wrote

    stamp = json.loads((out / "04_parity.run.json").read_text())
    assert stamp["parameters"] == {"family": "wan_t2v", "seed": 3}  # what it ran with, for the skip check
    assert stamp["verdict"] == "FAIL" and stamp["key_parameters"] == {"seed": 3}


def test_a_skipped_notebook_keeps_its_row(tmp_path):
    nbs = tmp_path / "nbs"
    write_notebook(nbs / "01_ok.ipynb", 'family: str = "x"  # family', "print('verdict: PASS (9 of 9)')")
    out = tmp_path / "run"
    first = runner.run_family("stable_audio", out=out, progress=False, notebooks_dir=nbs)
    again = runner.run_family("stable_audio", out=out, progress=False, notebooks_dir=nbs)
    assert [r.status for r in first + again] == ["ok", "skipped"]
    assert (again[0].verdict, again[0].commit, again[0].html) == (first[0].verdict, first[0].commit, first[0].html)
    assert "<title>workbench run: stable_audio</title>" in (out / "index.html").read_text()
