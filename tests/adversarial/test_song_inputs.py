"""Hostile song inputs of ``yue-prep build`` and ``align``: lyrics (LRC, sections CSV and JSON) with times
that overflow or run backwards, oversized text files, a malformed ``--tags-file``, damaged entries of the
separation cache (pointed at a temporary ``XDG_CACHE_HOME``) and damaged codes metadata of an earlier build.
Each asserts the one-line message or the fallback (separate or encode again); a traceback is a failure."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.songs import SongError, discover, frame_spans
from yue_train.lyrics.forms import load_lyrics_file

LYRICS_CASES = {
    "overflow.json": ('{"sections": [{"start": 0, "end": 1e308, "label": "verse", "lyrics": "la"}]}', "past 360,000 s"),
    "huge-mmss.json": ('{"sections": [{"start": 0, "end": "99999999999999:00", "label": "verse"}]}', "past 360,000 s"),
    "backwards.json": ('{"sections": [{"start": 1, "end": 0, "label": "verse", "lyrics": "la"}]}', "before it starts"),
    "backwards.csv": ("start,end,label,lyrics\n5,2,verse,la\n", "before it starts"),
    "overflow.csv": ("start,end,label,lyrics\n0,1e308,verse,la\n", "past 360,000 s"),
    "field-limit.csv": ("start,end,label,lyrics\n0,1,verse," + "x" * 200_000 + "\n", "not a readable CSV"),
    "nul.csv": ("start,end,label,lyrics\n0,1,ve\0rse,la\n", "label"),
    "nan.csv": ("start,end,label,lyrics\nnan,1,verse,la\n", "negative or not finite"),
    "huge-minutes.lrc": ("[00:00.00][verse]\n[999999999:00.00]la\n", "timestamp [999999999:00.00] is not [mm:ss.xx]"),
    "four-fields.lrc": ("[00:00.00][verse]\n[00:00.50]la\n[1:2:3:4]x\n", "timestamp [1:2:3:4] is not"),
    "spaced.lrc": ("[00:00.00][verse]\n[ 00:01.00]la\n", "timestamp [ 00:01.00] is not"),
    "many-stamps.lrc": ("[verse]\n" + "[00:01.00]" * 100_000 + "la\n", "100000 timestamps"),
    "deep.json": ("[" * 20_000 + "]" * 20_000, "nested deeper"),
    "infinity.json": ('{"sections": [{"start": Infinity, "label": "verse"}]}', "not a finite number"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(LYRICS_CASES))
def test_hostile_lyrics_are_one_line(name, tmp_path):
    text, expected = LYRICS_CASES[name]
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SongError) as e:
        frame_spans(load_lyrics_file(path), 500, 10.0)
    assert "\n" not in str(e.value) and expected in str(e.value), str(e.value)


def _song(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in {"mix.wav": "", "lyrics.lrc": "[00:00.00][verse]\n[00:00.50]la\n", **files}.items():
        (folder / name).write_text(text)
    return folder


@pytest.mark.parametrize("name", ["tags.txt", "lyrics.txt"])
def test_a_16_gib_song_text_file_is_refused_unread(name, tmp_path):
    folder = _song(tmp_path / "songs" / "s", **{"tags.txt": "pop"})
    if name == "lyrics.txt":
        (folder / "lyrics.lrc").unlink()
    with open(folder / name, "w+b") as f:
        f.truncate(16 << 30)  # sparse
    (spec,) = discover(tmp_path / "songs")
    if name == "lyrics.txt":  # plain lyrics are read when aligned
        from yue_train.lyrics.song_folder import AlignmentError, align_folder

        with pytest.raises(AlignmentError, match="17,179,869,184 bytes") as e:
            align_folder(spec.plain_lyrics, np.zeros(16_000, np.float32), aligner=None)  # type: ignore[arg-type]
        assert "\n" not in str(e.value)
    else:
        assert "17,179,869,184 bytes" in (spec.error or "") and "\n" not in spec.error


TAGS_FILE_CASES = {
    "deep": ("[" * 20_000 + "]" * 20_000, "nested deeper"),
    "infinity": ('{"genre": [Infinity]}', "not a finite number"),
    "not-json": ("{genre", "not valid JSON"),
    "list": ('["pop"]', "must map each tag kind"),
    "nested-tags": ('{"genre": [["pop"]]}', "must map each tag kind"),
    "number-tags": ('{"genre": [1, 2]}', "must map each tag kind"),
    "unknown-kind": ('{"flavour": ["sweet"]}', "unknown kinds"),
}


@pytest.mark.parametrize("name", sorted(TAGS_FILE_CASES))
def test_a_malformed_tags_file_is_one_line_naming_it(name, tmp_path):
    from yue_train.data.tags import load_top_tags

    text, expected = TAGS_FILE_CASES[name]
    path = tmp_path / "top_200_tags.json"
    path.write_text(text)
    with pytest.raises(ValueError) as e:
        load_top_tags(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value) and expected in str(e.value), str(e.value)


def test_a_huge_tags_file_is_refused_unread(tmp_path):
    from yue_train.data.tags import load_top_tags

    path = tmp_path / "top_200_tags.json"
    with open(path, "w+b") as f:
        f.truncate(16 << 30)
    with pytest.raises(ValueError, match="17,179,869,184 bytes, more than the"):
        load_top_tags(path)


# ------------------------------------------------------------------------------------------ separation cache
class Splitter:
    """Vocals = 0.25 x the mix, accompaniment = 0.75 x; counts its calls."""

    calls = 0

    def separate(self, path: str, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        Splitter.calls += 1
        x, _ = sf.read(path, dtype="float32")
        return 0.25 * x, 0.75 * x


def _npz(arrays: dict[str, np.ndarray], **kw) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays, **kw)
    return buf.getvalue()


def _header_only(shape: tuple[int, ...]) -> bytes:
    """An npz whose two members claim ``shape`` float32 samples and hold none."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for stem in ("vocals", "accompaniment"):
            member = io.BytesIO()
            np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False, "shape": shape})
            z.writestr(f"{stem}.npy", member.getvalue())
    return buf.getvalue()


