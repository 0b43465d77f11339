"""The probe set of this family: requests `workbench parity` runs after the preset when no
--set is given (issue 16 item 5), each its own verdict row. Kept apart from reference.py so
that a probe change does not change the reference builder's fingerprint (and the goldens).
"""

from __future__ import annotations

from workbench.families.wan.probes import PROMPT_CLEANING_PROBE

# Probe set (issue 16 item 5): a non-square request (image resize and latent grid) without guidance,
# and the prompt cleaning path.
PARITY_PROBES = (
    {"name": "non_square_no_guidance", "purpose": "height != width (the image is resized to it) with "
                                                  "guidance_scale 1.0 (one branch)",
     "request": {"height": 32, "width": 48, "guidance_scale": 1.0, "num_inference_steps": 2}},
    PROMPT_CLEANING_PROBE,
)
