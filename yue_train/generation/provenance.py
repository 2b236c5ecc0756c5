"""Generation against provenance: the models given to ``yue-infer generate`` must be the stages they are
passed as, and stage 1 must get the tokenizer it was trained with.

A model's record is its folder's ``yue_provenance.json`` (written by ``yue-train`` checkpoints and
``yue-train export``; for an adapter, its checkpoint's); the released ``m-a-p/YuE-s1-*`` and ``-s2-*``
hub models are known to use YuE's tokenizer.model. A model with no record is not checked, and without
``--tokenizer`` a one-line warning says the stand-in is used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from yue_train.format.provenance import YUE_TOKENIZER_SHA256, Provenance, TokenizerId, read_provenance
from yue_train.tokenizer import STAND_IN_WARNING, MMTokenizer

_RELEASED = re.compile(r"^m-a-p/YuE-s([12])-")


def model_record(path: str) -> Provenance | None:
    """The provenance of a model folder or a released hub id; None when unknown."""
    p = Path(path)
    if p.is_dir():
        return read_provenance(p)
    m = _RELEASED.match(path)
    if m is None:
        return None
    stage = int(m.group(1))
    tok = TokenizerId(YUE_TOKENIZER_SHA256, False) if stage == 1 else None
    return Provenance(stage=stage, tokenizer=tok)


@dataclass
class ModelCheck:
    """Refusals (one line each; generation must not start) and warnings (printed, generation goes on)."""

    refusals: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_records(
    stage1_model: str,
    stage2_model: str,
    adapters: list[str],
    tokenizer_arg: str | None,
    tokenizer: MMTokenizer,
    allow_mismatch: bool = False,
) -> ModelCheck:
    """Compare the models' records with the stages they are passed as and with the tokenizer in use."""
    out = ModelCheck()
    given = TokenizerId.of(tokenizer)
    stage1_parts = [("--stage1-model", stage1_model), *(("--adapter", a) for a in adapters)]
    known_tokenizer = False
    for flag, path, want in [*((f, p, 1) for f, p in stage1_parts), ("--stage2-model", stage2_model, 2)]:
        rec = model_record(path)
        if rec is None:
            continue
        if rec.stage is not None and rec.stage != want:
            other = "--stage2-model" if rec.stage == 2 else "--stage1-model"
            out.refusals.append(f"{flag} {path} is a stage-{rec.stage} model (its provenance); pass it as {other}")
            continue
        if want != 1 or rec.tokenizer is None:
            continue
        known_tokenizer = True
        if given.same_as(rec.tokenizer):
            continue
        if tokenizer_arg is None:
            line = (
                f"{flag} {path} was trained with {rec.tokenizer.describe()} but no --tokenizer was given (prompts "
                f"would use the generated stand-in); pass --tokenizer {rec.tokenizer.file or 'tokenizer.model'}"
            )
        else:
            fix = (
                "omit --tokenizer"
                if rec.tokenizer.synthetic
                else f"pass --tokenizer {rec.tokenizer.file or 'tokenizer.model'}"
            )
            line = (
                f"--tokenizer {tokenizer_arg} is {given.describe()}, not {rec.tokenizer.describe()} that {flag} "
                f"{path} was trained with; {fix}"
            )
        if allow_mismatch:
            out.warnings.append(f"warning (--allow-mismatch): {line}")
        else:
            out.refusals.append(f"{line}, or --allow-mismatch to generate anyway")
    if tokenizer_arg is None and not known_tokenizer:
        out.warnings.append(STAND_IN_WARNING)
    return out
