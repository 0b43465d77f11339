"""CLI conventions: table output, one-line errors with exit 2, --debug tracebacks."""

import subprocess
import sys

import pytest

from workbench.cli import main
from workbench.errors import RegistryError


def test_families_table(capsys):
    assert main(["families"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["family", "pipeline", "class", "official", "workload", "presets"]
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:] if line and not line.startswith("(")}
    assert rows["wan_t2v"][:4] == ["wan_t2v", "NativeWanPipeline", "diffusers.WanPipeline", "T2V"]
    assert "tiny-ci@v1*," in rows["wan_t2v"]


@pytest.mark.parametrize("argv, message", [
    (["parity", "no_such_family"], "unknown family 'no_such_family'"),
    (["generate", "wan_t2v", "--out", "x.mp4", "--set", "guidanc=3"], "did you mean guidance"),
    (["parity", "wan_t2v", "--set", "height=33"], "field 'height' expected a positive multiple of 16, got 33"),
    (["parity", "wan_t2v", "--model-dir", "/nonexistent"], "expected official/model_index.json"),
    (["parity", "wan_t2v", "--preset", "nope"], "no preset 'nope'"),
    (["parity", "wan_t2v", "--override", "Denoising.cfg=batched"], "unknown stage 'Denoising'"),
])
def test_bad_input_is_one_line_exit_2(capsys, argv, message, wan_dir):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_debug_shows_the_traceback():
    with pytest.raises(RegistryError):
        main(["--debug", "parity", "no_such_family"])


def test_console_script_runs_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", "parity", "nope"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
