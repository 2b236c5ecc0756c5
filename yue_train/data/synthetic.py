"""Seeded synthetic songs: the one generator behind the demo corpus, the generated ``synthetic:`` datasets,
the test manifest (``yue-prep demo``) and ``yue-prep synth-demo``.

A song is a list of labelled sections whose lengths the caller gives, drawn from one numpy ``Generator``
in a fixed order: the code tracks (vocals, instrumental; skipped for a song that only needs its text), the
lyric lines, the tags, then the mixture track if asked for. A :class:`SongStyle` says what each is drawn
from. Code tracks are looped motifs: each track repeats a random motif of a few frames, so a tiny model
learns them within a few hundred steps, and longer motifs over the whole codebook give enough distinct
codes for the stage-2 chunk filter. ``yue-prep synth-demo`` renders audio for songs drawn without codes
(:mod:`yue_train.data.synthetic_audio`); the others turn songs into :class:`~yue_train.format.song.Song` objects or
manifest records.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yue_train.format import codec_layout as cl
from yue_train.format.song import Segment, Song

# Lyric lines; the synthetic tokenizer has whole-word pieces for nearly all their words.
PHRASES = (
    "love the night", "fly away tonight", "hold my heart", "the city lights", "sing again", "rain and sun",
    "we run in the rain", "stay with me tonight", "dream of the sea", "stars in the sky",
    "never fall alone", "feel the fire", "home is the road", "we dance tonight", "you and i forever",
    "come together again",
)  # fmt: skip
# Real YuE tags (all in top_200_tags.json), one tuple per kind, so songs with them raise no tag warnings.
TAG_CHOICES = {
    "genre": ("pop", "rock", "electronic", "jazz", "folk"),
    "instrument": ("piano", "guitar", "synthesizer", "drums"),
    "mood": ("uplifting", "sad", "happy", "energetic", "romantic"),
    "gender": ("female", "male"),
    "timbre": ("bright vocal", "airy vocal", "warm vocal", "clear vocal"),
}
SONG_FORM = ("intro", "verse", "chorus", "verse", "chorus", "outro")
UNSUNG = frozenset({"intro", "outro"})  # sections without lyrics (and without vocals in rendered audio)


@dataclass(frozen=True)
class SongStyle:
    """What a song's parts are drawn from. Periods are ``[low, high)`` motif lengths in frames."""

    phrases: tuple[str, ...]  # lyric lines, drawn without repeats within a song
    lines_per_section: int  # lines of each sung section
    tags: tuple[tuple[str, ...], ...]  # one tag drawn from each tuple, in order
    n_codebooks: int = 1
    alphabet: int = 48  # codes are drawn from [0, alphabet)
    vocal_period: tuple[int, int] = (4, 9)
    inst_period: tuple[int, int] = (2, 5)
    mixture_period: tuple[int, int] = (3, 7)


# The demo corpus: short motifs over 48 codes, six lines, two tags; a tiny model's loss visibly falls.
DEMO_STYLE = SongStyle(
    phrases=PHRASES[:6],
    lines_per_section=1,
    tags=(("bright", "dark", "calm", "energetic", "sad", "happy"),
          ("rock", "pop", "jazz", "folk", "electronic", "soul", "metal", "blues")),
)  # fmt: skip
# Manifest songs (tests, ``yue-prep demo``): 8 codebooks and motifs long enough for the stage-2 chunk filter.
MANIFEST_STYLE = SongStyle(
    phrases=PHRASES,
    lines_per_section=2,
    tags=tuple(TAG_CHOICES.values()),
    n_codebooks=cl.STAGE2_CODEBOOKS,
    alphabet=cl.CODEBOOK_SIZE,
    vocal_period=(100, 200),
    inst_period=(50, 100),
    mixture_period=(150, 300),
)
# Songs rendered as audio by ``yue-prep synth-demo`` (drawn without codes).
AUDIO_STYLE = SongStyle(phrases=PHRASES, lines_per_section=2, tags=tuple(TAG_CHOICES.values()))


@dataclass(frozen=True)
class Section:
    """A labelled span of a song, times in seconds."""

    label: str
    start: float
    end: float
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        """The official ``line_content``: ``"[label]\\n<lines>\\n\\n"`` (``"[label]\\n\\n"`` without lines)."""
        body = "\n".join(self.lines)
        return f"[{self.label}]\n{body}\n\n" if body else f"[{self.label}]\n\n"


@dataclass
class SynthSong:
    """A drawn song: sections, tags and ``(n_codebooks, n_frames)`` code tracks (None when drawn without)."""

    id: str
    sections: list[Section]
    tags: list[str]
    vocals: np.ndarray | None = None
    instrumental: np.ndarray | None = None
    mixture: np.ndarray | None = None

    @property
    def seconds(self) -> float:
        return self.sections[-1].end

    @property
    def n_frames(self) -> int:
        return frames(self.seconds)

    def to_song(self) -> Song:
        """The in-memory :class:`Song` the sequence builders take (sections as segments and msa)."""
        segments = [Segment(s.text, frames(s.start), frames(s.end), _span(s), s.start) for s in self.sections]
        msa = [{"start": s.start, "end": s.end, "label": s.label} for s in self.sections]
        return Song(
            id=self.id,
            genres=", ".join(self.tags),
            segments=segments,
            audio_length_in_sec=self.n_frames / cl.FRAMES_PER_SECOND,
            msa=msa,
            vocals=self.vocals,
            instrumental=self.instrumental,
            mixture=self.mixture,
        )


