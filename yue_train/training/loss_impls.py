"""The four ways :func:`yue_train.training.loss.lm_loss` computes next-token cross-entropy.

Each takes the final hidden states of the label positions ``h`` (N, H), their ``labels`` (N,) and per-token
``weights`` (N,), and returns ``(weighted, ce, hits)``: the sum of weight x CE (carrying the gradient when
grad is enabled), the per-token CE (detached, fp32) and the argmax hits (bool). Logits are computed in
fp32 from the ``lm_head`` module's output, so a wrapper around ``lm_head`` (LoRA) takes part.

- :func:`full_ce`: all N x V logits at once, plain ``F.cross_entropy`` (what Hugging Face's loss does).
- :func:`chunked_ce`: ``chunk`` rows at a time; each chunk's gradient with respect to its logits,
  weight x (softmax - one-hot), is formed in the forward pass and pushed through ``lm_head`` at once, so
  no chunk's logits outlive the chunk and ``lm_head`` runs once. The gradients for ``h`` and for the
  trainable ``lm_head`` parameters are held until backward, which scales them by the incoming gradient:
  this is exact for any loss that is a linear function of the returned sum (mean, scaling, accumulation).
- :func:`chunked_recompute_ce`: ``chunk`` rows at a time under activation checkpointing: only ``h`` is
  kept and each chunk's logits are computed again in backward (``lm_head`` runs twice).
- :func:`fused_ce`: liger-kernel's fused linear cross-entropy (CUDA, Triton), one call per role so
  the role weights apply; needs ``lm_head`` to be a plain ``nn.Linear``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

Sums = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _logits_ce(lm_head: nn.Module, h: torch.Tensor, labels: torch.Tensor, w: torch.Tensor) -> Sums:
    logits = lm_head(h).float()
    ce = F.cross_entropy(logits, labels, reduction="none")
    hits = logits.argmax(dim=-1) == labels
    return (ce * w).sum(), ce.detach(), hits


def full_ce(lm_head: nn.Module, h: torch.Tensor, labels: torch.Tensor, w: torch.Tensor, chunk: int) -> Sums:
    return _logits_ce(lm_head, h, labels, w)


def chunked_recompute_ce(
    lm_head: nn.Module, h: torch.Tensor, labels: torch.Tensor, w: torch.Tensor, chunk: int
) -> Sums:
    # A single chunk gains nothing from checkpointing (its logits are all there are): no recompute then.
    use_ckpt = torch.is_grad_enabled() and h.requires_grad and h.shape[0] > chunk
    parts = []
    for s in range(0, h.shape[0], chunk):
        sl = slice(s, s + chunk)
        if use_ckpt:
            parts.append(checkpoint(_logits_ce, lm_head, h[sl], labels[sl], w[sl], use_reentrant=False))
        else:
            parts.append(_logits_ce(lm_head, h[sl], labels[sl], w[sl]))
    return _join(parts)


def _join(parts: list[Sums]) -> Sums:
    weighted = torch.stack([p[0] for p in parts]).sum()
    return weighted, torch.cat([p[1] for p in parts]), torch.cat([p[2] for p in parts])


class _WithGrad(torch.autograd.Function):
    """``value`` unchanged; in backward, ``x`` receives ``grad`` times the incoming (scalar) gradient."""

    @staticmethod
    def forward(ctx, value: torch.Tensor, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(grad)
        ctx.x_dtype = x.dtype
        return value.clone()

    @staticmethod
    def backward(ctx, out_grad: torch.Tensor):
        (grad,) = ctx.saved_tensors
        return out_grad, (grad * out_grad).to(ctx.x_dtype), None


def chunked_ce(lm_head: nn.Module, h: torch.Tensor, labels: torch.Tensor, w: torch.Tensor, chunk: int) -> Sums:
    params = [p for p in lm_head.parameters() if p.requires_grad] if torch.is_grad_enabled() else []
    want_h = torch.is_grad_enabled() and h.requires_grad
    if not (want_h or params):  # nothing to differentiate: a plain chunked forward
        with torch.no_grad():
            return _join([_logits_ce(lm_head, h[s : s + chunk], labels[s : s + chunk], w[s : s + chunk])
                          for s in range(0, h.shape[0], chunk)])  # fmt: skip
    hd = h.detach()
    grad_h = torch.empty_like(hd) if want_h else None
    grad_p = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    weighted = torch.zeros((), dtype=torch.float64, device=h.device)
    ces, hits = [], []
    for s in range(0, h.shape[0], chunk):
        sl = slice(s, s + chunk)
        hc = hd[sl].detach().requires_grad_(want_h)
        lab, wc = labels[sl], w[sl]
        with torch.enable_grad():
            logits = lm_head(hc).float()
        with torch.no_grad():
            g = logits.detach()  # the same storage: the logits become their own gradient below
            target = g.gather(1, lab[:, None])[:, 0]
            top, arg = g.max(dim=-1)
            hits.append(arg == lab)
            sumexp = g.sub_(top[:, None]).exp_().sum(dim=-1)  # one exp pass serves the CE and the softmax
            ce = top + sumexp.log() - target
            g.mul_((wc / sumexp)[:, None])  # weight x softmax
            g.scatter_add_(1, lab[:, None], -wc[:, None])  # minus weight x one-hot
        inputs = ([hc] if want_h else []) + params
        grads = torch.autograd.grad(logits, inputs, g, allow_unused=True)
        del logits, g
        if want_h:
            grad_h[sl] = grads[0]
            grads = grads[1:]
        for acc, gp in zip(grad_p, grads, strict=True):
            if gp is not None:
                acc += gp
        weighted += (ce * wc).sum().double()
        ces.append(ce)
    out = weighted.float()
    if want_h:
        out = _WithGrad.apply(out, h, grad_h)
    for p, gp in zip(params, grad_p, strict=True):
        out = _WithGrad.apply(out, p, gp)
    return out, torch.cat(ces), torch.cat(hits)


def liger_available() -> bool:
    try:
        import liger_kernel.transformers  # noqa: F401
    except ImportError:
        return False
    return True


def fused_ce(lm_head: nn.Module, h: torch.Tensor, labels: torch.Tensor, roles: torch.Tensor, role_w: torch.Tensor):
    """liger-kernel's fused linear cross-entropy, one ``reduction="sum"`` call per role present (so each
    role's weight scales its gradient): ``(weighted sum, per-role CE sums, per-role hits)`` as float64
    ``(N_ROLES,)`` tensors. The kernel forms the gradient in its forward, like :func:`chunked_ce`."""
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

    if type(lm_head) is not nn.Linear:
        raise ValueError("trainer.loss.impl=fused needs lm_head to be a plain nn.Linear; use impl=auto or chunked")
    n_roles = role_w.shape[0]
    role_loss = torch.zeros(n_roles, dtype=torch.float64, device=h.device)
    role_correct = torch.zeros_like(role_loss)
    weighted = torch.zeros((), dtype=torch.float32, device=h.device)
    try:
        fn, with_acc = LigerFusedLinearCrossEntropyLoss(reduction="sum", return_token_accuracy=True), True
    except TypeError:  # a liger-kernel without token accuracy: argmax below
        fn, with_acc = LigerFusedLinearCrossEntropyLoss(reduction="sum"), False
    for r in roles.unique().tolist():
        idx = (roles == r).nonzero(as_tuple=True)[0]
        out = fn(lm_head.weight, h[idx], labels[idx], lm_head.bias)
        loss = out if isinstance(out, torch.Tensor) else (out.loss if hasattr(out, "loss") else out[0])
        weighted = weighted + role_w[r] * loss.float()
        role_loss[r] = loss.detach().double()
        if with_acc:
            acc = out.token_accuracy if hasattr(out, "token_accuracy") else out[2]
            role_correct[r] = acc.detach().double() * idx.numel()
        else:
            with torch.no_grad():
                hits = sum(int((lm_head(h[idx[s : s + 1024]]).argmax(-1) == labels[idx[s : s + 1024]]).sum())
                           for s in range(0, idx.numel(), 1024))  # fmt: skip
            role_correct[r] = hits
    return weighted, role_loss, role_correct
