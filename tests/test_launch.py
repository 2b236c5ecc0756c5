"""`launch.sh --dry-run`: the exact command for each environment, and the resolved config.

A launch that really trains (two processes under DDP) is docs/scaling.md's `NPROC=2 ./launch.sh demo`, which
tests/test_readme.py runs and checks (one summary, from rank 0; a checkpoint of world size 2 under ddp)."""

import os
import shlex
import subprocess
import sys

import pytest

from tests.conftest import REPO

LAUNCH = REPO / "launch.sh"
CLEAN = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(("SLURM_", "NPROC", "NNODES", "NODE_RANK", "MASTER_", "LAUNCHER", "HOSTFILE"))
}


def dry_run(*args: str, **env: str) -> tuple[list[str], str]:
    res = subprocess.run(
        ["bash", str(LAUNCH), "--dry-run", *args],
        env={**CLEAN, "PYTHON": sys.executable, **env},
        capture_output=True,
        text=True,
        check=True,
        cwd=os.environ.get("TMPDIR", "/tmp"),  # relative run paths in plans must not touch the repo
    )
    first, _, rest = res.stdout.partition("\n")
    assert first.startswith("command: ")
    return shlex.split(first[len("command: ") :]), rest


def test_single_process():
    cmd, config = dry_run("tiny", "trainer.max_steps=3", NPROC="1")
    assert cmd == [sys.executable, "-m", "yue_train.cli.train", "recipe=tiny", "trainer.max_steps=3"]
    assert config.startswith("config:\nrecipe_name: tiny  ")  # then the key's doc as a comment
    assert "max_steps: 3" in config
    assert "plan (1 processes):" in config and "3 steps" in config


def test_one_node_several_processes():
    cmd, config = dry_run("tiny", NPROC="2")
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    assert cmd[-4:] == ["-m", "yue_train.cli.train", "recipe=tiny", "distributed=ddp"]  # the default for >1
    assert "strategy: ddp" in config
    cmd, config = dry_run("tiny", "distributed=fsdp2", NPROC="2")
    assert cmd[-2:] == ["recipe=tiny", "distributed=fsdp2"] and "strategy: fsdp2" in config


def test_multi_node_torchrun():
    cmd, _ = dry_run("tiny", NPROC="8", NNODES="4", NODE_RANK="3", MASTER_ADDR="node0", MASTER_PORT="1234")
    assert cmd[3:8] == [
        "--nnodes=4",
        "--nproc_per_node=8",
        "--node_rank=3",
        "--master_addr=node0",
        "--master_port=1234",
    ]


def test_deepspeed_hostfile(tmp_path):
    hostfile = tmp_path / "hosts"
    hostfile.write_text("node0 slots=8\nnode1 slots=8\n")
    cmd, _ = dry_run("tiny", LAUNCHER="deepspeed", HOSTFILE=str(hostfile), NPROC="8", MASTER_ADDR="node0")
    assert cmd[1:3] == ["-m", "deepspeed.launcher.runner"]
    assert "--num_gpus=8" in cmd and f"--hostfile={hostfile}" in cmd and "--master_addr=node0" in cmd
    assert "--no_local_rank" in cmd  # else the launcher appends --local_rank=N, a bad Hydra override
    assert cmd[-4:] == ["--module", "yue_train.cli.train", "recipe=tiny", "distributed=deepspeed_zero2"]


@pytest.mark.parametrize("nodelist,master", [("gpu[03-05,07],cpu1", "gpu03"), ("nodeA,nodeB", "nodeA")])
def test_slurm(nodelist, master):
    env = {
        "SLURM_JOB_ID": "7",
        "SLURM_NNODES": "3",
        "SLURM_NODEID": "2",
        "SLURM_JOB_NODELIST": nodelist,
        "SLURM_GPUS_ON_NODE": "8",
    }
    cmd, _ = dry_run("tiny", **env)
    assert cmd[3:8] == [
        "--nnodes=3",
        "--nproc_per_node=8",
        "--node_rank=2",
        f"--master_addr={master}",
        "--master_port=29500",
    ]


@pytest.mark.parametrize("args,env,message", [
    ([], {}, "no recipe given"),
    (["--bogus", "tiny"], {}, "unknown option --bogus"),
    (["nope"], {}, "unknown recipe 'nope'"),
    (["tiny"], {"LAUNCHER": "mpirun"}, "LAUNCHER must be torchrun or deepspeed"),
    (["tiny"], {"LAUNCHER": "deepspeed", "HOSTFILE": "/nonexistent"}, "HOSTFILE /nonexistent not found"),
])  # fmt: skip
def test_errors(args, env, message):
    res = subprocess.run(
        ["bash", str(LAUNCH), "--dry-run", *args],
        env={**CLEAN, "PYTHON": sys.executable, "NPROC": "1", **env},
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2
    assert message in res.stderr


def test_help():
    out = subprocess.run(["bash", str(LAUNCH), "--help"], capture_output=True, text=True, check=True).stdout
    for word in ("NPROC", "NNODES", "MASTER_ADDR", "HOSTFILE", "srun", "--dry-run"):
        assert word in out


def test_chain_of_phases():
    cmd, rest = dry_run("chain", "pretrain/tiny_p1", "pretrain/tiny_p2", NPROC="2")
    assert cmd[-6:] == [
        "-m",
        "yue_train.cli.train",
        "chain",
        "pretrain/tiny_p1",
        "pretrain/tiny_p2",
        "distributed=ddp",
    ]
    # No single config: each phase's plan on 2 processes (global batch 4 -> accumulation 2). Phase 2 is
    # planned by rounds over data that phase 1's run generates, so before any run its plan says so.
    assert rest.count("plan (pretrain/tiny_p") == 2 and "grad_accum 2 x 2 processes" in rest, rest
