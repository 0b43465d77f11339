"""GPU benchmark: diffusers `WanPipeline` (default and best configuration) vs the native fast mode.

Three sides in one process on the same weights (Wan2.1-T2V-1.3B architecture, random init
from `build-reference --scale full`, 480x832, 81 frames, guidance 5):

- ``diffusers-default``: bf16 with the VAE in fp32 (the Wan docs' recipe), eager;
- ``diffusers-best``: bf16 everywhere and `pipe.transformer.compile_repeated_blocks(fullgraph=True)`,
  default SDPA: what a user who knows diffusers writes; **the baseline the ratios use**;
- ``native``: the native fast mode (`--compile`: torch.compile per block; attention through
  `workbench/runtime/attention.py`, FA4 where it imports and holds parity, else cuDNN SDPA).

Each side: a 1-step warm-up (and compilation), an end-to-end run of `--steps` without
instrumentation (latency, peak memory), a component run (text encoder, DiT per step, VAE
decode) that also captures the checkpoints for fast-mode parity, and one end-to-end run of
the official `--long-steps` (50). Each pipeline is unloaded before the next side loads, so
each peak memory is that side's own. Parity: native vs diffusers-default (the official
reduced-precision way, as `workbench parity --mode fast`), and native vs diffusers-best.

    python benchmarks/gpu_pipeline.py --model-dir /tmp/wan-full --compile [--steps 3 --long-steps 50]
"""

from __future__ import annotations

import argparse
import gc
import json
from pathlib import Path
from types import SimpleNamespace

import torch

from workbench import registry
from workbench.api.generate import load_pipeline
from workbench.families.offline import quiet_hf
from workbench.families.wan import reference as wan_reference
from workbench.families.wan.flops import dit_forward_flops, video_tokens
from workbench.io import atomic_write_text
from workbench.parity.capture import CaptureHooks, CaptureSet
from workbench.parity.compare import compare_captures
from workbench.perf.measure import ModuleTimer, make_record, peak_memory, timed
from workbench.perf.records import write_records
from workbench.references import build_reference, versions
from workbench.runtime import attention as attention_backends

PEAK_BF16_TFLOPS = 790.0  # measured 8192^3 bf16 matmul on this H200 (device KINDS.md)
BASELINE_VARIANT = "diffusers-bf16-compiled"
VARIANTS = {"diffusers_default": "diffusers-bf16", "diffusers_best": BASELINE_VARIANT}
# The issue-21 targets, each against diffusers best at fast parity.
TARGETS = {"e2e_ratio_50_steps<=0.85": 0.85, "dit_mfu>=0.80": 0.80, "vae_decode_s<=1.0": 1.0,
           "peak_memory<=diffusers_best": 1.0}


def free(device) -> None:
    gc.collect()  # the last pipeline is gone: the next side's peak memory is its own
    if device.type == "cuda":
        torch.cuda.empty_cache()


def reference_side(official: Path, params, device, best: bool, long_steps: int) -> dict:
    if best:  # bf16 everywhere (VAE too) and the repeated blocks compiled, as a diffusers user writes it
        pipe = wan_reference.load_official(official, device, dtype=torch.bfloat16)
        pipe.transformer.compile_repeated_blocks(fullgraph=True)
    else:
        pipe = wan_reference.load_official(official, device, dtype=torch.bfloat16, fp32_modules=("vae",))
    _, warm_s = timed(lambda: wan_reference.run_reference(official, params.replace(num_inference_steps=1), device,
                                                          pipe=pipe), device)  # warm-up (and compilation)
    with peak_memory(device) as peak:
        _, e2e = timed(lambda: wan_reference.run_reference(official, params, device, pipe=pipe), device)
    timer = ModuleTimer(device)
    timer.wrap("text_encoder", pipe.text_encoder)
    timer.wrap("transformer", pipe.transformer)
    timer.wrap("vae_decode", pipe.vae, "decode")
    capture, _ = wan_reference.run_reference(official, params, device, pipe=pipe)
    timer.remove()
    long = {}
    if long_steps:
        with peak_memory(device) as long_peak:
            _, long_e2e = timed(lambda: wan_reference.run_reference(
                official, params.replace(num_inference_steps=long_steps), device, pipe=pipe), device)
        long = {"latency_s": long_e2e, "peak_memory_mb": long_peak["peak_mb"]}
    steps = params.num_inference_steps
    del pipe
    return {"latency_s": e2e, "peak_memory_mb": peak["peak_mb"], "text_encoder_s": timer.seconds["text_encoder"],
            "dit_s": timer.seconds["transformer"] / steps, "vae_decode_s": timer.seconds["vae_decode"],
            "dit_calls_per_step": timer.calls["transformer"] // steps, "warmup_s": warm_s, "capture": capture,
            "long": long}


