"""Port state: the gates of a port, kept honestly and computed instead of written as prose.

- `state`: `port_state.yaml` per family folder (components, questions, issues, escape
  hatches, decisions, recorded gate results), loaded and validated;
- `components`: component parity (official class vs the workbench loader, seeded inputs),
  the only code that changes a component's status;
- `gates`: the gate sequence component parity -> smoke -> pipeline parity -> example;
- `report`: PORT_STATUS.md, generated; `handoff`: the pipeline handoff report;
- `scaffold`: `workbench new-family`.
"""
