"""Peak GPU memory of one training step, estimated on any machine (no GPU) by running the step on fake tensors.

The step is the project's own: the model built from its architecture config by transformers, activation
checkpointing as :func:`yue_train.models.loading.enable_activation_checkpointing` turns it on, LoRA from
:func:`yue_train.models.lora.apply_lora`, the decoder on packed rows with ``torch_varlen`` attention (what
``attn_implementation=auto`` picks on a GPU without flash-attn), the loss implementation
:func:`yue_train.training.loss.choose_impl` picks, backward, and AdamW as the trainer builds it. No tensor
holds data: LoRA steps run on ``meta`` tensors, full fine-tuning on ``FakeTensorMode`` CPU tensors (meta
tensors bypass autocast, which full fine-tuning uses for bf16 compute over fp32 master weights). :class:`LiveBytes`
records the bytes of the storages alive after each operation; the peak over two steps (the second holds the
optimizer state) is the estimate. torchtitan's ``scripts/estimate/estimation.py`` does the same with
``FakeTensorMode`` and ``torch.distributed._tools.mem_tracker``. Here LoRA runs on meta tensors because PEFT
moves its adapters with ``Module.to``, which cannot swap fake parameters that something holds a weak
reference to, and the small tracker replaces ``MemTracker``, which registers gradient hooks on every
parameter and so fails on frozen ones (every LoRA base weight).

What it leaves out, and why:
- no CUDA kernels run: CPU autocast's op list stands in for CUDA's (full fine-tuning), the attention is
  the varlen kernel's registered shape function, and AdamW is the single-tensor loop (fused needs a device);
- the CUDA caching allocator's rounding and fragmentation, and the CUDA context (about 0.5 GiB), are not
  tensors: the figure is live tensor bytes at the peak;
- every position of the row is a label (the loss skips ``IGNORE_INDEX`` positions with a data-dependent
  ``nonzero``, which meta tensors cannot run): the loss part is an upper bound;
- QLoRA: bitsandbytes' 4-bit weights cannot be built on meta tensors, so the QLoRA step runs with a bf16 base and
  its decoder ``Linear`` weights are then counted at 4.127 bits per parameter (NF4 plus double-quantised
  absmax), plus one dequantised weight alive at a time.
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from transformers import AutoModelForCausalLM, PretrainedConfig

from yue_train.config.schema import LoraConfig
from yue_train.models.attention import TORCH_VARLEN
from yue_train.models.loading import enable_activation_checkpointing
from yue_train.models.lora import apply_lora
from yue_train.training.forward import unwrap
from yue_train.training.loss import IMPL_FNS, LossSettings, choose_impl, role_weight_table

GIB = 2**30
NF4_BITS_PER_PARAM = 4 + 8 / 64 + 32 / (64 * 256)  # 4-bit codes; 8-bit absmax per 64; fp32 scale per 256 blocks


@dataclass
class StepSpec:
    """One training step to estimate. ``lora=None``: full fine-tuning with fp32 master weights under bf16
    autocast (what the trainer does on a GPU); with LoRA the base is bf16."""

    config: PretrainedConfig
    seq_len: int
    micro_batch: int = 1
    lora: LoraConfig | None = None
    qlora: bool = False
    gradient_checkpointing: bool = True
    loss: LossSettings = field(default_factory=LossSettings)
    documents_per_row: int = 4
    attn: str = TORCH_VARLEN
    base_dtype: torch.dtype | None = None  # None: bf16 under LoRA, fp32 master weights for full fine-tuning


@dataclass
class Estimate:
    peak_bytes: int
    parts: dict[str, int]  # weights, gradients, optimizer state (after the last step) and the rest at the peak
    loss_impl: str
    note: str = ""
    peak_op: str = ""

    @property
    def peak_gib(self) -> float:
        return self.peak_bytes / GIB


def _build(spec: StepSpec) -> nn.Module:
    dtype = spec.base_dtype or (torch.bfloat16 if spec.lora is not None else torch.float32)
    model = AutoModelForCausalLM.from_config(spec.config, dtype=dtype, attn_implementation=spec.attn)
    model.config.use_cache = False
    model.train()
    if spec.gradient_checkpointing:
        enable_activation_checkpointing(model)
    if spec.lora is not None:
        # quantized=False even for QLoRA: its 4-bit base is accounted for after the step (module docstring).
        model = apply_lora(model, spec.lora)
    return model


def _optimizer(params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """AdamW with the trainer's two groups. The trainer's GPU AdamW is fused, which meta tensors cannot run;
    the single-tensor loop stands in (its temporaries: about two copies of one parameter at a time)."""
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": g} for g in (decay, no_decay) if g]
    return torch.optim.AdamW(groups, lr=1e-4, foreach=False, fused=False)


def _row(spec: StepSpec) -> dict[str, Any]:
    """A packed batch: ``documents_per_row`` equal documents per row; positions restart at each."""
    n, b = spec.seq_len, spec.micro_batch
    k = max(1, spec.documents_per_row)
    bounds = [i * n // k for i in range(k + 1)]
    pos = torch.cat([torch.arange(e - s) for s, e in zip(bounds[:-1], bounds[1:], strict=True)])
    cu = torch.tensor([r * n + s for r in range(b) for s in bounds[:-1]] + [b * n], dtype=torch.int32)
    return {
        "input_ids": torch.zeros(b, n, dtype=torch.long),
        "position_ids": pos.expand(b, n).contiguous(),
        "labels": torch.zeros(b * n, dtype=torch.long),
        "cu_seq_lens": cu,
        "max_length": max(e - s for s, e in zip(bounds[:-1], bounds[1:], strict=True)),
    }


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, spec: StepSpec, batch: dict[str, Any]) -> str:
    """Forward (decoder, then the loss from hidden states), backward, optimizer step: one training step."""
    causal_lm = unwrap(model)
    lm_head = causal_lm.get_output_embeddings()
    autocast = (
        torch.autocast("cpu", dtype=torch.bfloat16) if spec.lora is None else contextlib.nullcontext()
    )  # full fine-tuning: fp32 master weights, bf16 compute
    max_len = int(batch["max_length"])
    with autocast:
        hidden = causal_lm.get_decoder()(
            input_ids=batch["input_ids"],
            position_ids=batch["position_ids"],
            use_cache=False,
            cu_seq_lens_q=batch["cu_seq_lens"],
            cu_seq_lens_k=batch["cu_seq_lens"],
            max_length_q=max_len,
            max_length_k=max_len,
        ).last_hidden_state
        h = hidden.reshape(-1, hidden.shape[-1])
        # As on a GPU without liger-kernel (its fused loss would hold less).
        impl = choose_impl(spec.loss, h.shape[0], lm_head, h.shape[-1], torch.device("cpu"))
        weights = role_weight_table({})[torch.zeros(h.shape[0], dtype=torch.long)]
        weighted, _, _ = IMPL_FNS[impl](lm_head, h, batch["labels"], weights, spec.loss.chunk_size)
    weighted.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return impl


def _fake_mode(fake: bool, autocast: bool) -> contextlib.AbstractContextManager:
    """Meta tensors, or CPU fake tensors where CPU autocast must see them (meta tensors bypass autocast)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    if not fake:
        return contextlib.nullcontext()
    return FakeTensorMode(allow_non_fake_inputs=True) if autocast else torch.device("meta")


