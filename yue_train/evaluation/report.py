"""The HTML report of an evaluation: one file that works when its folder is copied elsewhere.

A table of the aggregate values and one of every song's values; per song its audio players (mix, vocal,
accompaniment), a spectrogram, the vocal pitch contour with the detected range (when a metric returned
one) and the lyrics. Pictures are embedded as PNG data; audio files are linked by relative path (files
outside the report's folder are copied under ``media/`` first), so the report stays small for long songs.
"""

from __future__ import annotations

import base64
import html
import re
import shutil
from pathlib import Path

from yue_train.evaluation.plots import pitch_png, spectrogram_png
from yue_train.evaluation.scoring import Evaluation
from yue_train.evaluation.songs import NO_VOCAL_STEM, LoadedSong

REPORT_HTML = "report.html"
MEDIA = "media"
PLAYER_LABELS = {"mix": "mix", "vocal": "vocal", "inst": "accompaniment"}
AUDIO_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".ogg": "audio/ogg"}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f2f2f2; } td.id, th.id { text-align: left; }
section.song { border-top: 2px solid #ddd; padding-top: 0.8em; margin-top: 1.2em; }
.players { display: flex; gap: 1.2em; flex-wrap: wrap; } .players figure { margin: 0; }
figcaption { font-size: 0.8em; color: #555; } img { max-width: 100%; display: block; margin: 0.4em 0; }
pre.lyrics { background: #fafafa; border: 1px solid #eee; padding: 0.6em; white-space: pre-wrap; }
.note { color: #666; font-size: 0.85em; }
"""


def pitch_contour(artifacts: dict[str, dict]) -> dict | None:
    """The first metric artifact that is a pitch contour (``times`` and ``f0``), if any."""
    for found in artifacts.values():
        if isinstance(found, dict) and "f0" in found and "times" in found:
            return found
    return None


def song_pictures(evaluation: Evaluation) -> list[dict[str, bytes]]:
    """Per song: ``{"spectrogram": png, "pitch": png}`` for what it has (audio, a pitch contour)."""
    pictures = []
    for song, sc in zip(evaluation.songs, evaluation.scores, strict=True):
        found: dict[str, bytes] = {}
        if song.has_audio:
            found["spectrogram"] = spectrogram_png(song.audio.mix, song.audio.sample_rate, f"{song.audio.id}: mix")
        contour = pitch_contour(sc.artifacts)
        if contour is not None:
            heard = (
                "vocal pitch" if contour.get("stem", "vocal") == "vocal" else "pitch of the whole mix (no vocal stem)"
            )
            found["pitch"] = pitch_png(contour, f"{song.audio.id}: {heard}")
        pictures.append(found)
    return pictures


def _fmt(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:,.0f}" if float(v).is_integer() and abs(v) >= 1 else f"{v:.4g}"


def place_media(songs: list[LoadedSong], folder: Path) -> None:
    """Copy each song's audio files that lie outside ``folder`` to ``folder/media/SONG/`` (and point the
    song at the copies), so the report links every file by a relative path inside its folder. Each song's
    folder name is unique: ids that differ only in characters a file name cannot hold get ``-2``, ``-3``, ..."""
    used: set[str] = set()
    for song in songs:
        slug = base = re.sub(r"[^\w.-]+", "_", song.audio.id)
        n = 1
        while slug.lower() in used:  # lower case: a case-insensitive disk would merge them too
            n += 1
            slug = f"{base}-{n}"
        for name, path in song.media.items():
            try:
                path.resolve().relative_to(folder.resolve())
            except ValueError:
                used.add(slug.lower())
                target = folder / MEDIA / slug / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                song.media[name] = target


def _relative(path: Path, folder: Path) -> str:
    return path.resolve().relative_to(folder.resolve()).as_posix()


def _head(key: str) -> str:
    metric, _, name = key.partition("/")
    return f"<th>{html.escape(metric)}<br>{html.escape(name)}</th>" if name else f"<th>{html.escape(key)}</th>"


def _song_table(rows: list[tuple[str, dict[str, float]]], keys: list[str]) -> str:
    """One row per song, one column per value."""
    body = "".join(
        f'<tr><td class="id">{html.escape(name)}</td>'
        + "".join(f"<td>{_fmt(values.get(k))}</td>" for k in keys)
        + "</tr>"
        for name, values in rows
    )
    return f'<table class="songs"><tr><th class="id">song</th>{"".join(map(_head, keys))}</tr>{body}</table>'


def _aggregate_table(values: dict[str, float]) -> str:
    """One row per value: its name and the mean over the songs (or the set metric's value)."""
    body = "".join(f'<tr><td class="id">{html.escape(k)}</td><td>{_fmt(v)}</td></tr>' for k, v in values.items())
    return f'<table class="aggregate"><tr><th class="id">value</th><th>all songs</th></tr>{body}</table>'


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def render_html(evaluation: Evaluation, folder: Path, pictures: list[dict[str, bytes]], title: str) -> str:
    keys = list(dict.fromkeys(k for sc in evaluation.scores for k in sc.values))
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        f"<p class='note'>{len(evaluation.songs)} song(s); metrics: {html.escape(', '.join(evaluation.metrics))}; "
        f"scored in {evaluation.seconds:.1f} s</p>",
    ]
    for metric, why in evaluation.skipped.items():
        parts.append(f"<p class='note'>{html.escape(metric)} skipped: {html.escape(why)}</p>")
    mix_only = [s.audio.id for s in evaluation.songs if s.vocal_source == "mix"]
    if mix_only:
        parts.append(f"<p class='note'>{len(mix_only)} song(s) with {html.escape(NO_VOCAL_STEM)}</p>")
    aggregate = {k: v for k, v in evaluation.aggregate.items() if k != "songs"}
    parts += ["<h2>Aggregate</h2>", _aggregate_table(aggregate)]
    parts += ["<h2>Per song</h2>", _song_table([(sc.id, sc.values) for sc in evaluation.scores], keys)]
    for song, found in zip(evaluation.songs, pictures, strict=True):
        a = song.audio
        parts.append(f"<section class='song'><h3>{html.escape(a.id)}</h3>")
        if a.genres:
            parts.append(f"<p><b>genres</b>: {html.escape(a.genres)}</p>")
        if song.media:
            parts.append("<div class='players'>")
            for name, path in song.media.items():
                src = html.escape(_relative(path, folder))
                kind = AUDIO_TYPES.get(path.suffix.lower(), "audio/wav")
                parts.append(
                    f"<figure><figcaption>{PLAYER_LABELS.get(name, name)}</figcaption>"
                    f"<audio controls preload='metadata' src='{src}' type='{kind}'></audio></figure>"
                )
            parts.append("</div>")
        else:
            parts.append("<p class='note'>no audio (codes only: generate with a codec to hear it)</p>")
        if song.vocal_source == "mix":
            parts.append(f"<p class='note vocal-source'>{html.escape(NO_VOCAL_STEM)}</p>")
        for name, png in found.items():
            parts.append(_img(png, f"{a.id} {name}"))
        if a.lyrics:
            parts.append(f"<pre class='lyrics'>{html.escape(a.lyrics)}</pre>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    evaluation: Evaluation, folder: str | Path, title: str = "yue-eval", pictures: list[dict[str, bytes]] | None = None
) -> Path:
    """Write ``folder/report.html``; ``pictures`` as :func:`song_pictures` returns (drawn when not given)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pictures = song_pictures(evaluation) if pictures is None else pictures
    place_media(evaluation.songs, folder)
    path = folder / REPORT_HTML
    path.write_text(render_html(evaluation, folder, pictures, title), encoding="utf-8")
    return path
