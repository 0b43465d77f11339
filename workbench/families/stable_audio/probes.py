"""The probe set of this family: requests `workbench parity` runs after the preset when no
--set is given (issue 16 item 5), each its own verdict row. Kept apart from reference.py so
that a probe change does not change the reference builder's fingerprint (and the goldens).
"""

from __future__ import annotations

# Probe set (issue 16 item 5): a window inside the model's 2 s (seconds conditioning and the decode
# cut), and no guidance (the batched call with one branch).
PARITY_PROBES = (
    {"name": "partial_window", "purpose": "audio_start_in_s > 0 and audio_end_in_s below the maximum: the "
                                          "seconds conditioning and the cut of the decoded waveform",
     "request": {"audio_start_in_s": 0.5, "audio_end_in_s": 1.25, "num_inference_steps": 2}},
    {"name": "no_guidance", "purpose": "guidance_scale 1.0: one branch, no uncond half",
     "request": {"guidance_scale": 1.0, "num_inference_steps": 2}},
)
