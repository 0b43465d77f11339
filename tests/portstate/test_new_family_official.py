"""`new-family --official Cls` reads the official diffusers class: two pipelines the registry does
not hold (one video, one audio), module lists and defaults checked against the class itself
(its `__init__` / `__call__` signatures, read here with inspect) and against literals read from
the diffusers 0.42.1 sources."""

import ast
import importlib
import inspect
import sys

import pytest

from workbench.portstate.scaffold import scaffold

# (official class, workload, like, modules in __init__ order, __call__ defaults read from the source)
CASES = {
    # pipelines/cogvideo/pipeline_cogvideox.py: __init__(tokenizer, text_encoder, vae, transformer, scheduler)
    "CogVideoXPipeline": ("T2V", "wan_t2v", ("tokenizer", "text_encoder", "vae", "transformer", "scheduler"),
                          {"num_inference_steps": 50, "guidance_scale": 6, "max_sequence_length": 226,
                           "height": None, "width": None, "num_frames": None},
                          {"use_dynamic_cfg": (bool, False), "eta": (float, 0.0)}),
    # pipelines/audioldm/pipeline_audioldm.py: __init__(vae, text_encoder, tokenizer, unet, scheduler, vocoder)
    "AudioLDMPipeline": ("T2A", "stable_audio", ("vae", "text_encoder", "tokenizer", "unet", "scheduler", "vocoder"),
                         {"num_inference_steps": 10, "guidance_scale": 2.5, "negative_prompt": None},
                         {"audio_length_in_s": (float, None), "eta": (float, 0.0)}),
}


@pytest.mark.parametrize("official", sorted(CASES))
def test_new_family_reads_the_official_class(official, tmp_path, monkeypatch):
    import diffusers

    from workbench import registry

    workload, like, modules, literals, extras = CASES[official]
    cls = getattr(diffusers, official)
    assert all(f.official_pipeline != f"diffusers.{official}" for f in registry.FAMILIES.values())
    name = f"probe_{official.lower()}"
    result = scaffold(name, workload, like, official=official, dest=tmp_path / "f", tests_dest=tmp_path / "t",
                      examples_dest=tmp_path / "e")
    monkeypatch.syspath_prepend(str(tmp_path / "f"))
    try:
        pipeline = importlib.import_module(f"{name}.pipeline")
        config = importlib.import_module(f"{name}.config")
        native = pipeline.__dict__[f"Native{name.title().replace('_', '')}Pipeline"]
        # Modules: exactly the official __init__ modules (nothing copied from the like family).
        declared = tuple(native._required_config_modules) + tuple(native._optional_config_modules)
        init = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        assert declared == modules == tuple(p for p in init if p in modules)
        assert "transformer_2" not in declared
        assert set(native._optional_config_modules) == set(cls._optional_components) & set(modules)
        # Library and class of each module, as the annotation names them.
        libs = {m.name: (m.library, m.class_name) for m in result.modules}
        for m in modules:
            ann = inspect.signature(cls.__init__).parameters[m].annotation
            if isinstance(ann, type) and not issubclass(ann, __import__("enum").Enum):
                assert libs[m] == (ann.__module__.split(".")[0], ann.__name__)
        # Defaults: each recorded value is the __call__ signature's, with a source naming it.
        sig = inspect.signature(cls.__call__).parameters
        assert config.DEFAULTS
        for key, sourced in config.DEFAULTS.items():
            default = None if sig[key].default is inspect.Parameter.empty else sig[key].default
            assert sourced.value == default and type(sourced.value) is type(default), key
            assert f"{official}.__call__ signature ({key}:" in sourced.source and "diffusers 0.42.1" in sourced.source
        for key, value in literals.items():
            assert config.DEFAULTS[key].value == value, key
        # Official request arguments that are not shared fields: declared, typed, in the family folder.
        from workbench.api.params import SamplingParam

        fields = {f.name: f for f in importlib.import_module(f"{name}.params").FIELDS}
        for key, (typ, value) in extras.items():
            assert fields[key].type is typ and fields[key].default == value == sig[key].default, key
            assert key not in SamplingParam.field_names()
        # Generated alongside: probe stubs for the model classes, an example, a FastMode placeholder.
        probes = importlib.import_module(f"{name}.component_probes").PROBES
        assert {libs[m][1] for m in modules if m in ("vae", "transformer", "unet", "vocoder")} <= set(probes)
        assert config.FAST.module_dtypes
        ast.parse((tmp_path / "e" / f"{name}.py").read_text())
        # Variants the annotation allows become reference.VARIANTS and a generated test.
        reference_text = (tmp_path / "f" / name / "reference.py").read_text()
        if official == "CogVideoXPipeline":
            assert "VARIANTS = (('scheduler', 'CogVideoXDPMScheduler'),)" in reference_text
            ast.parse((tmp_path / "t" / name / "test_variants.py").read_text())
        assert "bless" in result.next_steps and "fast" in result.next_steps and f"{name}.py" in result.next_steps
    finally:
        for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[mod]


def test_tiny_builder_skeleton_shrinks_sizes_and_ties_vocab(tmp_path):
    """The generated builder for a T5 pipeline: every size argument at most 32 wide, the text
    encoder's vocabulary tied to the offline tokenizer."""
    scaffold("probe_cog", "T2V", "wan_t2v", official="CogVideoXPipeline", dest=tmp_path / "f",
             tests_dest=tmp_path / "t", examples_dest=tmp_path / "e")
    text = (tmp_path / "f" / "probe_cog" / "reference.py").read_text()
    assert "t5_tokenizer(" in text and "vocab_size=len(tokenizer)" in text
    assert "num_layers=2,  # default 30" in text            # CogVideoXTransformer3DModel(num_layers=30)
    assert "text_embed_dim=32,  # default 4096" in text


def test_official_must_be_a_diffusers_pipeline(tmp_path):
    from workbench.errors import ParameterError

    with pytest.raises(ParameterError, match="not a diffusers pipeline class"):
        scaffold("probe_x", "T2V", "wan_t2v", official="NoSuchPipeline", dest=tmp_path, tests_dest=tmp_path / "t",
                 examples_dest=tmp_path / "e")


def test_generic_scheduler_probe_names_a_signature_it_cannot_drive():
    """A scheduler whose step takes an extra required argument: the generic probe says so and
    where to add one, instead of a raw TypeError."""
    import diffusers
    import torch

    from workbench.portstate.probes import SCHEDULER

    class Needy(diffusers.FlowMatchEulerDiscreteScheduler):
        def step(self, model_output, timestep, sample, previous_x0, return_dict=True):
            return super().step(model_output, timestep, sample, return_dict=return_dict)

    scheduler = Needy()
    inputs = {"steps": 4, "sample": torch.zeros(1, 4, 2, 4, 4), "model_outputs": [torch.zeros(1, 4, 2, 4, 4)] * 2,
              "seed": 0}
    with pytest.raises(TypeError, match=r"no generic probe fits Needy \(scheduler.step\(model_output, timestep, "
                                        r"sample, previous_x0.*add one to the family's component_probes.py"):
        SCHEDULER.run(scheduler, inputs)
