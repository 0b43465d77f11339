"""String templates of a scaffolded family (`workbench new-family`); `$name` placeholders.

Every stub raises NotImplementedError naming its file and what to fill in, and the
generated tests fail on exactly those stubs until the port is done.
"""

from string import Template

INIT = Template('''\
"""$name: $workload port of diffusers $official (scaffolded like $like)."""
''')

CONFIG = Template('''\
"""$name family configuration: the official call defaults, each with where it was read.

Scaffolded by `workbench new-family $name --workload $workload --like $like`.
"""

from __future__ import annotations

from workbench.api.family import Detector, FamilyConfig, Sourced
from workbench.api.workload import $media_class, WorkloadType

from .pipeline import $pipeline_class
from .presets import ALL_PRESETS

OFFICIAL_PIPELINE = "diffusers.$official"

# SamplingParam field -> Sourced(value, "diffusers <version> <file> <function> (<where>)"),
# read from the official pipeline's __call__ signature and body. Empty until read.
DEFAULTS: dict[str, Sourced] = {}


$media_function


$constant = FamilyConfig(
    name="$name",
    workload=WorkloadType.$workload,
    pipeline_class=$pipeline_class,
    official_pipeline=OFFICIAL_PIPELINE,
    defaults=DEFAULTS,
    presets=tuple(ALL_PRESETS),
    default_preset="tiny-ci",
    detectors=(Detector(class_names=("$pipeline_class", "$official")),),
    reference_module=f"{__package__}.reference",
    media=media,
    output_kind="$output_kind",
    description="$name ($workload), scaffolded like $like",
)
''')

MEDIA = {
    "video": '''\
def media(request) -> VideoMedia:
    """The media contract, read from the request (or the finished batch)."""
    return VideoMedia(height=request.height, width=request.width, num_frames=request.num_frames, fps=request.fps)''',
    "audio": '''\
def media(request) -> AudioMedia:
    """The media contract, read from the request (or the finished batch)."""
    seconds = request.audio_end_in_s - (request.audio_start_in_s or 0.0)
    return AudioMedia(audio_seconds=seconds, sampling_rate=request.sampling_rate, channels=request.channels)''',
    "joint": '''\
def media(request) -> JointMedia:
    """The media contract: video and audio, muxed or paired."""
    raise NotImplementedError("config.py: media is a stub: build JointMedia(video=..., audio=..., muxed=...)")''',
}

PRESETS = Template('''\
"""$name presets (frozen data). Every default must be a SamplingParam field."""

from __future__ import annotations

from workbench.api.presets import InferencePreset
from workbench.api.workload import WorkloadType

# Stage overrides a user may set with `--override Stage.key=value`.
STAGE_SCHEMAS: dict = {}

TINY_CI = InferencePreset(
    model_family="$name",
    name="tiny-ci",
    version=1,
    workload_type=WorkloadType.$workload,
    description="Tiny random-init model for CPU and CI (defaults copied from $like $like_preset: check them).",
    defaults=$preset_defaults,
    stage_schemas=STAGE_SCHEMAS,
)

ALL_PRESETS = (TINY_CI,)
''')

REFERENCE = Template('''\
"""The official reference: diffusers' $official, built offline and run with stage capture.

Stubs until the port starts; $like_reference shows a finished one.
"""

from __future__ import annotations

from pathlib import Path

import torch

OFFICIAL_CLASS = "$official"
NATIVE_CLASS = "$pipeline_class"


def build_reference(out: Path, scale: str = "tiny") -> Path:
    raise NotImplementedError("$folder/reference.py: build_reference is a stub: build the official $official from "
                              "seeded random-init components, save_pretrained to out/official, and write "
                              "out/converted with write_converted(..., NATIVE_CLASS)")


def load_official(official_dir: Path, device: torch.device, dtype=None, fp32_modules=()):
    raise NotImplementedError("$folder/reference.py: load_official is a stub: load $official as a user does")


def run_reference(official_dir: Path, params, device: torch.device = torch.device("cpu"), pipe=None):
    raise NotImplementedError("$folder/reference.py: run_reference is a stub: run $official with params and "
                              "record the capture checkpoints")
''')

