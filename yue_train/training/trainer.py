"""The training loop: packed batches -> decoder -> chunked loss -> AdamW, with exact resume.

A custom loop rather than ``transformers.Trainer`` because three things this project must get right
sit exactly where that Trainer hides control: (1) the forward must never create a KV cache and must see
restarting ``position_ids`` with no mask (:mod:`.forward`); (2) the loss is computed in chunks from
hidden states with per-role weights, which needs the decoder output, not logits (:mod:`.loss`); (3) exact
resume needs the data position (per dataset the epoch, cursor and shuffle buffer; the mixture RNG; the
packer's carried-over piece) saved beside model, optimizer, scheduler and RNG states
(:mod:`yue_train.data.train_data`, :mod:`.checkpointing`).
Model, LoRA, optimizer and scheduler are still the libraries' (transformers, PEFT, torch).

Distribution: :mod:`.strategies` wraps the model (DDP, FSDP2, DeepSpeed ZeRO) behind the same few calls;
every process plans the same global batch and reads and trains on its share (the phase plan, :mod:`.plan`), so
losses, data position and checkpoints do not depend on the number of processes.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import signal
import sys
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.optim.lr_scheduler import LambdaLR

from yue_train.config.recorded import env_expressions, recorded_yaml, redact
from yue_train.data.folder_lock import LOCK_NAME, FolderBusyError, FolderLock
from yue_train.data.generated import prepare_data
from yue_train.data.packing import IGNORE_INDEX, Batch, eval_batches
from yue_train.data.train_data import TrainData, build_train_data, prepare_indexes
from yue_train.devices import resolve_device
from yue_train.format.provenance import write_provenance
from yue_train.format.roles import ROLE_NAMES
from yue_train.models.loading import ModelSpec, attention_choice
from yue_train.training import ranks
from yue_train.training.checkpointing import layout as L
from yue_train.training.checkpointing.publish import fault_pause, latest_checkpoint
from yue_train.training.checkpointing.run_folder import RunFolderError, check_compatible, check_run_folder, find_resume
from yue_train.training.checkpointing.saver import Saver
from yue_train.training.checkpointing.state_files import load_plain, rng_state, save_plain, set_rng_state
from yue_train.training.checkpointing.verify import read_trainer_state
from yue_train.training.eval_songs import SongEvaluation, check_eval_generate
from yue_train.training.forward import PackedLossModule, unwrap
from yue_train.training.logger import RunLogger, check_wandb_login, truncate_metrics
from yue_train.training.loss import N_ROLES, LossSettings, LossSums, role_weight_table
from yue_train.training.memory_plan import plan_memory
from yue_train.training.model_setup import (
    TrainingError,
    build_optimizer,
    build_trained_model,
    lr_lambda,
    resolve_init_from,
    seed_all,
)
from yue_train.training.output import note
from yue_train.training.plan import batch_geometry, plan_phase, tokens_explained
from yue_train.training.provenance import run_provenance
from yue_train.training.state_numbers import optimizer_problem
from yue_train.training.strategies import DeepSpeedStrategy, init_process_group, make_strategy
from yue_train.training.strategies import check_config as check_distributed_config
from yue_train.training.validate import check_config, check_data

PLAN_NAME = "plan.json"  # the phase plan (datasets, shares, batch, steps, budget)
DATA_INDEX = "data_index"  # document indexes of shard folders that are not writable
# A second Ctrl-C (KeyboardInterrupt) ends the run at once: the CLIs' line and exit code (the shell's for Ctrl-C).
ABORTED = "stopped by Ctrl-C, nothing saved since the last checkpoint (the same command resumes from it)"
ABORTED_EXIT = 130


class RunFinished(Exception):
    """The checkpoint a run resumes from is already at (or past) the phase's last step: nothing to do."""

    def __init__(self, run_dir: Path, checkpoint: Path, step: int, max_steps: int, budget_source: str) -> None:
        self.run_dir, self.checkpoint, self.step = run_dir, checkpoint, step
        how = {
            "trainer.max_steps": f"pass trainer.max_steps=M (M > {step})",
            "trainer.max_tokens": "pass a larger trainer.max_tokens",
        }.get(budget_source, "raise the rounds in data.train")
        super().__init__(
            f"yue-train: {run_dir} already finished at step {step} (this config ends at step {max_steps}); "
            f"nothing changed. To train further {how}, or pass trainer.resume=none to restart"
        )


