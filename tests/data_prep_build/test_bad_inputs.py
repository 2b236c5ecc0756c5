"""Bad songs are rejected one by one with their reason; the rest are built; nothing is left half-written."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep import encode_songs as build_mod
from data_prep.build import BUILD_SUMMARY_NAME, EXIT_FATAL, EXIT_REJECTED, cmd_build
from tests.conftest import FIXTURES
from tests.data_prep_build.conftest import build_args

TAGS = FIXTURES / "yue" / "top_200_tags.json"


def _variant(src: Path, root: Path, name: str, song_id: str | None = None) -> Path:
    """A copy of a sections-JSON demo song under a new folder (and id)."""
    dst = root / name
    shutil.copytree(src, dst)
    meta = json.loads((dst / "song.json").read_text())
    meta["id"] = song_id or name
    (dst / "song.json").write_text(json.dumps(meta))
    return dst


def _edit_sections(folder: Path, fn) -> None:
    path = folder / "sections.json"
    data = json.loads(path.read_text())
    fn(data["sections"])
    path.write_text(json.dumps(data))


def _pad(path: Path, seconds: float) -> None:
    wave, sr = sf.read(path, dtype="float32")
    sf.write(path, np.concatenate([wave, np.zeros(int(seconds * sr), np.float32)]), sr, subtype="PCM_16")


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory, demo_songs) -> tuple[Path, dict[str, str]]:
    """Songs (folder names sort in this order) and, for each bad one, a phrase its rejection must contain."""
    demo, _ = demo_songs
    root = tmp_path_factory.mktemp("bad") / "songs"
    root.mkdir()
    src = demo / "demo0001"  # sections.json form
    expect = {}
    shutil.copytree(demo / "demo0000", root / "a_good_lrc")
    f = _variant(src, root, "b_good_sections")
    meta = json.loads((f / "song.json").read_text())
    (f / "song.json").write_text(json.dumps({**meta, "tags": ["pop", "zzz-unheard-of"]}))  # warned, still built
    f = _variant(src, root, "c_small_stem_diff")
    _pad(f / "instrumental.wav", 0.1)  # within 0.2 s: trimmed, built
    f = _variant(src, root, "d_missing_stem")
    (f / "vocals.wav").unlink()
    expect["d_missing_stem"] = "missing stem(s): vocals (vocal separation is off"
    f = _variant(src, root, "e_stem_length")
    _pad(f / "instrumental.wav", 0.5)
    expect["e_stem_length"] = "stems differ in length by more than 0.2 s"
    f = _variant(src, root, "f_overlap")
    _edit_sections(f, lambda s: s[2].update(start=s[1]["end"] - 0.5))
    expect["f_overlap"] = "sections overlap: [verse] ends at"
    f = _variant(src, root, "g_beyond")
    _edit_sections(f, lambda s: s[-1].update(end=s[-1]["end"] + 2.0))
    expect["g_beyond"] = "beyond the audio"
    f = _variant(src, root, "h_empty_vocal")
    _edit_sections(f, lambda s: s[1].update(lyrics="   "))
    expect["h_empty_vocal"] = "section 1 [verse] has empty lyrics"
    f = _variant(src, root, "i_unknown_audio")
    (f / "mix.wav").rename(f / "mix.xyz")
    expect["i_unknown_audio"] = "mix: unknown audio file type '.xyz'"
    f = _variant(src, root, "j_unknown_lyrics")
    (f / "sections.json").rename(f / "sections.doc")
    expect["j_unknown_lyrics"] = "lyrics: unknown file type '.doc'"
    f = _variant(src, root, "j_plain_lyrics_not_aligned")
    (f / "sections.json").rename(f / "sections.txt")
    expect["j_plain_lyrics_not_aligned"] = "sections.txt has no times: align it to the vocal with --align"
    _variant(src, root, "k_dupe_first", song_id="dupe")
    _variant(src, root, "l_dupe_second", song_id="dupe")
    expect["dupe"] = "duplicate song id 'dupe' (first used by"
    return root, expect


def test_each_bad_song_is_rejected_with_its_reason(tmp_path, bad_corpus, codec_dir):
    songs, expect = bad_corpus
    out = tmp_path / "out"
    tags = ["--tags-file", str(TAGS)] if TAGS.exists() else []
    assert cmd_build(build_args(songs, out, codec_dir, "--modes", "cot,stage2", *tags)) == EXIT_REJECTED
    summary = json.loads((out / BUILD_SUMMARY_NAME).read_text())
    if tags:  # tag problems warn and never reject
        warned = summary["tag_warnings"]["b_good_sections"]
        assert any("'zzz-unheard-of' is not in YuE's top-200" in w for w in warned)
        assert "no instrument tag (e.g. piano, guitar, drums)" in warned
        assert set(summary["tag_warnings"]) == {"b_good_sections"}
    reasons = {r["id"]: r["reason"] for r in summary["rejected"]}
    assert set(reasons) == set(expect), reasons
    for sid, phrase in expect.items():
        assert phrase in reasons[sid], (sid, reasons[sid])
    dupe = next(r for r in summary["rejected"] if r["id"] == "dupe")
    assert dupe["source"].endswith("l_dupe_second")

    built = ["a_good_lrc", "b_good_sections", "c_small_stem_diff", "dupe"]
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == [json.loads((songs / "a_good_lrc/song.json").read_text())["id"], *built[1:]]
    assert summary["songs_encoded"] == 4
    assert summary["shards"]["cot"]["documents"] == 4 and summary["shards"]["stage2"]["documents"] == 8
    # rejected songs leave no codes behind, and no temporary file survives anywhere
    assert sorted(p.name for p in (out / "codes").iterdir()) == sorted([records[0]["id"], *built[1:]])
    assert not list(out.rglob("*.tmp"))


def test_separation_asked_for_but_unavailable_is_a_clear_error(tmp_path, demo_songs, codec_dir, capsys, monkeypatch):
    for name in ("demucs", "demucs.apply", "demucs.pretrained"):  # as if not installed (None: import fails)
        monkeypatch.setitem(sys.modules, name, None)
    songs, _ = demo_songs
    out = tmp_path / "out"
    assert cmd_build(build_args(songs, out, codec_dir, "--separate", "demucs")) == EXIT_FATAL
    err = capsys.readouterr().err
    assert "--separate demucs: demucs is not installed" in err and "pip install demucs" in err
    assert not out.exists()


def test_interrupted_code_write_leaves_no_valid_metadata(tmp_path, monkeypatch):
    """A crash between the code files: the metadata (the 'complete' mark) is gone, so the song is redone."""
    out = tmp_path / "out"
    codes = {k: np.zeros((8, 10), np.int16) for k in build_mod.CODE_FILES}
    lengths = {"n_samples": 1600, "n_frames": 5, "sample_rate": 16_000}  # what a build records beside the hash
    build_mod.write_codes(out, "s", codes, {"input_hash": "h1", **lengths})
    assert build_mod.cached_meta(out, "s", "h1") is not None

    real_replace, calls = build_mod.os.replace, []

    def failing_replace(a, b):
        calls.append(a)
        if len(calls) == 2:
            raise OSError("disk full")
        real_replace(a, b)

    monkeypatch.setattr(build_mod.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        build_mod.write_codes(out, "s", codes, {"input_hash": "h2", **lengths})
    monkeypatch.undo()
    assert build_mod.cached_meta(out, "s", "h1") is None and build_mod.cached_meta(out, "s", "h2") is None


def test_a_new_users_song_is_rejected_with_every_problem_at_once(tmp_path, demo_songs, codec_dir, capsys):
    demo, _ = demo_songs
    song = tmp_path / "songs" / "my_song"
    song.mkdir(parents=True)
    shutil.copy(demo / "demo0001" / "mix.wav", song / "song.wav")  # a mix, no stems, no tags, untimed lyrics
    (song / "lyrics.txt").write_text("[verse]\nla la\n")
    out = tmp_path / "out"
    assert cmd_build(build_args(tmp_path / "songs", out, codec_dir)) == EXIT_FATAL
    (rejected,) = json.loads((out / BUILD_SUMMARY_NAME).read_text())["rejected"]
    problems = ("no tags", "missing stem(s): vocals, instrumental", "lyrics.txt has no times")
    assert all(p in rejected["reason"] for p in problems), rejected["reason"]
    shown = capsys.readouterr()
    assert all(p in shown.out + shown.err for p in problems)