def frames(seconds: float) -> int:
    """The frame count (or frame index) of a time that falls on a frame boundary."""
    return round(seconds * cl.FRAMES_PER_SECOND)


def _span(s: Section) -> float:
    return (frames(s.end) - frames(s.start)) / cl.FRAMES_PER_SECOND


def motif_codes(rng: np.random.Generator, n_codebooks: int, n_frames: int, alphabet: int, period: int) -> np.ndarray:
    """``(n_codebooks, n_frames)`` codes: a random motif of ``period`` frames over ``alphabet`` codes, repeated."""
    motif = rng.integers(0, alphabet, size=(n_codebooks, period))
    return np.tile(motif, -(-n_frames // period))[:, :n_frames]


def drawn_plan(rng: np.random.Generator, section_seconds: float) -> list[tuple[str, float]]:
    """:data:`SONG_FORM` with lengths of about ``section_seconds`` (intro and outro shorter), in centiseconds
    as LRC writes them, so most section boundaries fall inside a frame."""
    return [
        (label, round(section_seconds * (0.6 if label in UNSUNG else 1.0) * rng.uniform(0.85, 1.2), 2))
        for label in SONG_FORM
    ]


def synth_song(
    rng: np.random.Generator,
    song_id: str,
    plan: Sequence[tuple[str, float]],
    style: SongStyle,
    codes: bool = True,
    mixture: bool = False,
) -> SynthSong:
    """Draw one song whose sections are ``plan`` (label, seconds); see the module docstring for the order."""
    n_frames = frames(sum(sec for _, sec in plan))
    tracks: list[np.ndarray | None] = [None, None]
    if codes:
        tracks = [
            motif_codes(rng, style.n_codebooks, n_frames, style.alphabet, int(rng.integers(*period)))
            for period in (style.vocal_period, style.inst_period)
        ]
    sung = sum(label not in UNSUNG for label, _ in plan)
    lines = iter(rng.choice(style.phrases, size=sung * style.lines_per_section, replace=False))
    sections, t = [], 0.0
    for label, sec in plan:
        n = 0 if label in UNSUNG else style.lines_per_section
        sections.append(Section(label, round(t, 6), round(t + sec, 6), tuple(str(next(lines)) for _ in range(n))))
        t += sec
    tags = [str(rng.choice(choices)) for choices in style.tags]
    song = SynthSong(song_id, sections, tags, *tracks)
    if mixture:
        song.mixture = motif_codes(
            rng, style.n_codebooks, n_frames, style.alphabet, int(rng.integers(*style.mixture_period))
        )
    return song


def demo_song(rng: np.random.Generator, song_id: str, seconds: float, mixture: bool = False) -> Song:
    """A :data:`DEMO_STYLE` song of ``seconds`` (cut down to whole frames): a verse and a chorus, one line each."""
    n_frames = int(seconds * cl.FRAMES_PER_SECOND)
    half = n_frames // 2
    plan = [("verse", half / cl.FRAMES_PER_SECOND), ("chorus", (n_frames - half) / cl.FRAMES_PER_SECOND)]
    return synth_song(rng, song_id, plan, DEMO_STYLE, mixture=mixture).to_song()


# --------------------------------------------------------------------------------------------------
# A manifest in the official format
# --------------------------------------------------------------------------------------------------

MANIFEST_PLAN = tuple(zip(SONG_FORM, (6.0, 12.0, 10.0, 10.0, 10.0, 6.0), strict=True))
_TRACK_FILES = {"codec": "", "vocals_codec": ".Vocals", "instrumental_codec": ".Instrumental"}


def manifest_record(song: SynthSong) -> dict:
    """The official manifest record of ``song`` (npy paths relative to the manifest's folder)."""
    segments = [
        {
            "offset": s.start,
            "duration": _span(s),
            "codec_frame_start": frames(s.start),
            "codec_frame_end": frames(s.end),
            "line_content": s.text,
        }
        for s in song.sections
    ]
    return {
        "id": song.id,
        **{field: f"npy/{song.id}{suffix}.npy" for field, suffix in _TRACK_FILES.items()},
        "audio_length_in_sec": song.n_frames / cl.FRAMES_PER_SECOND,
        "msa": [{"start": s.start, "end": s.end, "label": s.label} for s in song.sections],
        "genres": ", ".join(song.tags),
        "splitted_lyrics": {"segmented_lyrics": segments},
    }


def write_synthetic_manifest(out_dir: str | Path, n_songs: int = 8, seed: int = 0) -> Path:
    """Write ``out_dir/manifest.jsonl`` and ``out_dir/npy/*.npy`` (int16 codes, 8 codebooks, 54-second songs
    of :data:`SONG_FORM`); paths in the manifest are relative to ``out_dir``."""
    out = Path(out_dir)
    (out / "npy").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = []
    for n in range(n_songs):
        song = synth_song(rng, f"synth{n:04d}", MANIFEST_PLAN, MANIFEST_STYLE, mixture=True)
        record = manifest_record(song)
        for field, codes in zip(_TRACK_FILES, (song.mixture, song.vocals, song.instrumental), strict=True):
            np.save(out / record[field], np.asarray(codes, dtype=np.int16))
        lines.append(json.dumps(record))
    manifest = out / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest
