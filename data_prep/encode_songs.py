"""Encoding stage of ``yue-prep build``: one song -> its three code files, or the reason it is rejected.

Codes of a song live in ``<out>/codes/<id>/`` with a metadata file written last (its presence means the
codes are complete) that holds the hash of the inputs they came from; a re-run reuses them when the hash
matches. Runs in the build's process or in its worker processes (one codec loaded per process).
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing as mp
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from data_prep.align_songs import SongAligner, load_vocal
from data_prep.songs import MAX_STEM_DIFF_S, STEMS, SongError, SongSpec, frame_spans, load_sections, official_record
from data_prep.transcribe_songs import SongTranscriber
from yue_train.data.shards import TMP_SUFFIX, write_json_atomic
from yue_train.data.tags import TopTags, check_tags
from yue_train.format import codec_layout as cl
from yue_train.format.bounded_json import JsonFileError, read_json_object
from yue_train.format.files import check_regular_file
from yue_train.format.provenance import file_fingerprint
from yue_train.lyrics.forms import Section

if TYPE_CHECKING:
    from data_prep.build import BuildOptions, Dist
    from yue_train.codec.model import YueCodec

BUILD_VERSION = 1  # part of every codes hash: bump when the codes a build writes would change
N_CODEBOOKS = cl.STAGE2_CODEBOOKS
SAMPLE_RATE = cl.SAMPLE_RATE
CODE_FILES = {"codec": "{id}.npy", "vocals_codec": "{id}.Vocals.npy", "instrumental_codec": "{id}.Instrumental.npy"}


class OutputError(OSError):
    """Writing into ``--out`` failed (disk full, permissions): fatal for the build, unlike a bad song."""


def check_input_files(spec: SongSpec) -> None:
    """Every file the song names is a regular file (a FIFO would block the encoder, a device never end)."""
    for what, path in (("mix", spec.mix), *spec.stems.items(), ("lyrics", spec.lyrics_file)):
        if path is None:
            continue
        try:
            check_regular_file(path, what)
        except (OSError, ValueError) as e:
            raise SongError(str(e)) from None


@dataclass
class SongResult:
    """One song's outcome; ``record`` is its official manifest record unless it was rejected."""

    index: int
    id: str
    source: str
    status: str  # "encoded" | "reused" | "rejected"
    record: dict[str, Any] | None = None
    reason: str | None = None
    warnings: list[str] = field(default_factory=list)
    audio_seconds: float = 0.0
    codes_sha256: str = ""
    alignment: dict[str, Any] | None = None  # plain lyrics: the alignment's file, score and flagged lines
    transcription: dict[str, Any] | None = None  # no lyrics: the transcription's file, lines and guessed sections


def audio_hash(spec: SongSpec, codec_fp: str, separate: str) -> str:
    """Key of a song's codes: build version, codec, and the bytes of each audio input."""
    h = hashlib.sha256(f"yue-prep-build v{BUILD_VERSION} codec {codec_fp} k{N_CODEBOOKS}".encode())
    for role, path in (("mix", spec.mix), *spec.stems.items()):
        h.update(f"|{role}|".encode())
        if path is None:
            h.update(f"separated by {separate}".encode())
        else:
            try:
                file_fingerprint(path, h)
            except FileNotFoundError:
                raise SongError(f"{role}: file not found: {path}") from None
    return h.hexdigest()


def song_dir(out: Path, song_id: str) -> Path:
    return out / "codes" / song_id


def _meta_path(out: Path, song_id: str) -> Path:
    return song_dir(out, song_id) / f"{song_id}.codes.json"


def cached_meta(out: Path, song_id: str, key: str) -> dict[str, Any] | None:
    """The codes' metadata if complete codes for exactly these inputs are on disk: lengths that are counts,
    and code files (not symlinks) whose bytes hash to the ``codes_sha256`` the metadata records; otherwise
    None, and the song is encoded again."""
    path = _meta_path(out, song_id)
    try:
        meta = read_json_object(path)
    except JsonFileError:
        return None
    if meta.get("input_hash") != key:
        return None
    counts = [meta.get(k) for k in ("n_samples", "n_frames", "sample_rate")]
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
        return None  # damaged: encode again rather than record wrong lengths
    folder = song_dir(out, song_id)
    files = [folder / name.format(id=song_id) for name in CODE_FILES.values()]
    if not all(f.is_file() and not f.is_symlink() for f in files):
        return None
    h = hashlib.sha256()  # the codes must be the bytes the metadata vouches for (a few MB at most)
    for f in files:
        h.update(f.read_bytes())
    return meta if meta.get("codes_sha256") == h.hexdigest() else None