class Trainer:
    """One training phase: ``Trainer(cfg).setup()``, then :meth:`train`, then :meth:`close`.

    ``__init__`` only records the config; :meth:`setup` does the work, one ``_setup_*`` per concern, in the
    order the processes must agree on (each step may be a collective)."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.run_dir = Path(cfg.trainer.run_dir)
        self.lora = bool(cfg.lora.enabled)
        self.spec = ModelSpec.from_cfg(cfg.model)
        self.env_values = env_expressions(cfg)  # values the config's records replace by ${oc.env:...}
        # every record of the config keeps ${oc.env:...} expressions, not the values (yue_train.config.recorded)
        self.resolved = redact(OmegaConf.to_container(cfg, resolve=True), self.env_values)
        self.step = self.tokens_seen = self.skipped_steps = 0
        # Every position of the rows trained on, and those that held no document (see tokens_explained).
        self.row_tokens = self.padding_tokens = 0
        self.role_tokens = np.zeros(N_ROLES, dtype=np.int64)  # label tokens per target role, cumulative
        self.data: TrainData | None = None
        self._eval_set: list[Batch] | None = None
        self._warned_no_eval = False
        self._stop_signal: int | None = None  # SIGTERM or the first SIGINT: save at the next step boundary
        self._lock: FolderLock | None = None  # the run folder's (main process), held until close()
        self._made_run_dir = False  # the lock created the run folder: a config that fails leaves no trace

    def setup(self) -> Trainer:
        """Everything before the first step. Checks come before anything heavy, so that a config that
        cannot train writes nothing: if setup fails, the run folder it created goes again."""
        try:
            self._setup_processes()
            self._setup_run_folder()
            self._setup_plan()
            self._setup_strategy()
            self._setup_model()
            self._setup_data()
            self._setup_state()
        except BaseException:
            self.close()
            if self._made_run_dir and [p.name for p in self.run_dir.iterdir()] == [LOCK_NAME]:
                (self.run_dir / LOCK_NAME).unlink(missing_ok=True)
                self.run_dir.rmdir()
            raise
        return self

    def close(self) -> None:
        """Let go of the run folder (another process may write it from now on) and the data's reader thread."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self.data is not None:
            self.data.close()

    # ---------------------------------------------------------------------------------------- setup
    def _setup_processes(self) -> None:
        """The W&B login (checked before anything loads), the device and the process group."""
        cfg = self.cfg
        if int(os.environ.get("RANK", "0")) == 0:  # the process that logs to W&B
            check_wandb_login(cfg.logging.wandb)
        self.device = resolve_device(cfg.trainer.device)
        check_distributed_config(cfg.distributed, self.device.type)
        init_process_group(cfg.distributed.strategy, self.device.type)
        self.rank, self.world, self.main = ranks.rank(), ranks.world_size(), ranks.is_main()

    def _setup_run_folder(self) -> None:
        """The config checks that need no data (every process, reading only), then the run folder: locked,
        and the checkpoint to resume picked."""
        self.model_config = check_config(self.cfg)
        check_eval_generate(self.cfg)
        batch_geometry(self.cfg, self.world)
        self.resume_from = self._claim_run_folder()

    def _setup_plan(self) -> None:
        """The generated datasets (written by the first process while the others wait, so they never race on
        the same files), the checks that open the data, and the phase plan; a finished run stops here."""
        cfg = self.cfg
        if self.main:
            prepare_data(cfg)
        ranks.barrier()
        check_data(cfg, self.model_config)
        self.plan = plan_phase(cfg, self.world)
        self.max_steps = self.plan.max_steps  # from the token budget (rounds, max_tokens) or trainer.max_steps
        self.provenance = run_provenance(cfg, int(self.model_config.vocab_size))  # written into every checkpoint
        self.provenance.extra = redact(self.provenance.extra, self.env_values)
        if self.resume_from is not None:  # a finished run: say so before anything is written or loaded
            done = int(read_trainer_state(self.resume_from)["step"])
            if done >= self.max_steps:
                raise RunFinished(self.run_dir, self.resume_from, done, self.max_steps, self.plan.budget_source)
        # model.gradient_checkpointing=auto and, on a GPU, the estimated memory of one step
        memory = plan_memory(cfg, self.model_config, self.device, self.plan.micro_batch)
        self.spec = dataclasses.replace(self.spec, gradient_checkpointing=memory.checkpointing)
        if self.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if self.resume_from is None:  # starting over: lines of an earlier attempt's steps go
                truncate_metrics(self.run_dir, 0)
            note(self.plan.format())
            plan = redact(self.plan.as_dict(), self.env_values)
            (self.run_dir / PLAN_NAME).write_text(json.dumps(plan, indent=2) + "\n")
            for line in [attention_choice(self.spec, self.device).line(), *memory.lines]:
                note(line)
            (self.run_dir / L.CONFIG).write_text(recorded_yaml(self.resolved))

    def _setup_strategy(self) -> None:
        """The data-parallel strategy and the precision; songs generated during training need it too."""
        self.strategy = make_strategy(self.cfg.distributed, self.device)
        # Full fine-tuning on a GPU: fp32 master weights, bf16 compute (LoRA keeps a bf16 base instead).
        mixed_bf16 = not self.lora and self.device.type == "cuda" and self.spec.dtype == "auto"
        self.strategy.autocast_bf16 = mixed_bf16
        if mixed_bf16:
            self.spec = dataclasses.replace(self.spec, dtype="float32")
        if isinstance(self.strategy, DeepSpeedStrategy):  # another world size: the universal checkpoint
            p = self.plan
            max_norm = float(self.cfg.optim.max_grad_norm)
            self.strategy.configure(p.micro_batch, p.grad_accum, self.world, max_norm, mixed_bf16, self.resume_from)
        # Songs generated and scored during training (eval.generate); refused here for sharded weights.
        enabled = self.cfg.eval.generate.enabled
        self.song_eval = SongEvaluation(self.cfg, self.strategy, self.run_dir, self.device) if enabled else None

    def _setup_model(self) -> None:
        """The model inside the loss module, wrapped by the strategy with AdamW and the LR schedule."""
        cfg = self.cfg
        if cfg.trainer.cpu_threads:
            torch.set_num_threads(int(cfg.trainer.cpu_threads))  # tiny CPU runs: 1 beats 2 on a busy machine
        seed_all(int(cfg.trainer.seed))
        self.init_from = None if self.resume_from else resolve_init_from(cfg.trainer.init_from)
        self.weight_table = role_weight_table(cfg.trainer.loss.role_weights)  # CPU: batch weights
        lm = build_trained_model(cfg, self.spec, self.device, self.run_dir, self.resume_from, self.init_from)
        module = PackedLossModule(lm, self.weight_table.to(self.device), LossSettings.from_config(cfg.trainer.loss))
        optimizer = functools.partial(build_optimizer, cfg.optim, self.device)
        schedule = lr_lambda(cfg.optim, self.max_steps)
        self.saver = Saver(self.run_dir, int(cfg.trainer.keep_last), self.main, bool(cfg.trainer.async_save))
        self.strategy.wrap(module, optimizer, lambda opt: LambdaLR(opt, schedule))

    def _setup_data(self) -> None:
        """Every process plans the same global steps and reads only the documents of its own rows, so the data
        order does not depend on the number of processes (:mod:`yue_train.data.train_data`); the processes
        first build the shards' missing document indexes, each a share."""
        cfg = self.cfg
        prepare_indexes(cfg.data, self.run_dir / DATA_INDEX, self.rank, self.world)
        ranks.barrier()
        self.data = build_train_data(
            cfg.data, int(cfg.trainer.seed), self.model_config.vocab_size, self.plan.sampling_weights(),
            rank=self.rank, world=self.world, grad_accum=self.plan.grad_accum, log=note if self.main else None,
            index_dir=self.run_dir / DATA_INDEX, gather=ranks.all_gather_object,
        )  # fmt: skip

    def _setup_state(self) -> None:
        """The resumed checkpoint's model, optimizer, scheduler, data position, RNG and counters."""
        if self.resume_from is not None:
            self._load_state(self.resume_from)

    def _claim_run_folder(self) -> Path | None:
        """The main process refuses a non-run folder, locks the run folder, picks the checkpoint to resume
        and checks that this config may continue it; every process learns the outcome (the checkpoint)."""
        failure: Exception | None = None
        chosen: Path | None = None
        if self.main:
            try:
                check_run_folder(self.run_dir)
                self._made_run_dir = not self.run_dir.exists()
                self._lock = FolderLock(self.run_dir, "run folder").acquire()
                chosen = find_resume(self.run_dir, self.cfg.trainer.resume)
                if chosen is not None:
                    assert isinstance(self.resolved, dict)
                    allow = self.resolved["trainer"].get("allow_config_change", False)
                    check_compatible(chosen, self.resolved, allow)
            except (FolderBusyError, RunFolderError) as e:
                failure = e
        # [failed, chosen step + 1 (0: none)] from the main process; the others add zeros
        step = read_trainer_state(chosen)["step"] if chosen else -1
        mine = [1.0 if failure else 0.0, float(step + 1)] if self.main else [0.0, 0.0]
        outcome = ranks.all_reduce_sum(torch.tensor(mine, dtype=torch.float64).to(self.device)).cpu()
        if failure is not None:
            raise failure
        if outcome[0] > 0:
            raise TrainingError(f"{self.run_dir}: the main process stopped (its message says why)")
        if self.main or outcome[1] == 0:
            return chosen
        r = self.cfg.trainer.resume
        return Path(str(r)) if r != "auto" else self.run_dir / L.CHECKPOINTS / L.step_name(int(outcome[1]) - 1)

    # ---------------------------------------------------------------------------------- checkpoints
    def _trainer_state(self) -> dict[str, Any]:
        p = self.plan
        return {
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "row_tokens": self.row_tokens,
            "padding_tokens": self.padding_tokens,
            "skipped_steps": self.skipped_steps,
            "role_tokens": {ROLE_NAMES[i]: int(n) for i, n in enumerate(self.role_tokens) if n},
            "world_size": self.world,
            "strategy": str(self.cfg.distributed.strategy),
            "global_batch_size": p.global_batch_size,
            "grad_accum": p.grad_accum,
            "micro_batch": p.micro_batch,
        }

    def save(self, final: bool = False, background: bool = False) -> None:
        """A checkpoint of this step; every process takes part (each writes its shard of the state).
        ``final``: the end of the phase (whole Hugging Face weights too). ``background``: a periodic save,
        written by a background thread when ``trainer.async_save`` is on (published once written)."""
        started = time.perf_counter()
        folder = self.saver.begin(self.step)
        try:
            future = self._write_checkpoint(folder, final, background)
        except Exception as e:
            full = self.saver.failed(self.step, folder, e)
            if full is not None:
                raise full from None
            raise
        self.saver.commit(self.step, folder, future, started)

    def _hf_due(self, final: bool) -> bool:
        """Whole Hugging Face weights in this checkpoint: the phase's last and every ``hf_every`` saves."""
        t = self.cfg.trainer
        every = int(t.hf_every) * int(t.save_every)
        return final or (every > 0 and self.step % every == 0)

    def _write_checkpoint(self, folder: Path, final: bool, background: bool) -> Future | None:
        hf = None
        if self._hf_due(final):
            hf = L.HF_ADAPTER_DIR if self.lora else L.HF_MODEL_DIR
            weights = self.strategy.full_model_state_dict(trainable_only=self.lora)
            if self.main:
                lm = self.strategy.lm if self.lora else unwrap(self.strategy.lm)
                lm.save_pretrained(folder / hf, state_dict=weights)
            del weights
        save_plain(rng_state(), folder / L.rng_file(self.rank))
        if self.main:
            save_plain(self.data.state_dict(), folder / L.DATA_STATE)
            deepspeed = isinstance(self.strategy, DeepSpeedStrategy)
            kind = L.DEEPSPEED_FORMAT if deepspeed else L.DCP_FORMAT
            state = {"format_version": L.FORMAT_VERSION, **self._trainer_state(), "checkpoint_format": kind}
            (folder / L.TRAINER_STATE).write_text(json.dumps({**state, "hf_weights": hf}, indent=2) + "\n")
            (folder / L.CONFIG).write_text(recorded_yaml(self.resolved))
            write_provenance(folder, self.provenance)
        # Last: with async_save the tensors are written in the background, after every small file above.
        group = self.saver.async_group if background else None
        fault = functools.partial(fault_pause, "dcp_write", self.step)
        return self.strategy.save_state(folder, self.main, self.lora, group, fault)

    def _load_state(self, ckpt: Path) -> None:
        state = read_trainer_state(ckpt)
        self.step, self.tokens_seen, self.skipped_steps = state["step"], state["tokens_seen"], state["skipped_steps"]
        self.row_tokens, self.padding_tokens = state["row_tokens"], state["padding_tokens"]
        by_name = {name: i for i, name in ROLE_NAMES.items()}
        for name, n in state["role_tokens"].items():
            self.role_tokens[by_name[name]] = n
        saved_world, saved_batch = int(state["world_size"]), int(state["global_batch_size"])
        rng = ckpt / L.rng_file(self.rank)
        # Plain data only (yue_train.safe_pickle): a file that would run code is refused, naming it.
        self.strategy.load_state(ckpt, self.main, self.lora)
        self.data.load_state_dict(load_plain(ckpt / L.DATA_STATE))
        problem = optimizer_problem(self.strategy.optimizer, self.strategy.scheduler)
        if problem:  # a NaN learning rate would train on and save NaN weights
            raise TrainingError(
                f"{ckpt}: the saved optimizer state is damaged ({problem}); delete that checkpoint folder to "
                "resume from the one before it"
            )
        if rng.exists():
            set_rng_state(load_plain(rng))
        else:  # more processes than the run had: a fresh, distinct stream per process
            seed_all(int(self.cfg.trainer.seed) + 1000 * self.rank + self.step)
        if self.main:
            truncate_metrics(self.run_dir, self.step)
            if saved_world != self.world or saved_batch != self.plan.global_batch_size:
                note(
                    f"yue-train: resuming a {saved_world}-process run (global batch "
                    f"{saved_batch}) with {self.world} processes: global batch "
                    f"{self.plan.global_batch_size} = {self.plan.micro_batch} rows x {self.plan.grad_accum} "
                    f"accumulation x {self.world}"
                )

    # ----------------------------------------------------------------------------------------- steps
    def _sums(self, batch: Batch) -> LossSums:
        batch = batch.to(self.device)
        return LossSums(*self.strategy.forward(*batch.tensors()))

    def _label_weight(self, batches: list[Batch]) -> tuple[float, np.ndarray, int]:
        """Loss-weight sum, per-role label-token counts and padding positions of the global batch, from this
        process's ``batches`` and one small all-reduce (which also says whether any process met a bad
        document)."""
        table = self.weight_table
        total, counts = 0.0, np.zeros(N_ROLES, dtype=np.int64)
        for b in batches:
            roles = b.target_roles[b.labels != IGNORE_INDEX]
            total += float(table[roles].double().sum())
            counts += np.bincount(roles.numpy(), minlength=N_ROLES)
        padding = sum(b.n_padding for b in batches)
        mine = torch.tensor([total, len(self.data.step_bad), padding, *counts.tolist()], dtype=torch.float64)
        sums = ranks.all_reduce_sum(mine.to(self.device)).cpu()
        self.data.sync_bad_docs(bool(sums[1] > 0))  # every process then holds the same bad-document log
        return float(sums[0]), sums[3:].to(torch.int64).numpy(), int(sums[2])

    def train_step(self) -> dict[str, Any]:
        """One optimizer step over the global batch; returns the step's metrics (the same on every process)."""
        t0 = time.perf_counter()
        mine = self.data.next_step()  # this process's micro-batches of the global batch
        # The loss is normalised by the weight of the whole global batch, so every label token counts the
        # same however tokens fall into micro-batches and processes (and whatever the world size).
        denom, counts, padding = self._label_weight(mine)
        denom = max(denom, 1e-12)
        total: LossSums | None = None
        for i, b in enumerate(mine):
            last = i == len(mine) - 1
            with self.strategy.sync_context(last):
                sums = self._sums(b)
                # x world: the wrappers average gradients over processes; this makes it a global sum.
                self.strategy.backward(sums.weighted / denom * self.world, last)
            total = sums.detached() if total is None else total + sums.detached()
        assert total is not None
        total = LossSums.from_vector(ranks.all_reduce_sum(total.as_vector()))
        metrics = total.report()
        loss = metrics["loss"]
        grad_norm, stepped = self.strategy.clip_and_step(float(self.cfg.optim.max_grad_norm), math.isfinite(loss))
        self.step += 1
        n_tokens = int(counts.sum())
        self.tokens_seen += n_tokens
        self.padding_tokens += padding
        self.row_tokens += self.plan.tokens_per_step
        self.role_tokens += counts
        if not stepped:
            self.skipped_steps += 1
            if self.skipped_steps > int(self.cfg.trainer.max_bad_steps):
                raise TrainingError(
                    f"step {self.step}: {self.skipped_steps} steps with non-finite loss or gradient "
                    f"(trainer.max_bad_steps={self.cfg.trainer.max_bad_steps}); stopping"
                )
        dt = time.perf_counter() - t0
        metrics.update(
            step=self.step,
            lr=self.strategy.scheduler.get_last_lr()[0],
            grad_norm=grad_norm,
            tokens=self.tokens_seen,
            tokens_per_s=n_tokens / dt,
            skipped_steps=self.skipped_steps,
            skipped_docs=self.data.bad_docs.count,
        )
        metrics.update({f"tokens/{ROLE_NAMES[i]}": int(n) for i, n in enumerate(self.role_tokens) if n})
        return metrics

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        if self._eval_set is None:
            # Every process builds the same list and evaluates its share, so results do not depend on the
            # number of processes.
            self._eval_set = eval_batches(
                self.cfg.data, int(self.cfg.trainer.eval_max_batches), self.model_config.vocab_size,
                bad_docs=self.data.bad_docs,
            )  # fmt: skip
        if not self._eval_set:
            wanted = bool(self.cfg.data.eval) or self.cfg.data.eval_fraction > 0
            if wanted and self.main and not self._warned_no_eval:
                note("yue-train: note: no held-out documents (data.eval / data.eval_fraction); skipping evaluation")
                self._warned_no_eval = True
            return {}
        model = self.strategy.model
        assert model is not None
        was_training = model.training
        model.eval()
        total: LossSums | None = None
        n = len(self._eval_set)
        # Sharded strategies gather weights in every forward: all processes run the same number of them
        # (a process past the end repeats batch 0 and drops the result).
        for i in range(self.rank, -(-n // self.world) * self.world, self.world):
            s = self._sums(self._eval_set[i if i < n else 0]).detached()
            if i >= n:
                continue
            total = s if total is None else total + s
        model.train(was_training)
        vec = total.as_vector() if total is not None else torch.zeros(2 + 3 * N_ROLES, dtype=torch.float64)
        total = LossSums.from_vector(ranks.all_reduce_sum(vec.to(self.device)))
        out = total.report("eval/")
        out["eval/ppl"] = math.exp(min(out["eval/loss"], 50.0))
        return out

    def _stop_on_bad_docs(self) -> None:
        """More bad documents than ``data.max_bad_docs``: save this step, then stop with the reason (every
        process holds the same count, so all of them save and stop together)."""
        if self.data.bad_docs.over_limit():
            self.save()
            raise TrainingError(f"step {self.step}: {self.data.bad_docs.stop_message()}; checkpoint saved")

    # ------------------------------------------------------------------------------------------ run
    def _on_signal(self, signum: int, _frame: Any) -> None:
        if signum == signal.SIGINT:
            if self._stop_signal == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl-C: stop now, without saving
            if self.main:
                note(
                    "yue-train: interrupted; saving a checkpoint at the end of this step (Ctrl-C again: stop now, unsaved)"
                )
        if self._stop_signal is None or signum == signal.SIGINT:
            self._stop_signal = signum

    def _stop_requested(self) -> bool:
        """Whether any process got SIGTERM or SIGINT: decided together, so all of them save the same step."""
        flag = torch.tensor([1.0 if self._stop_signal is not None else 0.0], dtype=torch.float64)
        return bool(ranks.all_reduce_sum(flag.to(self.device)).item() > 0)

    def train(self) -> dict[str, Any]:
        t = self.cfg.trainer
        max_steps, log_every = self.max_steps, int(t.log_every)
        eval_every, save_every = int(t.eval_every), int(t.save_every)
        logger = RunLogger(self.run_dir, self.cfg, self.resolved, self.main, max_steps, self.step)
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        self.strategy.model.train()  # type: ignore[union-attr]
        first_loss = last_loss = None
        eval_metrics: dict[str, float] = {}
        status = "finished"
        try:
            while self.step < max_steps:
                m = self.train_step()
                first_loss = m["loss"] if first_loss is None else first_loss
                last_loss = m["loss"]
                logger.progress(1, loss=m["loss"], tok_s=m["tokens_per_s"])
                if self.step % log_every == 0 or self.step == max_steps:
                    logger.log(m)
                if eval_every > 0 and self.step % eval_every == 0 and self.step < max_steps:
                    eval_metrics = self.evaluate()
                    if eval_metrics:
                        logger.log({"step": self.step, **eval_metrics})
                self._stop_on_bad_docs()
                if self.song_eval is not None and self.song_eval.due(self.step, max_steps):
                    self.song_eval.run(self.step, logger)
                if self.step < max_steps and self._stop_requested():
                    self.save()
                    name = signal.Signals(self._stop_signal or signal.SIGTERM).name  # another process's signal
                    status = f"stopped by signal {name} at step {self.step}; checkpoint saved"
                    if self.main:
                        note(f"yue-train: {status}; run the same command to resume")
                    break
                if save_every > 0 and self.step % save_every == 0 and self.step < max_steps:
                    self.save(background=True)
                self.saver.poll()
            if self.step >= max_steps:
                eval_metrics = self.evaluate()
                if eval_metrics:
                    logger.log({"step": self.step, **eval_metrics})
                self.save(final=True)
            self.saver.wait()
            logger.summary({"final_loss": last_loss, **eval_metrics})
        except BaseException:
            self.saver.abandon()
            raise
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            logger.close()
        ckpt = latest_checkpoint(self.run_dir)
        return {
            "status": status,
            "step": self.step,
            "first_loss": first_loss,
            "last_loss": last_loss,
            "skipped_steps": self.skipped_steps,
            "skipped_docs": self.data.bad_docs.count,
            "tokens_seen": self.tokens_seen,
            "tokens_explained": tokens_explained(
                self.plan, self.step, self.row_tokens, self.tokens_seen, self.padding_tokens, self.data.bad_docs.count
            ),
            "world_size": self.world,
            "global_batch_size": self.plan.global_batch_size,
            "init_from": str(self.init_from) if self.init_from else None,
            "eval": eval_metrics,
            "checkpoint": str(ckpt) if ckpt else None,
            "checkpoint_saves": self.saver.log,
            "run_dir": str(self.run_dir),
        }


def run_training(cfg: DictConfig) -> dict[str, Any]:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        trainer = Trainer(cfg).setup()
    except RunFinished as done:
        if ranks.is_main():
            print(str(done), file=sys.stderr)
        return {
            "status": "finished",
            "already_finished": True,
            "step": done.step,
            "checkpoint": str(done.checkpoint),
            "run_dir": str(done.run_dir),
        }
    try:
        return trainer.train()
    finally:
        trainer.close()
