"""A real browser in the lab: Debian's chromium (headless, driven by Playwright) opens
`workbench lab` on 127.0.0.1, runs notebooks 02 and 04 for Stable Audio, and checks that
the sliders render and that the audio players load (readyState >= 1: the preview wav is
at a rate Chromium decodes, unlike the tiny VAE's 16 Hz).

`make test` installs Playwright (the dev extra) and `.ci/run` installs chromium when it is
missing: neither is optional here, a missing one fails the test with the install line.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from pathlib import Path

import pytest

from tests.notebooks.conftest import REPO
from workbench import lab as lab_mod

FAMILY = "stable_audio"
CHROMIUM = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
RUN_TIMEOUT_MS = 240_000


def _chromium() -> str:
    for path in CHROMIUM:
        if Path(path).is_file():
            return path
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium (.ci/run does it)")
    return found


def _requirements() -> str:
    if importlib.util.find_spec("playwright") is None:
        pytest.fail("playwright (the dev extra) is not installed; run the suite through `make test` "
                    "or pip install playwright==1.65.2")
    if importlib.util.find_spec("jupyterlab") is None:
        pytest.fail("jupyterlab (the `lab` extra) is not installed; run the suite through `make test`")
    return _chromium()


def _parameterized(root: Path) -> None:
    """02 and 04 with the family (and a one-cell sweep grid) injected, as papermill would."""
    import nbformat
    from nbformat.v4 import new_code_cell

    for stem, extra in (("02_preset_tuning", {"steps": 2, "sweep_steps": [2], "sweep_guidance": [1.0]}),
                        ("04_parity", {"steps": 2})):
        nb = nbformat.read(REPO / "notebooks" / f"{stem}.ipynb", as_version=4)
        at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
        values = {"family": FAMILY, **extra}
        nb.cells.insert(at + 1, new_code_cell("\n".join(f"{k} = {v!r}" for k, v in values.items()),
                                              metadata={"tags": ["injected-parameters"]}))
        nbformat.write(nb, root / f"{stem}.ipynb")


_PANEL = "Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.context && w.context.path === %r)"


def _start_all(page, lab, name: str) -> None:
    """Open the notebook in a fresh workspace of its own and run every cell through Lab's
    own command (as Run > Run All Cells does)."""
    page.goto(f"http://127.0.0.1:{lab.port}/lab/workspaces/{name.split('_')[0]}/tree/{name}?reset&token={lab.token}")
    panel = _PANEL % name
    page.wait_for_function(f"() => {{ const p = window.jupyterapp && {panel}; const k = p && p.sessionContext.session "
                           "&& p.sessionContext.session.kernel; return k && k.connectionStatus === 'connected' "
                           "&& k.status === 'idle'; }", timeout=120_000, polling=500)
    page.evaluate(f"() => {{ const p = {panel}; window.jupyterapp.shell.activateById(p.id); "
                  "return window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


def _wait_all(page, name: str) -> None:
    """Until every code cell ran (Run All stops at an error: that error is reported)."""
    panel = _PANEL % name
    errors_js = (f"() => {panel}.content.widgets.filter(c => c.model.type === 'code')"
                 ".flatMap(c => Array.from({length: c.model.outputs.length}, (_, i) => c.model.outputs.get(i).toJSON()))"
                 ".filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue)")
    page.wait_for_function(
        f"""() => {{
            const p = {panel};
            const cells = p.content.widgets.filter(c => c.model.type === 'code');
            const errors = ({errors_js})();
            return errors.length > 0 || (p.sessionContext.session.kernel.status === 'idle'
                                         && cells.every(c => c.model.executionCount !== null));
        }}""", timeout=RUN_TIMEOUT_MS, polling=1000)
    errors = page.evaluate(errors_js)
    assert not errors, f"{name}: {errors}"


def test_lab_runs_tuning_and_parity_with_sliders_and_playable_audio(tmp_path):
    chromium = _requirements()
    from playwright.sync_api import sync_playwright

    root = tmp_path / "lab"
    root.mkdir()
    _parameterized(root)
    started = time.monotonic()
    lab = lab_mod.start(root=root, state_dir=tmp_path / "state", expose_app=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True,
                                        args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
            tuning = browser.new_page(viewport={"width": 1400, "height": 1000})
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            _start_all(tuning, lab, "02_preset_tuning.ipynb")  # both run at once, each in its kernel
            _start_all(page, lab, "04_parity.ipynb")

            _wait_all(tuning, "02_preset_tuning.ipynb")
            sliders = tuning.locator(".widget-slider")
            sliders.first.wait_for(state="visible", timeout=60_000)
            labels = tuning.locator(".widget-slider .widget-label").all_inner_texts()
            assert {"steps", "guidance", "seed"} <= set(labels), labels

            _wait_all(page, "04_parity.ipynb")
            page.locator("audio").first.wait_for(state="attached", timeout=60_000)
            page.wait_for_function("Array.from(document.querySelectorAll('audio'))"
                                   ".every(a => a.readyState >= 1)", timeout=60_000)
            states = page.evaluate("Array.from(document.querySelectorAll('audio'))"
                                   ".map(a => [a.readyState, a.duration])")
            assert len(states) >= 2 and all(r >= 1 and d > 0 for r, d in states), states
            panel = page.locator(".widget-button", has_text="Run parity")
            assert panel.count() == 1 and panel.is_visible()
            assert page.locator(".widget-dropdown select").count() >= 1  # the checkpoint selector
            assert page.locator(".widget-slider").count() >= 3  # channel, latent frame, steps
            browser.close()
    finally:
        lab_mod.stop(tmp_path / "state")
    print(f"browser test: {time.monotonic() - started:.1f}s")
