"""DenoisingStage's declared hooks against loops written out by hand here (the official
pattern each hook stands for), on a real diffusers scheduler and a seeded linear denoiser."""

import pytest
import torch

from workbench.runtime.batch import ForwardBatch
from workbench.runtime.stages import DenoisingStage, Expert, PositionalTableStage


class Linear(torch.nn.Module):
    def __init__(self, dtype=torch.float32):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = torch.nn.Parameter(torch.randn(4, 4, generator=g).to(dtype) * 0.3)

    def forward(self, x, t, cond):
        return (x.to(self.w.dtype) @ self.w) * (t.to(self.w.dtype) / 1000) + cond.to(self.w.dtype)


def predict(model, latents, t, batch, branch):
    cond = {"cond": batch.extra["c"], "uncond": batch.extra["u"],
            "both": torch.cat([batch.extra["u"], batch.extra["c"]])}[branch]
    return model(latents, t, cond)


def make_batch(scheduler_cls="FlowMatchEulerDiscreteScheduler", steps=4):
    import diffusers

    scheduler = getattr(diffusers, scheduler_cls)()
    scheduler.set_timesteps(steps)
    g = torch.Generator().manual_seed(1)
    batch = ForwardBatch(prompt="x", guidance_scale=3.0, num_inference_steps=steps)
    batch.scheduler, batch.timesteps = scheduler, scheduler.timesteps
    batch.latents = torch.randn(1, 3, 4, generator=g)
    batch.extra = {"c": torch.randn(1, 3, 4, generator=g), "u": torch.randn(1, 3, 4, generator=g)}
    batch.do_classifier_free_guidance = True
    return batch


def reference_loop(batch, model, scale_at, cast_before=None, cast_after=None, post=None, step=None):
    """The official shape of the loop, written out: cond, uncond, guidance, step, post-step."""
    sched, x = batch.scheduler, batch.latents
    state = {}
    for i, t in enumerate(batch.timesteps):
        c, u = model(x, t, batch.extra["c"]), model(x, t, batch.extra["u"])
        if cast_before is not None:
            c, u = c.to(cast_before), u.to(cast_before)
        noise = u + scale_at(i) * (c - u)
        if cast_after is not None:
            noise = noise.to(cast_after)
        x = step(sched, noise, t, x, state) if step else sched.step(noise, t, x, return_dict=False)[0]
        if post is not None:
            x = post(x, i)
    return x


def run_stage(batch, model, **hooks):
    return DenoisingStage(predict, lambda: [Expert("transformer", model)], progress=False, **hooks)(batch).latents


def test_per_step_guidance_scale_and_post_step():
    model = Linear()
    expected = reference_loop(make_batch(), model, lambda i: 1.0 + 0.5 * i, post=lambda x, i: x * (1 - 0.01 * i))
    got = run_stage(make_batch(), model, guidance_scale=lambda i, t, batch, expert: 1.0 + 0.5 * i,
                    post_step=lambda x, i, t, batch: x * (1 - 0.01 * i))
    assert torch.equal(got, expected)
    # and the default (the fixed field) differs from the schedule: the hook is not a no-op
    assert not torch.equal(run_stage(make_batch(), model), expected)


def test_scheduler_adapter_keeps_state_across_steps():
    """A two-step (Adams-Bashforth) flow update that needs the previous prediction and timestep."""
    def ab2(sched, noise, t, x, state):
        sigmas = sched.sigmas
        i = state.get("i", 0)
        dt = sigmas[i + 1] - sigmas[i]
        v = noise if "prev" not in state else 1.5 * noise - 0.5 * state["prev"]
        state.update(prev=noise, prev_t=t, i=i + 1)
        return x + dt * v

    model = Linear()
    expected = reference_loop(make_batch(), model, lambda i: 3.0, step=ab2)
    got = run_stage(make_batch(), model,
                    scheduler_step=lambda sched, noise, t, x, batch, state: ab2(sched, noise, t, x, state))
    assert torch.equal(got, expected)


@pytest.mark.parametrize("cast", ["before_guidance", "after_guidance"])
def test_cast_points_in_bf16(cast):
    model = Linear(torch.bfloat16)
    kwargs = {"cast_before": torch.float32} if cast == "before_guidance" else {"cast_after": torch.float32}
    expected = reference_loop(make_batch(), model, lambda i: 3.0, **kwargs)
    got = run_stage(make_batch(), model, guidance_dtype=torch.float32, cast=cast)
    assert torch.equal(got, expected)
    other = "after_guidance" if cast == "before_guidance" else "before_guidance"
    assert not torch.equal(run_stage(make_batch(), model, guidance_dtype=torch.float32, cast=other), expected)


@pytest.mark.parametrize("order", ["scale_then_branch", "branch_then_scale"])
def test_input_order_with_batched_guidance(order):
    """EulerDiscreteScheduler scales the input by 1/sqrt(sigma^2+1): the stage calls it on one
    copy (then concatenates) or on the concatenated pair, as declared."""
    seen = []
    batch = make_batch("EulerDiscreteScheduler")
    original = batch.scheduler.scale_model_input
    batch.scheduler.scale_model_input = lambda x, t: seen.append(x.shape[0]) or original(x, t)
    model = Linear()
    got = DenoisingStage(predict, lambda: [Expert("transformer", model)], cfg="batched", scale_input=True,
                         input_order=order, progress=False)(batch).latents
    assert set(seen) == ({1} if order == "scale_then_branch" else {2})
    ref = make_batch("EulerDiscreteScheduler")
    x = ref.latents
    for t in ref.timesteps:
        both = torch.cat([x, x])
        scaled = ref.scheduler.scale_model_input(both, t)
        u, c = model(scaled, t, torch.cat([ref.extra["u"], ref.extra["c"]])).chunk(2)
        x = ref.scheduler.step(u + 3.0 * (c - u), t, x, return_dict=False)[0]
    assert torch.allclose(got, x, rtol=0, atol=0)


def test_bad_hook_values_are_refused():
    with pytest.raises(ValueError, match="input_order"):
        DenoisingStage(predict, list, input_order="sideways")
    with pytest.raises(ValueError, match="cast"):
        DenoisingStage(predict, list, cast="never")


def test_positional_table_stage_computes_once_into_extra():
    calls = []
    stage = PositionalTableStage(lambda b: calls.append(1) or torch.arange(6.0).view(2, 3), key="rope", capture=True)
    batch = stage(ForwardBatch(prompt="x"))
    assert torch.equal(batch.extra["rope"], torch.arange(6.0).view(2, 3)) and calls == [1]
    assert stage.captures == {"rope": ("rope", "embedding")}
