"""A song folder as ``yue-prep build`` reads it is scored with its lyrics, in every lyrics form build reads,
read by build's own reader (so build and evaluation see the same words)."""

import json

import pytest
import soundfile as sf

from data_prep.songs import discover, load_sections
from tests.evaluation.songs import tone
from yue_train.evaluation.metrics.lyrics import normalize_text
from yue_train.evaluation.run import evaluate_folder
from yue_train.evaluation.songs import SongLoadError, load_songs

SECTIONS = [{"start": 0, "end": 0.5, "label": "verse", "lyrics": "la la"}, {"start": 0.5, "label": "chorus", "lyrics": ["na na"]}]  # fmt: skip
TWO_SECTIONS = "[verse]\nla la\n\n[chorus]\nna na\n"
TIMED = {
    "lrc with markers": (
        {"lyrics.lrc": "[00:00.10][verse]\n[00:00.20]la la\n[00:00.50][chorus]\n[00:00.60]na na\n"},
        TWO_SECTIONS,
    ),  # fmt: skip
    "lrc without markers": (
        {"lyrics.lrc": "[ti:Song]\n[00:00.10]la la\n[00:00.50]na na\n"},
        "[verse]\nla la\nna na\n",
    ),  # fmt: skip
    "official json": (
        {
            "lyrics.json": {
                "segmented_lyrics": [
                    {"codec_frame_start": 0, "codec_frame_end": 25, "line_content": "[verse]\nla la\n\n"},
                    {"codec_frame_start": 25, "codec_frame_end": 50, "line_content": "[chorus]\nna na\n\n"},
                ]
            }
        },
        TWO_SECTIONS,
    ),  # fmt: skip
    "sections json": ({"sections.json": SECTIONS}, TWO_SECTIONS),
    "sections csv": (
        {"sections.csv": "start,end,label,lyrics\n0,0.5,verse,la la\n0:00.5,,chorus,na na\n"},
        TWO_SECTIONS,
    ),
    "song.json inline": ({"song.json": {"sections": SECTIONS}}, TWO_SECTIONS),
    "song.json names the file": (
        {"song.json": {"lyrics": "words.lrc"}, "words.lrc": "[00:00.10]la la\n"},
        "[verse]\nla la\n",
    ),  # fmt: skip
    "transcribed lrc (--transcribe)": (
        {"lyrics.transcribed.lrc": "[00:00.10][verse]\n[00:00.20]la la\n"},
        "[verse]\nla la\n",
    ),  # fmt: skip
    "aligned lrc beside lyrics.txt": (
        {"lyrics.txt": "la la\n", "lyrics.aligned.lrc": "[00:00.10][verse]\n[00:00.20]la la, fixed by hand\n"},
        "[verse]\nla la, fixed by hand\n",
    ),
}


def _song_folder(folder, files, mix="song.wav"):
    folder.mkdir(parents=True)
    sf.write(folder / mix, tone(1.0, 220.0), 16_000)
    (folder / "tags.txt").write_text("folk, piano\n")
    for name, content in files.items():
        (folder / name).write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")


@pytest.mark.parametrize("form", list(TIMED))
def test_every_timed_form_gives_the_words_build_reads(tmp_path, form):
    files, expected = TIMED[form]
    _song_folder(tmp_path / "songs" / "s1", files)
    (song,) = load_songs(tmp_path / "songs")
    assert song.audio.id == "s1" and song.audio.lyrics == expected
    (spec,) = discover(tmp_path / "songs")  # build's reading of the same folder: the same words
    assert song.audio.lyrics == "".join(s.text for s in load_sections(spec)).strip() + "\n"


def test_plain_lyrics_that_build_would_refuse_are_scored_as_they_are(tmp_path):
    _song_folder(tmp_path / "songs" / "s1", {"lyrics.txt": "[00:01.00]la la\n\n[chorus]\nna   na\n"})
    (song,) = load_songs(tmp_path / "songs")
    assert song.audio.lyrics == TWO_SECTIONS  # timestamps dropped, whitespace collapsed, a [verse] before the marker
    assert normalize_text(song.audio.lyrics) == "la la na na"  # what lyrics_wer and lyrics_per compare


def test_a_build_style_song_folder_shows_its_lyrics_in_eval_json_and_the_report(tmp_path):
    _song_folder(tmp_path / "songs" / "s1", TIMED["lrc with markers"][0], mix="song.wav")
    result = evaluate_folder(tmp_path / "songs", tmp_path / "out", "structure", progress=False)
    (entry,) = json.loads(result.eval_json.read_text())["songs"]
    assert entry["lyrics"] == TWO_SECTIONS and entry["media"] == {"mix": "media/s1/song.wav"}
    assert "[chorus]\nna na" in result.report.read_text()


def test_a_folder_without_lyrics_has_none_and_a_broken_lyrics_file_is_one_line(tmp_path):
    _song_folder(tmp_path / "songs" / "s1", {})
    assert load_songs(tmp_path / "songs")[0].audio.lyrics == ""
    (tmp_path / "songs" / "s1" / "lyrics.lrc").write_text("[00:01.00]la\n[00:02.00][00:03.00]twice\n")
    with pytest.raises(SongLoadError, match=r"s1: lyrics.lrc:2: a line with 2 timestamps"):
        load_songs(tmp_path / "songs")


def test_a_lyrics_file_linked_from_outside_the_songs_folder_is_refused(tmp_path):
    (tmp_path / "private.lrc").write_text("[00:00.10]secret\n")
    _song_folder(tmp_path / "songs" / "s1", {})
    (tmp_path / "songs" / "s1" / "lyrics.lrc").symlink_to(tmp_path / "private.lrc")
    with pytest.raises(SongLoadError, match="lyrics .*lyrics.lrc leads outside the songs folder"):
        load_songs(tmp_path / "songs")
    assert load_songs(tmp_path / "songs", follow_symlinks=True)[0].audio.lyrics == "[verse]\nsecret\n"
