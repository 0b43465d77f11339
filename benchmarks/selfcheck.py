"""The parity self-check over every family and mode on this machine (issue 16, item 7).

    python benchmarks/selfcheck.py [--modes fast,exact,fp32] [--families ...] [--device cpu]

Writes benchmarks/results/selfcheck_<family>_<mode>_<device>.json (the full per-fault rows)
and selfcheck_summary_<device>_<modes>.json (rates per family and mode; in fast/fp32 modes also the
"before" rates: the same faulty runs judged by the fixed table without config diff).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> int:
    from workbench import registry
    from workbench.io import atomic_write_text
    from workbench.parity.selfcheck import run_selfcheck, summary_lines

    parser = argparse.ArgumentParser()
    parser.add_argument("--modes", default="fast,exact,fp32")
    parser.add_argument("--families", default=",".join(sorted(registry.FAMILIES)))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model-dir")
    parser.add_argument("--resummarise", action="store_true",
                        help="recompute rates and summaries from the committed per-family JSON files")
    args = parser.parse_args(argv)
    if args.resummarise:
        return resummarise()
    dev = args.device.split(":")[0]
    summary_path = RESULTS / f"selfcheck_summary_{dev}_{args.modes.replace(',', '_')}.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    for mode in args.modes.split(","):
        for family in args.families.split(","):
            result = run_selfcheck(family, mode=mode, device=args.device, model_dir=args.model_dir)
            print("\n".join(summary_lines(result)), flush=True)
            atomic_write_text(RESULTS / f"selfcheck_{family}_{mode}_{dev}.json",
                              json.dumps(result, indent=1, sort_keys=True, default=str) + "\n")
            rates = result["rates"]
            summary.setdefault(family, {})[mode] = {
                "clean_passes": result["clean"]["passed"], "clean_worst_ratio": result["clean"]["worst_ratio_to_bound"],
                "tolerance": result["tolerance"], "total_s": round(result["total_s"], 1),
                **{group: {k: rates[group][k] for k in ("detected", "localised", "detected_numerically",
                                                        "before_fixed_table_detected")}
                   for group in rates if isinstance(rates[group], dict)},
                "not_exercised": rates["not_exercised"], "not_applicable": rates["not_applicable"],
                "errors": rates["errors"], "versions": result["versions"]}
            atomic_write_text(summary_path, json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return 0


def summary_row(result: dict) -> dict:
    rates = result["rates"]
    return {"clean_passes": result["clean"]["passed"], "clean_worst_ratio": result["clean"]["worst_ratio_to_bound"],
            "tolerance": result["tolerance"], "total_s": round(result["total_s"], 1),
            **{group: {k: rates[group][k] for k in ("detected", "localised", "detected_numerically",
                                                    "before_fixed_table_detected", "before_fixed_table_localised")}
               for group in rates if isinstance(rates[group], dict)},
            "not_exercised": rates["not_exercised"], "not_applicable": rates["not_applicable"],
            "errors": rates["errors"], "versions": result["versions"]}


def resummarise() -> int:
    from workbench.io import atomic_write_text
    from workbench.parity.selfcheck import FaultResult, rates

    summary: dict = {}
    for path in sorted(RESULTS.glob("selfcheck_*_*_*.json")):
        if path.name.startswith("selfcheck_summary"):
            continue
        result = json.loads(path.read_text())
        result["rates"] = rates([FaultResult(**row) for row in result["faults"]])
        atomic_write_text(path, json.dumps(result, indent=1, sort_keys=True, default=str) + "\n")
        dev = path.stem.rsplit("_", 1)[1]
        summary.setdefault(dev, {}).setdefault(result["family"], {})[result["mode"]] = summary_row(result)
    for dev, rows in summary.items():
        for old in RESULTS.glob(f"selfcheck_summary_{dev}_*.json"):
            old.unlink()
        atomic_write_text(RESULTS / f"selfcheck_summary_{dev}.json", json.dumps(rows, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
