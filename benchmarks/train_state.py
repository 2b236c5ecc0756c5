"""Training state at scale, measured on CPU (torchrun, gloo) with tiny models and a synthetic corpus:

  python benchmarks/train_state.py --work runs/bench_state --out train_state.json
  python benchmarks/train_state.py --smoke --work /tmp/s --out /tmp/s.json   # tiny sizes (the test runs it)

1. resume start-up: ``Trainer(cfg).setup()`` (checkpoint load, data restore) plus the first ``train_step``,
   resumed at step 10 and at a position >= 40,000 documents later (min over two fresh processes; the
   process start-to-first-step time, imports included, is reported beside it).
   Goal: late / early <= 1.5.
2. documents and bytes read per process per step at world size 1, 2, 4 (same global batch): the data
   object's ``stats()`` counters where it has them; otherwise (the packing stream that reads everything)
   documents from its consumed-position and bytes from ``/proc/self/io`` ``rchar`` around the batch
   building. Goal: per-process figure x W within 10 % of W = 1's.
3. peak host memory of rank 0 during a save under ``distributed=fsdp2`` at W = 1, 2, 4: the peak is reset
   before the save (``echo 5 > /proc/self/clear_refs``, after ``malloc_trim``, so the resident set is the
   live state) and read as ``VmHWM`` after it; the rise over the resident set before it is the save's own
   memory. Bytes written per process during the save from ``/proc/self/io`` ``write_bytes``, against the
   state (fp32 weights and two AdamW moments: 12 bytes per parameter). Goal: at every W the rise and the
   largest per-process write are <= 1.15 x state / W (16 MiB slack on the rise), so both fall with W.
4. time the training loop's periodic ``Trainer.save`` blocks it with ``trainer.async_save`` off and on (W = 2, fsdp2).
   Goal: on < off.

Every piece runs the real Trainer (``yue_train.training.trainer``) in a worker process started by torchrun
(``--worker``), on shards written with the real ShardWriter (cached under ``--work``: a rerun reuses them).
The machine's cores are shared by all processes: at W = 4 on 2 cores the times are contended; documents,
bytes and memory are not.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import inspect
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SPEC_VERSION = 1  # bump when the corpus layout below changes
# Model for the save measurements (~19M parameters: the state, not the interpreter, dominates memory).
BIG_MODEL = {"hidden_size": 512, "intermediate_size": 1536, "num_hidden_layers": 6, "num_attention_heads": 8,
             "num_key_value_heads": 4}  # fmt: skip
SIZES: dict[str, dict[str, Any]] = {
    "full": {"docs": 100_000, "late_docs": 40_000, "seq_len": 256, "position_batch": 32, "reads_batch": 8,
             "read_steps": 10, "model": BIG_MODEL, "save_seq_len": 64, "repeats": 2,
             "worlds": (1, 2, 4)},
    "smoke": {"docs": 3_000, "late_docs": 600, "seq_len": 128, "position_batch": 4, "reads_batch": 4,
              "read_steps": 3, "model": None, "save_seq_len": 32, "repeats": 1,
              "worlds": (1, 2)},
}  # fmt: skip
EARLY_STEP = 10


# ------------------------------------------------------------------------------------------- corpus
def write_corpus(folder: Path, n_docs: int, seed: int = 0) -> dict[str, Any]:
    """``n_docs`` short documents of random tokens (8-24 ids, roles alternating) in shards of 1,000,
    written with the real ShardWriter and summary; reused when a finished one with this spec is there."""
    import numpy as np

    from yue_train.data.shards import ShardWriter, write_summary
    from yue_train.format.document import Document
    from yue_train.format.roles import Role

    spec = {"version": SPEC_VERSION, "docs": n_docs, "seed": seed, "lengths": [8, 24], "vocab": 512}
    summary = folder / "summary.json"
    if summary.is_file():
        done = json.loads(summary.read_text())
        if done.get("bench_spec") == spec:
            return done
    shutil.rmtree(folder, ignore_errors=True)
    rng = np.random.default_rng(seed)
    tokens = 0
    with ShardWriter(folder, prefix="bench", max_docs=1000) as w:
        for i in range(n_docs):
            n = int(rng.integers(8, 25))
            roles = np.where(np.arange(n) % 2 == 0, Role.VOCAL, Role.INST)
            w.write(Document(rng.integers(0, 512, n), roles, {"id": f"bench-{i}", "mode": "test"}))
            tokens += n
        shards = w.close()
    record = {"bench_spec": spec, "documents_written": n_docs, "tokens_total": tokens, "shards": shards}
    write_summary(folder, record, w)
    return json.loads(summary.read_text())


# ------------------------------------------------------------------------------------------- worker
def proc_io() -> dict[str, int]:
    return {k: int(v) for k, v in (line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())}


def proc_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def process_age() -> float:
    """Seconds since this process started (from /proc: the kernel's start time, before any import)."""
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime, in clock ticks since boot
    return float(Path("/proc/uptime").read_text().split()[0]) - started


def overrides(spec: dict[str, Any], run_dir: Path, *extra: str) -> list[str]:
    return [
        "recipe=tiny_random", f"data.train=[{{path: '{spec['corpus']}'}}]", f"trainer.run_dir={run_dir}",
        f"data.seq_len={spec['seq_len']}", "data.batch_size=1", "data.shuffle_buffer=64", "trainer.max_steps=100000",
        "trainer.save_every=0", "trainer.keep_last=10", "optim.warmup_steps=2", "trainer.cpu_threads=1",
        "logging.wandb.enabled=false", "logging.progress=false", *extra,
    ]  # fmt: skip


def make_trainer(args: list[str]):
    from yue_train.config.compose import compose_config
    from yue_train.training.trainer import Trainer

    return Trainer(compose_config(args)).setup()


class ReadCounter:
    """Documents decoded and bytes read by this process's training data (its own ``stats()`` counters)."""

    def __init__(self, trainer: Any) -> None:
        self.stats = trainer.data.stats

    def read(self) -> dict[str, int]:
        s = self.stats()
        return {"docs_decoded": int(s["docs_decoded"]), "bytes_read": int(s["bytes_read"])}

    def source(self) -> str:
        return "data.stats()"


def docs_position(trainer: Any, mean_len: float) -> float:
    """Documents consumed: label tokens seen / mean document length (a document gives at most its length)."""
    return trainer.tokens_seen / mean_len


def finish_pending_save(trainer: Any) -> None:
    """Wait for a background (async) checkpoint write, where the trainer has one."""
    saver = getattr(trainer, "saver", None)
    if saver is not None:
        saver.wait()


def periodic_save(trainer: Any) -> None:
    """The save the training loop makes every ``save_every`` steps (in the background under async_save)."""
    if "background" in inspect.signature(trainer.save).parameters:
        trainer.save(background=True)
    else:
        trainer.save()


def worker_position(spec: dict[str, Any]) -> dict[str, Any]:
    """Train from scratch, save at step 10 and at the first step >= late_docs documents after it."""
    run = Path(spec["run_dir"])
    shutil.rmtree(run, ignore_errors=True)
    t = make_trainer(overrides(spec, run, f"trainer.global_batch_size={spec['position_batch']}"))
    out: dict[str, Any] = {}
    while t.step < EARLY_STEP:
        t.train_step()
    t.save()
    out["early"] = {"step": t.step, "docs": docs_position(t, spec["mean_len"])}
    while docs_position(t, spec["mean_len"]) < out["early"]["docs"] + spec["late_docs"]:
        t.train_step()
    t.save()
    finish_pending_save(t)
    out["late"] = {"step": t.step, "docs": docs_position(t, spec["mean_len"])}
    t.close()
    return out


def worker_resume(spec: dict[str, Any]) -> dict[str, Any]:
    import yue_train.training.trainer  # noqa: F401  (imports are start-up, not resume work: timed apart)

    imported = process_age()
    args = overrides(spec, Path(spec["run_dir"]), f"trainer.global_batch_size={spec['position_batch']}",
                     f"trainer.resume={spec['checkpoint']}")  # fmt: skip
    t0 = time.perf_counter()
    t = make_trainer(args)
    setup = time.perf_counter() - t0
    t.train_step()
    first = time.perf_counter() - t0 - setup
    out = {"setup_s": setup, "first_step_s": first, "imports_s": imported, "since_process_start_s": process_age()}
    t.close()
    return out


def worker_reads(spec: dict[str, Any], rank: int) -> dict[str, Any]:
    """Per-step documents/bytes of this process over ``read_steps`` steps after one warm-up step."""
    run = Path(spec["run_dir"]) / "reads"
    t = make_trainer(overrides(spec, run, "distributed=fsdp2", "trainer.resume=none",
                               f"trainer.global_batch_size={spec['reads_batch']}"))  # fmt: skip
    counter = ReadCounter(t)
    t.train_step()
    before, t0 = counter.read(), time.perf_counter()
    for _ in range(spec["read_steps"]):
        t.train_step()
    dt = time.perf_counter() - t0
    after = counter.read()
    n = spec["read_steps"]
    out = {
        "docs_per_step": (after["docs_decoded"] - before["docs_decoded"]) / n,
        "bytes_per_step": (after["bytes_read"] - before["bytes_read"]) / n,
        "step_s": dt / n,
        "counter": counter.source(),
    }
    t.close()
    return out


def worker_save(spec: dict[str, Any], rank: int, async_save: bool) -> dict[str, Any]:
    """A warm-up save, one step, then the measured save (peak RSS reset before it, write_bytes around it)."""
    from yue_train.training.forward import unwrap

    run = Path(spec["run_dir"]) / ("save-async" if async_save else "save")
    extra = ["distributed=fsdp2", "trainer.resume=none", f"data.seq_len={spec['save_seq_len']}",
             f"trainer.global_batch_size={spec['world']}"]  # fmt: skip
    if spec["model"]:
        fields = ", ".join(f"{k}: {v}" for k, v in spec["model"].items())
        extra.append(f"model.overrides={{{fields}}}")
    if async_save:
        extra.append("trainer.async_save=true")
    t = make_trainer(overrides(spec, run, *extra))
    n_params = sum(p.numel() for p in unwrap(t.strategy.lm).parameters())
    t.train_step()
    periodic_save(t)
    finish_pending_save(t)
    t.train_step()
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # memory the warm-up freed goes back: RSS is the live state
    rss_before = proc_status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from the current RSS
    io0, t0 = proc_io(), time.perf_counter()
    periodic_save(t)
    blocking = time.perf_counter() - t0
    finish_pending_save(t)
    total = time.perf_counter() - t0
    io1, peak = proc_io(), proc_status_kib("VmHWM")
    out = {
        "n_params": n_params,
        "state_bytes": n_params * 12,
        "rss_before_mib": rss_before / 1024,
        "peak_mib": peak / 1024,
        "written_bytes": io1["write_bytes"] - io0["write_bytes"] - (io1["cancelled_write_bytes"] - io0["cancelled_write_bytes"]),
        "blocking_s": blocking,
        "until_written_s": total,
    }  # fmt: skip
    ckpt = run / "checkpoints" / f"step-{t.step - 1}"  # published once written
    if rank == 0:
        out["checkpoint_bytes"] = sum(f.stat().st_size for f in ckpt.rglob("*") if f.is_file())
    t.close()
    return out


def run_worker(task: str, spec_file: Path) -> None:
    spec = json.loads(spec_file.read_text())
    rank = int(os.environ.get("RANK", "0"))
    if task == "position":
        result = worker_position(spec)
    elif task == "resume":
        result = worker_resume(spec)
    elif task == "world":  # reads, then (another trainer, the large model) the save
        result = {"reads": worker_reads(spec, rank)}
        gc.collect()
        result["save"] = worker_save(spec, rank, async_save=False)
    elif task == "async":
        result = worker_save(spec, rank, async_save=True)
    else:
        raise SystemExit(f"unknown worker task {task}")
    Path(spec["result_dir"], f"{task}-rank{rank}.json").write_text(json.dumps(result))


# ------------------------------------------------------------------------------------------- driver
def launch(task: str, spec: dict[str, Any], work: Path, world: int, torchrun: bool = True) -> list[dict[str, Any]]:
    """Run the worker ``task`` in ``world`` processes; their results, by rank."""
    result_dir = work / "results" / f"{task}-w{world}"
    shutil.rmtree(result_dir, ignore_errors=True)
    result_dir.mkdir(parents=True)
    spec = {**spec, "world": world, "result_dir": str(result_dir)}
    spec_file = result_dir / "spec.json"
    spec_file.write_text(json.dumps(spec))
    script = [str(Path(__file__).resolve()), "--worker", task, "--spec", str(spec_file)]
    if torchrun:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}", *script]
    else:
        cmd = [sys.executable, *script]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "OMP_NUM_THREADS": "1",
        "WANDB_MODE": "disabled",
        "YUE_TRAIN_RECIPES_DIR": str(REPO / "tests" / "recipes"),  # the tiny_random recipe
    }
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"worker {task} (W={world}) failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return [json.loads((result_dir / f"{task}-rank{r}.json").read_text()) for r in range(world)]


