"""CTC forced alignment of lines of known text, where a line may be missing from the audio and audio may hold
singing that is in no line.

Hand-written: torchaudio (whose ``forced_align`` aligns one token sequence that must all be present) cannot
be installed here, and singing needs two things plain forced alignment lacks:

- a *filler* state before, between and after the lines. It absorbs frames no line explains (an extra line,
  a repeat the text does not write out) at ``filler_penalty`` nats per voiced frame, so the lines around it
  stay where they are sung instead of being stretched over it. Silence costs the filler nothing.
- a *skip* edge from one filler to the next, at ``skip_penalty`` nats: a line that is not sung is reported
  as skipped instead of being squeezed into the nearest frames.

States, in order: ``F_0, [blank, tok_1, blank, ..., tok_n, blank] of line 0, F_1, ..., F_L``. A token may
hold any number of frames (long notes), repeated tokens are separated by a blank (CTC's rule), and frames
marked silent (``silent``, from a VAD) cost ``silence_penalty`` nats in token states, so no token and no line
start lands in silence. Scores are log-probabilities; the best path is found with a max-sum recursion over
frames, vectorised over states.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FILLER = -1
NEG = -1e30


@dataclass(frozen=True)
class Penalties:
    """Costs in nats (natural-log probability). Defaults fit peaky CTC models, whose correct tokens score near 0."""

    filler: float = 4.0  # per voiced frame given to the filler instead of a line's token
    skip: float = 12.0  # per line left out
    silence: float = 30.0  # per frame a token holds where the VAD hears silence


DEFAULT_PENALTIES = Penalties()


@dataclass(frozen=True)
class Trellis:
    """The state graph of some lines: each state's token (``FILLER`` for fillers) and line (-1 for fillers)."""

    tokens: np.ndarray  # (S,) token id per state
    line: np.ndarray  # (S,) line index per state, -1 for fillers
    fillers: np.ndarray  # (L+1,) state index of each filler

    @classmethod
    def build(cls, lines: list[list[int]], blank: int) -> Trellis:
        tokens, line, fillers = [FILLER], [-1], [0]
        for i, toks in enumerate(lines):
            for t in toks:
                tokens += [blank, t]
                line += [i, i]
            tokens.append(blank)
            line.append(i)
            fillers.append(len(tokens))
            tokens.append(FILLER)
            line.append(-1)
        return cls(np.array(tokens, dtype=np.int64), np.array(line, dtype=np.int64), np.array(fillers, dtype=np.int64))


def _emissions(log_probs: np.ndarray, trellis: Trellis, blank: int, silent: np.ndarray, pen: Penalties) -> np.ndarray:
    """(T, S) score of each state at each frame."""
    is_filler = trellis.tokens == FILLER
    em = log_probs[:, np.where(is_filler, blank, trellis.tokens)].astype(np.float64)
    nonblank = np.delete(log_probs, blank, axis=1).max(axis=1) if log_probs.shape[1] > 1 else log_probs[:, 0]
    filler = np.maximum(log_probs[:, blank], nonblank - pen.filler)
    em[:, is_filler] = filler[:, None]
    is_token = (~is_filler) & (trellis.tokens != blank)
    em[np.ix_(silent, is_token)] -= pen.silence
    return em


def viterbi(
    log_probs: np.ndarray,
    lines: list[list[int]],
    blank: int,
    silent: np.ndarray | None = None,
    penalties: Penalties = DEFAULT_PENALTIES,
) -> tuple[Trellis, np.ndarray]:
    """The best state path: (trellis, (T,) state index per frame). ``log_probs``: (T, V) per-frame log-softmax."""
    n_frames = log_probs.shape[0]
    if n_frames == 0:
        raise ValueError("no frames to align")
    silent = np.zeros(n_frames, dtype=bool) if silent is None else np.asarray(silent, dtype=bool)
    trellis = Trellis.build(lines, blank)
    em = _emissions(log_probs, trellis, blank, silent, penalties)
    n_states = len(trellis.tokens)
    toks = trellis.tokens
    # s-2 -> s skips the blank between two tokens: allowed into a token that differs from the one two back
    # (equal tokens need the blank in between), and into a line's first token from its filler.
    can_skip2 = np.zeros(n_states, dtype=bool)
    can_skip2[2:] = (toks[2:] != blank) & (toks[2:] != FILLER) & (toks[2:] != toks[:-2])
    skip2_bonus = np.where(can_skip2, 0.0, NEG)
    fill = trellis.fillers
    score = np.full(n_states, NEG)
    score[: min(3, n_states)] = em[0, : min(3, n_states)]
    back = np.zeros((n_frames, n_states), dtype=np.int8)
    cands = np.empty((4, n_states))
    for t in range(1, n_frames):
        cands[0] = score
        cands[1, 0] = NEG
        cands[1, 1:] = score[:-1]
        cands[2, :2] = NEG
        cands[2, 2:] = score[:-2] + skip2_bonus[2:]
        cands[3] = NEG
        cands[3, fill[1:]] = score[fill[:-1]] - penalties.skip
        choice = cands.argmax(axis=0)
        back[t] = choice
        score = cands[choice, np.arange(n_states)] + em[t]
    last_line = n_states - 2  # the last line's trailing blank (or F_0 when there are no lines)
    ends = [n_states - 1] + ([last_line, last_line - 1] if lines else [])
    state = max(ends, key=lambda s: score[s])
    path = np.empty(n_frames, dtype=np.int64)
    for t in range(n_frames - 1, -1, -1):
        path[t] = state
        step = back[t, state]
        if step == 3:
            state = int(fill[np.searchsorted(fill, state) - 1])
        else:
            state -= int(step)
    return trellis, path