PIPELINE = Template('''\
"""The native $name pipeline, composed from the shared stages."""

from __future__ import annotations

from workbench.runtime.pipeline import ComposedPipeline


class $pipeline_class(ComposedPipeline):
    # Copied from $like_class: make them the modules of the official model_index.
    _required_config_modules = $required
    _optional_config_modules = $optional

    def create_pipeline_stages(self):
        raise NotImplementedError("$folder/pipeline.py: create_pipeline_stages is a stub: compose the stage "
                                  "chain (see $like_class in $like_module)")
''')

NOTEBOOK_PARAMETERS = Template('''\
# papermill parameters for the family notebooks, e.g.
#   papermill notebooks/01_pipeline_wiring.ipynb out.ipynb -k python3 -f $folder/notebook_parameters.yaml
family: $name
preset: tiny-ci
device: cpu
seed: 0
''')

TEST_PORT = Template('''\
"""$name: the port's first tests; each fails, naming what to fill in, until that part is done."""

import importlib
from pathlib import Path

import yaml

FAMILY = "$name"
PACKAGE = "$package"


def test_registered():
    from workbench import registry

    assert registry.get_family(FAMILY).pipeline_class.__name__ == "$pipeline_class"


def test_official_pipeline_is_a_diffusers_class():
    import diffusers

    config = importlib.import_module(f"{PACKAGE}.config")
    name = config.OFFICIAL_PIPELINE.rpartition(".")[2]
    assert isinstance(getattr(diffusers, name, None), type), (
        f"{config.__file__}: OFFICIAL_PIPELINE {config.OFFICIAL_PIPELINE!r} is not a diffusers class: "
        f"name the pipeline this family ports")


def test_official_defaults_are_recorded():
    config = importlib.import_module(f"{PACKAGE}.config")
    assert config.DEFAULTS, (f"{config.__file__}: DEFAULTS is empty: record the official __call__ defaults "
                             f"as Sourced(value, source)")


def test_reference_builds_offline(tmp_path):
    reference = importlib.import_module(f"{PACKAGE}.reference")
    out = reference.build_reference(tmp_path, "tiny")
    assert (out / "official" / "model_index.json").is_file() and (out / "converted" / "model_index.json").is_file()


def test_smoke_generates_finite_output():
    import torch

    from workbench.api.generate import generate

    output = generate(FAMILY, device="cpu", progress=False).output
    assert output.numel() and torch.isfinite(output).all()


def test_pipeline_parity_exact():
    from workbench.parity.runner import run_parity

    verdict = run_parity(FAMILY).verdict
    assert verdict.passed, verdict.summary_table()


def test_notebook_parameters_name_a_registered_preset():
    from workbench import registry

    params = yaml.safe_load((Path(importlib.import_module(PACKAGE).__file__).parent
                             / "notebook_parameters.yaml").read_text())
    assert registry.get_family(params["family"]).preset(params["preset"]).name == params["preset"]
''')

TEST_COMPONENTS = Template('''\
"""Component parity for $name: each recorded component rerun for real, exact (fp32 CPU)."""

import pytest

from workbench.portstate.testing import assert_component_parity, component_params

FAMILY = "$name"


@pytest.mark.parametrize("component", component_params(FAMILY))
def test_component_parity(component):
    assert_component_parity(FAMILY, component)
''')

REGISTRY_IMPORTS = Template('''\
from workbench.families.$name.config import $constant
from workbench.families.$name.presets import ALL_PRESETS as ${constant}_PRESETS
''')

REGISTRY_CALL = Template('''\
register_family($constant, ${constant}_PRESETS)
''')
