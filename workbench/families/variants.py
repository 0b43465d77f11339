"""Component variants of a reference build: `build-reference FAMILY --variant scheduler=<Cls>`.

A variant swaps one module of the built official pipeline for another class the official
pipeline allows: a class its `__init__` annotation names for that module, or, for a
scheduler, one listed as compatible with the built scheduler (`scheduler.compatibles`). The
new module is made from the built one's config (`Cls.from_config(config)`, what a user does
to switch samplers) and written to both `official/` and `converted/` with their
`model_index.json` entries; weights-bearing modules are not swapped (their weights would be
new, untested random ones).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from workbench.errors import ParameterError


def parse_variants(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        module, sep, cls = item.partition("=")
        if not sep or not module.strip() or not cls.strip():
            raise ParameterError(f"--variant {item!r}: expected MODULE=Class (e.g. scheduler=UniPCMultistepScheduler)")
        if module.strip() in out:
            raise ParameterError(f"--variant {module.strip()}: given twice")
        out[module.strip()] = cls.strip()
    return out


def allowed_classes(family, module: str, built) -> list[str]:
    """The classes the official pipeline allows for `module` (the built one first)."""
    from workbench.portstate.scaffold import official_class, official_modules

    spec = {m.name: m for m in official_modules(official_class(family.official_pipeline))}.get(module)
    if spec is None:
        return []
    names = [spec.class_name, *spec.alternatives]
    if spec.kind == "scheduler" and hasattr(built, "compatibles"):
        names += [c.__name__ for c in built.compatibles]
    return list(dict.fromkeys([type(built).__name__, *names]))


def apply_variants(family, root: Path, variants: dict[str, str]) -> dict[str, str]:
    """Swap each module in `root/official` and `root/converted`; returns module -> class written."""
    import diffusers

    official_index = json.loads((root / "official" / "model_index.json").read_text())
    applied = {}
    for module, cls_name in variants.items():
        if module not in official_index or not isinstance(official_index[module], list):
            modules = sorted(k for k, v in official_index.items() if isinstance(v, list))
            raise ParameterError(f"--variant {module}={cls_name}: {family.official_pipeline} has no module "
                                 f"{module!r} (modules: {', '.join(modules)})")
        library, built_name = official_index[module]
        built_cls = getattr(diffusers, built_name, None)
        if built_cls is None or not hasattr(built_cls, "from_config") or "Scheduler" not in built_name:
            raise ParameterError(f"--variant {module}={cls_name}: only scheduler variants are built "
                                 f"({module} is {library}.{built_name}, which carries weights)")
        built = built_cls.from_pretrained(root / "official" / module)
        allowed = allowed_classes(family, module, built)
        if cls_name not in allowed:
            raise ParameterError(f"--variant {module}={cls_name}: not a class {family.official_pipeline} allows "
                                 f"for {module} (allowed: {', '.join(sorted(allowed))})")
        new = getattr(diffusers, cls_name).from_config(built.config)
        for side in ("official", "converted"):
            folder = root / side / module
            shutil.rmtree(folder)
            new.save_pretrained(folder)
            index_path = root / side / "model_index.json"
            index = json.loads(index_path.read_text())
            index[module] = ["diffusers", cls_name]
            index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
        applied[module] = cls_name
    return applied
