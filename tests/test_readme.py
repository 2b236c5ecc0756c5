"""Every ``bash`` block of README.md and of each page in docs/ runs as written, so the documentation cannot
drift from the code.

The blocks run in order in one fresh folder (the README's first, then the pages' in the order the README's
table of pages links them; later blocks use what earlier ones wrote, as a reader's shell would), with the
repository's console scripts on PATH and tiny stand-ins for the large files: the official
``xcodec_mini_infer`` layout holding a tiny random codec, YuE's real ``tokenizer.model`` and
``top_200_tags.json``, tiny random models in the Hugging Face cache under the released names (read
offline), a genre and a lyrics file, the checkout's ``launch.sh`` and ``benchmarks/``. The few appended
arguments are listed in ``APPENDED`` and stated in docs/testing.md; ``make`` targets are checked with
``make -n``. The fast tests check what needs no run: the README's length, links that resolve, and pages
that state facts, not history.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import fixture_file
from tests.data_prep_build.demucs_model import demucs_importable, save_random_demucs
from yue_train.training.checkpointing.layout import TRAINER_STATE

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
CHANGELOG = REPO / "CHANGELOG.md"
README_MAX_LINES = 200

# Arguments appended to keep a command to seconds on CPU (said so in docs/testing.md).
TRAIN_OVERRIDES = (
    "trainer.max_steps=2 data.seq_len=2048 trainer.global_batch_size=1 eval.generate.seconds=1 eval.generate.n_songs=1"
)
APPENDED = {
    re.compile(r"^yue-train recipe=(?!.*--print-plan)"): TRAIN_OVERRIDES,
    re.compile(r"^yue-infer generate "): "--max-new-tokens 100",
    re.compile(r"^yue-eval --generate "): "--max-new-tokens 100",
    re.compile(r"^yue-prep build .*--separate demucs"): "--separation-model tiny_htdemucs",
}
# What `make -n TARGET` must end with (the README: "`make demo` runs `yue-train recipe=demo`").
MAKE_TARGETS = {
    "demo": ".venv/bin/yue-train recipe=demo",
    "test": ".venv/bin/python -m pytest -q -n auto --durations=25",
    "test-fast": '.venv/bin/python -m pytest -q -n auto -m "not slow"',
}
# Files a command must have written (checked right after it ran), by the command's first words.
WRITES = {
    "yue-prep convert-codec": ["codec/yue_codec.json"],
    "yue-prep build": ["data/mixture.json", "data/shards/cot/summary.json", "data/shards/icl-dual/summary.json"],
    "yue-train recipe=lora_s1": ["runs/lora_s1/checkpoints/latest/COMPLETE"],
    "yue-train export": ["merged/config.json", "merged/model.safetensors"],
    "yue-prep tokenize": ["tokenized/summary.json"],
    "yue-infer decode": ["vocal.wav"],
    "yue-infer generate": ["songs_out/report.json"],
    "yue-eval songs_out/": ["songs_out/eval.json", "songs_out/report.html"],
    "yue-eval songs_out/ --metrics": ["eval_songs/eval.json", "eval_songs/report.html"],
    "yue-eval --generate": ["eval_merged/eval.json", "eval_merged/report.html", "eval_merged/song00/song.final.wav"],
    "NPROC=2 ./launch.sh demo": ["runs/demo/checkpoints/latest/COMPLETE"],
}


def _two_processes_trained(proc: subprocess.CompletedProcess, cwd: Path) -> None:
    """Not a dry run: two processes trained one run under DDP, and only rank 0 printed the summary."""
    assert proc.stdout.count('"status": "finished"') == 1, proc.stdout[-2000:]
    state = (cwd / "runs" / "demo" / "checkpoints" / "latest" / TRAINER_STATE).read_text()
    assert '"world_size": 2' in state and '"strategy": "ddp"' in state, state


# What a command's run must show beyond its files, by the command's first words.
CHECKS = {"NPROC=2 ./launch.sh demo": _two_processes_trained}
RELEASED_MODELS = {"m-a-p/YuE-s1-7B-anneal-en-cot": "tiny_s1", "m-a-p/YuE-s2-1B-general": "tiny_s2"}


def bash_blocks(text: str) -> list[list[str]]:
    """The commands of each ```bash block: continuation lines joined, comment-only and blank lines dropped."""
    blocks = []
    for body in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        commands, current = [], ""
        for line in body.splitlines():
            current += line
            if current.endswith("\\"):
                current = current[:-1]
                continue
            if current.strip() and not current.lstrip().startswith("#"):
                commands.append(current.strip())
            current = ""
        blocks.append(commands)
    return blocks


def documentation_pages() -> list[Path]:
    """README.md, then the docs pages in the order the README's table of pages first links them."""
    linked = re.findall(r"\]\((docs/[\w-]+\.md)\)", README.read_text())
    return [README, *dict.fromkeys(REPO / p for p in linked)]


def test_readme_is_short_and_links_every_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: move reference material to docs/"
    assert set(documentation_pages()[1:]) == set(DOCS.glob("*.md")), "link every docs/ page from the README"


def test_testing_page_states_the_appended_arguments():
    stated = (DOCS / "testing.md").read_text()
    assert all(f"`{extra}`" in stated for extra in APPENDED.values()), "docs/testing.md must list APPENDED"


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors of a Markdown file's headings: lowercased, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    headings = re.findall(r"^#+ (.+)$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_links_resolve():
    pages = [*documentation_pages(), CHANGELOG]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists() or (anchor and anchor not in heading_anchors(file.read_text())):
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert not broken, broken


REPO_PATH = re.compile(r"\b(?:yue_train|data_prep|inference|tests|benchmarks|recipes|conf|examples)/[\w./-]*\w/?")


def test_named_repository_paths_exist():
    """Every path of the repository a page names (in text, tables or diagrams) exists; NAME-style parts are
    placeholders."""
    missing = [
        f"{page.relative_to(REPO)}: {path}"
        for page in documentation_pages()
        for path in REPO_PATH.findall(page.read_text())
        if not re.search(r"/[A-Z]+\b", path) and not (REPO / path.rstrip("-")).exists()
    ]
    assert not missing, missing


# History belongs in CHANGELOG.md; the README and the pages state facts.
HISTORY = re.compile(
    r"\bissue \d+|\b(?:before|after) (?:issue|commit)\b|\bformer default\b|NOT VERIFIED"
    r"|\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b",
    flags=re.I,
)


def test_pages_state_facts_not_history():
    assert HISTORY.search("as before issue 14, see 72eb996") and not HISTORY.search("83,968 ids, xxh3 hashes")
    found = [
        f"{p.relative_to(REPO)}: {m.group(0)!r}" for p in documentation_pages() for m in HISTORY.finditer(p.read_text())
    ]
    assert not found, found


def test_bash_blocks_are_parsed():
    blocks = bash_blocks("```bash\n# a comment\nyue-prep a \\\n    --b c   # note\n\nmake d\n```\n```text\nx\n```\n")
    assert blocks == [["yue-prep a     --b c   # note", "make d"]]
    assert any("yue-prep build" in c and "--tags-file" in c for c in sum(bash_blocks(README.read_text()), []))


