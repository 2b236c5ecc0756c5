"""Shared pieces of the gpu tests: a packed batch of several documents and roles, gradient comparison."""

from __future__ import annotations

import numpy as np
import torch

from yue_train.data.packing import Batch, Packer
from yue_train.format.document import Document
from yue_train.format.roles import Role

CUDA = torch.device("cuda")


def packed_batch(vocab: int = 512, seq_len: int = 256, seed: int = 0) -> tuple[Batch, list[Document]]:
    """Two rows of packed documents (vocal, inst, prompt roles), and the documents."""
    rng = np.random.default_rng(seed)
    roles = [Role.VOCAL, Role.INST, Role.PROMPT_VOCAL, Role.VOCAL, Role.INST, Role.VOCAL]
    lengths = rng.integers(40, 120, len(roles))
    docs = [
        Document(rng.integers(0, vocab, n), np.full(n, r), {"id": str(i)})
        for i, (n, r) in enumerate(zip(lengths, roles, strict=True))
    ]
    return Packer(iter(docs), seq_len=seq_len, overflow="split").next_batch(2).to(CUDA), docs


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    return float(a @ b / (a.norm() * b.norm()).clamp(min=1e-30))
