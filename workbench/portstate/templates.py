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
$params_import
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


# ---- generated from the official class (`--official Cls`) -----------------------------------

CONFIG_OFFICIAL = Template('''\
"""$name family configuration: the official call defaults, each with where it was read.

Scaffolded by `workbench new-family $name --workload $workload --like $like --official $official`:
DEFAULTS were read from the official `__call__` signature; check the body for defaults it
computes (e.g. None -> a model value) and say so in the source.
"""

from __future__ import annotations

import torch

from workbench.api.family import Detector, FamilyConfig, FastMode, Sourced
from workbench.api.workload import $media_class, WorkloadType

from .pipeline import $pipeline_class
from .presets import ALL_PRESETS

OFFICIAL_PIPELINE = "diffusers.$official"

# SamplingParam field -> Sourced(value, source), from the official __call__ signature.
DEFAULTS: dict[str, Sourced] = $defaults
$extra_fields_comment

$media_function


# Fast mode: a PLACEHOLDER (every model module in bf16, the official loaded in bf16). Replace it
# with what the official example does (its `torch_dtype`, modules it keeps in fp32) and say where.
FAST = FastMode(
    module_dtypes={name: torch.bfloat16 for name in $model_modules},
    reference_dtype=torch.bfloat16,
)

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
    description="$name ($workload): diffusers $official",
    fast=FAST,
)
''')

PIPELINE_OFFICIAL = Template('''\
"""The native $name pipeline, composed from the shared stages.

Modules as the official $official declares them (`__init__` signature and
`_optional_components`):
$module_table
"""

from __future__ import annotations

from workbench.runtime.pipeline import ComposedPipeline


class $pipeline_class(ComposedPipeline):
    _required_config_modules = $required
    _optional_config_modules = $optional

    def create_pipeline_stages(self):
        # The shared chain (workbench/runtime/stages.py): InputValidationStage(rules) ->
        # TextEncodingStage(encode) -> ConditioningStage -> TimestepPreparationStage ->
        # LatentPreparationStage(shape) -> DenoisingStage(predict, experts, hooks...) ->
        # DecodingStage(decode). $like_class ($like_module) is a finished example.
        raise NotImplementedError("$folder/pipeline.py: create_pipeline_stages is a stub: compose the stage "
                                  "chain (see $like_class in $like_module)")
''')

REFERENCE_OFFICIAL = Template('''\
"""The official reference: diffusers' $official, built offline and run with stage capture.

Generated by `workbench new-family --official $official`: the builder constructs each
component from its default config shrunk to tiny sizes (check the cross-component
constraints the shrink cannot know: text widths = encoder hidden sizes, latent channels =
the VAE's, head_dim x heads, RoPE axes); the run captures through the shared helper
(workbench/families/official_capture.py).
"""

from __future__ import annotations

from pathlib import Path

import torch

from workbench.families.official_capture import OfficialCapture
from workbench.families.offline import load_official_pipeline, seeded
from workbench.parity.capture import CaptureSet

OFFICIAL_CLASS = "$official"
NATIVE_CLASS = "$pipeline_class"
# (module, class) swaps the official __init__ annotation allows: `build-reference --variant module=class`,
# each tested in tests/families/$name/test_variants.py.
VARIANTS = $variants

# Constructor arguments that differ from each class's defaults (default in the comment);
# `full` = the constructor defaults (check them against the released config).
SIZES = {
    "tiny": {
$sizes
    },
    "full": {},
}


def build_official(scale: str = "tiny", dtype: torch.dtype = torch.float32):
    """The official pipeline from seeded random-init components (one seed per component)."""
$imports
    sizes = SIZES[scale]
$builds
    return $official($call_args)


def build_reference(out: Path, scale: str = "tiny") -> Path:
    """Write `out/official` and `out/converted` (byte-identical across processes)."""
    from workbench.families.conversion import write_converted

    pipe = build_official(scale)
    pipe.save_pretrained(out / "official", safe_serialization=True)
    write_converted(out / "official", out / "converted", NATIVE_CLASS)
    return out


def load_official(official_dir: Path, device: torch.device, dtype=None, fp32_modules=()):
    return load_official_pipeline(OFFICIAL_CLASS, official_dir, device, dtype, fp32_modules)


def run_reference(official_dir: Path, params, device: torch.device = torch.device("cpu"), pipe=None):
    """Run the official pipeline with `params`; return its checkpoints and the output."""
    pipe = pipe or load_official(official_dir, device)
    with OfficialCapture(pipe) as cap:
        cap.wrap("encode_prompt").wrap("prepare_latents")
        output = torch.as_tensor(pipe($call_request
                                      generator=torch.Generator("cpu").manual_seed(int(params.seed)),
                                      output_type="$official_output_type", **cap.step_callback())[0])
    capture = CaptureSet()
    # TODO: record the conditioning the native stages capture, in pipeline order, e.g.
    #   capture.record("prompt_embeds", cap.last("encode_prompt")[0], "embedding")
    raise NotImplementedError("$folder/reference.py: run_reference records no conditioning yet: map "
                              "cap.last('encode_prompt') to the native checkpoints, then remove this line")
    cap.standard(capture)
    capture.record("$output_kind", output, "$output_kind")
    return capture, output
''')