def async_key_known() -> bool:
    from yue_train.config.schema import TrainerConfig

    return "async_save" in TrainerConfig.__dataclass_fields__


def measure_resume(spec: dict[str, Any], work: Path, size: dict[str, Any]) -> dict[str, Any]:
    spec = {**spec, "run_dir": str(work / "runs" / "position"), "position_batch": size["position_batch"],
            "late_docs": size["late_docs"]}  # fmt: skip
    pos = launch("position", spec, work, 1, torchrun=False)[0]
    out: dict[str, Any] = {}
    for which in ("early", "late"):
        ckpt = work / "runs" / "position" / "checkpoints" / f"step-{pos[which]['step']}"
        runs = [launch("resume", {**spec, "checkpoint": str(ckpt)}, work, 1, torchrun=False)[0]
                for _ in range(size["repeats"])]  # fmt: skip
        best = min(runs, key=lambda r: r["setup_s"] + r["first_step_s"])
        out[which] = {**pos[which], **best, "startup_s": best["setup_s"] + best["first_step_s"]}
    ratio = out["late"]["startup_s"] / out["early"]["startup_s"]
    return {
        **out, "ratio": ratio, "goal": "late / early start-up (Trainer() + first step) <= 1.5",
        "measure": "Trainer(cfg).setup() (checkpoint and data restore) + first train_step, min over fresh processes",
        "pass": ratio <= 1.5,
    }  # fmt: skip


