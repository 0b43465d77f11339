"""Native components (library token `workbench` in a manifest, or FastMode.module_classes).

A native component reads the official folder: `read_config(folder)` and
`convert_state_dict(state)` turn the official config and weights into its own, and the
strict loader refuses anything left over or missing.
"""

from workbench.components.wan_transformer import WanTransformer

__all__ = ["WanTransformer"]