ok = np.zeros(1600, np.float32)
CACHE_CASES = {
    "not-a-zip": (lambda p: p.write_bytes(b"garbage" * 10), "unreadable"),
    "truncated": (lambda p: p.write_bytes(_npz({"vocals": ok, "accompaniment": ok})[:200]), "unreadable"),
    "extra-member": (lambda p: p.write_bytes(_npz({"vocals": ok, "accompaniment": ok, "x": ok})), "not the two stems"),
    "missing-member": (lambda p: p.write_bytes(_npz({"vocals": ok})), "not the two stems"),
    "pickled-objects": (
        lambda p: p.write_bytes(_npz({"vocals": np.array([{}], dtype=object), "accompaniment": ok})), "object"
    ),
    "int16": (lambda p: p.write_bytes(_npz({"vocals": ok.astype(np.int16), "accompaniment": ok})), "int16"),
    "two-d": (lambda p: p.write_bytes(_npz({"vocals": np.zeros((2, 800), np.float32), "accompaniment": ok})), "(2, 800)"),
    "lengths-differ": (lambda p: p.write_bytes(_npz({"vocals": ok, "accompaniment": ok[:10]})), "differ in length"),
    "nan": (lambda p: p.write_bytes(_npz({"vocals": ok + np.nan, "accompaniment": ok})), "NaN"),
    "claims-1e12": (lambda p: p.write_bytes(_header_only((10**12,))), "not float32 samples of at most 7200 s"),
    "symlink": (lambda p: p.symlink_to(p.parent.parent / "elsewhere.npz"), "not a regular file"),
    "folder": (lambda p: p.mkdir(), "not a regular file"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CACHE_CASES))