def write_codes(out: Path, song_id: str, codes: dict[str, np.ndarray], meta: dict[str, Any]) -> str:
    """Codes then metadata, each under a temporary name renamed into place; the old metadata goes first,
    so an interrupted write never leaves a metadata file that vouches for mixed old and new codes.
    Returns the hash of the code files' bytes (stored in the metadata too)."""
    folder = song_dir(out, song_id)
    folder.mkdir(parents=True, exist_ok=True)
    _meta_path(out, song_id).unlink(missing_ok=True)
    h = hashlib.sha256()
    for fieldname, arr in codes.items():
        final = folder / CODE_FILES[fieldname].format(id=song_id)
        tmp = final.with_name(final.name + TMP_SUFFIX)
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        h.update(buf.getvalue())
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, final)
    meta["codes_sha256"] = h.hexdigest()
    write_json_atomic(_meta_path(out, song_id), meta)
    return meta["codes_sha256"]


class _Worker:
    """What an encoding process holds: the codec (loaded on first use, once), options, tag list, separator.
    A process whose songs all have their codes already never loads the codec, nor torch."""

    def __init__(
        self,
        opts: BuildOptions,
        codec_fp: str,
        top: TopTags | None,
        device: str,
        threads: int,
        bar_line: int | None = None,
    ) -> None:
        self.opts, self.codec_fp, self.top = opts, codec_fp, top
        self.bar_line = bar_line  # the terminal line of each song's encoding bar; None: no such bar
        self.device = device
        self.threads = threads
        self._codec: YueCodec | None = None
        self._separator = None
        self.separation_identity: str | None = None
        self.separated_by = opts.separate  # what a missing stem's part of the codes' key says
        if opts.separate != "off":
            from data_prep.separate import model_identity

            self.separation_identity = model_identity(opts.separation_model)
            self.separated_by = f"{opts.separate} {self.separation_identity}"
        self._aligner = SongAligner(opts.aligner, device, opts.min_align_score) if opts.align else None
        self._transcriber = SongTranscriber(opts.whisper, opts.language, device) if opts.transcribe else None

    @property
    def codec(self) -> YueCodec:
        if self._codec is None:
            import torch

            from yue_train.codec.model import YueCodec

            if self.threads:
                torch.set_num_threads(self.threads)
            self._codec = YueCodec.from_folder(self.opts.codec, device=self.device, load_upsamplers=False)
        return self._codec

    def separator(self):
        if self._separator is None:
            from data_prep.separate import separation_cache

            self._separator = separation_cache(self.opts.separation_model, self.device, self.separation_identity)
        return self._separator

    def load_stems(self, spec: SongSpec) -> dict[str, np.ndarray]:
        from yue_train.codec.audio_io import MAX_SONG_SECONDS, AudioError, load_audio

        assert spec.mix is not None
        try:
            waves = {"mix": load_audio(spec.mix, SAMPLE_RATE, max_seconds=MAX_SONG_SECONDS)}
            # A stem may be silent (an instrumental song's vocals); the mix may not.
            for stem, path in spec.stems.items():
                if path is not None:
                    waves[stem] = load_audio(path, SAMPLE_RATE, allow_silent=True, max_seconds=MAX_SONG_SECONDS)
        except AudioError as e:
            raise SongError(str(e)) from None
        missing = [s for s in STEMS if s not in waves]
        if missing:
            vocals, inst = self.separator().separate(str(spec.mix), SAMPLE_RATE)
            waves.update({k: v for k, v in (("vocals", vocals), ("instrumental", inst)) if k in missing})
        lengths = {k: len(w) / SAMPLE_RATE for k, w in waves.items()}
        if max(lengths.values()) - min(lengths.values()) > MAX_STEM_DIFF_S:
            desc = ", ".join(f"{k} {v:.2f} s" for k, v in lengths.items())
            raise SongError(f"stems differ in length by more than {MAX_STEM_DIFF_S} s ({desc}): not stems of one mix")
        n = min(len(w) for w in waves.values())  # small differences (encoder padding, export) are trimmed
        return {k: w[:n] for k, w in waves.items()}

    def align_lyrics(self, spec: SongSpec) -> dict[str, Any] | None:
        if spec.lyrics_file is not None:  # an aligned LRC is there (maybe corrected by hand): used as it is
            return {"lrc": str(spec.lyrics_file), "reused": True, "accepted": True}
        if self._aligner is None:
            return None  # load_sections says how to align
        return self._aligner.align(spec, lambda rate: load_vocal(spec, rate, self.opts.separate, self.separator))

    def transcribe_lyrics(self, spec: SongSpec) -> dict[str, Any] | None:
        if spec.lyrics_file is not None:  # a transcribed LRC is there (maybe corrected by hand): used as it is
            return {"lrc": str(spec.lyrics_file), "reused": True, "section_labels": "as in the file"}
        if self._transcriber is None:
            return None  # load_sections says how to transcribe
        return self._transcriber.transcribe(
            spec, lambda rate: load_vocal(spec, rate, self.opts.separate, self.separator, "transcribe")
        )

    def encode(self, waves: list[np.ndarray], song_id: str) -> list[np.ndarray]:
        """The codes of one song's waves, with a bar that moves per encoded window (a minute of audio each)."""
        from yue_train.progress import audio_bar

        frames = sum(self.codec.n_frames(len(w)) for w in waves)
        enabled = self.bar_line is not None
        with audio_bar(frames, f"encode {song_id}", enabled, leave=False, position=self.bar_line) as bar:
            return self.codec.encode_many(waves, N_CODEBOOKS, self.opts.batch_size, advance=bar.update)

    def checked_sections(self, spec: SongSpec, result: SongResult) -> list[Section]:
        """The song's sections, after every check that needs no audio decoded. A SongError lists all the
        problems found, so that one run shows the user everything to fix. Plain lyrics are aligned, and missing
        lyrics transcribed (both read the vocal), only when nothing else is wrong."""
        problems = [] if spec.error is None else [spec.error]
        try:
            check_input_files(spec)
        except SongError as e:
            problems.append(str(e))
        missing = [s for s in STEMS if spec.stems[s] is None]
        if missing and self.opts.separate == "off" and spec.mix is not None:  # without a mix, spec.error says so
            problems.append(
                f"missing stem(s): {', '.join(missing)} (vocal separation is off: add {missing[0]}.wav to the "
                f"song or pass --separate demucs)"
            )
        sections: list[Section] = []
        from_vocal = spec.lyrics_file is None and (
            (spec.plain_lyrics is not None and self._aligner is not None)
            or (spec.transcript_lrc is not None and self._transcriber is not None)
        )
        sources = (spec.lyrics_file, spec.inline_lyrics, spec.plain_lyrics, spec.transcript_lrc)
        if spec.plain_lyrics is not None and not problems:
            result.alignment = self.align_lyrics(spec)
        elif spec.transcript_lrc is not None and not problems:
            result.transcription = self.transcribe_lyrics(spec)
        # Lyrics timed from the vocal wait until the rest is fixed; a song with no lyrics has spec.error saying so.
        if any(x is not None for x in sources) and not (from_vocal and problems):
            try:
                sections = load_sections(spec)
            except SongError as e:
                if str(e) not in problems:
                    problems.append(str(e))
        if problems:
            raise SongError("; ".join(problems))
        return sections

    def process(self, spec: SongSpec) -> SongResult:
        result = SongResult(spec.index, spec.id, spec.source, "rejected")
        try:
            sections = self.checked_sections(spec, result)
            if self.top is not None:
                result.warnings = check_tags(spec.tags, self.top)
            key = audio_hash(spec, self.codec_fp, self.separated_by)
            meta = None if self.opts.force else cached_meta(self.opts.out, spec.id, key)
            if meta is None:
                for leftover in song_dir(self.opts.out, spec.id).glob(f"*{TMP_SUFFIX}"):  # of an interrupted write
                    leftover.unlink()
                waves = self.load_stems(spec)
                n_samples = len(waves["mix"])
                n_frames = self.codec.n_frames(n_samples)
                # Fail on timings before spending the encode.
                frame_spans(sections, n_frames, n_samples / SAMPLE_RATE)
                try:
                    mix, vocals, inst = self.encode([waves["mix"], waves["vocals"], waves["instrumental"]], spec.id)
                except (ValueError, RuntimeError) as e:  # one unencodable song must not end a long build
                    raise SongError(f"encoding failed: {type(e).__name__}: {e}") from None
                meta = {"id": spec.id, "input_hash": key, "n_samples": n_samples, "n_frames": n_frames}
                meta["sample_rate"] = SAMPLE_RATE
                try:
                    write_codes(
                        self.opts.out, spec.id, {"codec": mix, "vocals_codec": vocals, "instrumental_codec": inst}, meta
                    )
                except OSError as e:
                    raise OutputError(f"cannot write the codes of {spec.id} into {self.opts.out}: {e}") from None
                result.status = "encoded"
                result.audio_seconds = n_samples / SAMPLE_RATE
            else:
                result.status = "reused"
            result.codes_sha256 = meta["codes_sha256"]
            paths = {k: f"codes/{spec.id}/{v.format(id=spec.id)}" for k, v in CODE_FILES.items()}
            result.record = official_record(
                spec.id, sections, spec.tags, meta["n_frames"], meta["n_samples"] / SAMPLE_RATE, paths
            )
        except SongError as e:
            result.status, result.reason, result.record = "rejected", str(e), None
        except OutputError:
            raise
        except Exception as e:  # every song is its own failure: whatever its files raise rejects it alone
            text = " ".join(x.strip() for x in str(e).splitlines() if x.strip())
            result.status, result.reason, result.record = "rejected", f"{type(e).__name__}: {text}", None
        return result


