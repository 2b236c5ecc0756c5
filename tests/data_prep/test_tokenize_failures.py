"""`yue-prep tokenize` with every record rejected is a failed run, through the real CLI."""

import json

from data_prep.cli import main as prep_main
from tests.data_prep.manifests import bad_records, good_record, write_manifest
from yue_train.data.shards import read_summary


def _tokenize(manifest, root, out) -> list[str]:
    return ["tokenize", "--manifest", str(manifest), "--root", str(root), "--out", str(out), "--no-progress"]


def test_every_record_rejected_fails_and_a_rerun_redoes_it(tmp_path, capsys):
    root = tmp_path / "data"
    bad = bad_records(root)
    manifest = write_manifest(tmp_path / "m.jsonl", [bad["range"][0], bad["no-file"][0]])
    out = tmp_path / "out"
    assert prep_main(_tokenize(manifest, root, out)) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("yue-prep tokenize: error: every record was rejected (2 of 2); no document was written")
    summary = read_summary(out)
    assert summary["status"] == "failed" and summary["documents_written"] == 0 and summary["shards"] == []

    # The failed output is not a finished one: a re-run (now with a good record) redoes it without --overwrite.
    manifest = write_manifest(tmp_path / "m.jsonl", [bad["range"][0], good_record(root, "good", seed=1)])
    assert prep_main(_tokenize(manifest, root, out)) == 3
    captured = capsys.readouterr()
    assert "previous run failed (no documents written)" in captured.err
    assert "1 documents" in captured.out
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"
    # ...and a finished one is kept.
    assert prep_main(_tokenize(manifest, root, out)) == 2
    assert "already holds a finished run" in capsys.readouterr().err
