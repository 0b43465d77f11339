"""A private Ray instance for the scale-out tests, started the way `workbench sweep
--executor ray` starts one: 2 CPUs, no dashboard, every server on 127.0.0.1."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_instance():
    from workbench import executors

    assert executors.connect(num_cpus=2), "this process was already connected to Ray"
    import ray

    try:
        context = ray.get_runtime_context()
        assert ray.util.get_node_ip_address() == "127.0.0.1"
        assert context.gcs_address.startswith("127.0.0.1:")
        assert ray.cluster_resources()["CPU"] == 2
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture
def tiny_notebooks(tmp_path):
    """One notebook: prints a greeting, then raises for the stable_audio family."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [new_code_cell('family = "x"', metadata={"tags": ["parameters"]}),
                new_code_cell('print("hi from", family)'),
                new_code_cell('if family == "stable_audio":\n    raise ValueError("boom " + family)')]
    (tmp_path / "nbs").mkdir()
    nbformat.write(nb, tmp_path / "nbs" / "01_hello.ipynb")
    return tmp_path / "nbs"
