"""Numbers that say how far a native tensor is from its reference.

Every checkpoint gets the generic set (shape, dtype, max/mean abs diff, relative abs-mean
drift, cosine); frames add PSNR and SSIM, waveforms add SNR and a multi-resolution STFT
distance. Everything is computed in float64 so the metric itself adds no error. Tensors
that cannot be compared (shape mismatch, NaN/Inf) give a `Metrics` whose `error` says
why, never an exception: a failing port must still produce a verdict.

SSIM follows Wang et al. (2004): an 11x11 Gaussian window with sigma 1.5 ("valid"
borders, shrunk to the largest odd size that fits small frames), K1=0.01, K2=0.03, data
range 1; computed per frame and channel, averaged over channels, then over frames.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

#: Denominator floor for relative drift, so an all-zero reference does not divide by zero.
DRIFT_FLOOR = 1e-12
#: Magnitude floor inside the log of the STFT log-magnitude distance.
LOG_MAG_FLOOR = 1e-7
#: STFT sizes of the multi-resolution distance; only those <= the signal length are used.
STFT_SIZES = (1024, 256, 64, 16)
#: Frames per SSIM chunk, which bounds the float64 working memory on long videos.
SSIM_CHUNK = 8


@dataclass(frozen=True)
class Metrics:
    """Comparison of one checkpoint; kind-specific fields stay None when not applicable."""

    reference_shape: tuple[int, ...]
    native_shape: tuple[int, ...]
    reference_dtype: str
    native_dtype: str
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None  # max_abs_diff / max |reference|: comparable across kinds and scales
    mean_abs_diff: float | None = None
    rel_abs_mean_drift: float | None = None
    cosine: float | None = None
    psnr: float | None = None
    ssim: float | None = None
    snr_db: float | None = None
    stft_distance: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reference_shape"] = list(self.reference_shape)
        out["native_shape"] = list(self.native_shape)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Metrics":
        data = dict(data)
        data["reference_shape"] = tuple(data["reference_shape"])
        data["native_shape"] = tuple(data["native_shape"])
        for name in FLOAT_FIELDS:  # non-finite values travel through JSON as "inf"/"nan"
            if isinstance(data.get(name), str):
                data[name] = float(data[name])
        return cls(**data)


FLOAT_FIELDS = ("max_abs_diff", "max_rel_diff", "mean_abs_diff", "rel_abs_mean_drift", "cosine", "psnr", "ssim", "snr_db",
                "stft_distance")


def _non_finite(t: torch.Tensor) -> str | None:
    if not (t.is_floating_point() or t.is_complex()):
        return None
    nan = int(torch.isnan(t).sum())
    inf = int(torch.isinf(t).sum())
    return f"{nan} NaN and {inf} Inf values" if nan or inf else None


def compare_tensors(reference: torch.Tensor, native: torch.Tensor, kind: str = "latent") -> Metrics:
    """All metrics for one checkpoint of the given kind (see `workbench.parity.capture.KINDS`)."""
    base = dict(reference_shape=tuple(reference.shape), native_shape=tuple(native.shape),
                reference_dtype=str(reference.dtype).removeprefix("torch."),
                native_dtype=str(native.dtype).removeprefix("torch."))
    if reference.shape != native.shape:
        return Metrics(**base, error=f"shape mismatch: reference {list(reference.shape)} "
                                     f"vs native {list(native.shape)}")
    problems = [f"{side} has {p}" for side, p in (("reference", _non_finite(reference)),
                                                    ("native", _non_finite(native))) if p]
    if problems:
        return Metrics(**base, error="; ".join(problems))
    a = reference.detach().to("cpu", torch.float64)
    b = native.detach().to("cpu", torch.float64)
    out = dict(base, max_abs_diff=0.0, max_rel_diff=0.0, mean_abs_diff=0.0, rel_abs_mean_drift=0.0, cosine=1.0)
    if a.numel():
        diff = (a - b).abs()
        max_abs, scale = float(diff.max()), float(a.abs().max())
        out.update(max_abs_diff=max_abs, max_rel_diff=max_abs / scale if scale else (math.inf if max_abs else 0.0),
                   mean_abs_diff=float(diff.mean()),
                   rel_abs_mean_drift=rel_abs_mean_drift(a, b), cosine=cosine(a, b))
    if kind == "frames" and a.numel():
        out.update(psnr=psnr(a, b), ssim=float(ssim_per_frame(a, b).mean()) if a.dim() >= 3 else None)
    if kind == "waveform" and a.numel():
        out.update(snr_db=snr_db(a, b), stft_distance=stft_distance(a, b))
    return Metrics(**out)


def rel_abs_mean_drift(reference: torch.Tensor, native: torch.Tensor) -> float:
    """|mean|ref| - mean|nat|| / max(mean|ref|, floor): a scale change the max diff can hide."""
    ref_mean = float(reference.double().abs().mean())
    return abs(ref_mean - float(native.double().abs().mean())) / max(ref_mean, DRIFT_FLOOR)


def cosine(reference: torch.Tensor, native: torch.Tensor) -> float:
    """Cosine of the flattened tensors; two all-zero tensors agree (1), one alone does not (0)."""
    a, b = reference.double().flatten(), native.double().flatten()
    na, nb = float(a.norm()), float(b.norm())
    if na == 0.0 or nb == 0.0:
        return 1.0 if na == nb else 0.0
    return min(1.0, max(-1.0, float(torch.dot(a, b)) / (na * nb)))  # rounding can leave [-1, 1]


def psnr(reference: torch.Tensor, native: torch.Tensor, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB over the whole tensor; inf for identical inputs."""
    mse = float(((reference.double() - native.double()) ** 2).mean())
    return math.inf if mse == 0.0 else 10.0 * math.log10(data_range**2 / mse)


