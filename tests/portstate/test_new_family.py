"""`workbench new-family`: scaffold into a temp dir; the result imports and its tests fail for the stated reasons."""

import ast
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from workbench import registry
from workbench.cli import main
from workbench.portstate import scaffold as SC
from workbench.portstate import state as S

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scaffold")
    # The repo's layout: tests/ and tests/families/ are packages, so test modules get unique names.
    (tmp / "tests" / "families").mkdir(parents=True)
    for package in (tmp / "tests", tmp / "tests" / "families"):
        (package / "__init__.py").write_text("")
    result = SC.scaffold("hunyuan_t2v", "t2v", "wan_t2v", dest=tmp / "families", tests_dest=tmp / "tests" / "families")
    return tmp, result


def test_files_and_import_name(scaffolded):
    tmp, result = scaffolded
    assert result.package == "hunyuan_t2v"  # outside workbench/families: a top-level package on sys.path
    assert sorted(p.relative_to(tmp).as_posix() for p in result.written) == [
        "families/hunyuan_t2v/__init__.py", "families/hunyuan_t2v/config.py",
        "families/hunyuan_t2v/notebook_parameters.yaml", "families/hunyuan_t2v/pipeline.py",
        "families/hunyuan_t2v/port_state.yaml", "families/hunyuan_t2v/presets.py",
        "families/hunyuan_t2v/reference.py", "tests/families/hunyuan_t2v/__init__.py",
        "tests/families/hunyuan_t2v/test_components.py", "tests/families/hunyuan_t2v/test_port.py"]
    imports, call = result.registry_lines
    assert imports.splitlines() == [
        "from workbench.families.hunyuan_t2v.config import HUNYUAN_T2V",
        "from workbench.families.hunyuan_t2v.presets import ALL_PRESETS as HUNYUAN_T2V_PRESETS"]
    assert call.strip() == "register_family(HUNYUAN_T2V, HUNYUAN_T2V_PRESETS)"


def test_generated_modules_import_and_stubs_name_themselves(scaffolded, monkeypatch):
    tmp, _ = scaffolded
    monkeypatch.syspath_prepend(str(tmp / "families"))
    import importlib

    config = importlib.import_module("hunyuan_t2v.config")
    family = config.HUNYUAN_T2V
    assert family.name == "hunyuan_t2v" and family.workload.name == "T2V" and family.defaults == {}
    assert family.pipeline_class.__name__ == "NativeHunyuanT2vPipeline"
    like = registry.get_family("wan_t2v").pipeline_class
    assert family.pipeline_class._required_config_modules == like._required_config_modules
    assert family.reference_module == "hunyuan_t2v.reference"
    preset = family.presets[0]
    preset.lint()  # every key a declared SamplingParam field
    assert preset.defaults["num_frames"] == 9 and "flow_shift" not in preset.defaults
    state = S.read_state_file(tmp / "families" / "hunyuan_t2v" / "port_state.yaml")["hunyuan_t2v"]
    assert state.components == [] and state.questions[0].id == "Q001" and state.decisions[0].id == "D001"
    with pytest.raises(NotImplementedError, match="hunyuan_t2v/reference.py: build_reference is a stub"):
        family.reference.build_reference(tmp / "out")
    with pytest.raises(NotImplementedError, match="hunyuan_t2v/pipeline.py: create_pipeline_stages is a stub"):
        family.pipeline_class.create_pipeline_stages(object.__new__(family.pipeline_class))