def native_side(converted: Path, params, device, compile: bool, long_steps: int) -> dict:
    family = registry.get_family("wan_t2v")
    pipe = load_pipeline(converted, device=device, mode="fast", compile=compile, progress=False)
    fast = params.replace(stage_overrides=family.fast.stage_overrides)
    _, warm_s = timed(lambda: pipe(fast.replace(num_inference_steps=1)), device)  # warm-up (and compilation)

    def run(p):
        batch = pipe(p)
        batch.output = batch.output.cpu()  # the reference returns frames on the host too
        return batch

    with peak_memory(device) as peak:
        batch, e2e = timed(lambda: run(fast), device)
    t = batch.stage_timings  # stages sync only at their ends: nothing inside the loop
    capture = CaptureSet()
    pipe(fast, hooks=CaptureHooks(capture))
    long = {}
    if long_steps:
        with peak_memory(device) as long_peak:
            long_batch, long_e2e = timed(lambda: run(fast.replace(num_inference_steps=long_steps)), device)
        long = {"latency_s": long_e2e, "peak_memory_mb": long_peak["peak_mb"],
                "dit_s": long_batch.stage_timings["DenoisingStage"] / long_steps,
                "stage_timings": long_batch.stage_timings}
    steps = params.num_inference_steps
    del pipe
    return {"latency_s": e2e, "peak_memory_mb": peak["peak_mb"], "text_encoder_s": t["TextEncodingStage"],
            "dit_s": t["DenoisingStage"] / steps, "vae_decode_s": t["DecodingStage"],
            "dit_calls_per_step": 1, "warmup_s": warm_s, "capture": capture, "stage_timings": t, "long": long}