PROBES_OFFICIAL = Template('''\
"""Seeded component-parity inputs for the $name classes no generic probe covers.

Generated stubs: each names its class; fill in `inputs` (seeded tensors shaped from the
module's config) and `run` (the outputs to compare). Tokenizers, schedulers and
transformers text encoders are covered by the generic probes.
"""

from __future__ import annotations

import torch

from workbench.portstate.probes import Probe
$stubs

PROBES = {
$entries
}
''')

PROBE_STUB = Template('''

def _${slug}_inputs(model, ctx):
    raise NotImplementedError("$folder/component_probes.py: the $cls probe is a stub: build seeded inputs "
                              "from model.config with ctx.generator()")


def _${slug}_run(model, inputs):
    return {"output": model(**inputs, return_dict=False)[0]}
''')

EXAMPLE = Template('''\
"""$name ($workload) with the native pipeline, then parity against the official $official.

    python examples/$name.py [--out $example_out] [--model-dir DIR]

Without --model-dir it uses the tiny offline build (built once, then cached), so it runs on a
CPU in seconds.
"""

from __future__ import annotations

import argparse

import torch

from workbench import registry
from workbench.api.generate import generate
from workbench.parity.runner import resolve_model_dir, run_native, run_reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="$example_out")
    parser.add_argument("--model-dir")
    args = parser.parse_args()

    request = {"seed": 42}
    result = generate("$name", preset="tiny-ci", request=request, device="cpu", model_dir=args.model_dir,
                      out=args.out, progress=False)
    print(f"output {tuple(result.output.shape)} -> {', '.join(map(str, result.paths))}")

    family = registry.get_family("$name")
    params = family.sampling_params("tiny-ci", request)
    model_dir = resolve_model_dir(family, args.model_dir)
    native, _ = run_native(model_dir / "converted", params, "cpu")
    reference = run_reference(family, model_dir / "official", params, torch.device("cpu"))
    for checkpoint in reference:
        diff = (checkpoint.tensor.double() - native[checkpoint.name].tensor.double()).abs().max().item()
        print(f"  {checkpoint.name:28s} {checkpoint.kind:9s} {tuple(checkpoint.tensor.shape)!s:16s} max|diff| {diff:.1e}")


if __name__ == "__main__":
    main()
''')

NEXT_CHECKLIST = Template('''\
next (in order; `pytest $tests` fails on each unfinished item, naming it):
  1. $folder/reference.py   tiny SIZES consistent across components; tokenizers built offline; run_reference records the conditioning
  2. $folder/pipeline.py    the stage chain (configure DenoisingStage hooks, do not copy the loop)
  3. $folder/config.py      DEFAULTS the body computes; FastMode from the official example (placeholder now)
  4. $folder/component_probes.py  the stubbed probes; then `workbench component-parity $name`
  5. workbench parity $name (exact, CPU) and `workbench parity $name --mode fast`
  6. $example               runs with no arguments (gate 4)
  7. workbench status $name --run --write; then ask the integrator to `workbench bless $name` (goldens, notebooks)
''')

PARAMS_OFFICIAL = Template('''\
"""$name request fields the shared SamplingParam does not have: declared here, typed and sourced
(from the official $official.__call__ signature). Values are checked from their type."""

from workbench.api.params import RequestField, declare_fields

FIELDS = declare_fields("$name", (
$fields
))
''')

TEST_VARIANTS = Template('''\
"""$name variants (reference.VARIANTS): each built with `build-reference --variant`, its swapped
module checked exactly, then pipeline parity against the official pipeline with the same swap."""

import importlib

import pytest

FAMILY = "$name"
VARIANTS = importlib.import_module("$package.reference").VARIANTS


@pytest.mark.parametrize("module, cls", VARIANTS)
def test_variant_parity(module, cls, tmp_path):
    from workbench import registry
    from workbench.cli import main
    from workbench.parity.runner import run_parity
    from workbench.portstate.components import check_component

    out = tmp_path / "variant"
    assert main(["build-reference", FAMILY, "--out", str(out), "--variant", f"{module}={cls}"]) == 0
    result = check_component(registry.get_family(FAMILY), out, module)
    assert result.passed and result.cls == f"diffusers.{cls}", result.line()
    verdict = run_parity(FAMILY, model_dir=out, skip_component_gate=True).verdict   # the check above stands in
    assert verdict.passed, verdict.summary_table()
''')
