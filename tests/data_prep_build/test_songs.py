"""Input format of ``yue-prep build``: lyric forms, frame arithmetic at 50 frames/s, validation messages."""

from __future__ import annotations

import json

import pytest

from data_prep.songs import (
    check_lyrics,
    discover,
    frame_spans,
    load_sections,
    mark_duplicates,
    official_record,
    seconds_to_frame,
)
from yue_train.format import codec_layout
from yue_train.lyrics.forms import Section, SongError, load_lyrics_file, parse_lrc, parse_sections_csv, segment_text


@pytest.mark.parametrize(
    ("seconds", "frame"),
    [
        (0.0, 0),
        (0.019, 0),
        (0.02, 1),
        (0.039, 1),
        (0.04, 2),
        (0.58, 29),
        (1.1, 55),
        (9.99, 499),
        (10.0, 500),
        (13.93, 696),
    ],
)
def test_time_to_frame_is_the_frame_the_time_falls_in(seconds, frame):
    # 0.58 * 50 is 28.999999999999996 in floating point: truncating naively would give 28. The song reader and
    # the synthetic songs' official form (codec_layout) agree.
    assert seconds_to_frame(seconds) == codec_layout.seconds_to_frame(seconds) == frame


def test_official_example_boundaries_are_reproduced(reference_example):
    """The released example manifest's msa times map to exactly its codec_frame_start/end."""
    line = (reference_example / "example" / "jsonl" / "dummy.msa.xcodec_16k.jsonl").read_text().splitlines()[0]
    rec = json.loads(line)
    sections = [Section(m["label"], "", start=m["start"], end=m["end"]) for m in rec["msa"]]
    n_frames = 4258  # the example's codes
    spans = frame_spans(sections, n_frames, rec["audio_length_in_sec"])
    want = [(s["codec_frame_start"], s["codec_frame_end"]) for s in rec["splitted_lyrics"]["segmented_lyrics"]]
    assert spans == want


def test_lrc_sections_land_on_exact_frames_and_keep_their_text():
    lrc = (
        "[ti:Song]\n[ar:Someone]\n"
        "[00:00.00][intro]\n"
        "[verse]\n"  # untimed marker: starts at its first timed line
        "[00:04.37]first line\n[00:06.00]second line\n"
        "[00:10.01] [chorus]\n"
        "[00:10.50]la la\n"
        "[00:19.99][end]\n"
    )
    sections = parse_lrc(lrc, "x.lrc")
    assert [(s.label, s.start, s.end) for s in sections] == [
        ("intro", 0.0, 4.37),
        ("verse", 4.37, 10.01),
        ("chorus", 10.01, 19.99),
    ]
    assert sections[1].text == "[verse]\nfirst line\nsecond line\n\n"
    assert sections[0].text == "[intro]\n\n"
    # 4.37 s -> frame 218 (218.5 truncated), 10.01 s -> 500 (500.5), 19.99 s -> 999 (999.5)
    assert frame_spans(sections, 1100, 22.0) == [(0, 218), (218, 500), (500, 999)]


def test_last_section_without_end_runs_to_the_last_frame():
    sections = parse_lrc("[00:00.00][verse]\n[00:00.00]words\n[00:03.00][chorus]\n[00:03.10]more\n", "x.lrc")
    assert sections[-1].end is None
    assert frame_spans(sections, 251, 5.02) == [(0, 150), (150, 251)]


def test_one_frame_off_boundaries():
    """A boundary one sample before a frame edge stays in the earlier frame; at the edge it moves."""
    edge = 300 / 50  # 6.0 s
    for t, frame in ((edge - 1 / 16000, 299), (edge, 300), (edge + 0.0199, 300), (edge + 0.02, 301)):
        s = [Section("verse", "a", start=0.0, end=t), Section("chorus", "b", start=t, end=8.0)]
        assert frame_spans(s, 400, 8.0) == [(0, frame), (frame, 400)]


def test_record_segments_are_source_text_with_label():
    sections = [
        Section("intro", "", start=0.0, end=1.5),
        Section("verse", "hello world\nsecond line", start=1.5, end=4.26),
        Section("chorus", "  sing it  ", start=4.26, end=None),
    ]
    rec = official_record("s1", sections, ["pop", "female"], 300, 6.0, {"codec": "a.npy"})
    segs = rec["splitted_lyrics"]["segmented_lyrics"]
    assert [s["line_content"] for s in segs] == [
        "[intro]\n\n",
        "[verse]\nhello world\nsecond line\n\n",
        "[chorus]\nsing it\n\n",
    ]
    assert [(s["codec_frame_start"], s["codec_frame_end"]) for s in segs] == [(0, 75), (75, 213), (213, 300)]
    assert rec["msa"][-1] == {"start": 4.26, "end": 6.0, "label": "chorus"}
    assert rec["genres"] == "pop, female" and rec["audio_length_in_sec"] == 6.0