def _save_tiny_models(hub: Path) -> None:
    """Tiny random models where the hub cache keeps the released ones (hub/models--ORG--NAME)."""
    import torch
    from transformers import LlamaForCausalLM

    from yue_train.models.architectures import architecture_config

    for repo, arch in RELEASED_MODELS.items():
        torch.manual_seed(0)
        cache = hub / f"models--{repo.replace('/', '--')}"
        commit = "0" * 40
        (cache / "refs").mkdir(parents=True)
        (cache / "refs" / "main").write_text(commit)
        LlamaForCausalLM(architecture_config(arch)).save_pretrained(cache / "snapshots" / commit)


def _stand_ins(cwd: Path) -> dict[str, str]:
    """Write the README's input files into ``cwd``; returns the environment the commands run in."""
    from tests.codec.conftest import tiny_reference, write_official_tree

    write_official_tree(cwd / "xcodec_mini_infer", tiny_reference(0))
    for name in ("tokenizer.model", "top_200_tags.json"):
        shutil.copy(fixture_file("yue", name), cwd / name)
    (cwd / "genre.txt").write_text("inspiring female uplifting pop airy vocal electronic bright vocal\n")
    (cwd / "lyrics.txt").write_text("[verse]\nStaring at the sunset, colors paint the sky\n\n[chorus]\nStay\n")
    for name in ("launch.sh", "benchmarks"):
        (cwd / name).symlink_to(REPO / name)
    _save_tiny_models(cwd / ".hf" / "hub")
    if not demucs_importable():
        pytest.skip("demucs is not installed (make test installs it: see the Makefile)")
    save_random_demucs(cwd / "tiny_htdemucs")
    # demucs without torchaudio in the commands' processes too (tests/data_prep_build/demucs_model.py)
    site = cwd / ".site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "from tests.data_prep_build.demucs_model import register_openunmix_without_init\n"
        "register_openunmix_without_init()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "HF_", "YUE_TRAIN_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=f"{REPO}{os.pathsep}{site}",
        HF_HOME=str(cwd / ".hf"),
        HF_HUB_OFFLINE="1",
        WANDB_MODE="offline",
        WANDB_DIR=str(cwd),
        OMP_NUM_THREADS="1",
    )
    return env


