#!/usr/bin/env bash
# Device recipe for the full-size Wan 2.1 runs on one H200 (issue 16 item 7, issue 20):
# the CUDA self-check at 480x832x81 and the GPU notebooks. Run from the repository root on the
# device machine, one STEP per call or several chained:
#   bash benchmarks/gpu_fullsize.sh install            # wheels carried in .whl/ (see NOTES.md)
#   bash benchmarks/gpu_fullsize.sh ffmpeg             # imageio-ffmpeg carried in .ffx/ (mp4 output)
#   bash benchmarks/gpu_fullsize.sh build              # build-reference wan_t2v --scale full
#   bash benchmarks/gpu_fullsize.sh start NAME ARGS..  # a detached `workbench selfcheck` (outlives the call)
#   bash benchmarks/gpu_fullsize.sh wait NAME SECONDS  # until it ends or SECONDS pass; log + JSON to $OUT
#   bash benchmarks/gpu_fullsize.sh notebooks          # 03, 04 (fast) and 06 through papermill
# A full-size self-check outlasts one call (10 min): it runs in its own session (setsid) and
# writes its JSON after the setup and after every fault, so later calls only wait and collect.
set -uo pipefail
REPO=$(pwd)
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 WORKBENCH_CACHE=/tmp/wbcache MODEL=/tmp/wan_full
export PYTHONPATH=/tmp/site:$REPO
OUT=${OUT:-/tmp/out}
WB="python3 -m workbench.cli"
PRESET=(--preset wan2.1-1.3b-480p --set num_inference_steps=3)

gpu() { nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader | tr '\n' ' '; }

