"""Denoising step context shared by every loop, so trace step filters work on both sides."""

from __future__ import annotations

_current_step: int | None = None


def set_step(step: int | None) -> None:
    """Called by every denoising loop (native and reference) before each step; None after."""
    global _current_step
    _current_step = step


def current_step() -> int | None:
    return _current_step
