"""A song without a vocal stem is scored on its mix, and eval.json, the report and yue-eval's summary say so."""

import json

import soundfile as sf

from inference.evaluate import main as eval_main
from tests.evaluation.songs import tone
from yue_train.evaluation.songs import NO_VOCAL_STEM


def test_a_mix_only_song_is_marked_as_scored_on_the_mix(tmp_path, capsys):
    songs = tmp_path / "songs"
    for name, stems in (("mix_only", ("mix",)), ("with_stem", ("mix", "vocals"))):
        (songs / name).mkdir(parents=True)
        for stem in stems:
            sf.write(songs / name / f"{stem}.wav", tone(1.0, 330.0), 16_000)
    out = tmp_path / "out"
    assert eval_main([str(songs), "--metrics", "vocal_range", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"1 song(s) (mix_only) with {NO_VOCAL_STEM}" in printed
    data = json.loads((out / "eval.json").read_text())
    assert {s["id"]: s["vocal_source"] for s in data["songs"]} == {"mix_only": "mix", "with_stem": "stem"}
    page = (out / "report.html").read_text()
    mix_only, with_stem = page.split("<h3>mix_only</h3>")[1].split("<h3>with_stem</h3>")
    assert "vocal-source" in mix_only and "vocal-source" not in with_stem
    assert "1 song(s) with no vocal stem" in page.split("<h2>")[0]  # said above the tables too
