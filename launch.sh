#!/usr/bin/env bash
# Launch a yue-train recipe on this machine, on several nodes, or under SLURM. See --help.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: ./launch.sh [--dry-run] RECIPE [hydra overrides ...]

Runs `yue-train recipe=RECIPE [overrides]` with one process per GPU (or NPROC CPU processes).

  ./launch.sh demo                                  one process (CPU) or all GPUs of this machine
  NPROC=2 ./launch.sh tiny                          two processes (gloo on CPU, nccl on GPU), DDP
  NPROC=8 ./launch.sh full_s1 distributed=fsdp2     pick the strategy: ddp, fsdp2, deepspeed_zero2/3
  NNODES=4 NODE_RANK=0 MASTER_ADDR=node0 ./launch.sh pretrain/phase1_warmup
                                                    run once on every node with its NODE_RANK
  LAUNCHER=deepspeed HOSTFILE=hosts ./launch.sh lora_s1 distributed=deepspeed_zero2
                                                    the DeepSpeed launcher over a hostfile (run once)
  srun --ntasks-per-node=1 ./launch.sh full_s1      under SLURM: nodes, rank and master from SLURM
  ./launch.sh chain pretrain/tiny_p1 pretrain/tiny_p2 pretrain/tiny_p3
                                                    pre-training phases in order (yue-train chain)

Environment:
  NPROC        processes per node (default: visible GPUs, else 1)
  NNODES       nodes (default 1; SLURM_NNODES under SLURM)
  NODE_RANK    this node's rank (default 0; SLURM_NODEID under SLURM)
  MASTER_ADDR  rendezvous host (default 127.0.0.1; first host of SLURM_JOB_NODELIST under SLURM)
  MASTER_PORT  rendezvous port (default 29500)
  LAUNCHER     torchrun (default) or deepspeed
  HOSTFILE     DeepSpeed hostfile (with LAUNCHER=deepspeed)
  PYTHON       interpreter (default: .venv/bin/python beside this script, else python3)

Several processes with no distributed= override get distributed=ddp (torchrun) or
distributed=deepspeed_zero2 (LAUNCHER=deepspeed). A recipe's global batch (trainer.global_batch_size)
stays the same whatever NPROC x NNODES is: gradient accumulation is derived from it.

--dry-run prints the exact command, the resolved configuration and the phase plan (token budget,
steps, gradient accumulation on NPROC x NNODES processes), and runs nothing.
USAGE
}

dry_run=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --dry-run) dry_run=1; shift ;;
    --) shift; break ;;
    -*) echo "launch.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