def test_a_damaged_separation_cache_entry_is_separated_again(name, tmp_path, monkeypatch, capsys):
    from data_prep.separate import DEFAULT_MODEL
    from yue_train.data.separation_cache import SeparationCache, default_folder

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    mix = tmp_path / "mix.wav"
    sf.write(mix, np.linspace(-0.5, 0.5, 1600, dtype=np.float32), 16_000)
    (tmp_path / "elsewhere.npz").write_bytes(_npz({"vocals": ok + 1, "accompaniment": ok + 1}))
    cache = SeparationCache(default_folder(), DEFAULT_MODEL, Splitter)
    entry = default_folder() / f"{cache.key(mix, 16_000)}.npz"
    entry.parent.mkdir(parents=True)
    make, expected = CACHE_CASES[name]
    make(entry)
    before = Splitter.calls
    vocals, inst = cache.separate(mix, 16_000)
    assert Splitter.calls == before + 1 and np.allclose(vocals * 3, inst) and vocals.shape == (1600,)
    (line,) = [x for x in capsys.readouterr().err.splitlines() if "separation cache" in x]
    assert line.startswith(f"separation cache: {entry} is damaged (") and expected in line, line
    assert line.endswith("; separating again")
    if name == "folder":  # a folder in its place is left alone: the stems are not cached
        assert entry.is_dir()
        return
    assert entry.is_file() and not entry.is_symlink()  # replaced by a good entry, read next time
    assert np.array_equal(SeparationCache(default_folder(), DEFAULT_MODEL, Splitter).separate(mix, 16_000)[0], vocals)
    assert Splitter.calls == before + 1
    assert np.array_equal(np.load(tmp_path / "elsewhere.npz")["vocals"], ok + 1)  # nothing written through


# ------------------------------------------------------------------------------------------ codes of a build
def _codes(out: Path) -> None:
    from data_prep import encode_songs

    codes = {k: np.full((8, 10), 7, np.int16) for k in encode_songs.CODE_FILES}
    encode_songs.write_codes(
        out, "s", codes, {"input_hash": "h", "n_samples": 1600, "n_frames": 5, "sample_rate": 16_000}
    )


def _meta_edit(key: str, value: object):
    def edit(out: Path) -> None:
        path = out / "codes" / "s" / "s.codes.json"
        meta = json.loads(path.read_text())
        meta[key] = value
        path.write_text(json.dumps(meta))

    return edit


def _replace_codes(out: Path) -> None:
    np.save(out / "codes" / "s" / "s.npy", np.zeros((8, 10), np.int16))


def _symlinked_codes(out: Path) -> None:
    real = out / "codes" / "s" / "s.Vocals.npy"
    os.replace(real, out / "elsewhere.npy")
    real.symlink_to(out / "elsewhere.npy")


META_CASES = {
    "frames-negative": _meta_edit("n_frames", -5),
    "frames-string": _meta_edit("n_frames", "5"),
    "samples-float": _meta_edit("n_samples", 1600.5),
    "samples-missing": _meta_edit("n_samples", None),
    "rate-bool": _meta_edit("sample_rate", True),
    "hash-missing": _meta_edit("codes_sha256", None),
    "codes-replaced": _replace_codes,
    "codes-symlinked": _symlinked_codes,
    "meta-deep": lambda out: (out / "codes" / "s" / "s.codes.json").write_text("[" * 20_000 + "]" * 20_000),
}


@pytest.mark.parametrize("name", sorted(META_CASES))
def test_damaged_codes_of_an_earlier_build_are_encoded_again(name, tmp_path):
    from data_prep.encode_songs import cached_meta

    _codes(tmp_path)
    assert cached_meta(tmp_path, "s", "h") is not None
    META_CASES[name](tmp_path)
    assert cached_meta(tmp_path, "s", "h") is None
