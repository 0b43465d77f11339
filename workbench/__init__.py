"""Porting Workbench: port diffusion model families to a stage-based pipeline and prove parity."""

__version__ = "0.1.0"
