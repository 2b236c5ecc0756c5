"""The modes of benchmarks/train_step.py, one per process: ``python benchmarks/train_step_modes.py ARGS --child
MODE`` prints one JSON row. They live apart from train_step.py so that its parent process, which only starts
these processes and gathers their rows, imports neither torch nor the model code."""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import torch
from train_step import parse_args  # benchmarks/, the folder of this script, is first on sys.path
from transformers import AutoModelForCausalLM

from yue_train.data.packing import Packer
from yue_train.format.document import Document
from yue_train.format.roles import Role
from yue_train.models.architectures import architecture_config
from yue_train.models.loading import ModelSpec, attention_choice, enable_activation_checkpointing
from yue_train.models.lora import apply_lora
from yue_train.training.forward import PackedForward
from yue_train.training.loss import LossSettings, lm_loss, role_weight_table


class _Lora:  # the fields apply_lora reads from cfg.lora
    def __init__(self, r: int) -> None:
        self.r, self.alpha, self.dropout = r, 32, 0.05
        self.target_modules = ["q_proj", "k_proj", "v_proj", "o_proj"]


def make_model(arch: str, device: torch.device, attn: str, r: int) -> torch.nn.Module:
    config = architecture_config(arch)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)  # both modes start from the same weights
    with torch.device(device):  # initialise straight on the device (a 7B init on CPU takes minutes)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn)
    enable_activation_checkpointing(model)
    model = apply_lora(model, _Lora(r))
    model.train()
    return model


