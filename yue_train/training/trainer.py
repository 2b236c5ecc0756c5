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

import functools
import json
import math
import os
import random
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
from yue_train.data.train_data import build_train_data, prepare_indexes
from yue_train.devices import resolve_device
from yue_train.format.provenance import write_provenance
from yue_train.format.roles import ROLE_NAMES
from yue_train.models.loading import ModelSpec, attention_choice, build_model, enable_activation_checkpointing
from yue_train.models.lora import apply_lora
from yue_train.training import ranks
from yue_train.training.checkpointing import dcp
from yue_train.training.checkpointing import layout as L
from yue_train.training.checkpointing.dcp import is_dcp_checkpoint
from yue_train.training.checkpointing.disk import DiskSpaceError
from yue_train.training.checkpointing.hf_export import saved_model_config
from yue_train.training.checkpointing.publish import fault_pause, latest_checkpoint, pick_checkpoint
from yue_train.training.checkpointing.run_folder import RunFolderError, check_compatible, check_run_folder, find_resume
from yue_train.training.checkpointing.saver import Saver
from yue_train.training.checkpointing.state_files import (
    CheckpointFileError,
    load_plain,
    rng_state,
    save_plain,
    set_rng_state,
)
from yue_train.training.checkpointing.verify import read_trainer_state
from yue_train.training.eval_songs import SongEvaluation, check_eval_generate
from yue_train.training.forward import PackedLossModule, unwrap
from yue_train.training.logger import RunLogger, WandbLoginError, check_wandb_login, truncate_metrics
from yue_train.training.loss import N_ROLES, LossSettings, LossSums, role_weight_table
from yue_train.training.memory_plan import plan_memory
from yue_train.training.output import library_bars_off, note
from yue_train.training.plan import PlanError, batch_geometry, plan_phase
from yue_train.training.provenance import run_provenance
from yue_train.training.state_numbers import optimizer_problem
from yue_train.training.strategies import DeepSpeedStrategy, DistributedConfigError, init_process_group, make_strategy
from yue_train.training.strategies import check_config as check_distributed_config
from yue_train.training.validate import check_config, check_data

