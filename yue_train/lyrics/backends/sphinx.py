"""pocketsphinx as the aligner's acoustic model: English, offline (its acoustic model and CMU dictionary ship
inside its wheel).

pocketsphinx gives no per-frame posteriors, so this backend turns its context-independent phone recognition
(one best phone sequence, 10 ms frames) into emissions over the CMU phone set: a frame inside a recognised
phone gives that phone probability ``HIT`` and shares the rest; silence and noise frames are blank. The
lyrics are spelled in phones with the CMU dictionary (words it lacks are left out), and the shared Viterbi
then places the lines, with the same skip and filler handling as the CTC backends. Phone recognition is
far from perfect; line starts rest on the onsets it finds, which are reliable. Its line scores are weak
evidence: on espeak-ng speech, correct lines score 0.37-0.60 and a line of words that are not sung at all,
forced over the song, 0.39, so a wrong lyrics file is not told apart by the score (skipped lines are:
they are left out when the rest of the lyrics fit).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from yue_train.lyrics.align import Emissions
from yue_train.lyrics.backends.text import words
from yue_train.lyrics.viterbi import Penalties

SAMPLE_RATE = 16_000
FRAME_S = 0.01
HIT = 0.6
PHONES = "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH".split()
INSTALL_HINT = "pip install pocketsphinx  (the 'align' extra of yue-train)"


def _decoder(**extra: Any) -> Any:
    try:
        from pocketsphinx import Decoder, get_model_path
    except ImportError:
        raise ImportError(f"--aligner pocketsphinx: pocketsphinx is not installed; {INSTALL_HINT}") from None
    phone_lm = os.path.join(get_model_path(), "en-us", "en-us-phone.lm.bin")
    # Wide beams: the default ones lose the path on singing and synthetic voices.
    return Decoder(
        samprate=SAMPLE_RATE,
        loglevel="ERROR",
        allphone=phone_lm,
        lm=None,
        allphone_ci=True,
        beam=1e-60,
        pbeam=1e-60,
        lw=2.0,
        **extra,
    )


class SphinxAligner:
    name = "pocketsphinx"
    sample_rate = SAMPLE_RATE
    # Mismatched phones cost about log((1 - HIT) / 39) = -4.6 nats a frame: the filler must cost more.
    penalties = Penalties(filler=6.0, skip=20.0)

    def __init__(self) -> None:
        self.decoder = _decoder()
        self.ids = {p: i + 1 for i, p in enumerate(PHONES)}  # 0 is blank

    def tokenize(self, text: str) -> list[int]:
        ids: list[int] = []
        for word in words(text):
            pron = self.decoder.lookup_word(word)
            for phone in (pron or "").split():
                tok = self.ids.get(phone.rstrip("012"))
                if tok is not None and (not ids or ids[-1] != tok):  # a phone said twice in a row is one
                    ids.append(tok)
        return ids

    def emissions(self, audio: np.ndarray) -> Emissions:
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
        n_frames = max(1, int(round(len(audio) / (SAMPLE_RATE * FRAME_S))))
        d = self.decoder
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        n_tokens = len(PHONES) + 1
        miss = np.log((1 - HIT) / (n_tokens - 1))
        lp = np.full((n_frames, n_tokens), miss, dtype=np.float32)
        lp[:, 0] = np.log(HIT)  # blank until a phone is heard
        for seg in d.seg():
            tok = self.ids.get(seg.word)
            if tok is None:
                continue
            a, b = seg.start_frame, min(seg.end_frame + 1, n_frames)
            lp[a:b, :] = miss
            lp[a:b, tok] = np.log(HIT)
        return Emissions(lp, FRAME_S, 0, self.tokenize)