def test_generated_tests_fail_for_the_stated_reasons(scaffolded):
    tmp, _ = scaffolded
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp / "families"), str(ROOT)]))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp),
                           f"--junitxml={tmp / 'junit.xml'}", str(tmp / "tests" / "families" / "hunyuan_t2v")],
                          capture_output=True, text=True, env=env, cwd=tmp, timeout=300)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    failures = {case.get("name"): case.find("failure").get("message")
                for case in ET.parse(tmp / "junit.xml").iter("testcase") if case.find("failure") is not None}
    cases = [case.get("name") for case in ET.parse(tmp / "junit.xml").iter("testcase")]
    assert sorted(failures) == sorted(cases)  # nothing passes, nothing is skipped
    unregistered = "unknown family 'hunyuan_t2v'"
    expected = {
        "test_registered": unregistered,
        "test_official_pipeline_is_a_diffusers_class": "OFFICIAL_PIPELINE 'diffusers.TODO' is not a diffusers class",
        "test_official_defaults_are_recorded": "DEFAULTS is empty: record the official __call__ defaults",
        "test_reference_builds_offline": "families/hunyuan_t2v/reference.py: build_reference is a stub",
        "test_smoke_generates_finite_output": unregistered,
        "test_pipeline_parity_exact": unregistered,
        "test_notebook_parameters_name_a_registered_preset": unregistered,
        "test_component_parity[no-records]": unregistered,
    }
    assert sorted(failures) == sorted(expected)
    for name, reason in expected.items():
        assert reason in failures[name], (name, failures[name])
    assert failures["test_reference_builds_offline"].startswith("NotImplementedError: ")


def test_register_inserts_the_lines(tmp_path):
    result = SC.Scaffold("hunyuan_t2v", "workbench.families.hunyuan_t2v", tmp_path, tmp_path,
                         registry_lines=("from workbench.families.hunyuan_t2v.config import HUNYUAN_T2V\n",
                                         "register_family(HUNYUAN_T2V, HUNYUAN_T2V_PRESETS)\n"))
    copy = tmp_path / "registry.py"
    copy.write_text(SC.REGISTRY_FILE.read_text())
    SC.register(result, copy)
    lines = copy.read_text().splitlines()
    ast.parse(copy.read_text())
    imports = [i for i, line in enumerate(lines) if line.startswith("from workbench.families.")]
    assert lines[imports[-1]] == "from workbench.families.hunyuan_t2v.config import HUNYUAN_T2V"
    assert lines[-1] == "register_family(HUNYUAN_T2V, HUNYUAN_T2V_PRESETS)"


@pytest.mark.parametrize("argv, message", [
    (["new-family", "Bad-Name", "--workload", "T2V", "--like", "wan_t2v"], "expected lower_snake_case"),
    (["new-family", "wan_t2v", "--workload", "T2V", "--like", "wan_t2v"], "family 'wan_t2v' is already registered"),
    (["new-family", "x_t2v", "--workload", "T3V", "--like", "wan_t2v"], "--workload 'T3V': expected one of T2V"),
    (["new-family", "x_t2v", "--workload", "T2V", "--like", "nope"], "unknown family 'nope'"),
])
def test_bad_input_is_one_line_exit_2(argv, message, tmp_path, capsys):
    assert main(argv + ["--dest", str(tmp_path / "f"), "--tests-dest", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "f").exists() and not (tmp_path / "t").exists()


def test_cli_prints_registry_lines_and_refuses_register_outside_the_package(tmp_path, capsys):
    args = ["new-family", "stable_audio2", "--workload", "T2A", "--like", "wan_t2v",
            "--official", "StableAudioPipeline",
            "--dest", str(tmp_path / "f"), "--tests-dest", str(tmp_path / "t")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "register_family(STABLE_AUDIO2, STABLE_AUDIO2_PRESETS)" in out
    config = (tmp_path / "f" / "stable_audio2" / "config.py").read_text()
    assert 'OFFICIAL_PIPELINE = "diffusers.StableAudioPipeline"' in config and "AudioMedia(" in config
    assert main(["new-family", "other_t2a", "--workload", "T2A", "--like", "wan_t2v", "--register",
                 "--dest", str(tmp_path / "f2"), "--tests-dest", str(tmp_path / "t2")]) == 2
    assert "--register needs the family inside workbench/families" in capsys.readouterr().err
