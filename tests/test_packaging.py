"""Packaging: pyproject and environment.yml pin the same versions; torch is pinned."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def pins(lines):
    return {line.split("==")[0].lower(): line.split("==")[1] for line in lines if "==" in line}


def test_environment_yml_matches_pyproject():
    """The conda environment runs the whole suite, so it carries every extra the tests use."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = pins(project["dependencies"] + extras["dev"] + extras["lab"] + extras["ray"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pins(pip_section) == wanted


def test_torch_is_pinned_and_lab_and_ray_are_optional():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "torch==2.13.0" in project["dependencies"]
    assert not any(d.startswith(("jupyterlab", "ray")) for d in project["dependencies"])
    assert project["optional-dependencies"]["ray"] == ["ray==2.60.0"]
    assert project["scripts"]["workbench"] == "workbench.cli:main"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make run" in readme
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == "make test"


def test_make_test_installs_the_extras_whose_tests_run():
    """The Ray executor's tests run (never skipped) in `make test`, so it installs the ray extra."""
    install = [line for line in (ROOT / "Makefile").read_text().splitlines() if "pip install" in line and "-e" in line]
    assert install and "'.[dev,lab,ray]'" in install[0]
