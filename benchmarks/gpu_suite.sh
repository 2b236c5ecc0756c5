#!/usr/bin/env bash
# The GPU suite: the `gpu` tests and the GPU benchmarks in at most 9 minutes on one H100, into one JSON that is
# rewritten after every step (a suite cut short still reports what it measured).
#
#   bash benchmarks/gpu_suite.sh --out results.json                      # on a CUDA machine, deps installed
#   bash benchmarks/gpu_suite.sh --wheelhouse DIR --out results.json     # offline node: pip --no-index from DIR
#   bash benchmarks/gpu_suite.sh --quick ...                             # smaller sizes, at most 4 minutes
#   bash benchmarks/gpu_suite.sh --cpu-smoke --out smoke.json            # tiny sizes on CPU: the plumbing (CI)
#   options: --peak-tflops N (dense bf16 peak of the card; default 989, H100/H200), --budget SECONDS
#
# Steps, most valuable first, each under its own time cap and all under the suite's budget (a step that
# would start with under 15 s left is recorded as skipped):
#   install     (--wheelhouse) pip install --no-index --find-links DIR [DIR/optional]: never the network
#   estimate    benchmarks/estimate_memory.py --json, when present: CPU-only, in the background from the start
#   gpu_tests   pytest -m gpu tests/gpu (attention paths, bf16/FSDP2 mixed precision, QLoRA, fused loss)
#   lora_7b     LoRA step of the released stage-1 architecture (random weights), 8,192 tokens, bf16:
#               ours (trainer.loss.impl=auto) beside the official way (full logits); peak memory, tok/s, MFU
#   music_30s   30 s of music: stage 1 with CFG (7B) + stage 2 (1B), random weights, beside the official loops
#   full_1b     full-parameter step of the stage-2 1B architecture at 8,192 tokens: MFU
#   codec       codec encode/decode real-time factor (released architecture, random weights, bf16)
#   stage1_compiled  stage 1 with the static KV cache and the torch.compile'd step (full mode, if time is left)
# flash-attn is not installed by the suite (no wheel exists for it); the attention tests cover the paths
# without it. Hugging Face, W&B and pip are kept offline throughout.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
PY="${PYTHON:-python}"
OUT="gpu_suite.json"
MODE=full
WHEELHOUSE=""
PEAK=989
BUDGET=""
USAGE="use --out PATH, --quick, --cpu-smoke, --wheelhouse DIR, --peak-tflops N, --budget SECONDS"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --quick) MODE=quick; shift ;;
    --cpu-smoke) MODE=cpu-smoke; shift ;;
    --wheelhouse) WHEELHOUSE="$2"; shift 2 ;;
    --peak-tflops) PEAK="$2"; shift 2 ;;
    --budget) BUDGET="$2"; shift 2 ;;
    *) echo "gpu_suite.sh: unknown option $1 ($USAGE)" >&2; exit 2 ;;
  esac
done
if [ -n "$WHEELHOUSE" ] && ! ls "$WHEELHOUSE"/yue_train-*.whl >/dev/null 2>&1; then
  echo "gpu_suite.sh: $WHEELHOUSE holds no yue_train wheel; build it with: bash benchmarks/wheelhouse.sh $WHEELHOUSE" >&2
  exit 2
fi
case "$MODE" in full) BUDGET="${BUDGET:-540}" ;; quick) BUDGET="${BUDGET:-240}" ;; *) BUDGET="${BUDGET:-1800}" ;; esac
OUT="$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline WANDB_SILENT=true
export PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$REPO"
T0=$(date +%s)

report() { "$PY" "$HERE/suite_report.py" "$WORK" "$OUT" "$MODE" "$@"; }

# step NAME CAP_S CMD...: run CMD under min(CAP_S, what is left of the budget); its output, exit status and
# seconds land in $WORK/NAME.*, then the JSON is rewritten.
step() {
  local name="$1" cap="$2"; shift 2
  local left=$((BUDGET - ($(date +%s) - T0)))
  if [ "$left" -lt 15 ]; then
    echo "== $name: skipped (${left}s of the ${BUDGET}s budget left)" >&2
    echo "skipped 0" >"$WORK/$name.status"
  else
    local limit=$((cap < left ? cap : left))
    echo "== $name (cap ${limit}s): $*" >&2
    local t0; t0=$(date +%s.%N)
    timeout -k 5 "$limit" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
    local rc=$?
    echo "$rc $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')" >"$WORK/$name.status"
    tail -n 3 "$WORK/$name.err" >&2
  fi
  echo "$name" >>"$WORK/steps.order"
  report
}

