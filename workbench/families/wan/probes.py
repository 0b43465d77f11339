"""The probe set of this family: requests `workbench parity` runs after the preset when no
--set is given (issue 16 item 5), each its own verdict row. Kept apart from reference.py so
that a probe change does not change the reference builder's fingerprint (and the goldens).
"""

from __future__ import annotations

# The probe set `workbench parity` runs without --set (issue 16 item 5): edge paths the preset does not
# exercise, each its own verdict row, few steps each (the tiny runs stay cheap).
PROMPT_CLEANING_PROBE = {
    "name": "prompt_cleaning", "purpose": "HTML entities and runs of spaces go through the official prompt_clean",
    "request": {"prompt": "  a cat &amp; a dog &lt;3   walking   in the  rain, &quot;cinematic&quot; ",
                "num_inference_steps": 1}}
PARITY_PROBES = (
    PROMPT_CLEANING_PROBE,
    {"name": "non_square", "purpose": "height != width: latent grid, patching and RoPE axes in the right order",
     "request": {"height": 32, "width": 48, "num_inference_steps": 2}},
    {"name": "no_guidance", "purpose": "guidance_scale 1.0: one branch, no negative prompt encoded",
     "request": {"guidance_scale": 1.0, "num_inference_steps": 2}},
)
