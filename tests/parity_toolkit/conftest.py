"""Synthetic CaptureSets shaped like the real families' captures (video, audio, joint AV)."""

from __future__ import annotations

from typing import Callable

import matplotlib
import pytest
import torch

from workbench.parity.capture import CaptureSet

matplotlib.use("Agg")  # tests only; notebooks keep their inline backend (DESIGN section 8)

STEPS = 3
LATENT_SHAPE = (1, 16, 3, 4, 4)
FRAMES_SHAPE = (1, 9, 32, 32, 3)
WAVEFORM_SHAPE = (1, 2, 31)
AUDIO_LATENT_SHAPE = (1, 8, 6)


def _smooth_frames(g: torch.Generator) -> torch.Tensor:
    """Frames with spatial structure (SSIM on pure noise says little), in [0, 1]."""
    coarse = torch.rand(FRAMES_SHAPE[0] * FRAMES_SHAPE[1], 3, 8, 8, generator=g)
    fine = torch.nn.functional.interpolate(coarse, size=FRAMES_SHAPE[2:4], mode="bilinear", align_corners=False)
    return fine.permute(0, 2, 3, 1).reshape(FRAMES_SHAPE).clamp(0, 1)


def _waveform(g: torch.Generator) -> torch.Tensor:
    t = torch.arange(WAVEFORM_SHAPE[-1], dtype=torch.float32)
    tone = torch.stack([0.5 * torch.sin(0.7 * t), 0.4 * torch.sin(1.3 * t + 0.5)])
    return (tone + 0.05 * torch.randn(WAVEFORM_SHAPE[1:], generator=g)).unsqueeze(0)


def _record_stream(cap: CaptureSet, g: torch.Generator, shape: tuple[int, ...], stream: str = "") -> None:
    prefix = f"{stream}_" if stream else ""
    latents = torch.randn(shape, generator=g)
    cap.record(f"{prefix}initial_latents", latents, "latent")
    for i in range(STEPS):
        latents = 0.8 * latents + 0.1 * torch.randn(shape, generator=g)
        expert = "transformer" if i < 2 else "transformer_2"
        cap.record(f"{prefix}latents_step_{i:03d}", latents, "latent", step=i,
                   meta={"timestep": float(1000 - 300 * i), "expert": expert, "guidance_scale": 5.0})
    cap.record(f"{prefix}final_latents", latents, "latent")


def _common(cap: CaptureSet, g: torch.Generator) -> None:
    cap.record("prompt_embeds", torch.randn(1, 12, 32, generator=g), "embedding")
    cap.record("negative_prompt_embeds", torch.randn(1, 12, 32, generator=g), "embedding")
    cap.record("timesteps", torch.tensor([999.0, 699.0, 399.0]), "schedule")
    cap.record("sigmas", torch.tensor([1.0, 0.7, 0.4, 0.0]), "schedule")


def make_video_capture(seed: int = 0) -> CaptureSet:
    g = torch.Generator().manual_seed(seed)
    cap = CaptureSet()
    _common(cap, g)
    _record_stream(cap, g, LATENT_SHAPE)
    cap.record("frames", _smooth_frames(g), "frames")
    return cap


def make_audio_capture(seed: int = 0) -> CaptureSet:
    g = torch.Generator().manual_seed(seed)
    cap = CaptureSet()
    _common(cap, g)
    _record_stream(cap, g, AUDIO_LATENT_SHAPE)
    cap.record("waveform", _waveform(g), "waveform")
    return cap


def make_joint_capture(seed: int = 0) -> CaptureSet:
    g = torch.Generator().manual_seed(seed)
    cap = CaptureSet()
    _common(cap, g)
    _record_stream(cap, g, LATENT_SHAPE)
    _record_stream(cap, g, AUDIO_LATENT_SHAPE, stream="audio")
    cap.record("frames", _smooth_frames(g), "frames")
    cap.record("waveform", _waveform(g), "waveform")
    return cap


def copy_capture(cap: CaptureSet, change: Callable[[str, torch.Tensor], torch.Tensor] | None = None,
                 skip: tuple[str, ...] = ()) -> CaptureSet:
    """A copy of `cap` with `change(name, tensor)` applied and the `skip` checkpoints left out."""
    out = CaptureSet()
    for c in cap:
        if c.name not in skip:
            out.record(c.name, change(c.name, c.tensor) if change else c.tensor, c.kind, c.step, c.meta)
    return out


@pytest.fixture(params=["video", "audio", "joint"])
def capture_pair(request) -> tuple[str, CaptureSet, CaptureSet]:
    """(family kind, reference, native with a small perturbation everywhere)."""
    make = {"video": make_video_capture, "audio": make_audio_capture, "joint": make_joint_capture}[request.param]
    ref = make()
    g = torch.Generator().manual_seed(123)
    nat = copy_capture(ref, lambda n, t: t + 1e-3 * torch.randn(t.shape, generator=g))
    return request.param, ref, nat


@pytest.fixture(autouse=True)
def _one_thread_and_no_leftover_figures():
    """Tiny tensors gain nothing from intra-op threads, and on a busy 2-core machine their
    spin-waits cost ~50x; restored afterwards so other suites keep their thread count."""
    import matplotlib.pyplot as plt

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    plt.close("all")


class TinyBlock(torch.nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.linear = torch.nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.nn.functional.gelu(self.linear(x))


class TinyTransformer(torch.nn.Module):
    """Three residual blocks and an output projection: the shape of a DiT, in miniature."""

    def __init__(self, dim: int = 8, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.blocks = torch.nn.ModuleList(TinyBlock(dim) for _ in range(3))
        self.proj_out = torch.nn.Linear(dim, dim)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.proj_out(x)


def run_two_steps(model: torch.nn.Module, calls_per_step: int = 1) -> None:
    """A denoising loop in miniature: set the step context, call the model, clear it."""
    from workbench.trace.context import set_step

    x = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        for step in range(2):
            set_step(step)
            for _ in range(calls_per_step):
                x = model(x)
    set_step(None)
