"""Stage contract: pure checks, named verification errors, timing, hooks."""

import copy

import pytest
import torch

from workbench.errors import StageVerificationError
from workbench.runtime import validators as V
from workbench.runtime.batch import ForwardBatch
from workbench.runtime.hooks import PipelineHooks
from workbench.runtime.stage import Stage


class Doubler(Stage):
    captures = {"latents": ("doubled", "latent")}

    def input_checks(self, batch):
        return {"latents": V.tensor(2), "num_inference_steps": V.positive_int()}

    def output_checks(self, batch):
        return {"latents": V.tensor(2)}

    def forward(self, batch):
        batch.latents = batch.latents * 2
        return batch


class Poisoner(Doubler):
    def forward(self, batch):
        batch.latents = batch.latents * float("nan")
        return batch


class Recorder(PipelineHooks):
    def __init__(self):
        self.seen = []

    def on_stage_end(self, stage, batch):
        self.seen.append((stage.name, batch.latents.clone()))


def test_runs_checks_times_and_calls_hooks():
    batch = ForwardBatch(latents=torch.ones(2, 2), num_inference_steps=3)
    hooks = Recorder()
    out = Doubler()(batch, hooks)
    assert torch.equal(out.latents, torch.full((2, 2), 2.0))
    assert out.stage_timings["Doubler"] >= 0.0
    assert hooks.seen[0][0] == "Doubler" and torch.equal(hooks.seen[0][1], out.latents)


def test_input_check_names_stage_and_field():
    with pytest.raises(StageVerificationError) as err:
        Doubler()(ForwardBatch(latents=torch.ones(2, 2, 2), num_inference_steps=3))
    assert err.value.stage == "Doubler" and err.value.field == "latents"
    assert "stage 'Doubler': field 'latents' expected a tensor with 2 dims" in str(err.value)
    with pytest.raises(StageVerificationError, match="field 'num_inference_steps' expected a positive integer, got 0"):
        Doubler()(ForwardBatch(latents=torch.ones(2, 2), num_inference_steps=0))


def test_stage_error_survives_pickling():
    """Executors (process pools, Ray) send a worker's exception back pickled."""
    import pickle

    with pytest.raises(StageVerificationError) as err:
        Doubler()(ForwardBatch(latents=torch.ones(2, 2, 2), num_inference_steps=3))
    copy = pickle.loads(pickle.dumps(err.value))
    assert (copy.stage, copy.field, copy.expected, copy.got) == (err.value.stage, err.value.field,
                                                                  err.value.expected, err.value.got)
    assert str(copy) == str(err.value)


def test_output_check_catches_nan():
    with pytest.raises(StageVerificationError, match="'Poisoner': field 'latents'.*NaN/Inf"):
        Poisoner()(ForwardBatch(latents=torch.ones(2, 2), num_inference_steps=1))


def test_checks_never_mutate_the_batch():
    batch = ForwardBatch(latents=torch.ones(2, 2), num_inference_steps=3, prompt="a cat")
    snapshot = copy.deepcopy(batch)
    stage = Doubler()
    stage.verify(batch, stage.input_checks(batch))
    stage.verify(batch, stage.output_checks(batch))
    assert torch.equal(batch.latents, snapshot.latents)
    assert {k: v for k, v in vars(batch).items() if k != "latents"} == \
        {k: v for k, v in vars(snapshot).items() if k != "latents"}


@pytest.mark.parametrize("validator, good, bad", [
    (V.multiple_of(16), 32, 33),
    (V.multiple_of(4, offset=1), 9, 8),
    (V.number_in(0.0, 1.0), 0.5, 1.5),
    (V.number_in(0.0, 1.0, optional=True), None, "x"),
    (V.text_prompt(), ["a", "b"], []),
    (V.positive_int(), 3, True),
])
def test_validators(validator, good, bad):
    assert validator(good) is None
    assert validator(bad) is not None