while [ $# -gt 0 ]; do
  step=$1; shift
  case $step in
    install)
      [ -f /tmp/site/.installed ] || { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target /tmp/site .whl/*.whl && touch /tmp/site/.installed; } || exit 1
      mkdir -p $WORKBENCH_CACHE/references
      python3 - <<'EOF' || exit 1
# the tiny build this checkout's port state records were made on (carried: it is 1 MB)
import os, shutil
from pathlib import Path
from workbench import registry
from workbench.references import builder_fingerprint, cache_root
f = registry.get_family("wan_t2v")
p = cache_root() / "references" / f"{f.name}-tiny-{builder_fingerprint(f)}"
if Path(".whl/tinyref/wan_t2v-tiny").is_dir() and not p.exists():
    shutil.copytree(".whl/tinyref/wan_t2v-tiny", p)
print("tiny reference:", p, p.exists())
EOF
      python3 -c "import torch, diffusers, transformers, papermill; print(torch.__version__, diffusers.__version__, transformers.__version__, papermill.__version__, torch.cuda.get_device_name())"
      ;;
    stash)
      # the imageio-ffmpeg binary (48 MB xz) does not fit one transfer beside the wheels: part 1
      # travels with the wheels (.ffx), part 2 with the next call (.ffx2)
      cp .ffx/ffmpeg.part1 .ffx/imageio_ffmpeg_py.tar /tmp/ && echo "stashed ffmpeg part 1"
      ;;
    ffmpeg)
      tar xf /tmp/imageio_ffmpeg_py.tar -C /tmp/site && python3 -c "
import lzma, os, shutil
d = '/tmp/site/imageio_ffmpeg/binaries/ffmpeg-linux-x86_64-v9.0.2'
with open('/tmp/ffmpeg.xz', 'wb') as whole:
    for part in ('/tmp/ffmpeg.part1', '.ffx2/ffmpeg.part2'):
        with open(part, 'rb') as f:
            shutil.copyfileobj(f, whole, 1 << 24)
with lzma.open('/tmp/ffmpeg.xz') as src, open(d, 'wb') as dst:
    shutil.copyfileobj(src, dst, 1 << 24)
os.chmod(d, 0o755)
import imageio_ffmpeg; print('ffmpeg', imageio_ffmpeg.get_ffmpeg_exe())" || exit 1
      ;;
    build)
      t0=$SECONDS
      [ -f $MODEL/converted/model_index.json ] || $WB build-reference wan_t2v --scale full --out $MODEL || exit 1
      echo "build: $((SECONDS - t0)) s"; du -sh $MODEL/official $MODEL/converted; df -h /tmp | tail -1
      ;;
    start)
      name=$1; shift; args=()
      while [ $# -gt 0 ] && [ "$1" != "--" ]; do args+=("$1"); shift; done; [ $# -gt 0 ] && shift
      setsid bash -c "echo \$\$ > /tmp/$name.pid; exec $WB selfcheck wan_t2v ${args[*]} --device cuda --model-dir $MODEL \
        ${PRESET[*]} --json /tmp/$name.json" > /tmp/$name.log 2>&1 < /dev/null &
      sleep 2; echo "started $name: pid $(cat /tmp/$name.pid)"
      ;;
    wait)
      name=$1 limit=$2; shift 2; t0=$SECONDS; last=0
      while kill -0 "$(cat /tmp/$name.pid)" 2>/dev/null && [ $((SECONDS - t0)) -lt $limit ]; do
        sleep 5
        if [ $((SECONDS - last)) -ge 60 ]; then last=$SECONDS; echo "[$((SECONDS - t0)) s] gpu $(gpu)| $(grep -v Warning /tmp/$name.log | tail -1 | cut -c1-150)"; fi
      done
      kill -0 "$(cat /tmp/$name.pid)" 2>/dev/null && echo "$name still running" || echo "$name finished"
      mkdir -p $OUT; cp /tmp/$name.log $OUT/ 2>/dev/null; cp /tmp/$name.json $OUT/ 2>/dev/null
      grep -v -i "warn" /tmp/$name.log | tail -40
      ;;
    notebooks)
      # 03 and 06 declare no model_dir: they load the cached reference, so that path points at the
      # full build for this run (04 gets model_dir); recorded in benchmarks/NOTES.md.
      python3 - <<'EOF'
import os
from pathlib import Path
from workbench import registry
from workbench.references import builder_fingerprint, cache_root
f = registry.get_family("wan_t2v")
p = cache_root() / "references" / f"{f.name}-tiny-{builder_fingerprint(f)}"
if p.exists() and not p.is_symlink():
    p.rename(p.with_name(p.name + ".tiny"))
if not p.exists():
    p.symlink_to(os.environ["MODEL"])
print(p, "->", os.readlink(p))
EOF
      t0=$SECONDS
      $WB run wan_t2v --notebooks 03,04,06 --set device=cuda --set preset=wan2.1-1.3b-480p --set steps=3 \
        --set mode=fast --set model_dir=$MODEL --set runs=3 --out /tmp/nbrun --force --jobs 1
      echo "notebooks: $((SECONDS - t0)) s"; ls -la /tmp/nbrun; cat /tmp/nbrun/summary.txt
      mkdir -p $OUT/notebooks_cuda; cp /tmp/nbrun/*.ipynb /tmp/nbrun/summary.txt $OUT/notebooks_cuda/ 2>/dev/null
      # 04 on the full build is refused by the model-files gate (its component records cover the
      # tiny build's files): 04 again on the tiny build the records cover, at the full-size preset
      t0=$SECONDS
      mkdir -p /tmp/wbcache_tiny/references
      WORKBENCH_CACHE=/tmp/wbcache_tiny python3 - <<'EOF'
import shutil
from workbench import registry
from workbench.references import builder_fingerprint, cache_root
f = registry.get_family("wan_t2v")
p = cache_root() / "references" / f"{f.name}-tiny-{builder_fingerprint(f)}"
if not p.exists():
    shutil.copytree("/tmp/wbcache/references/" + p.name + ".tiny", p)
print("tiny reference:", p)
EOF
      WORKBENCH_CACHE=/tmp/wbcache_tiny $WB run wan_t2v --notebooks 04 --set device=cuda --set preset=wan2.1-1.3b-480p \
        --set steps=3 --set mode=fast --out /tmp/nbrun_tiny --force --jobs 1
      echo "notebook 04 (tiny build): $((SECONDS - t0)) s"; cat /tmp/nbrun_tiny/summary.txt
      mkdir -p $OUT/notebooks_cuda_tiny; cp /tmp/nbrun_tiny/*.ipynb /tmp/nbrun_tiny/summary.txt $OUT/notebooks_cuda_tiny/ 2>/dev/null
      ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
