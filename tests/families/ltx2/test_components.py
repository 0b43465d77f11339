"""Component parity for ltx2: each recorded component rerun for real, exact (fp32 CPU)."""

import pytest

from workbench.portstate.testing import assert_component_parity, component_params

FAMILY = "ltx2"


@pytest.mark.parametrize("component", component_params(FAMILY))
def test_component_parity(component):
    assert_component_parity(FAMILY, component)
