"""The HTML report is one self-contained file that names the first divergence."""

from __future__ import annotations

import base64
import re

from tests.parity_toolkit.conftest import copy_capture, make_joint_capture, make_video_capture

from workbench.parity.compare import compare_captures
from workbench.parity.report import write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_report_embeds_pngs_and_highlights_the_first_divergence(tmp_path):
    ref = make_joint_capture()
    nat = copy_capture(ref, lambda n, t: t + 1e-2 if n == "latents_step_001" else t)
    verdict = compare_captures(ref, nat, family="ltx2", preset="tiny", parameters={"seed": 42})
    path = write_report(verdict, ref, nat, tmp_path / "report.html")
    text = path.read_text()
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)
    assert len(images) == 4  # stage table, per-step diffs, heatmap of the divergence, joint frames+waveform
    assert all(base64.b64decode(img).startswith(PNG_SIGNATURE) for img in images)
    divergence = re.search(r'<div class="divergence">(.*?)</div>', text, re.S).group(1)
    assert "latents_step_001" in divergence and "scheduler step" in divergence
    assert '<tr class="first"><td>latents_step_001</td>' in text
    assert "<th>seed</th><td>42</td>" in text and "<th>torch</th>" in text
    assert "http://" not in text and "https://" not in text


def test_report_of_a_run_with_missing_media_notes_the_undrawn_figure(tmp_path):
    ref = make_video_capture()
    nat = copy_capture(ref, skip=("frames",))
    path = write_report(compare_captures(ref, nat), ref, nat, tmp_path / "report.html")
    text = path.read_text()
    assert "not drawn: checkpoint &#x27;frames&#x27; is missing in native" in text
    assert "missing in native" in re.search(r'<div class="divergence">(.*?)</div>', text, re.S).group(1)