def measure_worlds(spec: dict[str, Any], work: Path, size: dict[str, Any]) -> tuple[dict, dict]:
    spec = {**spec, "run_dir": str(work / "runs" / "worlds"), "reads_batch": size["reads_batch"],
            "read_steps": size["read_steps"], "model": size["model"], "save_seq_len": size["save_seq_len"]}  # fmt: skip
    reads: dict[str, Any] = {}
    saves: dict[str, Any] = {}
    for w in size["worlds"]:
        ranks = launch("world", {**spec, "run_dir": f"{spec['run_dir']}-w{w}"}, work, w, torchrun=w > 1)
        rr = [r["reads"] for r in ranks]
        reads[str(w)] = {
            "docs_per_step_per_rank": [r["docs_per_step"] for r in rr],
            "bytes_per_step_per_rank": [r["bytes_per_step"] for r in rr],
            "step_s": max(r["step_s"] for r in rr),
            "counter": rr[0]["counter"],
        }
        s = [r["save"] for r in ranks]
        saves[str(w)] = {
            "rank0_peak_mib": s[0]["peak_mib"],
            "rank0_peak_rise_mib": s[0]["peak_mib"] - s[0]["rss_before_mib"],
            "written_bytes_per_rank": [r["written_bytes"] for r in s],
            "checkpoint_bytes": s[0].get("checkpoint_bytes"),
            "blocking_s": max(r["blocking_s"] for r in s),
            "state_bytes": s[0]["state_bytes"],
            "n_params": s[0]["n_params"],
        }
    base_docs = max(reads["1"]["docs_per_step_per_rank"])
    base_bytes = max(reads["1"]["bytes_per_step_per_rank"])
    for w, r in reads.items():
        r["docs_x_w_over_w1"] = max(r["docs_per_step_per_rank"]) * int(w) / base_docs
        r["bytes_x_w_over_w1"] = max(r["bytes_per_step_per_rank"]) * int(w) / base_bytes if base_bytes else None
    ok_reads = all(abs(r["docs_x_w_over_w1"] - 1) <= 0.1 for r in reads.values())
    state = saves["1"]["state_bytes"]
    for w, s in saves.items():
        s["max_written_over_state_per_w"] = max(s["written_bytes_per_rank"]) / (state / int(w))
        s["rise_over_state_per_w"] = s["rank0_peak_rise_mib"] * 2**20 / (state / int(w))
    slack = 16 * 2**20 / state  # allocator and interpreter noise, as a share of the state
    ok_save = all(
        s["max_written_over_state_per_w"] <= 1.15 and s["rise_over_state_per_w"] <= 1.15 + slack * int(w)
        for w, s in saves.items()
    )
    return (
        {"per_world": reads, "goal": "max docs per rank per step x W within 10 % of W=1's", "pass": ok_reads},
        {
            "per_world": saves, "state_bytes": state,
            "goal": "rank-0 peak rise (+16 MiB) and max bytes written per rank <= 1.15 x state / W at every W",
            "measure": "peak: VmHWM after malloc_trim + clear_refs=5 before the save (rise: over VmRSS then); "
                       "bytes: /proc/self/io write_bytes during the save",
            "pass": ok_save,
        },
    )  # fmt: skip