if [[ $# -lt 1 ]]; then
  echo "launch.sh: no recipe given (see --help; recipes are the files under recipes/)" >&2
  exit 2
fi
recipe="$1"; shift

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$here/.venv/bin/python" ]]; then PYTHON="$here/.venv/bin/python"; else PYTHON=python3; fi
fi

if [[ -n "${SLURM_JOB_ID:-}" ]]; then
  NNODES="${NNODES:-${SLURM_NNODES:-1}}"
  NODE_RANK="${NODE_RANK:-${SLURM_NODEID:-0}}"
  if [[ -z "${MASTER_ADDR:-}" && -n "${SLURM_JOB_NODELIST:-}" ]]; then
    MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" 2>/dev/null | head -n 1 || true)"
    if [[ -z "$MASTER_ADDR" ]]; then  # no scontrol here: the first host of "a,b" or "gpu[03-05,07]"
      MASTER_ADDR="$("$PYTHON" -c '
import sys
host, depth = "", 0
for c in sys.argv[1]:
    if c == "," and depth == 0:
        break
    depth += (c == "[") - (c == "]")
    host += c
if "[" in host:
    prefix, ranges = host.split("[", 1)
    host = prefix + ranges.rstrip("]").split(",")[0].split("-")[0]
print(host)' "$SLURM_JOB_NODELIST")"
    fi
  fi
  NPROC="${NPROC:-${SLURM_GPUS_ON_NODE:-}}"
fi
if [[ -z "${NPROC:-}" ]]; then
  NPROC="$("$PYTHON" -c 'import torch; print(max(torch.cuda.device_count(), 1))' 2>/dev/null || echo 1)"
fi
NNODES="${NNODES:-1}"
NODE_RANK="${NODE_RANK:-0}"
MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"
MASTER_PORT="${MASTER_PORT:-29500}"
LAUNCHER="${LAUNCHER:-torchrun}"

overrides=("$@")
# Several processes and no strategy chosen: DDP under torchrun, ZeRO-2 under the DeepSpeed launcher
# (the recipes default to distributed=single, which refuses to run as several processes).
if [[ " $* " != *" distributed="* ]] && { [[ "$NNODES" != 1 || "$NPROC" != 1 ]] || [[ "$LAUNCHER" == deepspeed ]]; }; then
  if [[ "$LAUNCHER" == deepspeed ]]; then overrides+=(distributed=deepspeed_zero2); else overrides+=(distributed=ddp); fi
fi
set -- "${overrides[@]}"
if [[ "$recipe" == chain ]]; then  # ./launch.sh chain pretrain/phase1_warmup pretrain/phase2_constant ...
  train=(-m yue_train.cli.train chain "$@")
else
  train=(-m yue_train.cli.train "recipe=$recipe" "$@")
fi
case "$LAUNCHER" in
  torchrun)
    if [[ "$NNODES" == 1 && "$NPROC" == 1 ]]; then
      cmd=("$PYTHON" "${train[@]}")
    elif [[ "$NNODES" == 1 ]]; then
      cmd=("$PYTHON" -m torch.distributed.run --standalone "--nproc_per_node=$NPROC" "${train[@]}")
    else
      cmd=("$PYTHON" -m torch.distributed.run "--nnodes=$NNODES" "--nproc_per_node=$NPROC" "--node_rank=$NODE_RANK"
           "--master_addr=$MASTER_ADDR" "--master_port=$MASTER_PORT" "${train[@]}")
    fi ;;
  deepspeed)
    # --no_local_rank: the rank comes from the environment; a --local_rank argument would be a bad override.
    cmd=("$PYTHON" -m deepspeed.launcher.runner --no_local_rank "--num_gpus=$NPROC" "--master_addr=$MASTER_ADDR"
         "--master_port=$MASTER_PORT")
    if [[ -n "${HOSTFILE:-}" ]]; then
      [[ -f "$HOSTFILE" ]] || { echo "launch.sh: HOSTFILE $HOSTFILE not found" >&2; exit 2; }
      cmd+=("--hostfile=$HOSTFILE")
    else
      cmd+=("--num_nodes=$NNODES")
    fi
    cmd+=(--module "${train[@]:1}") ;;
  *) echo "launch.sh: LAUNCHER must be torchrun or deepspeed, got '$LAUNCHER'" >&2; exit 2 ;;
esac

if [[ "$dry_run" == 1 ]]; then
  printf 'command:'; printf ' %q' "${cmd[@]}"; printf '\n'
  world=$((NPROC * NNODES))
  if [[ "$recipe" == chain ]]; then  # the plan of each phase (budget, steps) on this many processes
    phases=(); extra=()
    for a in "$@"; do if [[ "$a" == *=* ]]; then extra+=("$a"); else phases+=("$a"); fi; done
    for phase in "${phases[@]}"; do
      echo "plan ($phase, $world processes):"
      WORLD_SIZE=$world "$PYTHON" -m yue_train.cli.train "recipe=$phase" "${extra[@]}" --print-plan || true
    done
    exit 0
  fi
  echo "config:"
  "$PYTHON" -m yue_train.cli.train "recipe=$recipe" "$@" --print-config
  echo "plan ($world processes):"
  WORLD_SIZE=$world exec "$PYTHON" -m yue_train.cli.train "recipe=$recipe" "$@" --print-plan
fi
exec "${cmd[@]}"
