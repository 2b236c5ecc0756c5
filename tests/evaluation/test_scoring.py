"""Scoring a set of songs, eval.json and the HTML report, on songs made in memory (fast)."""

import json
import re

import numpy as np
import pytest
import soundfile as sf

from tests.evaluation.songs import CONTOUR_METRIC, audio_song, install_contour_metric, tone
from yue_train import evaluate as evaluate_api
from yue_train.evaluation.metrics import MetricError
from yue_train.evaluation.metrics.base import SongAudio
from yue_train.evaluation.run import evaluate, with_target_voices
from yue_train.evaluation.scoring import parse_metrics, score_songs
from yue_train.evaluation.songs import LoadedSong, load_songs


@pytest.fixture
def songs(tmp_path, monkeypatch):
    install_contour_metric(monkeypatch)
    media = tmp_path / "media_src"
    media.mkdir()
    a, b = audio_song(media, "a", 440.0), audio_song(media, "b", 330.0, seconds=2.0)
    a.audio.info = {"sections_requested": 2, "sections": [{"new_tokens": 10, "eoa": True}], "frames": 50}
    codes_only = LoadedSong(SongAudio("codes", 16_000, np.zeros(0, np.float32), lyrics="[verse]\nx\n"))
    codes_only.audio.info = {"sections_requested": 1, "sections": [{"new_tokens": 4, "eoa": False}], "frames": 100}
    return [a, b, codes_only]


def test_values_aggregate_and_skips(songs):
    ev = score_songs(songs, ["structure", CONTOUR_METRIC], progress=False)
    by_id = {sc.id: sc.values for sc in ev.scores}
    assert by_id["a"]["structure/sections_fraction"] == 0.5
    assert by_id["b"] == {
        "structure/seconds": 2.0,
        f"{CONTOUR_METRIC}/low_hz": 200.0,
        f"{CONTOUR_METRIC}/high_hz": 400.0,
    }
    assert f"{CONTOUR_METRIC}/low_hz" not in by_id["codes"]  # no audio: the audio metric skipped it
    assert "without audio" in ev.skipped[CONTOUR_METRIC]
    assert ev.aggregate["structure/seconds"] == pytest.approx((1.0 + 2.0 + 2.0) / 3)
    assert ev.aggregate["structure/sections_fraction"] == pytest.approx((0.5 + 1.0) / 2)  # only songs that have it
    assert ev.aggregate["songs"] == 3


def test_eval_json_and_self_contained_report(songs, tmp_path):
    out = tmp_path / "eval"
    res = evaluate(songs, out, ["structure", CONTOUR_METRIC], progress=False, title="my LoRA")
    data = json.loads(res.eval_json.read_text())
    assert data["config"]["metrics"] == ["structure", CONTOUR_METRIC]
    assert {"python", "torch", "numpy"} <= set(data["versions"])
    assert [s["id"] for s in data["songs"]] == ["a", "b", "codes"]
    assert data["songs"][2]["seconds"] is None and data["songs"][2]["media"] == {}
    # audio outside the report's folder is copied beside it and linked by a relative path
    assert data["songs"][0]["media"]["mix"] == "media/a/a.mix.wav"
    page = res.report.read_text()
    srcs = re.findall(r"<audio [^>]*src='([^']+)'", page)
    assert len(srcs) == 6 and all((out / s).is_file() for s in srcs)
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', page)
    assert images == ["a spectrogram", "a pitch", "b spectrogram", "b pitch"]  # none for the codes-only song
    assert "<title>my LoRA</title>" in page and "[verse]\nx\n" in page
    assert f"{CONTOUR_METRIC} skipped: songs without audio" in page


def test_metric_names_are_checked():
    assert parse_metrics("structure, structure") == ["structure"]
    with pytest.raises(MetricError, match="unknown metric 'nope'; choose from .*structure"):
        parse_metrics("structure,nope")
    with pytest.raises(MetricError, match="options given for 'vocal_range'"):
        score_songs([], ["structure"], {"vocal_range": {"x": 1}}, progress=False)


def test_prompt_references_become_the_voice_target(tmp_path):
    songs = [LoadedSong(SongAudio(n, 16_000, np.zeros(0, np.float32), info=i)) for n, i in
             (("a", {"target_voice": "v2.wav"}), ("b", {"target_voice": "v1.wav"}), ("c", {}))]  # fmt: skip
    assert with_target_voices(["voice_similarity"], {}, songs) == {"voice_similarity": {"target": ["v1.wav", "v2.wav"]}}
    own = {"voice_similarity": {"target": "mine.wav"}}
    assert with_target_voices(["voice_similarity"], own, songs) == own
    assert with_target_voices(["structure"], {}, songs) == {}


def test_the_python_api_scores_a_folder_of_audio(tmp_path):

    (tmp_path / "set" / "sub").mkdir(parents=True)
    sf.write(tmp_path / "set" / "one.wav", tone(1.0, 220.0), 16_000)
    sf.write(tmp_path / "set" / "sub" / "two.flac", tone(0.5, 330.0), 16_000)
    data = evaluate_api(tmp_path / "set", tmp_path / "out", metrics="structure")
    assert [(s["id"], s["values"]) for s in data["songs"]] == [
        ("one", {"structure/seconds": 1.0}),
        ("sub/two", {"structure/seconds": 0.5}),
    ]
    assert data["songs"][1]["media"] == {"mix": "media/sub_two/two.flac"}
    assert (tmp_path / "out" / "report.html").is_file()


def test_song_folders_of_a_reference_set_keep_their_stems(tmp_path):

    song = tmp_path / "refs" / "my_song"
    song.mkdir(parents=True)
    for name, hz in (("mix", 220.0), ("vocals", 440.0), ("instrumental", 110.0)):
        sf.write(song / f"{name}.wav", tone(1.0, hz), 16_000)
    (song / "lyrics.txt").write_text("[verse]\nla\n")
    (song / "genre.txt").write_text("folk\n")
    sf.write(tmp_path / "refs" / "loose.wav", tone(0.5, 330.0), 16_000)
    loaded = load_songs(tmp_path / "refs")
    assert [s.audio.id for s in loaded] == ["loose", "my_song"]
    folder_song = loaded[1]
    assert set(folder_song.media) == {"mix", "vocal", "inst"}
    assert (folder_song.audio.genres, folder_song.audio.lyrics) == ("folk", "[verse]\nla\n")
    # each stem is its own file: the vocal is the 440 Hz tone
    spectrum = np.abs(np.fft.rfft(folder_song.audio.vocal))
    assert int(np.argmax(spectrum)) == 440
