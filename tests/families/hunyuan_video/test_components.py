"""Component parity for hunyuan_video: each recorded component rerun for real, exact (fp32 CPU)."""

import pytest

from workbench.portstate.testing import assert_component_parity, component_params

FAMILY = "hunyuan_video"


@pytest.mark.parametrize("component", component_params(FAMILY))
def test_component_parity(component):
    assert_component_parity(FAMILY, component)