def measure_async(spec: dict[str, Any], work: Path, size: dict[str, Any], off: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"off": {"blocking_s": off["blocking_s"]}, "goal": "save blocks less with async on"}
    if not async_key_known():
        return {**out, "on": None, "pass": False, "note": "trainer.async_save does not exist in this version"}
    spec = {**spec, "run_dir": str(work / "runs" / "async-w2"), "model": size["model"],
            "save_seq_len": size["save_seq_len"]}  # fmt: skip
    ranks = launch("async", spec, work, 2)
    on = {
        "blocking_s": max(r["blocking_s"] for r in ranks),
        "until_written_s": max(r["until_written_s"] for r in ranks),
    }
    return {**out, "on": on, "pass": on["blocking_s"] < off["blocking_s"]}


def device() -> str:
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.processor())  # fmt: skip
    return f"{os.cpu_count()}-core {model}, CPU only ({platform.system()} {platform.machine()})"


def print_table(result: dict[str, Any]) -> None:
    r = result["resume"]
    print(f"train_state ({result['size']}, {result['device']}); W=4 times on {os.cpu_count()} cores are contended")
    print(f"{'measurement':<44} {'value':<52} goal")
    pf = {True: "PASS", False: "FAIL"}
    rows = [
        ("1 resume start-up, step " f"{r['early']['step']} ({r['early']['docs']:.0f} docs)",
         f"{r['early']['startup_s']:.2f} s", ""),
        (f"  resume at step {r['late']['step']} ({r['late']['docs']:.0f} docs)",
         f"{r['late']['startup_s']:.2f} s (x{r['ratio']:.2f})", f"<= 1.5x {pf[r['pass']]}"),
    ]  # fmt: skip
    for w, x in result["reads"]["per_world"].items():
        rows.append((f"2 docs / bytes per rank per step, W={w}",
                     f"{max(x['docs_per_step_per_rank']):.1f} docs, {max(x['bytes_per_step_per_rank']) / 1024:.0f} KiB"
                     f" (xW / W1 = {x['docs_x_w_over_w1']:.2f})", ""))  # fmt: skip
    rows[-1] = (*rows[-1][:2], f"1/W +-10% {pf[result['reads']['pass']]}")
    s = result["save_memory"]
    for w, x in s["per_world"].items():
        rows.append((f"3 fsdp2 save, W={w}: rank-0 peak (rise)",
                     f"{x['rank0_peak_mib']:.0f} MiB (+{x['rank0_peak_rise_mib']:.0f}); max written "
                     f"{max(x['written_bytes_per_rank']) / 2**20:.1f} MiB = {x['max_written_over_state_per_w']:.2f} state/W",
                     ""))  # fmt: skip
    rows[-1] = (*rows[-1][:2], f"<= 1.15 state/W {pf[s['pass']]}")
    a = result["async_save"]
    on = f"{a['on']['blocking_s']:.2f} s" if a.get("on") else a.get("note", "n/a")
    rows.append(("4 save blocking the loop, W=2, async off / on", f"{a['off']['blocking_s']:.2f} s / {on}",
                 f"on < off {pf[a['pass']]}"))  # fmt: skip
    for name, value, goal in rows:
        print(f"{name:<44} {value:<52} {goal}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="runs/bench_train_state", help="corpus cache and run folders")
    p.add_argument("--out", default=None, help="write the JSON here (also printed as the last line)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, W=1,2 only: plumbing, goals not meaningful")
    p.add_argument("--baseline", default=None, help="a previous --out JSON to keep beside these numbers")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--spec", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        run_worker(args.worker, Path(args.spec))
        return
    sys.path.insert(0, str(REPO))
    size_name = "smoke" if args.smoke else "full"
    size = SIZES[size_name]
    work = Path(args.work).resolve()
    t0 = time.perf_counter()
    corpus = write_corpus(work / f"corpus-{size['docs']}", size["docs"])
    mean_len = corpus["tokens_total"] / corpus["documents_written"]
    spec = {"corpus": str(work / f"corpus-{size['docs']}"), "mean_len": mean_len, "seq_len": size["seq_len"]}
    result: dict[str, Any] = {
        "size": size_name, "device": device(),
        "corpus": {"documents": corpus["documents_written"], "tokens": corpus["tokens_total"],
                   "shards": len(corpus["shards"]), "seconds_to_write_or_load": time.perf_counter() - t0},
    }  # fmt: skip
    result["resume"] = measure_resume(spec, work, size)
    result["reads"], result["save_memory"] = measure_worlds(spec, work, size)
    result["async_save"] = measure_async(spec, work, size, result["save_memory"]["per_world"]["2"])
    if args.baseline:
        result["baseline"] = json.loads(Path(args.baseline).read_text())
    result["wall_s"] = time.perf_counter() - t0
    print_table(result)
    text = json.dumps(result)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    main()
