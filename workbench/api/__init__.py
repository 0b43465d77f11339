"""Public entry points: parameters, presets, workload types and `generate()`."""