def _as_frames(t: torch.Tensor) -> torch.Tensor:
    """[..., H, W, C] channels-last frames -> [N, C, H, W] float64."""
    h, w, c = t.shape[-3:]
    return t.double().reshape(-1, h, w, c).permute(0, 3, 1, 2)


def _gaussian_taps(size: int, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _blur(stack: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur ("valid") of every channel: the 2-D window is the taps' outer product."""
    channels, size = stack.shape[1], taps.numel()
    rows = F.conv2d(stack, taps.view(1, 1, 1, size).expand(channels, 1, 1, size), groups=channels)
    return F.conv2d(rows, taps.view(1, 1, size, 1).expand(channels, 1, size, 1), groups=channels)


def ssim_per_frame(reference: torch.Tensor, native: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """SSIM of every frame of channels-last video [..., H, W, C] -> float64 [N] (see module doc)."""
    x_all, y_all = _as_frames(reference), _as_frames(native)
    channels, h, w = x_all.shape[1:]
    size = min(11, h, w)
    size -= 1 - size % 2
    taps = _gaussian_taps(size)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    scores = []
    for start in range(0, x_all.shape[0], SSIM_CHUNK):
        x, y = x_all[start:start + SSIM_CHUNK], y_all[start:start + SSIM_CHUNK]
        mu_x, mu_y, xx, yy, xy = _blur(torch.cat([x, y, x * x, y * y, x * y], dim=1), taps).split(channels, dim=1)
        var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
        ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
        scores.append(ssim_map.mean(dim=(2, 3)).mean(dim=1))
    return torch.cat(scores)


def psnr_per_frame(reference: torch.Tensor, native: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR of every frame of channels-last video [..., H, W, C] -> float64 [N] (inf where equal)."""
    mse = ((_as_frames(reference) - _as_frames(native)) ** 2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(data_range**2 / mse)


def snr_db(reference: torch.Tensor, native: torch.Tensor) -> float:
    """Signal-to-noise ratio in dB with the reference as signal and the difference as noise."""
    signal = float((reference.double() ** 2).sum())
    noise = float(((reference.double() - native.double()) ** 2).sum())
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def stft_sizes(length: int) -> tuple[int, ...]:
    """FFT sizes that fit a signal: the standard ones <= length, else the largest power of two."""
    fitting = tuple(n for n in STFT_SIZES if n <= length)
    return fitting or (1 << max(length.bit_length() - 1, 0),)


def stft_magnitude(signal: torch.Tensor, n_fft: int) -> torch.Tensor:
    """|STFT| of [..., T] signals with a Hann window and hop n_fft/4 (zero-padded centre frames)."""
    flat = signal.double().reshape(-1, signal.shape[-1])
    spec = torch.stft(flat, n_fft=n_fft, hop_length=max(n_fft // 4, 1),
                      window=torch.hann_window(n_fft, periodic=True, dtype=torch.float64),
                      center=True, pad_mode="constant", return_complex=True)
    return spec.abs()


def stft_distance(reference: torch.Tensor, native: torch.Tensor) -> float:
    """Multi-resolution STFT distance: mean over FFT sizes of spectral convergence + log-magnitude L1.

    Spectral convergence is ||S_ref| - |S_nat||_F / ||S_ref||_F; the log term is
    mean |log|S_ref| - log|S_nat||. 0 for identical signals.
    """
    total = []
    for n_fft in stft_sizes(reference.shape[-1]):
        ref_mag, nat_mag = stft_magnitude(reference, n_fft), stft_magnitude(native, n_fft)
        convergence = float((ref_mag - nat_mag).norm()) / max(float(ref_mag.norm()), DRIFT_FLOOR)
        log_mag = float((ref_mag.clamp_min(LOG_MAG_FLOOR).log() - nat_mag.clamp_min(LOG_MAG_FLOOR).log()).abs().mean())
        total.append(convergence + log_mag)
    return sum(total) / len(total)
