"""``yue-prep inspect``: a human-readable view of token shards (text decoded, audio spans summarised)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import groupby

import numpy as np

from yue_train.format import codec_layout as cl
from yue_train.format.document import Document
from yue_train.format.roles import Role
from yue_train.tokenizer.mm_tokenizer import MMTokenizer

_TEXTUAL = {Role.TEXT, Role.SPECIAL}
_SPAN_KIND = {
    Role.VOCAL: "dual",
    Role.INST: "dual",
    Role.PROMPT_VOCAL: "reference",
    Role.PROMPT_INST: "reference",
    Role.PROMPT_MIX: "reference mixture",
    Role.S2_CONDITION: "codebook-0",
}


def _span_kind(role: int) -> str:
    role = Role(role)
    if role in _TEXTUAL:
        return "text"
    if role >= Role.S2_CB0:
        return "stage-2 frames"
    return _SPAN_KIND[role]


def _describe_span(kind: str, roles: np.ndarray) -> str:
    n = len(roles)
    present = set(int(r) for r in np.unique(roles))
    if kind == "reference":
        if present == {Role.PROMPT_VOCAL, Role.PROMPT_INST}:
            kind = "reference dual"
        else:
            kind = "reference vocal" if Role.PROMPT_VOCAL in present else "reference inst"
    per_second = {
        "dual": 2 * cl.FRAMES_PER_SECOND,
        "reference dual": 2 * cl.FRAMES_PER_SECOND,
        "stage-2 frames": cl.STAGE2_CODEBOOKS * cl.FRAMES_PER_SECOND,
    }.get(kind, cl.FRAMES_PER_SECOND)
    return f"<{kind} {n:,} tok = {n / per_second:.1f} s>"


def render_document(doc: Document, tokenizer: MMTokenizer) -> str:
    """Text runs decoded (special pieces by name), each audio run as ``<kind N tok = S s>``."""
    parts: list[str] = []
    pos = 0
    for kind, group in groupby(doc.roles.tolist(), key=_span_kind):
        n = len(list(group))
        ids = doc.input_ids[pos : pos + n]
        roles = doc.roles[pos : pos + n]
        parts.append(tokenizer.decode(ids.tolist()) if kind == "text" else _describe_span(kind, roles))
        pos += n
    return "".join(parts)


def document_header(doc: Document) -> str:
    extras = {k: v for k, v in doc.meta.items() if k not in ("id", "mode")}
    extra = " ".join(f"{k}={v}" for k, v in extras.items())
    return f"=== {doc.id} [{doc.mode}] {len(doc):,} tokens {extra}".rstrip()


def ids_lines(docs: Iterator[Document]) -> Iterator[str]:
    for doc in docs:
        yield json.dumps({"id": doc.id, "mode": doc.mode, "input_ids": doc.input_ids.tolist()})
