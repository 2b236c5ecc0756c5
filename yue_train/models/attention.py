"""Attention over packed training rows, and the choice of backend behind ``model.attn_implementation: auto``.

A packed row holds several documents; ``position_ids`` restart at 0 at each one. Each backend keeps the
documents apart its own way:

* ``flash_attention_2`` (flash-attn installed): transformers turns the restarting positions into varlen
  ``cu_seqlens`` itself.
* ``torch_varlen`` (registered here): torch's ``torch.nn.attention.varlen.varlen_attn`` (torch >= 2.10, CUDA)
  runs flash kernels over the flattened documents. Registered with transformers' ``AttentionInterface``
  because transformers has no such backend; a name unknown to its mask builders also makes it skip building
  the (L x L) mask, which at 16,384 tokens is 256 MiB per row.
* ``sdpa`` / ``eager``: transformers builds a per-document block-diagonal causal mask from the positions.

Generation never uses ``torch_varlen`` (it needs a KV cache and padding masks): the inference paths load
their models with SDPA.
"""

from __future__ import annotations

import importlib.util
import inspect
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

TORCH_VARLEN = "torch_varlen"


@dataclass(frozen=True)
class AttentionChoice:
    """The backend a run uses and one line that says why (printed at start)."""

    impl: str
    reason: str

    def line(self) -> str:
        return f"attention: {self.impl} ({self.reason})"


def torch_varlen_available() -> bool:
    """torch ships ``varlen_attn`` (2.10 and later)."""
    return importlib.util.find_spec("torch.nn.attention.varlen") is not None


def flash_attn_installed() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def choose_auto(device: torch.device) -> AttentionChoice:
    """The fastest backend that is installed and keeps packed documents apart on ``device``."""
    if device.type != "cuda":
        return AttentionChoice("sdpa", "CPU: SDPA with a per-document causal mask built from position_ids")
    if flash_attn_installed():
        return AttentionChoice("flash_attention_2", "flash-attn is installed: its varlen kernel over packed rows")
    if torch_varlen_available():
        return AttentionChoice(
            TORCH_VARLEN, f"flash-attn is not installed; torch {torch.__version__} varlen_attn over packed rows"
        )
    return AttentionChoice(
        "sdpa", f"neither flash-attn nor varlen_attn (torch {torch.__version__} < 2.10): SDPA, per-document mask"
    )


def document_bounds(position_ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``cu_seqlens`` (int32, starts of the documents of all rows flattened, then the total) and the longest
    document, from positions that restart at 0 per document (every row starts a document)."""
    flat = position_ids.reshape(-1)
    starts = torch.nonzero(flat == 0).flatten()
    total = torch.tensor([flat.numel()], device=flat.device, dtype=starts.dtype)
    cu_seqlens = torch.cat([starts, total]).to(torch.int32)
    # Each document's positions count 0..n-1, so its last position + 1 is its length.
    max_len = int(flat.max()) + 1
    return cu_seqlens, max_len


def _torch_varlen_kernel(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: torch.Tensor, max_len: int, scale: float
) -> torch.Tensor:
    """torch's varlen flash kernel, causal. Its keywords changed: ``is_causal`` (2.10, 2.11) became
    ``window_size=(-1, 0)``; ``enable_gqa`` arrived later (before it, key/value heads are repeated)."""
    from torch.nn.attention.varlen import varlen_attn

    params = inspect.signature(varlen_attn).parameters
    kwargs: dict[str, Any] = {"scale": scale}
    if "window_size" in params:
        kwargs["window_size"] = (-1, 0)
    else:
        kwargs["is_causal"] = True
    if k.shape[1] != q.shape[1]:
        if "enable_gqa" in params:
            kwargs["enable_gqa"] = True
        else:
            rep = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    return varlen_attn(q, k, v, cu, cu, max_len, max_len, **kwargs)


def per_document_sdpa(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: torch.Tensor, max_len: int, scale: float
) -> torch.Tensor:
    """The same contract as the varlen kernel ((tokens, heads, dim) in and out), one causal SDPA call per
    document: the CPU stand-in that lets the packing, reshapes and GQA handling around the kernel be tested
    where varlen_attn cannot run."""
    del max_len
    if k.shape[1] != q.shape[1]:  # repeated here: SDPA's enable_gqa falls back to the (L x L) math kernel on CPU
        k, v = (t.repeat_interleave(q.shape[1] // k.shape[1], dim=1) for t in (k, v))
    bounds = cu.tolist()
    out = []
    for s, e in zip(bounds[:-1], bounds[1:], strict=True):
        qs, ks, vs = (t[None, s:e].transpose(1, 2) for t in (q, k, v))  # 4-D: CPU's flash kernel takes no 3-D
        out.append(F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, scale=scale)[0].transpose(0, 1))
    return torch.cat(out)


def _uses_torch_kernel(query: torch.Tensor) -> bool:
    from torch._subclasses.fake_tensor import is_fake

    # meta and fake tensors: the kernel's registered shape function (the memory estimate runs on those)
    return query.is_cuda or query.is_meta or is_fake(query)


def varlen_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    position_ids: torch.Tensor | None = None,
    cu_seq_lens_q: torch.Tensor | None = None,
    max_length_q: int | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function contract: (batch, heads, len, dim) in, (batch, len, heads, dim) out.

    The document bounds come from ``cu_seq_lens_q`` / ``max_length_q`` when the caller passes them to the
    model (transformers forwards these keywords to every layer), else from ``position_ids`` in each layer."""
    del module, attention_mask, kwargs
    if position_ids is None or query.shape[2] != key.shape[2]:
        raise ValueError(f"attn_implementation={TORCH_VARLEN} is for packed training rows (no KV cache); use sdpa")
    if dropout:
        raise ValueError(f"attn_implementation={TORCH_VARLEN} has no attention dropout; set it to 0")
    b, h, n, d = query.shape
    if cu_seq_lens_q is not None and max_length_q is not None:
        cu, max_len = cu_seq_lens_q, int(max_length_q)
    else:
        cu, max_len = document_bounds(position_ids.expand(b, -1))
    q, k, v = (t.transpose(1, 2).reshape(b * n, t.shape[1], d) for t in (query, key, value))
    scale = scaling if scaling is not None else d**-0.5
    if not _uses_torch_kernel(query):
        return per_document_sdpa(q, k, v, cu, max_len, scale).reshape(b, n, h, d), None
    # The flash kernel takes fp16/bf16 only; fp32 activations (full fine-tuning outside autocast) run in bf16.
    half = query.dtype if query.dtype in (torch.float16, torch.bfloat16) else torch.bfloat16
    out = _torch_varlen_kernel(q.to(half), k.to(half), v.to(half), cu, max_len, scale)
    return out.to(query.dtype).reshape(b, n, h, d), None


def register() -> None:
    """Make ``torch_varlen`` a transformers attention implementation (idempotent)."""
    from transformers import AttentionInterface

    AttentionInterface.register(TORCH_VARLEN, varlen_attention_forward)


register()