def measure_step(spec: StepSpec, fake: bool = True, steps: int = 2) -> Estimate:
    """The peak of live tensor bytes over ``steps`` training steps: on fake tensors (the estimate) or on
    real ones (what the estimate is tested against)."""
    with _fake_mode(fake, autocast=spec.lora is None), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = _build(spec)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = _optimizer(params)
        batch = _row(spec)
        tracker = LiveBytes()
        tracker.add(*model.parameters(), *model.buffers(), *(t for t in batch.values() if torch.is_tensor(t)))
        with tracker:
            for _ in range(steps):
                impl = _step(model, optimizer, spec, batch)
                tracker.add(*tree_leaves(optimizer.state_dict()["state"]))  # states made before the mode saw them
        weights = sum(_nbytes(t) for t in [*model.parameters(), *model.buffers()])
        optim = sum(_nbytes(t) for t in tree_leaves(optimizer.state_dict()["state"]) if torch.is_tensor(t))
        grads = sum(_nbytes(p) for p in params)  # one gradient per trainable parameter at the end of backward
    total, note = tracker.peak, ""
    if spec.qlora:
        total, note, saved = _as_4bit(model, total)
        weights -= saved
    parts = {"weights": weights, "gradients": grads, "optimizer": optim, "rest": total - weights - grads - optim}
    return Estimate(total, parts, impl, note, tracker.peak_op)


def _nbytes(t: Any) -> int:
    return t.untyped_storage().nbytes() if torch.is_tensor(t) else 0


class LiveBytes(TorchDispatchMode):
    """Bytes of the tensor storages alive, and their peak: every storage an operation returns is counted
    until Python frees it (a finalizer on the storage object). Views share their base's storage."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0
        self.peak_op = ""  # the operation whose outputs reached the peak

    def add(self, *tensors: Any) -> None:
        for t in tensors:
            if not torch.is_tensor(t):
                continue
            storage = t.untyped_storage()
            key = storage._cdata
            if key in self.live:
                continue
            self.live[key] = storage.nbytes()
            self.current += self.live[key]
            weakref.finalize(storage, self._free, key)
        self.peak = max(self.peak, self.current)

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        before = self.peak
        self.add(*tree_leaves(out))
        if self.peak > before:
            self.peak_op = str(func)
        return out


def _as_4bit(model: nn.Module, total: int) -> tuple[int, str, int]:
    """The bf16-base total with the decoder's frozen ``Linear`` weights at NF4 size, plus one dequantised
    weight (bitsandbytes dequantises one weight per matmul)."""
    weights = [
        m.weight
        for name, m in unwrap(model).get_decoder().named_modules()
        if isinstance(m, nn.Linear) and not m.weight.requires_grad and "lora_" not in name
    ]
    held = sum(_nbytes(w) for w in weights)
    as_4bit = int(sum(w.numel() for w in weights) * NF4_BITS_PER_PARAM / 8)
    note = "4-bit base counted at 4.127 bits/param (bitsandbytes cannot run on meta tensors)"
    return total - held + as_4bit + max(w.numel() for w in weights) * 2, note, held - as_4bit
