"""Small synthetic songs (audio stems, lyrics, tags, sections) for ``yue-prep synth-demo``, the README's main
job and the tests, with no downloads.

Each song is a folder in ``yue-prep build``'s input format. The "vocal" is a harmonic melody with vibrato
that sings only in the sung sections, the "instrumental" a chord pad, a bass line and noise drums, and the
mix their sum. Sections, lyrics and tags are :mod:`yue_train.data.synthetic` songs (drawn without codes);
this module renders their audio and writes their files. The four song kinds rotate through the lyric forms
the build reads: LRC, sections JSON, sections CSV (with tags in tags.txt) and the official segmented JSON.
Song i depends only on (seed, i).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np

from yue_train.codec.audio_io import write_audio
from yue_train.data.synthetic import AUDIO_STYLE, UNSUNG, Section, drawn_plan, synth_song
from yue_train.format.codec_layout import seconds_to_frame

LYRIC_FORMS = ("lrc", "sections-json", "sections-csv", "official")
_MAJOR, _MINOR = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10)
_PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4))  # scale degrees of each bar's chord


def _hz(midi: np.ndarray | float) -> np.ndarray | float:
    return 440.0 * 2.0 ** ((np.asarray(midi) - 69) / 12)


def _tone(freq: np.ndarray, sr: int, harmonics: tuple[float, ...]) -> np.ndarray:
    """Harmonic tone following a per-sample frequency (phase accumulated, so glides and vibrato are clean)."""
    phase = 2 * np.pi * np.cumsum(freq) / sr
    return sum(a * np.sin((k + 1) * phase) for k, a in enumerate(harmonics))


def _env(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    t = np.arange(n) / sr
    return np.minimum(1.0, t / attack) * np.minimum(1.0, (n / sr - t) / release).clip(0, 1)


def synth_stems(rng: np.random.Generator, sections: list[Section], sr: int) -> tuple[np.ndarray, np.ndarray]:
    """(vocals, instrumental) for the sections, float32, scaled so the mix peaks at 0.9."""
    seconds = sections[-1].end
    n = round(seconds * sr)
    vocals, inst = np.zeros(n), np.zeros(n)
    root = int(rng.integers(48, 58))
    scale = _MAJOR if rng.random() < 0.5 else _MINOR
    prog = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    beat = 60.0 / float(rng.uniform(90, 130))
    bounds = np.array([0.0, *(s.end for s in sections)])
    # Instrumental: one chord per bar, bass on the root, noise hats on eighths, a kick on beats 1 and 3.
    n_beats = int(seconds / beat) + 1
    for b in range(n_beats):
        s0 = int(b * beat * sr)
        if s0 >= n:
            break
        s1 = min(n, int((b + 1) * beat * sr))
        section = int(np.searchsorted(bounds, b * beat, side="right")) - 1
        loud = 1.4 if sections[min(section, len(sections) - 1)].label == "chorus" else 1.0
        degree = prog[(b // 4) % 4]
        chord = [root + scale[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4)]
        m = s1 - s0
        pad = sum(_tone(np.full(m, _hz(c)), sr, (0.07, 0.02)) for c in chord)
        bass = _tone(np.full(m, _hz(chord[0] - 12)), sr, (0.12, 0.04))
        inst[s0:s1] += loud * (pad + bass) * _env(m, sr, 0.02, 0.05)
        for half in (0, 1):
            h0 = s0 + half * m // 2
            k = min(int(0.04 * sr), n - h0)
            inst[h0 : h0 + k] += 0.05 * loud * rng.standard_normal(k) * np.exp(-np.arange(k) / (0.01 * sr))
        if b % 2 == 0:
            k = min(int(0.15 * sr), n - s0)
            t = np.arange(k) / sr
            inst[s0 : s0 + k] += (
                0.3 * np.sin(2 * np.pi * (50 * t + 150 * 0.03 * (1 - np.exp(-t / 0.03)))) * np.exp(-t / 0.08)
            )
    # Vocals: sung sections only, a melody note per beat with vibrato.
    for section in sections:
        if section.label in UNSUNG:
            continue
        t, b, pitch = section.start, section.end, root + 12 + scale[int(rng.integers(7))]
        while t + beat / 2 < b:
            s0, s1 = int(t * sr), min(n, int(min(t + beat, b) * sr))
            pitch = int(np.clip(pitch + rng.choice([-2, -1, 0, 1, 2, 3]), root + 7, root + 26))
            m = s1 - s0
            vib = 0.3 * np.sin(2 * np.pi * 5.5 * np.arange(m) / sr)
            vocals[s0:s1] += 0.22 * _tone(_hz(pitch + vib), sr, (1.0, 0.5, 0.25, 0.12)) * _env(m, sr, 0.03, 0.06)
            t += beat
    mix = vocals + inst
    gain = 0.9 / max(float(np.abs(mix).max()), 1e-9)
    return (vocals * gain).astype(np.float32), (inst * gain).astype(np.float32)


def _lrc_time(t: float) -> str:
    m, s = divmod(t, 60)
    return f"[{int(m):02d}:{s:05.2f}]"


def lyrics_file(form: str, sections: list[Section]) -> tuple[str, str]:
    """(file name, text) of the sections in one of the lyric forms."""
    if form == "lrc":
        out = ["[ti:synthetic demo song]"]
        for s in sections:
            out.append(f"{_lrc_time(s.start)}[{s.label}]")
            step = (s.end - s.start) / max(len(s.lines), 1)
            out += [f"{_lrc_time(s.start + k * step)}{line}" for k, line in enumerate(s.lines)]
        return "lyrics.lrc", "\n".join(out) + "\n"
    if form == "sections-json":
        rows = [{"start": s.start, "end": s.end, "label": s.label, "lyrics": "\n".join(s.lines)} for s in sections]
        return "sections.json", json.dumps({"sections": rows}, indent=1) + "\n"
    if form == "sections-csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["start", "end", "label", "lyrics"])
        for s in sections:
            w.writerow([f"{s.start:.2f}", f"{s.end:.2f}", s.label, "\n".join(s.lines)])
        return "sections.csv", buf.getvalue()
    segs = [
        {
            "offset": s.start,
            "duration": round(s.end - s.start, 2),
            "codec_frame_start": seconds_to_frame(s.start),
            "codec_frame_end": seconds_to_frame(s.end),
            "line_content": s.text,
        }
        for s in sections
    ]
    return "lyrics.json", json.dumps({"segmented_lyrics": segs}, indent=1) + "\n"


def write_song(
    out: Path, index: int, seed: int, section_seconds: float = 4.0, sample_rate: int = 16_000, mix_only: bool = False
) -> dict:
    """Write song ``index`` as a folder under ``out`` (built beside it, then renamed in); returns its truth:
    id, form, tags and sections with their times and lines, for tests to compare against. ``mix_only``: the
    folder a user downloads, ``song.mp3`` + ``lyrics.lrc`` + ``tags.txt``, the stems left for separation."""
    rng = np.random.default_rng([seed, index])
    form = "lrc" if mix_only else LYRIC_FORMS[index % len(LYRIC_FORMS)]
    song = synth_song(rng, f"demo{index:04d}", drawn_plan(rng, section_seconds), AUDIO_STYLE, codes=False)
    song_id, tags = song.id, song.tags
    vocals, inst = synth_stems(rng, song.sections, sample_rate)
    tmp = out / f".tmp-{song_id}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if mix_only:
        write_audio(tmp / "song.mp3", vocals + inst, sample_rate)
    else:
        write_audio(tmp / "vocals.wav", vocals, sample_rate)
        write_audio(tmp / "instrumental.wav", inst, sample_rate)
        write_audio(tmp / "mix.wav", vocals + inst, sample_rate)
    name, text = lyrics_file(form, song.sections)
    (tmp / name).write_text(text, encoding="utf-8")
    meta: dict = {"id": song_id}
    if form == "sections-csv" or mix_only:
        (tmp / "tags.txt").write_text(", ".join(tags) + "\n", encoding="utf-8")
    else:
        meta["tags"] = tags
    if not mix_only:
        (tmp / "song.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    final = out / song_id
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    sections = [{"label": s.label, "start": s.start, "end": s.end, "lines": list(s.lines)} for s in song.sections]
    return {"id": song_id, "form": form, "tags": tags, "sections": sections, "seconds": len(vocals) / sample_rate}


def synth_demo(
    out: str | Path, n: int, seed: int = 0, section_seconds: float = 4.0, sample_rate: int = 16_000,
    mix_only: bool = False,
) -> list[dict]:  # fmt: skip
    """Songs 0..n-1 as folders under ``out``; returns each one's truth (:func:`write_song`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return [write_song(out, i, seed, section_seconds, sample_rate, mix_only) for i in range(n)]
