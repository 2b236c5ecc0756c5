"""Hostile records and paths in ``yue-prep tokenize``: each bad record is rejected alone with its id and a
one-line reason, special files never block, documents have a length limit, and one process writes an
output folder at a time."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from data_prep.cli import main as prep_main
from tests.data_prep.manifests import good_record, write_manifest
from yue_train.data.folder_lock import FolderLock
from yue_train.data.manifest import load_song
from yue_train.data.shards import iter_documents, read_summary
from yue_train.data.tokenize import TokenizeOptions, run_tokenize

REPO = Path(__file__).resolve().parents[2]


def run_prep(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``yue-prep`` in a subprocess with a deadline, so a blocking read fails the test instead of hanging it."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "data_prep.cli", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def _tokenize(manifest: Path, root: Path, out: Path, *extra: str) -> list[str]:
    return ["tokenize", "--manifest", str(manifest), "--root", str(root), "--out", str(out), "--no-progress", *extra]


def _msa_start(root: Path, rid: str, value: object) -> dict:
    r = good_record(root, rid)
    r["msa"][1]["start"] = value  # the chorus: the ICL prompt may be cut from it
    return r


def icl_bad_records(root: Path) -> dict[str, tuple[dict, str]]:
    """id -> (record, phrase of its reason): MSA and segment numbers of every wrong kind."""
    cases: dict[str, tuple[dict, str]] = {
        "msa-null": (_msa_start(root, "msa-null", None), "msa[1]: field 'start' is null"),
        "msa-string": (_msa_start(root, "msa-string", "15"), "msa[1]: field 'start' has type str"),
        "msa-list": (_msa_start(root, "msa-list", [15]), "msa[1]: field 'start' has type list"),
        "msa-nan": (_msa_start(root, "msa-nan", math.nan), "msa[1]: field 'start' is nan, not a finite number"),
        "msa-inf": (_msa_start(root, "msa-inf", math.inf), "msa[1]: field 'start' is inf, not a finite number"),
        "msa-negative": (_msa_start(root, "msa-negative", -3.0), "msa[1]: start -3.0 s is negative"),
        "msa-huge-int": (_msa_start(root, "msa-huge-int", 10**400), "beyond the range of a float"),
        "msa-bool": (_msa_start(root, "msa-bool", True), "msa[1]: field 'start' has type bool"),
    }
    r = good_record(root, "msa-reversed")
    r["msa"][1]["end"] = 2.0
    cases["msa-reversed"] = (r, "msa[1]: start 15.0 s is after end 2.0 s")
    r = good_record(root, "msa-end-inf")
    r["msa"][1]["end"] = -math.inf
    cases["msa-end-inf"] = (r, "msa[1]: field 'end' is -inf")
    r = good_record(root, "offset-string")
    r["splitted_lyrics"]["segmented_lyrics"][0]["offset"] = "soon"
    cases["offset-string"] = (r, "segmented_lyrics[0]: field 'offset' has type str")
    r = good_record(root, "duration-nan")
    r["splitted_lyrics"]["segmented_lyrics"][0]["duration"] = math.nan
    cases["duration-nan"] = (r, "segmented_lyrics[0]: field 'duration' is nan")
    r = good_record(root, "length-inf")
    r["audio_length_in_sec"] = math.inf
    cases["length-inf"] = (r, "field 'audio_length_in_sec' is inf")
    return cases


def test_icl_bad_numbers_reject_their_record_only(tmp_path, capsys):
    root = tmp_path / "data"
    bad = icl_bad_records(root)
    records = [good_record(root, "good-1"), *(r for r, _ in bad.values()), good_record(root, "good-2", seed=2)]
    manifest = write_manifest(tmp_path / "m.jsonl", records)
    out = tmp_path / "out"
    assert prep_main(_tokenize(manifest, root, out, "--mode", "icl")) == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err
    summary = read_summary(out)
    reasons = {r["id"]: r["reason"] for r in summary["rejected"]}
    assert set(reasons) == set(bad)
    for rid, (_, phrase) in bad.items():
        assert phrase in reasons[rid], (rid, reasons[rid])
        assert f"rejected {rid} (line" in err
    assert [d.meta["id"] for d in iter_documents(out)] == ["good-1", "good-2"]
    assert summary["records_rejected"] == len(bad) and summary["documents_written"] == 2


def test_overlapping_and_reversed_segments_are_rejected_in_every_mode(tmp_path):
    root = tmp_path / "data"
    overlap = good_record(root, "overlap")
    overlap["splitted_lyrics"]["segmented_lyrics"][1]["codec_frame_start"] = 700  # the first ends at 750
    reverse = good_record(root, "reversed")
    reverse["splitted_lyrics"]["segmented_lyrics"][1]["codec_frame_end"] = 100
    negative = good_record(root, "negative")
    negative["splitted_lyrics"]["segmented_lyrics"][0]["codec_frame_start"] = -50
    manifest = write_manifest(tmp_path / "m.jsonl", [good_record(root, "good"), overlap, reverse, negative])
    for mode in ("cot", "icl"):
        out = tmp_path / mode
        assert prep_main(_tokenize(manifest, root, out, "--mode", mode)) == 3
        reasons = {r["id"]: r["reason"] for r in read_summary(out)["rejected"]}
        assert "frames 700..1500 overlap the previous segment (which ends at frame 750)" in reasons["overlap"]
        assert "segmented_lyrics[1]: frames 750..100 are reversed" in reasons["reversed"]
        assert "segmented_lyrics[0]: frames -50..750 are negative" in reasons["negative"]
        assert [d.meta["id"] for d in iter_documents(out)] == ["good"]


def test_unexpected_exception_in_one_record_rejects_it_alone(tmp_path, monkeypatch):
    """Whatever a record's contents make the builders raise, the record is rejected with the error's type."""
    from yue_train.data import tokenize as tm

    root = tmp_path / "data"
    manifest = write_manifest(tmp_path / "m.jsonl", [good_record(root, "good"), good_record(root, "boom", seed=3)])
    real = tm.documents_for_record

    def flaky(record, opts, tokenizer):
        if record["id"] == "boom":
            raise KeyError("surprise")
        return real(record, opts, tokenizer)

    monkeypatch.setattr(tm, "documents_for_record", flaky)
    summary, code = run_tokenize(TokenizeOptions(manifest=manifest, out=tmp_path / "out", root=root, progress=False))
    assert code == 3
    assert summary["rejected"] == [{"id": "boom", "line": 2, "reason": "KeyError: 'surprise'"}]


def test_fifo_codes_and_manifest_are_refused_without_blocking(tmp_path):
    root = tmp_path / "data"
    r = good_record(root, "fifo")
    os.mkfifo(root / "npy" / "fifo.npy")
    r["vocals_codec"] = "npy/fifo.npy"
    manifest = write_manifest(tmp_path / "m.jsonl", [good_record(root, "good"), r])
    res = run_prep(*_tokenize(manifest, root, tmp_path / "out"), timeout=60)
    assert res.returncode == 3, res.stderr
    assert "rejected fifo (line 2): vocals_codec: " in res.stderr
    assert "is a FIFO (named pipe), not a regular file" in res.stderr

    os.mkfifo(tmp_path / "fifo.jsonl")
    res = run_prep(*_tokenize(tmp_path / "fifo.jsonl", root, tmp_path / "out2"), timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1] == (
        f"yue-prep tokenize: error: --manifest: {tmp_path / 'fifo.jsonl'} is a FIFO (named pipe), not a regular file"
    )


def test_max_doc_tokens_rejects_long_documents_and_huge_text(tmp_path, capsys):
    root = tmp_path / "data"
    huge = good_record(root, "huge-lyrics")
    huge["splitted_lyrics"]["segmented_lyrics"][0]["line_content"] = "[verse]\n" + "la " * 400_000 + "\n\n"
    manifest = write_manifest(tmp_path / "m.jsonl", [good_record(root, "short", seconds=10), huge])
    out = tmp_path / "out"
    # a 10 s song is ~1,000 audio tokens (+ text): within 3,000; 30 s is ~3,000 audio tokens: over
    assert prep_main(_tokenize(manifest, root, out, "--max-doc-tokens", "2500")) == 3
    reasons = {r["id"]: r["reason"] for r in read_summary(out)["rejected"]}
    assert reasons == {
        "huge-lyrics": "genres and lyrics make 2,400,071 characters of text, more than a document of "
        "--max-doc-tokens 2,500 can hold (32 characters per token at most)"
    }
    capsys.readouterr()
    manifest = write_manifest(
        tmp_path / "m2.jsonl", [good_record(root, "short", seconds=10), good_record(root, "long")]
    )
    assert prep_main(_tokenize(manifest, root, tmp_path / "out2", "--max-doc-tokens", "2500")) == 3
    (rejected,) = read_summary(tmp_path / "out2")["rejected"]
    assert rejected["id"] == "long"
    assert (
        rejected["reason"].startswith("its cot document has 3,0")
        and "over --max-doc-tokens 2,500" in rejected["reason"]
    )
    # the default keeps a long real song: 19 minutes is a stage-2 document of ~520k tokens
    assert TokenizeOptions(manifest=None, out=tmp_path).max_doc_tokens == 32 * 16_384
    assert prep_main(_tokenize(manifest, root, tmp_path / "o3", "--max-doc-tokens", "0")) == 2
    assert "--max-doc-tokens must be >= 1, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["text", "fifo", "empty", "random", "folder"])
def test_bad_tokenizer_file_is_one_line(tmp_path, kind, capsys):
    path = tmp_path / "tok.model"
    if kind == "text":
        path.write_text("root:x:0:0:root:/root:/bin/bash\n")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(os.urandom(4096))
    else:
        path.mkdir()
    root = tmp_path / "data"
    manifest = write_manifest(tmp_path / "m.jsonl", [good_record(root, "good")])
    assert prep_main(_tokenize(manifest, root, tmp_path / "out", "--tokenizer", str(path))) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("yue-prep tokenize: error: ") and str(path) in line
    expect = {"fifo": "is a FIFO (named pipe)", "folder": "is a folder"}.get(kind, "is not a SentencePiece tokenizer")
    assert expect in line and "pass the YuE tokenizer.model" in line


def test_tokenizer_too_large_is_refused_before_parsing(tmp_path):
    from yue_train.tokenizer.mm_tokenizer import MAX_TOKENIZER_BYTES, TokenizerFileError, load_tokenizer

    path = tmp_path / "big.model"
    with path.open("wb") as f:
        f.truncate(MAX_TOKENIZER_BYTES + 1)  # sparse: no disk used
    with pytest.raises(TokenizerFileError, match="too large for a SentencePiece model"):
        load_tokenizer(path)


def test_a_second_tokenize_into_a_busy_folder_is_refused_and_the_first_finishes(tmp_path):
    """The first run holds --out while it writes; a second process gets one line naming its pid and
    touches nothing, and the first run's shards come out whole."""
    root = tmp_path / "data"
    manifest = write_manifest(tmp_path / "m.jsonl", [good_record(root, f"s{i}", seed=i) for i in range(3)])
    songs = [load_song(json.loads(line), root) for line in manifest.read_text().splitlines()]
    out = tmp_path / "out"
    reached, go_on = threading.Event(), threading.Event()

    class SlowSongs(list):
        def __iter__(self):
            for n, song in enumerate(list.__iter__(self)):
                if n == 2:  # two shards written: what a second run would wipe
                    reached.set()
                    assert go_on.wait(120)
                yield song

    result: dict = {}
    first = threading.Thread(
        target=lambda: result.update(
            out=run_tokenize(TokenizeOptions(manifest=None, out=out, shard_docs=1, progress=False), SlowSongs(songs))
        )
    )
    first.start()
    try:
        assert reached.wait(120)
        res = run_prep(*_tokenize(manifest, root, out, "--overwrite", "--shard-docs", "1"), timeout=120)
    finally:
        go_on.set()
        first.join(120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1] == (
        f"yue-prep tokenize: error: output folder {out} is in use by process {os.getpid()}; wait for it to "
        "finish, stop it, or choose another folder"
    )
    summary, code = result["out"]
    assert code == 0 and summary["documents_written"] == 3
    assert [d.meta["id"] for d in iter_documents(out)] == ["s0", "s1", "s2"]
    with FolderLock(out):  # released when the run ended
        pass
