"""`workbench families`: what is registered."""

from __future__ import annotations


def configure(parser) -> None:
    pass


def run(args) -> int:
    from workbench import registry

    rows = [("family", "pipeline class", "official", "workload", "presets")]
    for fam in registry.FAMILIES.values():
        presets = ", ".join(f"{p.name}@v{p.version}" + ("*" if p.name == fam.default_preset else "")
                            for p in registry.PRESETS.for_family(fam.name))
        rows.append((fam.name, fam.pipeline_class.__name__, fam.official_pipeline, fam.workload.name, presets))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print("(* = default preset)")
    return 0