if [ -n "$WHEELHOUSE" ]; then
  # only the wheelhouse: no index, and no pip configuration (a node's pip.conf may name other places)
  export PIP_CONFIG_FILE=/dev/null
  unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_CONSTRAINT
  WH="$(cd "$WHEELHOUSE" && pwd)"
  OPTIONAL=()
  [ "$MODE" != cpu-smoke ] && ls "$WH"/optional/*.whl >/dev/null 2>&1 && OPTIONAL=(--find-links "$WH/optional" bitsandbytes liger-kernel)
  # without the checkout on the path, where pip would take it for an installed yue-train
  step install 120 env -u PYTHONPATH "$PY" -m pip install --no-index --find-links "$WH" "yue-train[deepspeed]" pytest \
    "${OPTIONAL[@]}"
fi

ESTIMATE_PID=""
if [ -f "$HERE/estimate_memory.py" ] && [ "$MODE" != cpu-smoke ]; then
  ( step estimate 240 "$PY" "$HERE/estimate_memory.py" --json "$WORK/estimate.json" ) &
  ESTIMATE_PID=$!
fi

case "$MODE" in
  cpu-smoke)
    step lora_7b 300 "$PY" benchmarks/train_step.py --arch tiny_s1 --seq-len 64 --steps 1 --warmup 0 --threads 1 \
      --modes ours,official,ours:chunked --json "$WORK/lora_7b.json"
    step music_30s 300 "$PY" benchmarks/generate.py --s1 tiny_s1 --s2 tiny_s2 --seconds 0.1 --prompt-tokens 20 \
      --naive-frames 1 --threads 1 --json "$WORK/music_30s.json"
    step full_1b 300 "$PY" benchmarks/train_step.py --full --arch tiny_s2 --seq-len 64 --steps 1 --warmup 0 \
      --threads 1 --loss-impl chunked --modes single,fsdp2 --json "$WORK/full_1b.json"
    step codec 300 "$PY" benchmarks/codec_throughput.py --device cpu --seconds 1 --items 1 --batch-size 1 \
      --skip-upsample --threads 1
    ;;
  quick)
    step gpu_tests 60 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/gpu --junitxml="$WORK/gpu_tests.xml"
    step lora_7b 70 "$PY" benchmarks/train_step.py --arch yue_s1_7b --seq-len 8192 --steps 2 --warmup 1 \
      --modes ours,official --peak-tflops "$PEAK" --json "$WORK/lora_7b.json"
    step music_30s 50 "$PY" benchmarks/generate.py --s1 yue_s1_7b --s2 yue_s2_1b --seconds 10 --device cuda \
      --naive-tokens 100 --naive-frames 2 --json "$WORK/music_30s.json"
    step full_1b 30 "$PY" benchmarks/train_step.py --full --arch yue_s2_1b --seq-len 8192 --steps 2 --warmup 1 \
      --modes single --peak-tflops "$PEAK" --json "$WORK/full_1b.json"
    step codec 20 "$PY" benchmarks/codec_throughput.py --device cuda --bf16 --seconds 10 --skip-upsample
    ;;
  full)
    step gpu_tests 120 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/gpu --junitxml="$WORK/gpu_tests.xml"
    step lora_7b 110 "$PY" benchmarks/train_step.py --arch yue_s1_7b --seq-len 8192 --steps 3 --warmup 1 \
      --modes ours,official --peak-tflops "$PEAK" --json "$WORK/lora_7b.json"
    step music_30s 140 "$PY" benchmarks/generate.py --s1 yue_s1_7b --s2 yue_s2_1b --seconds 30 --device cuda \
      --naive-tokens 200 --naive-frames 3 --json "$WORK/music_30s.json"
    step full_1b 60 "$PY" benchmarks/train_step.py --full --arch yue_s2_1b --seq-len 8192 --steps 3 --warmup 1 \
      --modes single --peak-tflops "$PEAK" --json "$WORK/full_1b.json"
    step codec 40 "$PY" benchmarks/codec_throughput.py --device cuda --bf16 --seconds 30 --skip-upsample
    step stage1_compiled 60 "$PY" benchmarks/generate.py --s1 yue_s1_7b --seconds 10 --device cuda --stages 1 \
      --naive-tokens 50 --compile --json "$WORK/stage1_compiled.json"
    ;;
esac

# the estimator runs under its own cap, which starts with the suite: waiting here stays within the budget
[ -n "$ESTIMATE_PID" ] && wait "$ESTIMATE_PID"
echo "== $(($(date +%s) - T0)) s in all; report: $OUT" >&2
report --final
