"""Component-parity probes: the Wan classes, shared with the Wan 2.1 family."""

from workbench.families.wan.component_probes import PROBES

__all__ = ["PROBES"]