_worker: _Worker | None = None


def _init_worker(
    opts: BuildOptions, codec_fp: str, top: TopTags | None, device: str, threads: int, bar_line: int | None = None
) -> None:
    global _worker
    _worker = _Worker(opts, codec_fp, top, device, threads, bar_line)


def _process(spec: SongSpec) -> SongResult:
    assert _worker is not None
    return _worker.process(spec)


def encode_songs(
    specs: list[SongSpec], opts: BuildOptions, codec_fp: str, top: TopTags | None, d: Dist
) -> list[SongResult]:
    """This rank's songs, through ``opts.workers`` processes, with a songs/s and audio-hours/s bar. Songs
    encoded in this process (one worker) also get a bar of their own under it, moving per encoded window."""
    device = opts.device
    if device == "auto":  # only `auto` needs torch; a rebuild that encodes nothing stays torch-free otherwise
        from yue_train.devices import resolve_device

        device = str(resolve_device(device))
    threads = opts.threads or max(1, (os.cpu_count() or 1) // (opts.workers * d.local_world))
    desc = f"encode rank {d.rank}/{d.world}" if d.active else "encode"
    bar = tqdm(total=len(specs), unit="song", desc=desc, disable=not opts.progress, position=d.local_rank)
    started = time.perf_counter()
    audio_s = 0.0
    results: list[SongResult] = []
    pool = None
    try:
        if opts.workers > 1 and len(specs) > 1:
            # spawn: a forked child would inherit torch's thread pools in whatever state the parent left them
            pool = mp.get_context("spawn").Pool(
                min(opts.workers, len(specs)), _init_worker, (opts, codec_fp, top, device, threads)
            )
            it = pool.imap(_process, specs, chunksize=1)
        else:
            # A song's bar goes below every rank's songs bar (lines 0 .. local_world - 1).
            _init_worker(opts, codec_fp, top, device, threads, d.local_world + d.local_rank if opts.progress else None)
            it = map(_process, specs)
        for r in it:
            results.append(r)
            audio_s += r.audio_seconds
            bar.update()
            elapsed = max(time.perf_counter() - started, 1e-9)
            # tqdm flips its own rate to s/song below 1 song/s; say songs/s and audio-hours/s outright.
            rejected = sum(x.status == "rejected" for x in results)
            bar.set_postfix_str(
                f"{len(results) / elapsed:.3f} songs/s, {audio_s / 3600 / elapsed:.5f} audio-h/s "
                f"({audio_s / elapsed:.1f} audio-h/h), {rejected} rejected"
            )
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
    return results
