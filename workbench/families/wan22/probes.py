"""The probe set of this family: requests `workbench parity` runs after the preset when no
--set is given (issue 16 item 5), each its own verdict row. Kept apart from reference.py so
that a probe change does not change the reference builder's fingerprint (and the goldens).
"""

from __future__ import annotations

from workbench.families.wan.probes import PROMPT_CLEANING_PROBE

# Probe set (issue 16 item 5): tiny-ci's 4 steps run at t = 999, 900, 750, 500, so boundary 0.9 puts
# step 1 exactly on the boundary (900 >= 0.9 * 1000: the high-noise expert runs it, `>=` not `>`).
PARITY_PROBES = (
    {"name": "boundary_on_a_timestep", "purpose": "a timestep exactly on boundary_ratio * num_train_timesteps "
                                                  "(the switch is t >= boundary)",
     "request": {"boundary_ratio": 0.9}},
    PROMPT_CLEANING_PROBE,
)