def test_csv_sections_with_clock_times_and_multiline_lyrics():
    text = 'start,end,label,lyrics\n0:00.00,0:02.5,intro,\n0:02.5,1:00.02,verse,"line one\nline two"\n'
    sections = parse_sections_csv(text, "s.csv")
    assert [(s.label, s.start, s.end) for s in sections] == [("intro", 0.0, 2.5), ("verse", 2.5, 60.02)]
    assert sections[1].text == "[verse]\nline one\nline two\n\n"
    assert frame_spans(sections, 3001, 60.03) == [(0, 125), (125, 3001)]


def test_official_form_keeps_line_content_verbatim(tmp_path):
    segs = [
        {"codec_frame_start": 0, "codec_frame_end": 100, "line_content": "[intro]\n\n"},
        {"codec_frame_start": 100, "codec_frame_end": 260, "line_content": "[verse]\n Oddly  spaced \n\n"},
    ]
    path = tmp_path / "lyrics.json"
    path.write_text(json.dumps({"segmented_lyrics": segs}))
    sections = load_lyrics_file(path)
    assert [s.text for s in sections] == [s["line_content"] for s in segs]
    assert frame_spans(sections, 260, 5.2) == [(0, 100), (100, 260)]


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ([Section("verse", "a", start=0.0, end=5.0), Section("chorus", "b", start=4.0, end=8.0)], "sections overlap"),
        ([Section("verse", "", start=0.0, end=5.0)], "empty lyrics"),
        ([Section("verse", "a", start=5.0, end=5.0)], "empty or reversed"),
        ([Section("verse", "a", start=5.0, end=8.0), Section("chorus", "b", start=1.0, end=2.0)], "not in time order"),
    ],
)
def test_bad_sections_are_named(sections, message):
    with pytest.raises(SongError, match=message):
        check_lyrics(sections)


def test_instrumental_sections_may_be_empty():
    check_lyrics([Section("intro", "", start=0.0, end=2.0), Section("verse", "x", start=2.0, end=4.0)])


def test_sections_beyond_the_audio():
    within = [Section("verse", "a", start=0.0, end=10.08)]  # 0.08 s past a 10 s file: clamped
    assert frame_spans(within, 500, 10.0) == [(0, 500)]
    with pytest.raises(SongError, match="beyond the audio"):
        frame_spans([Section("verse", "a", start=0.0, end=11.0)], 500, 10.0)
    with pytest.raises(SongError, match="beyond the audio"):
        frame_spans([Section("verse", "a", start=10.5, end=None)], 500, 10.0)


@pytest.mark.parametrize(
    ("lrc", "message"),
    [
        ("[verse]\nno time at all\n", "has no time"),
        ("[00:00.00][verse]\n[00:01.00][00:09.00]repeated\n", "2 timestamps"),
        ("just text\n", "no \\[verse\\]/\\[chorus\\]"),
    ],
)
def test_bad_lrc(lrc, message):
    with pytest.raises(SongError, match=message):
        parse_lrc(lrc, "x.lrc")


def test_lrc_without_section_markers_is_one_verse():
    """A downloaded LRC: timed lines, metadata, no [verse] markers; lines before a first marker form a verse."""
    sections = parse_lrc("[ti:Song]\n[00:01.50]first line\n[00:04.00]second line\n[00:09.00][end]\n", "x.lrc")
    assert [(s.label, s.start, s.end, s.lyrics) for s in sections] == [("verse", 1.5, 9.0, "first line\nsecond line")]
    mixed = parse_lrc("[00:01.00]intro words\n[00:02.00][chorus]\n[00:02.50]sing\n", "x.lrc")
    assert [(s.label, s.start, s.lyrics) for s in mixed] == [("verse", 1.0, "intro words"), ("chorus", 2.0, "sing")]


def _song(folder, files: dict[str, str | bytes], meta: dict | None = None):
    folder.mkdir(parents=True)
    for name, content in files.items():
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    if meta is not None:
        (folder / "song.json").write_text(json.dumps(meta))


def test_discovery_resolves_conventions_and_names_bad_entries(tmp_path):
    lrc = "[00:00.00][verse]\n[00:00.00]x\n"
    _song(
        tmp_path / "a",
        {"mix.wav": b"", "vocals.flac": b"", "instrumental.wav": b"", "lyrics.lrc": lrc},
        {"tags": ["pop"]},
    )
    _song(tmp_path / "b", {"mix.xyz": b"", "lyrics.lrc": lrc}, {"tags": "pop"})
    _song(tmp_path / "c", {"mix.wav": b"", "lyrics.txt": "x"}, {"tags": "pop"})
    _song(tmp_path / "d", {"mix.wav": b"", "lyrics.lrc": lrc, "tags.txt": "pop, male\nbright vocal"}, {"id": "a"})
    _song(tmp_path / "e", {"notes.md": "x"})
    specs = discover(tmp_path)
    mark_duplicates(specs)
    by = {s.source.rsplit("/", 1)[-1]: s for s in specs}
    assert by["a"].error is None and by["a"].stems["vocals"].name == "vocals.flac" and by["a"].tags == ["pop"]
    assert "unknown audio file type '.xyz'" in by["b"].error
    assert by["c"].error is None and by["c"].plain_lyrics.name == "lyrics.txt" and by["c"].lyrics_file is None
    assert "duplicate song id 'a'" in by["d"].error and by["d"].tags == ["pop", "male", "bright vocal"]
    assert "not a song folder" in by["e"].error