def ratio(a, b):
    return a / b if a is not None and b else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("/tmp/wan-full"))
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--long-steps", type=int, default=50, help="the official step count, one run per side (0: skip)")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--scale", default="full", choices=("tiny", "full"), help="tiny: a CPU dry run of the script")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    quiet_hf()
    device = torch.device(args.device)
    family = registry.get_family("wan_t2v")
    if not (args.model_dir / "converted" / "model_index.json").is_file():
        _, build_s = timed(lambda: build_reference(family, args.model_dir, args.scale), device)
        print(f"built {args.scale} reference in {build_s:.1f}s", flush=True)
    params = family.sampling_params("wan2.1-1.3b-480p", {
        "height": args.height, "width": args.width, "num_frames": args.frames,
        "num_inference_steps": args.steps, "seed": 0})

    sides = {}
    for side, best in (("diffusers_default", False), ("diffusers_best", True)):
        sides[side] = reference_side(args.model_dir / "official", params, device, best, args.long_steps)
        free(device)
        print(f"{side}: e2e {sides[side]['latency_s']:.2f} s, DiT {sides[side]['dit_s']:.3f} s/step, "
              f"{args.long_steps} steps {sides[side]['long'].get('latency_s', float('nan')):.2f} s", flush=True)
    sides["native"] = native_side(args.model_dir / "converted", params, device, args.compile, args.long_steps)
    print(f"native: e2e {sides['native']['latency_s']:.2f} s, DiT {sides['native']['dit_s']:.3f} s/step, "
          f"{args.long_steps} steps {sides['native']['long'].get('latency_s', float('nan')):.2f} s", flush=True)
    native_capture = sides["native"].pop("capture")
    verdicts = {ref: compare_captures(sides[ref].pop("capture"), native_capture, mode="fast", family="wan_t2v",
                                      preset="wan2.1-1.3b-480p", parameters=params.to_json_dict())
                for ref in ("diffusers_default", "diffusers_best")}

    cfg = SimpleNamespace(**wan_reference.TRANSFORMER_SIZES[args.scale])
    flops = dit_forward_flops(cfg, video_tokens(cfg, args.height, args.width, args.frames),
                              params.max_sequence_length)
    recipe = {"family": "wan_t2v", "scale": args.scale, "height": args.height, "width": args.width,
              "frames": args.frames, "steps": args.steps, "prompt": params.prompt}
    native_variant = "native-fast" + ("-compile" if args.compile else "")
    attn_sel = attention_backends.selection(device, torch.bfloat16) if device.type == "cuda" else None
    attention = {"backend": attn_sel.backend, "reason": attn_sel.reason, "probe": attn_sel.probe} if attn_sel else None
    # Two files, each in side order (default, best, native), so the committed-history view pairs
    # each native record with the diffusers-best record of its own recipe.
    records, long_records, summary = [], [], {"baseline_variant": BASELINE_VARIANT}
    for side, r in sides.items():
        variant = VARIANTS.get(side, native_variant)
        mfu = 2 * flops / r["dit_s"] / (PEAK_BF16_TFLOPS * 1e12)  # two guidance branches per step
        summary[side] = {k: v for k, v in r.items() if k != "stage_timings"} | {"dit_mfu": mfu, "variant": variant}
        extra = {"dit_mfu": mfu, "dit_tflop_per_forward": flops / 1e12}
        if side == "native" and attention:
            extra["attention_backend"] = attention["backend"]
        records.append(make_record(
            model_id="Wan2.1-T2V-1.3B (random init)", workload_id="t2v-480x832x81", variant_id=variant,
            recipe=recipe, latency_s=r["latency_s"], frames=args.frames, peak_memory_mb=r["peak_memory_mb"],
            text_encoder_s=r["text_encoder_s"], dit_s=r["dit_s"], vae_decode_s=r["vae_decode_s"], exact=True,
            extra=extra))
        if r["long"]:
            long_records.append(make_record(  # end to end only: no component breakdown at the long step count
                model_id="Wan2.1-T2V-1.3B (random init)", workload_id="t2v-480x832x81", variant_id=variant,
                recipe=recipe | {"steps": args.long_steps}, latency_s=r["long"]["latency_s"], frames=args.frames,
                peak_memory_mb=r["long"]["peak_memory_mb"], exact=True,
                extra=extra | {"component_breakdown": False}))
    keys = ("latency_s", "dit_s", "vae_decode_s", "text_encoder_s", "peak_memory_mb")
    summary["ratios"] = {k: ratio(summary["native"][k], summary["diffusers_best"][k]) for k in keys}  # vs best
    summary["ratios_vs_default"] = {k: ratio(summary["native"][k], summary["diffusers_default"][k]) for k in keys}
    summary["ratios_best_vs_default"] = {k: ratio(summary["diffusers_best"][k], summary["diffusers_default"][k])
                                         for k in keys}
    long_lat = {side: sides[side]["long"].get("latency_s") for side in sides}
    summary["e2e_ratio_50_steps"] = ratio(long_lat["native"], long_lat["diffusers_best"])
    summary["e2e_ratio_50_steps_vs_default"] = ratio(long_lat["native"], long_lat["diffusers_default"])
    summary["long_steps"] = args.long_steps
    summary["attention"] = attention
    summary["parity"] = {ref: {"passed": v.passed, "table": v.summary_table()} for ref, v in verdicts.items()}
    summary["versions"] = versions()
    nat, best = summary["native"], summary["diffusers_best"]
    measured = {"e2e_ratio_50_steps<=0.85": summary["e2e_ratio_50_steps"], "dit_mfu>=0.80": nat["dit_mfu"],
                "vae_decode_s<=1.0": nat["vae_decode_s"],
                "peak_memory<=diffusers_best": ratio(nat["peak_memory_mb"], best["peak_memory_mb"])}
    summary["targets"] = {name: {"measured": measured[name], "target": TARGETS[name],
                                 "met": measured[name] is not None and (measured[name] >= TARGETS[name]
                                                                        if name.startswith("dit_mfu")
                                                                        else measured[name] <= TARGETS[name])}
                          for name in TARGETS}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "gpu_wan_t2v" + ("_compile" if args.compile else "")
    write_records(args.out / f"{stem}_records.json", records)
    if long_records:
        write_records(args.out / f"{stem}_{args.long_steps}steps_records.json", long_records)
    atomic_write_text(args.out / f"{stem}_summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "parity"}, indent=2, default=str))
    for ref, v in verdicts.items():
        print(f"parity native vs {ref}:")
        print(v.summary_table())


if __name__ == "__main__":
    main()