def _as_run(command: str) -> str:
    for pattern, extra in APPENDED.items():
        if pattern.search(command):
            return f"{command.partition(' #')[0].rstrip()} {extra}"
    return command


def _check_make(command: str) -> None:
    target = command.split("#")[0].split()[1]
    out = subprocess.run(["make", "-n", "-C", str(REPO), target], capture_output=True, text=True, check=True).stdout
    lines = [line for line in out.splitlines() if not line.startswith("make")]
    assert lines[-1] == MAKE_TARGETS[target], out


def _run(command: str, page: Path, cwd: Path, env: dict[str, str]) -> None:
    run = _as_run(command)
    proc = subprocess.run(
        ["bash", "-c", f"set -euo pipefail; {run}"], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    where = page.relative_to(REPO)
    assert proc.returncode == 0, f"{where} command failed ({proc.returncode}): {run}\n{proc.stderr[-4000:]}"
    for prefix, files in WRITES.items():
        if command.startswith(prefix):
            for f in files:
                assert (cwd / f).exists(), f"{where}: {command!r} did not write {f}"
    for prefix, check in CHECKS.items():
        if command.startswith(prefix):
            check(proc, cwd)


@pytest.mark.slow
def test_every_documentation_bash_block_runs(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    env = _stand_ins(tmp_path)
    ran = []
    for page in documentation_pages():
        for commands in bash_blocks(page.read_text()):
            for command in commands:
                if command.startswith("make "):
                    _check_make(command)
                else:
                    _run(command, page, tmp_path, env)
                ran.append(command)
    # Every command the checks above name was in the README, so none of them checks nothing.
    for prefix in [*WRITES, *CHECKS, *(f"make {t}" for t in MAKE_TARGETS)]:
        assert any(c.startswith(prefix) for c in ran), f"no documented command starts with {prefix!r}"
    mixture = json.loads((tmp_path / "data" / "mixture.json").read_text())
    assert [d["name"] for d in mixture["datasets"]] == ["cot", "icl-dual", "stage2"]
    assert json.loads((tmp_path / "songs_out" / "report.json").read_text())
    # the LoRA run with its evaluation block on: songs with audio, scored, at its last step
    scored = json.loads((tmp_path / "runs" / "lora_eval" / "eval" / "step-2" / "eval.json").read_text())
    assert len(scored["songs"]) == 1 and all(set(s["media"]) == {"mix", "vocal", "inst"} for s in scored["songs"])
