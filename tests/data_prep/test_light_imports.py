"""`yue-prep tokenize` and `inspect` run without loading torch or transformers, and write the same tokens."""

import json
import resource
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO

HEAVY = ("torch", "transformers", "webdataset")

# Runs yue-prep commands in one fresh interpreter (under -X importtime, so that worker processes report
# their imports too) and prints, last, which heavy modules the interpreter ended up holding.
RUNNER = f"""
import json, sys
from data_prep.cli import main
codes = [main(argv) for argv in json.loads(sys.argv[1])]
print(json.dumps({{"codes": codes, "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def run_prep(*commands: list[str]) -> tuple[list[int], list[str], list[str], str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", RUNNER, json.dumps(list(commands))],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    *out, last = proc.stdout.strip().splitlines()
    result = json.loads(last)
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    heavy_imports = sorted({name for name in imported if name.split(".")[0] in HEAVY})
    return result["codes"], result["loaded"], heavy_imports, "\n".join(out)


@pytest.mark.multiprocess
def test_tokenize_with_workers_and_inspect_load_no_deep_learning_stack(tmp_path, synthetic_corpus):
    out = tmp_path / "icl"
    tokenize = ["tokenize", "--manifest", str(synthetic_corpus), "--root", str(synthetic_corpus.parent),
                "--out", str(out), "--mode", "icl", "--workers", "2", "-q"]  # fmt: skip
    codes, loaded, heavy_imports, text = run_prep(
        tokenize, ["inspect", str(out), "--limit", "1"], ["inspect", str(out), "--ids"]
    )
    assert codes == [0, 0, 0]
    assert loaded == [] and heavy_imports == []
    assert "=== synth0000 [icl-dual]" in text and "<reference dual " in text
    assert sum(line.startswith('{"id": "synth') for line in text.splitlines()) == 4


def test_golden_cot_streams_without_torch(reference_example, real_tokenizer_path, tmp_path):
    """The official example, tokenized and read back in a torch-free process, equals the official streams."""
    golden = np.load(reference_example.parent / "golden" / "cot_dummy.npz")
    manifest = reference_example / "example" / "jsonl" / "dummy.msa.xcodec_16k.jsonl"
    tokenize = ["tokenize", "--manifest", str(manifest), "--root", str(reference_example), "--tokenizer",
                str(real_tokenizer_path), "--mode", "cot", "--out", str(tmp_path / "cot"), "--no-progress"]  # fmt: skip
    codes, loaded, heavy_imports, text = run_prep(tokenize, ["inspect", str(tmp_path / "cot"), "--ids"])
    assert codes == [0, 0] and loaded == [] and heavy_imports == []
    docs = [json.loads(line) for line in text.splitlines() if line.startswith('{"id"')]
    assert [d["id"] for d in docs] == ["1", "2", "3", "4"]
    for n, doc in enumerate(docs):
        assert doc["input_ids"] == golden[f"arr_{n}"].tolist()


@pytest.mark.parametrize("command", [
    ["yue-prep", "--help"], ["yue-prep", "tokenize", "--help"], ["yue-prep", "inspect", "--help"],
    ["yue-prep", "build", "--help"], ["yue-train", "--help"], ["yue-infer", "--help"],
])  # fmt: skip
def test_help_is_quick_and_loads_no_deep_learning_stack(command):
    entry = {"yue-prep": "data_prep.cli", "yue-train": "yue_train.cli.train", "yue-infer": "inference.cli"}[command[0]]
    code = (
        f"import sys; sys.argv = {command!r}; from {entry} import main\n"
        f"try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('LOADED', [m for m in {HEAVY!r} if m in sys.modules])"
    )
    # CPU seconds of the child, not wall-clock ones: the tests run beside each other (pytest-xdist), and a
    # busy machine stretches the wall clock of a command without making it import more.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert command[0] in proc.stdout  # the help text names the command
    assert proc.stdout.strip().splitlines()[-1] == "LOADED []"
    assert seconds < 1.5  # ~0.4 s of CPU; importing torch alone takes 2-3 s


def test_quiet_quiets_transformers_only_once_it_is_imported():
    code = (
        "import sys, logging\n"
        "from yue_train.training.output import QUIET, set_verbosity\n"
        "set_verbosity(QUIET)\n"
        "assert 'transformers' not in sys.modules\n"
        "import transformers.utils.logging as hf\n"
        "print(hf.get_verbosity() == logging.ERROR, hf.is_progress_bar_enabled())"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["True", "False"]