BASE_MODEL_DIR = "base_model"
PLAN_NAME = "plan.json"  # the phase plan (datasets, shares, batch, steps, budget)
DATA_INDEX = "data_index"  # document indexes of shard folders that are not writable
# A second Ctrl-C (KeyboardInterrupt) ends the run at once: the CLIs' line and exit code (the shell's for Ctrl-C).
ABORTED = "stopped by Ctrl-C, nothing saved since the last checkpoint (the same command resumes from it)"
ABORTED_EXIT = 130


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. too many non-finite losses)."""


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


def lr_lambda(optim_cfg: Any, max_steps: int):
    warmup = int(optim_cfg.warmup_steps)
    floor = float(optim_cfg.min_lr_ratio)
    schedule = optim_cfg.schedule

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
        if schedule == "linear":
            return floor + (1 - floor) * (1 - progress)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    def __init__(self, cfg: DictConfig) -> None:
        self._lock: FolderLock | None = None  # the run folder's (main process), held until close()
        self._made_run_dir = False  # the lock created the run folder: a config that fails leaves no trace
        try:
            self._setup(cfg)
        except BaseException:
            self.close()
            if self._made_run_dir and [p.name for p in self.run_dir.iterdir()] == [LOCK_NAME]:
                (self.run_dir / LOCK_NAME).unlink(missing_ok=True)
                self.run_dir.rmdir()
            raise

    def close(self) -> None:
        """Let go of the run folder (another process may write it from now on)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if getattr(self, "stream", None) is not None:
            self.stream.close()  # its prefetch thread

    def _setup(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.env_values = env_expressions(cfg)  # values the config's records replace by ${oc.env:...}
        self.run_dir = Path(cfg.trainer.run_dir)
        if int(os.environ.get("RANK", "0")) == 0:  # the process that logs to W&B; before anything loads
            try:
                check_wandb_login(cfg.logging.wandb)
            except WandbLoginError as e:
                raise TrainingError(str(e)) from None
        self.device = resolve_device(cfg.trainer.device)
        try:
            check_distributed_config(cfg.distributed, self.device.type)
            init_process_group(cfg.distributed.strategy, self.device.type)
        except DistributedConfigError as e:
            raise TrainingError(str(e)) from None
        self.rank, self.world = ranks.rank(), ranks.world_size()
        self.main = ranks.is_main()
        # Checks before anything heavy, in three steps so that a config that cannot train writes nothing:
        # the config checks that need no data (every process, reading only; raise ConfigError), then the
        # generated datasets it reads (written by the first process while the others wait, so they never
        # race on the same files), then the checks that open the data.
        try:
            self.model_config = check_config(cfg)
            check_eval_generate(cfg)
            batch_geometry(cfg, self.world)
            self.resume_from = self._claim_run_folder()
            if self.main:
                prepare_data(cfg)
            ranks.barrier()
            check_data(cfg, self.model_config)
            self.plan = plan_phase(cfg, self.world)
        except PlanError as e:
            raise TrainingError(str(e)) from None
        self.max_steps = self.plan.max_steps  # from the token budget (rounds, max_tokens) or trainer.max_steps
        self.provenance = run_provenance(cfg, int(self.model_config.vocab_size))  # written into every checkpoint
        self.provenance.extra = redact(self.provenance.extra, self.env_values)
        if self.resume_from is not None:  # a finished run: say so before anything is written or loaded
            done = int(read_trainer_state(self.resume_from)["step"])
            if done >= self.max_steps:
                raise RunFinished(self.run_dir, self.resume_from, done, self.max_steps, self.plan.budget_source)
        if self.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if self.resume_from is None:  # starting over: lines of an earlier attempt's steps go
                truncate_metrics(self.run_dir, 0)
            note(self.plan.format())
            plan = redact(self.plan.as_dict(), self.env_values)
            (self.run_dir / PLAN_NAME).write_text(json.dumps(plan, indent=2) + "\n")
        self.spec = ModelSpec.from_cfg(cfg.model)
        self.lora = bool(cfg.lora.enabled)
        try:  # model.gradient_checkpointing=auto and, on a GPU, the estimated memory of one step
            memory = plan_memory(cfg, self.model_config, self.device, self.plan.micro_batch)
        except ValueError as e:
            raise TrainingError(str(e)) from None
        self.spec = ModelSpec(**{**self.spec.__dict__, "gradient_checkpointing": memory.checkpointing})
        if self.main:
            for line in [attention_choice(self.spec, self.device).line(), *memory.lines]:
                note(line)
        self.step = 0
        self.tokens_seen = 0
        self.skipped_steps = 0
        self.role_tokens = np.zeros(N_ROLES, dtype=np.int64)  # label tokens per target role, cumulative
        self._stop_signal: int | None = None  # SIGTERM or the first SIGINT: save at the next step boundary
        # every record of the config keeps ${oc.env:...} expressions, not the values (yue_train.config.recorded)
        self.resolved = redact(OmegaConf.to_container(cfg, resolve=True), self.env_values)
        if self.main:
            (self.run_dir / L.CONFIG).write_text(recorded_yaml(self.resolved))

        if cfg.trainer.cpu_threads:
            torch.set_num_threads(int(cfg.trainer.cpu_threads))  # tiny CPU runs: 1 beats 2 on a busy machine
        _seed_all(int(cfg.trainer.seed))
        self.init_from = None if self.resume_from else resolve_init_from(cfg.trainer.init_from)
        try:
            self.strategy = make_strategy(cfg.distributed, self.device)
        except DistributedConfigError as e:
            raise TrainingError(str(e)) from None
        # Full fine-tuning on a GPU: fp32 master weights, bf16 compute (LoRA keeps a bf16 base instead).
        mixed_bf16 = not self.lora and self.device.type == "cuda" and self.spec.dtype == "auto"
        self.strategy.autocast_bf16 = mixed_bf16
        if mixed_bf16:
            self.spec = ModelSpec(**{**self.spec.__dict__, "dtype": "float32"})
        if isinstance(self.strategy, DeepSpeedStrategy):
            p = self.plan
            max_norm = float(cfg.optim.max_grad_norm)
            try:  # a checkpoint of another world size: DeepSpeed's universal checkpoint, where it can load
                self.strategy.configure(p.micro_batch, p.grad_accum, self.world, max_norm, mixed_bf16, self.resume_from)
            except DistributedConfigError as e:
                raise TrainingError(str(e)) from None
        # Songs generated and scored during training (eval.generate); refused here for sharded weights.
        self.song_eval = (
            SongEvaluation(cfg, self.strategy, self.run_dir, self.device) if cfg.eval.generate.enabled else None
        )
        self.weight_table = role_weight_table(cfg.trainer.loss.role_weights)  # CPU: batch weights
        module = PackedLossModule(
            self._build_model(self.resume_from), self.weight_table.to(self.device),
            LossSettings.from_config(cfg.trainer.loss),
        )  # fmt: skip
        schedule = lr_lambda(cfg.optim, self.max_steps)
        self.saver = Saver(self.run_dir, int(cfg.trainer.keep_last), self.main, bool(cfg.trainer.async_save))
        self.strategy.wrap(module, self._build_optimizer, lambda opt: LambdaLR(opt, schedule))
        # Every process plans the same global steps and reads only the documents of its own rows, so the data
        # order does not depend on the number of processes (:mod:`yue_train.data.train_data`); the processes
        # first build the shards' missing document indexes, each a share.
        prepare_indexes(cfg.data, self.run_dir / DATA_INDEX, self.rank, self.world)
        ranks.barrier()
        self.stream = build_train_data(
            cfg.data, int(cfg.trainer.seed), self.model_config.vocab_size, self.plan.sampling_weights(),
            rank=self.rank, world=self.world, grad_accum=self.plan.grad_accum, log=note if self.main else None,
            index_dir=self.run_dir / DATA_INDEX, gather=ranks.all_gather_object,
        )  # fmt: skip
        self._eval_set: list[Batch] | None = None
        if self.resume_from is not None:
            self._load_state(self.resume_from)

    # ---------------------------------------------------------------------------------------- setup
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
                    resolved = redact(OmegaConf.to_container(self.cfg, resolve=True), self.env_values)
                    assert isinstance(resolved, dict)
                    check_compatible(chosen, resolved, resolved["trainer"].get("allow_config_change", False))
            except (FolderBusyError, RunFolderError, TrainingError) as e:
                failure = e
        # [failed, chosen step + 1 (0: none)] from the main process; the others add zeros
        step = read_trainer_state(chosen)["step"] if chosen else -1
        mine = [1.0 if failure else 0.0, float(step + 1)] if self.main else [0.0, 0.0]
        outcome = ranks.all_reduce_sum(torch.tensor(mine, dtype=torch.float64).to(self.device)).cpu()
        if failure is not None:
            raise TrainingError(str(failure)) from None
        if outcome[0] > 0:
            raise TrainingError(f"{self.run_dir}: the main process stopped (its message says why)")
        if self.main or outcome[1] == 0:
            return chosen
        r = self.cfg.trainer.resume
        return Path(str(r)) if r != "auto" else self.run_dir / L.CHECKPOINTS / L.step_name(int(outcome[1]) - 1)

    def _build_model(self, ckpt: Path | None) -> torch.nn.Module:
        """The model to wrap. Resuming builds the module only: the strategy loads its tensors after the wrap
        (:meth:`_load_state`; DCP: each process its shard), a full model from ``model_config/``'s config, a LoRA
        run's base as it started. ``trainer.init_from`` a DCP checkpoint: its weights, read whole by every
        process before wrapping (the start of a phase, like ``from_pretrained``)."""
        spec = self.spec
        config = None
        weights = None if ckpt is not None else self.init_from
        if ckpt is not None and not self.lora:
            try:
                config = saved_model_config(ckpt)
            except CheckpointFileError as e:
                raise TrainingError(str(e)) from None
        elif self.init_from is not None and is_dcp_checkpoint(self.init_from):
            config, weights = saved_model_config(self.init_from), None
        if weights is not None:
            spec = ModelSpec(**{**spec.__dict__, "name": None, "path": str(weights), "overrides": None})
        model = build_model(spec, self.device, seed=int(self.cfg.trainer.seed), config=config)
        if ckpt is None and config is not None:
            try:
                dcp.load_module_weights(self.init_from, model)
            except CheckpointFileError as e:
                raise TrainingError(f"trainer.init_from: {e}") from None
        if self.spec.gradient_checkpointing:
            enable_activation_checkpointing(model)
        if not self.lora:
            return model
        if not spec.path and self.main and not (self.run_dir / BASE_MODEL_DIR).exists():
            # A base that exists nowhere else as Hugging Face weights (random init, or the DCP checkpoint
            # of trainer.init_from): keep it so `yue-train export` can merge into it.
            with library_bars_off():
                model.save_pretrained(self.run_dir / BASE_MODEL_DIR)
        base_ref = spec.path or str((self.run_dir / BASE_MODEL_DIR).resolve())
        model = apply_lora(model, self.cfg.lora, self.spec.load_in_4bit, self.spec.gradient_checkpointing)
        model.peft_config["default"].base_model_name_or_path = base_ref
        return model

    def _build_optimizer(self, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        o = self.cfg.optim
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]  # norms and biases
        groups = [{"params": decay, "weight_decay": float(o.weight_decay)}, {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW(
            [g for g in groups if g["params"]],
            lr=float(o.lr),
            betas=(float(o.betas[0]), float(o.betas[1])),
            eps=float(o.eps),
            fused=self.device.type == "cuda",
            foreach=None if self.device.type == "cuda" else True,  # CPU default is a slow per-tensor loop
        )

    @property
    def params(self) -> list[torch.nn.Parameter]:
        """The trainable parameters (this process's shards under FSDP2)."""
        return self.strategy.trainable_parameters()

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.strategy.optimizer  # type: ignore[return-value]

    @property
    def scheduler(self) -> Any:
        return self.strategy.scheduler

    # ---------------------------------------------------------------------------------- checkpoints
    def _trainer_state(self) -> dict[str, Any]:
        p = self.plan
        return {
            "step": self.step,
            "tokens_seen": self.tokens_seen,
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
        try:
            folder = self.saver.begin(self.step)
        except DiskSpaceError as e:
            raise TrainingError(str(e)) from None
        try:
            future = self._write_checkpoint(folder, final, background)
        except Exception as e:
            full = self.saver.failed(self.step, folder, e)
            if full is not None:
                raise TrainingError(str(full)) from None
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
                if self.lora:
                    self.strategy.lm.save_pretrained(folder / hf, state_dict=weights)
                else:
                    unwrap(self.strategy.lm).save_pretrained(folder / hf, state_dict=weights)
            del weights
        save_plain(rng_state(), folder / L.rng_file(self.rank))
        if self.main:
            save_plain(self.stream.state_dict(), folder / L.DATA_STATE)
            state = {"format_version": L.FORMAT_VERSION, **self._trainer_state(), "checkpoint_format": self._format()}
            (folder / L.TRAINER_STATE).write_text(json.dumps({**state, "hf_weights": hf}, indent=2) + "\n")
            (folder / L.CONFIG).write_text(recorded_yaml(self.resolved))
            write_provenance(folder, self.provenance)
        # Last: with async_save the tensors are written in the background, after every small file above.
        group = self.saver.async_group if background else None
        fault = functools.partial(fault_pause, "dcp_write", self.step)
        return self.strategy.save_state(folder, self.main, self.lora, group, fault)

    def _format(self) -> str:
        return L.DEEPSPEED_FORMAT if isinstance(self.strategy, DeepSpeedStrategy) else L.DCP_FORMAT

    def _load_state(self, ckpt: Path) -> None:
        state = read_trainer_state(ckpt)
        self.step, self.tokens_seen, self.skipped_steps = state["step"], state["tokens_seen"], state["skipped_steps"]
        by_name = {name: i for i, name in ROLE_NAMES.items()}
        for name, n in state["role_tokens"].items():
            self.role_tokens[by_name[name]] = n
        saved_world, saved_batch = int(state["world_size"]), int(state["global_batch_size"])
        rng = ckpt / L.rng_file(self.rank)
        try:  # plain data only (yue_train.safe_pickle); a file that would run code is refused, naming it
            self.strategy.load_state(ckpt, self.main, self.lora)
            self.stream.load_state_dict(load_plain(ckpt / L.DATA_STATE))
            if rng.exists():
                set_rng_state(load_plain(rng))
        except CheckpointFileError as e:
            raise TrainingError(str(e)) from None
        problem = optimizer_problem(self.strategy.optimizer, self.strategy.scheduler)
        if problem:  # a NaN learning rate would train on and save NaN weights
            raise TrainingError(
                f"{ckpt}: the saved optimizer state is damaged ({problem}); delete that checkpoint folder to "
                "resume from the one before it"
            )
        if not rng.exists():  # more processes than the run had: a fresh, distinct stream per process
            _seed_all(int(self.cfg.trainer.seed) + 1000 * self.rank + self.step)
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

    def _label_weight(self, batches: list[Batch]) -> tuple[float, np.ndarray]:
        """Loss-weight sum and per-role label-token counts of the global batch, from this process's
        ``batches`` and one small all-reduce (which also says whether any process met a bad document)."""
        table = self.weight_table
        total, counts = 0.0, np.zeros(N_ROLES, dtype=np.int64)
        for b in batches:
            roles = b.target_roles[b.labels != IGNORE_INDEX]
            total += float(table[roles].double().sum())
            counts += np.bincount(roles.numpy(), minlength=N_ROLES)
        mine = torch.tensor([total, len(self.stream.step_bad), *counts.tolist()], dtype=torch.float64)
        sums = ranks.all_reduce_sum(mine.to(self.device)).cpu()
        self.stream.sync_bad_docs(bool(sums[1] > 0))  # every process then holds the same bad-document log
        return float(sums[0]), sums[2:].to(torch.int64).numpy()

    def train_step(self) -> dict[str, Any]:
        """One optimizer step over the global batch; returns the step's metrics (the same on every process)."""
        t0 = time.perf_counter()
        mine = self.stream.next_step()  # this process's micro-batches of the global batch
        # The loss is normalised by the weight of the whole global batch, so every label token counts the
        # same however tokens fall into micro-batches and processes (and whatever the world size).
        denom, counts = self._label_weight(mine)
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
            lr=self.scheduler.get_last_lr()[0],
            grad_norm=grad_norm,
            tokens=self.tokens_seen,
            tokens_per_s=n_tokens / dt,
            skipped_steps=self.skipped_steps,
            skipped_docs=self.stream.bad_docs.count,
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
                bad_docs=self.stream.bad_docs,
            )  # fmt: skip
        if not self._eval_set:
            wanted = bool(self.cfg.data.eval) or self.cfg.data.eval_fraction > 0
            if wanted and self.main and not getattr(self, "_warned_no_eval", False):
                note("yue-train: note: no held-out documents (data.eval / data.eval_fraction); skipping evaluation")
                self._warned_no_eval = True
            return {}
        wrapped = self.strategy.wrapped
        assert wrapped is not None
        was_training = wrapped.training
        wrapped.eval()
        total: LossSums | None = None
        n = len(self._eval_set)
        # Sharded strategies gather weights in every forward: all processes run the same number of them
        # (a process past the end repeats batch 0 and drops the result).
        for i in range(self.rank, -(-n // self.world) * self.world, self.world):
            s = self._sums(self._eval_set[i if i < n else 0]).detached()
            if i >= n:
                continue
            total = s if total is None else total + s
        wrapped.train(was_training)
        vec = total.as_vector() if total is not None else torch.zeros(2 + 3 * N_ROLES, dtype=torch.float64)
        total = LossSums.from_vector(ranks.all_reduce_sum(vec.to(self.device)))
        out = total.report("eval/")
        out["eval/ppl"] = math.exp(min(out["eval/loss"], 50.0))
        return out

    def _stop_on_bad_docs(self) -> None:
        """More bad documents than ``data.max_bad_docs``: save this step, then stop with the reason (every
        process holds the same count, so all of them save and stop together)."""
        if self.stream.bad_docs.over_limit():
            self.save()
            raise TrainingError(f"step {self.step}: {self.stream.bad_docs.stop_message()}; checkpoint saved")

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
        self.strategy.wrapped.train()  # type: ignore[union-attr]
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
            "skipped_docs": self.stream.bad_docs.count,
            "tokens_seen": self.tokens_seen,
            "world_size": self.world,
            "global_batch_size": self.plan.global_batch_size,
            "init_from": str(self.init_from) if self.init_from else None,
            "eval": eval_metrics,
            "checkpoint": str(ckpt) if ckpt else None,
            "checkpoint_saves": self.saver.log,
            "run_dir": str(self.run_dir),
        }


def resolve_init_from(value: Any) -> Path | None:
    """``trainer.init_from``: a run folder (its latest checkpoint), a checkpoint folder, or a Hugging Face
    model folder -> the folder of full model weights a new phase starts from (a DCP checkpoint folder
    when it holds no Hugging Face weights)."""
    if value in (None, "", False):
        return None
    path = Path(str(value))
    if (path / L.CHECKPOINTS).is_dir():
        ckpt, skipped = pick_checkpoint(path)
        if ckpt is None:
            why = f" that verifies ({'; '.join(skipped)})" if skipped else " yet"
            raise TrainingError(f"trainer.init_from={value}: that run has no complete checkpoint{why}")
        if skipped and ranks.is_main():
            note(f"yue-train: trainer.init_from: starting from {ckpt.name}; skipped {'; '.join(skipped)}")
        path = ckpt
    if (path / L.HF_MODEL_DIR / "config.json").exists():
        return path / L.HF_MODEL_DIR
    if (path / "config.json").exists():
        return path
    if is_dcp_checkpoint(path) and not (path / L.MODEL_CONFIG_DIR / "adapter_config.json").exists():
        return path  # sharded state only: its weights load in Trainer._build_model
    if (path / L.HF_ADAPTER_DIR).is_dir() or is_dcp_checkpoint(path):
        raise TrainingError(
            f"trainer.init_from={value}: a LoRA checkpoint; merge it first with `yue-train export` and start from that"
        )
    if (path / L.DEEPSPEED_DIR / L.DEEPSPEED_TAG).is_dir():
        raise TrainingError(
            f"trainer.init_from={value}: a DeepSpeed checkpoint saved before the end of its phase (no whole weights "
            f"in it); turn it into a model folder with `yue-train export {path} OUT` and start from OUT"
        )
    raise TrainingError(
        f"trainer.init_from={value}: no run, checkpoint or model folder there (run the previous phase first)"
    )


def run_training(cfg: DictConfig) -> dict[str, Any]:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        trainer = Trainer(cfg)
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
