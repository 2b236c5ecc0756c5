"""Progress bars of the long steps: tqdm on stderr, advanced per unit of work so that none sits still for
minutes. Stage 1 counts the tokens of each section, stage 2 the frames of its 6-second chunks (every frame
step of a batch), codec encoding the frames of each window it encodes.

Frames are shown as seconds of audio (50 codec frames = 1 s). A bar built with ``enabled=False``
(``--no-progress``, ``--quiet``) draws nothing, but its ``update`` still counts, so the loops call it the same
way whether or not anyone watches.
"""

from __future__ import annotations

from collections.abc import Callable

from tqdm import tqdm

from yue_train.format.codec_layout import FRAMES_PER_SECOND

DRAW_INTERVAL_S = 0.1  # a bar redraws at most this often (tqdm's default); tests set 0 to see every update
Advance = Callable[[int], object]  # called with the units of work just done (tqdm's ``update``)
AUDIO_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar}| {n:.2f}/{total:.2f} s of audio [{elapsed}<{remaining}, {rate_noinv_fmt}]"
)


def audio_bar(frames: int, desc: str, enabled: bool, **options: object) -> tqdm:
    """A bar over ``frames`` codec frames, drawn as seconds of audio; ``update(n)`` takes frames."""
    return tqdm(
        total=frames,
        desc=desc,
        unit=" s audio",
        unit_scale=1 / FRAMES_PER_SECOND,
        bar_format=AUDIO_FORMAT,
        disable=not enabled,
        dynamic_ncols=True,
        mininterval=DRAW_INTERVAL_S,
        miniters=1,
        **options,
    )


def token_bar(desc: str, enabled: bool) -> tqdm:
    """A bar over generated tokens, with no total (a section ends when the model says so)."""
    return tqdm(
        desc=desc, unit="token", disable=not enabled, dynamic_ncols=True, mininterval=DRAW_INTERVAL_S, miniters=1
    )
