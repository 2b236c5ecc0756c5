#!/usr/bin/env bash
# The GPU suite: CUDA extras, the `gpu` tests and the GPU benchmarks, in about 10 minutes, into one JSON.
#
#   bash benchmarks/gpu_suite.sh --out results.json           # on a CUDA machine
#   bash benchmarks/gpu_suite.sh --cpu-smoke --out smoke.json # tiny sizes on CPU: checks the plumbing (CI)
#   options: --no-install (skip pip), --peak-tflops N (dense bf16 peak of the card; default 989, H100/H200)
#
# Steps (each under its own time limit, so one slow or failing step costs only itself):
#   install     pip install of the pinned CUDA extras (liger-kernel, bitsandbytes; flash-attn on its own)
#   gpu_tests   pytest -m gpu tests/gpu (flash-attention varlen, bf16/FSDP2 mixed precision, QLoRA, fused loss)
#   lora_7b     LoRA step of the released stage-1 architecture (random weights), 8,192 tokens, bf16:
#               ours (trainer.loss.impl=auto) beside the official way (full logits); peak memory, tok/s, MFU
#   full_1b     full-parameter step of the stage-2 1B architecture at 8,192 tokens: MFU
#   music_30s   30 s of music: stage 1 with CFG (7B) + stage 2 (1B), random weights, beside the official loops
#   stage1_compiled  stage 1 (10 s of music) with the static KV cache and the torch.compile'd step
#   codec       codec encode/decode real-time factor (released architecture, random weights, bf16)
# The JSON holds per step: its exit status, seconds, and the benchmark's own figures.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
PY="${PYTHON:-python}"
OUT="gpu_suite.json"
SMOKE=0
INSTALL=1
PEAK=989
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --cpu-smoke) SMOKE=1; INSTALL=0; shift ;;
    --no-install) INSTALL=0; shift ;;
    --peak-tflops) PEAK="$2"; shift 2 ;;
    *) echo "gpu_suite.sh: unknown option $1 (use --out PATH, --cpu-smoke, --no-install, --peak-tflops N)" >&2; exit 2 ;;
  esac
done
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$REPO"

# step NAME LIMIT_S CMD...: run CMD under a time limit; stdout/stderr and timing land in $WORK/NAME.*
step() {
  local name="$1" limit="$2"; shift 2
  echo "== $name (limit ${limit}s): $*" >&2
  local t0; t0=$(date +%s.%N)
  timeout "$limit" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
  local rc=$?
  echo "$rc $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')" >"$WORK/$name.status"
  tail -n 3 "$WORK/$name.err" >&2
}

if [ "$SMOKE" = 1 ]; then
  step lora_7b 300 "$PY" benchmarks/train_step.py --arch tiny_s1 --seq-len 64 --steps 1 --warmup 0 --threads 1 \
    --modes ours,official,ours:chunked --json "$WORK/lora_7b.json"
  step full_1b 300 "$PY" benchmarks/train_step.py --full --arch tiny_s2 --seq-len 64 --steps 1 --warmup 0 --threads 1 \
    --loss-impl chunked --modes single,fsdp2 --json "$WORK/full_1b.json"
  step music_30s 300 "$PY" benchmarks/generate.py --s1 tiny_s1 --s2 tiny_s2 --seconds 0.1 --prompt-tokens 20 \
    --naive-frames 1 --threads 1 --json "$WORK/music_30s.json"
  step codec 300 "$PY" benchmarks/codec_throughput.py --device cpu --seconds 1 --items 1 --batch-size 1 \
    --skip-upsample --threads 1
else
  if [ "$INSTALL" = 1 ]; then
    step install 60 "$PY" -m pip install "liger-kernel==0.8.5" "bitsandbytes==0.50.2"
    # flash-attn: a prebuilt wheel or nothing (building it from source takes far longer than the suite)
    step install_flash_attn 30 "$PY" -m pip install --no-build-isolation "flash-attn==2.8.3.post2"
  fi
  step gpu_tests 110 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/gpu --junitxml="$WORK/gpu_tests.xml"
  step lora_7b 100 "$PY" benchmarks/train_step.py --arch yue_s1_7b --seq-len 8192 --steps 3 --warmup 1 \
    --modes ours,official --peak-tflops "$PEAK" --json "$WORK/lora_7b.json"
  step full_1b 60 "$PY" benchmarks/train_step.py --full --arch yue_s2_1b --seq-len 8192 --steps 3 --warmup 1 \
    --modes single --peak-tflops "$PEAK" --json "$WORK/full_1b.json"
  step music_30s 140 "$PY" benchmarks/generate.py --s1 yue_s1_7b --s2 yue_s2_1b --seconds 30 --device cuda \
    --naive-tokens 200 --naive-frames 3 --json "$WORK/music_30s.json"
  step stage1_compiled 60 "$PY" benchmarks/generate.py --s1 yue_s1_7b --seconds 10 --device cuda --stages 1 \
    --naive-tokens 50 --compile --json "$WORK/stage1_compiled.json"
  step codec 40 "$PY" benchmarks/codec_throughput.py --device cuda --bf16 --seconds 30 --skip-upsample
fi

"$PY" - "$WORK" "$OUT" "$SMOKE" <<'PYEOF'
import json, platform, sys, xml.etree.ElementTree as ET
from pathlib import Path

work, out, smoke = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
try:
    import torch
    machine = torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({platform.machine()})"
except ImportError:
    machine = "unknown"
steps = {}
for status in sorted(work.glob("*.status")):
    name = status.stem
    rc, seconds = status.read_text().split()
    entry = {"rc": int(rc), "seconds": round(float(seconds), 1), "timed_out": rc in ("124", "137")}
    result = work / f"{name}.json"
    if result.exists():
        entry["result"] = json.loads(result.read_text())
    elif name == "codec":
        lines = [l for l in (work / "codec.out").read_text().splitlines() if l.startswith("{")]
        entry["result"] = json.loads(lines[-1]) if lines else None
    elif name == "gpu_tests" and (work / "gpu_tests.xml").exists():
        suite = ET.parse(work / "gpu_tests.xml").getroot()
        suite = suite if suite.tag == "testsuite" else suite[0]
        entry["result"] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    if entry["rc"] != 0:
        entry["stderr_tail"] = (work / f"{name}.err").read_text()[-1500:]
    steps[name] = entry
report = {"machine": machine, "cpu_smoke": smoke, "steps": steps}
out.write_text(json.dumps(report, indent=1))
print(json.dumps({n: {"rc": s["rc"], "seconds": s["seconds"]} for n, s in steps.items()}))
sys.exit(0 if all(s["rc"] == 0 for s in steps.values()) else 1)
PYEOF
