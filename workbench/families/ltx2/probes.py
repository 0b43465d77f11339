"""The probe set of this family: requests `workbench parity` runs after the preset when no
--set is given (issue 16 item 5), each its own verdict row. Kept apart from reference.py so
that a probe change does not change the reference builder's fingerprint (and the goldens).
"""

from __future__ import annotations

# Probe set (issue 16 item 5): a non-square grid (packing, RoPE coordinates) and guidance 1.0 (one
# branch, no negative prompt); two steps each, the fewest LTX-2's stretched schedule allows.
PARITY_PROBES = (
    {"name": "non_square", "purpose": "height != width: token packing and the RoPE coordinates per axis",
     "request": {"height": 32, "width": 64, "num_inference_steps": 2}},
    {"name": "no_guidance", "purpose": "guidance_scale 1.0 (audio follows): one main branch, no negative prompt",
     "request": {"guidance_scale": 1.0, "num_inference_steps": 2}},
)
