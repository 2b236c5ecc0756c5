"""Per-token roles: what each token of a document is, so training can weight, mask and report loss by kind.

Roles are stored next to ``input_ids`` in every shard (uint8). They describe the token itself; a loss
on predicting token t uses the role of token t.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Role(IntEnum):
    TEXT = 0  # text pieces (instruction, genre tags, lyrics, segment markers)
    SPECIAL = 1  # structural pieces: <SOA> <EOA> <xcodec> <stage_1> <stage_2> <EOD> ...
    VOCAL = 2  # stage-1 target, vocal track codebook 0
    INST = 3  # stage-1 target, instrumental track codebook 0
    PROMPT_VOCAL = 4  # ICL reference audio, vocal track
    PROMPT_INST = 5  # ICL reference audio, instrumental track
    PROMPT_MIX = 6  # ICL reference audio, mixture
    S2_CONDITION = 7  # stage-2 codebook-0 block between <stage_1> and <stage_2>
    S2_CB0 = 8  # stage-2 frame tokens, codebook k has role S2_CB0 + k (k = 0..7)
    S2_CB1 = 9
    S2_CB2 = 10
    S2_CB3 = 11
    S2_CB4 = 12
    S2_CB5 = 13
    S2_CB6 = 14
    S2_CB7 = 15


ROLE_NAMES: dict[int, str] = {int(r): r.name.lower() for r in Role}
PROMPT_ROLES = (Role.PROMPT_VOCAL, Role.PROMPT_INST, Role.PROMPT_MIX)


def stage2_codebook_role(k: int) -> Role:
    return Role(int(Role.S2_CB0) + k)


def role_token_counts(roles: np.ndarray) -> dict[str, int]:
    """Token count per role name (only roles that occur)."""
    counts = np.bincount(np.asarray(roles, dtype=np.int64), minlength=len(Role))
    return {ROLE_NAMES[i]: int(c) for i, c in enumerate(counts) if c}
