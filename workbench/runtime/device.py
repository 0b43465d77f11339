"""Device resolution: CUDA when present, CPU otherwise. Importing never touches CUDA."""

from __future__ import annotations

import torch

from workbench.errors import ParameterError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(requested: str | torch.device | None = "auto") -> torch.device:
    """Map 'auto' | 'cpu' | 'cuda[:N]' to a torch.device, refusing CUDA where there is none."""
    if isinstance(requested, torch.device):
        requested = str(requested)
    requested = requested or "auto"
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cpu":
        return torch.device("cpu")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ParameterError(f"device {requested!r} requested but CUDA is not available on this machine (use 'cpu' or 'auto')")
        return torch.device(requested)
    raise ParameterError(f"device {requested!r} is not one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, on CUDA only (CPU work is already synchronous)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