def test_segment_text_form():
    assert segment_text("verse", "a\nb\n") == "[verse]\na\nb\n\n"
    assert segment_text("intro", "  ") == "[intro]\n\n"


def test_jsonl_manifest_with_inline_sections(tmp_path):
    (tmp_path / "audio").mkdir()
    rows = [
        {
            "id": "s1",
            "mix": "audio/s1.flac",
            "vocals": "audio/s1_v.wav",
            "instrumental": "/abs/s1_i.wav",
            "genres": "pop, male",
            "sections": [
                {"start": 0, "end": 2.5, "label": "intro"},
                {"start": 2.5, "end": "0:07.25", "label": "verse", "lyrics": ["line a", "line b"]},
            ],
        },
        {"mix": "audio/s2.wav", "lyrics": "s2.lrc", "tags": ["pop"]},
    ]
    manifest = tmp_path / "songs.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n[1, 2]\n")
    specs = discover(manifest)
    assert [s.error for s in specs[:1]] == [None]
    s1 = specs[0]
    assert s1.mix == tmp_path / "audio" / "s1.flac" and str(s1.stems["instrumental"]) == "/abs/s1_i.wav"
    assert s1.tags == ["pop", "male"]
    sections = load_sections(s1)
    assert [s.text for s in sections] == ["[intro]\n\n", "[verse]\nline a\nline b\n\n"]
    assert frame_spans(sections, 400, 8.0) == [(0, 125), (125, 362)]
    assert specs[1].error == "no 'id'"
    assert "not a JSON object" in specs[2].error and specs[2].source == "songs.jsonl:4"


def test_a_song_folder_lists_every_problem_at_once(tmp_path):
    _song(tmp_path / "s", {"song.mp3": b"", "vocals.xyz": b"", "lyrics.doc": b"x"})
    (spec,) = discover(tmp_path)
    assert spec.mix.name == "song.mp3"  # song.* is a mix
    for problem in ("unknown audio file type '.xyz' of vocals.xyz", "no tags", "unknown file type '.doc'"):
        assert problem in spec.error


def test_a_flat_folder_of_mp3s_says_what_was_looked_for(tmp_path):
    for name in ("a.mp3", "b.mp3"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(
        ValueError, match=r"2 audio file\(s\) \(a.mp3, b.mp3\) but no song folder: each song is a folder"
    ):
        discover(tmp_path)


def test_plain_lyrics_use_their_aligned_lrc_once_there(tmp_path):
    _song(tmp_path / "s", {"mix.wav": b"", "lyrics.txt": "[verse]\nla la\n", "tags.txt": "pop"})
    (spec,) = discover(tmp_path)
    with pytest.raises(SongError, match=r"lyrics.txt has no times: align it to the vocal with --align"):
        load_sections(spec)
    (tmp_path / "s" / "lyrics.aligned.lrc").write_text("[00:01.00][verse]\n[00:01.20]la la\n")
    (spec,) = discover(tmp_path)
    assert spec.lyrics_file.name == "lyrics.aligned.lrc"
    assert [(s.label, s.start, s.lyrics) for s in load_sections(spec)] == [("verse", 1.0, "la la")]


def test_yue_prep_build_on_a_flat_folder_of_mp3s_says_what_it_looked_for(tmp_path, capsys, codec_dir):
    from data_prep.cli import main

    songs = tmp_path / "songs"
    songs.mkdir()
    for name in ("a.mp3", "b.mp3"):
        (songs / name).write_bytes(b"")
    (songs / ".cache").mkdir()  # hidden folders and the output folder are not songs
    out = songs / "shards"
    assert main(["build", "--input", str(songs), "--out", str(out), "--codec", str(codec_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2 audio file(s) (a.mp3, b.mp3) but no song folder: each song is a folder" in err
    assert "mix (mix.* or song.*, e.g. song.mp3), lyrics (lyrics.txt, lyrics.lrc, ...) and tags.txt" in err


def test_a_folder_of_audio_without_a_mix_name_says_how_to_name_it(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "track1.mp3").write_bytes(b"")
    (spec,) = discover(tmp_path)
    assert (
        "not a song folder" in spec.error and "it has 1 audio file(s) (track1.mp3): name the mix song.*" in spec.error
    )