def packed_batch(seq_len: int, vocab: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(64):
        n = int(rng.integers(seq_len // 8, seq_len // 2))
        docs.append(Document(rng.integers(0, min(vocab, 46358), n), np.full(n, Role.VOCAL), {"id": str(i)}))
    return Packer(iter(docs), seq_len, overflow="split").next_batch(1)


def timed_steps(step, args: argparse.Namespace, device: torch.device) -> tuple[float, float, float]:
    """(last loss, wall seconds, process CPU seconds) of ``args.steps`` calls of ``step`` after
    ``args.warmup`` untimed ones; peak GPU memory is counted from the timed steps only."""
    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0, c0 = time.perf_counter(), time.process_time()
    loss = float("nan")
    for _ in range(args.steps):
        loss = step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return loss, time.perf_counter() - t0, time.process_time() - c0


def measures(tokens: int, dt: float, cpu_s: float, device: torch.device) -> dict:
    out = {
        "tokens_per_s": round(tokens / dt, 1),
        "tokens_per_cpu_s": round(tokens / cpu_s, 1),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),  # KiB on Linux
    }
    if device.type == "cuda":
        out["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def run(mode: str, args: argparse.Namespace, device: torch.device) -> dict:
    attn = attention_choice(ModelSpec(attn_implementation=args.attn), device).impl
    model = make_model(args.arch, device, attn, args.rank)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    vocab = model.config.vocab_size
    batch = packed_batch(args.seq_len, vocab).to(device)
    fwd = PackedForward(model)
    table = role_weight_table({}, device)
    impl = mode.split(":")[1] if ":" in mode else "auto"
    settings = LossSettings(impl, args.chunk, args.memory_budget_gib)
    used = []

    def step() -> float:
        if mode.startswith("ours"):
            sums, name = lm_loss(
                fwd.hidden_states(batch), fwd.lm_head, batch.labels, batch.target_roles, table, settings
            )
            used.append(name)
            loss = sums.weighted / sums.weight_sum
        else:
            loss = model(input_ids=batch.input_ids, labels=batch.input_ids, use_cache=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    loss, dt, cpu_s = timed_steps(step, args, device)
    out = {
        "mode": mode, "arch": args.arch, "device": str(device), "attn": attn, "seq_len": args.seq_len,
        "lora_r": args.rank, "loss": round(loss, 4), **measures(args.seq_len * args.steps, dt, cpu_s, device),
    }  # fmt: skip
    if used:
        out["loss_impl"] = used[-1]
    tps = args.seq_len * args.steps / dt
    out["model_tflops"] = round(tps * flops_per_token(model.config, args.seq_len, weight_grads=False) / 1e12, 4)
    if args.peak_tflops:
        out["mfu"] = round(out["model_tflops"] / args.peak_tflops, 4)
    return out


def flops_per_token(config, seq_len: int, weight_grads: bool = True) -> float:
    """Model FLOPs per token: 6·N with weight gradients (full training), 4·N without (LoRA: forward and the
    input gradient; the adapters' own FLOPs are negligible), plus attention; recomputation is not counted."""
    h, layers, inter = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    kv = h * config.num_key_value_heads // config.num_attention_heads
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * inter  # q, o, k, v, gate/up/down
    n = layers * per_layer + h * config.vocab_size  # + lm_head; the embedding lookup costs no FLOPs
    return (6.0 if weight_grads else 4.0) * n + 12.0 * layers * h * seq_len


def run_full(strategy_name: str, args: argparse.Namespace, device: torch.device) -> dict:
    """Full-parameter steps under one of the trainer's strategies (a one-process group for fsdp2/deepspeed)."""
    from yue_train.config.compose import compose_config
    from yue_train.training import strategies as D
    from yue_train.training.forward import PackedLossModule

    dcfg = compose_config(["recipe=full_s1", f"distributed={strategy_name}"]).distributed
    D.init_process_group(str(dcfg.strategy), device.type)
    config = architecture_config(args.arch)
    attn = attention_choice(ModelSpec(attn_implementation=args.attn), device).impl
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation=attn)
    enable_activation_checkpointing(model)
    settings = LossSettings(args.loss_impl, args.chunk, args.memory_budget_gib)
    module = PackedLossModule(model, role_weight_table({}, device), settings).train()
    strategy = D.make_strategy(dcfg, device)
    bf16 = device.type == "cuda"
    strategy.autocast_bf16 = bf16
    if isinstance(strategy, D.DeepSpeedStrategy):
        strategy.configure(1, 1, 1, 1.0, bf16)
    strategy.wrap(
        module,
        lambda params: torch.optim.AdamW(params, lr=1e-5, fused=device.type == "cuda"),
        lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0),
    )
    batch = packed_batch(args.seq_len, config.vocab_size).to(device)

    def step() -> float:
        sums = strategy.forward(*batch.tensors())
        loss = sums[0] / sums[1]
        strategy.backward(loss, True)
        strategy.clip_and_step(1.0, True)
        return float(loss.detach())

    loss, dt, cpu_s = timed_steps(step, args, device)
    tps = args.seq_len * args.steps / dt
    out = {
        "mode": f"full/{strategy_name}", "arch": args.arch, "device": str(device), "attn": attn,
        "seq_len": args.seq_len, "loss": round(loss, 4), **measures(args.seq_len * args.steps, dt, cpu_s, device),
        "model_tflops": round(tps * flops_per_token(config, args.seq_len) / 1e12, 4), "loss_impl": module.last_impl,
    }  # fmt: skip
    if args.peak_tflops:
        out["mfu"] = round(out["model_tflops"] / args.peak_tflops, 4)
    D.destroy_process_group()
    return out


def run_child(mode: str, args: argparse.Namespace) -> dict:
    cuda = torch.cuda.is_available()
    args.arch = args.arch or ("yue_s1_7b" if cuda else "tiny_s1")
    args.seq_len = args.seq_len or (8192 if cuda else 2048)
    args.peak_tflops = (989.0 if cuda else 0.0) if args.peak_tflops is None else args.peak_tflops
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return run_full(mode, args, device) if args.full else run(mode, args, device)
    except torch.OutOfMemoryError:
        return {"mode": mode, "arch": args.arch, "seq_len": args.seq_len, "error": "CUDA out of memory"}


if __name__ == "__main__":
    args = parse_args()
    print(json.dumps(run_child(args.child, args)), flush=True)
