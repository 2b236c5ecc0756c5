"""The training loop: packed batches -> decoder -> chunked loss -> AdamW, with exact resume.

A custom loop rather than ``transformers.Trainer`` because three things this project must get right
sit exactly where that Trainer hides control: (1) the forward must never create a KV cache and must see
restarting ``position_ids`` with no mask (:mod:`.forward`); (2) the loss is computed in chunks from
hidden states with per-role weights, which needs the decoder output, not logits (:mod:`.loss`); (3) exact
resume needs the data position (documents consumed per dataset, mixture RNG, the packer's carried-over
document) saved beside model, optimizer, scheduler and RNG states (:mod:`.data`, :mod:`.checkpoint`).
Model, LoRA, optimizer and scheduler are still the libraries' (transformers, PEFT, torch).

Distribution: the loop reduces its loss sums through :mod:`.dist` and saves per-rank RNG and data
state; wrapping the model in DDP/FSDP2 is the scale-out issue's job.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.optim.lr_scheduler import LambdaLR

from yue_train.models.loading import ModelSpec, build_model, enable_activation_checkpointing
from yue_train.training import dist
from yue_train.training.checkpoint import latest_checkpoint, save_checkpoint
from yue_train.training.data import IGNORE_INDEX, Batch, build_train_stream, eval_batches
from yue_train.training.forward import PackedForward, unwrap
from yue_train.training.logger import RunLogger, truncate_metrics
from yue_train.training.lora import apply_lora
from yue_train.training.loss import LossSums, chunked_loss, role_weight_table
from yue_train.training.validate import validate

CONFIG_NAME = "config.yaml"
BASE_MODEL_DIR = "base_model"


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. too many non-finite losses)."""


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


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.model_config = validate(cfg)  # before anything heavy: raises ConfigError
        self.run_dir = Path(cfg.trainer.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            dist.check_single_process()
        except RuntimeError as e:
            raise TrainingError(str(e)) from None
        self.rank, self.world = dist.rank(), dist.world_size()
        self.main = dist.is_main()
        self.device = dist.pick_device(cfg.trainer.device)
        self.spec = ModelSpec.from_cfg(cfg.model)
        self.lora = bool(cfg.lora.enabled)
        self.step = 0
        self.tokens_seen = 0
        self.skipped_steps = 0
        self._stop_signal: int | None = None
        self.resolved = OmegaConf.to_container(cfg, resolve=True)
        if self.main:
            (self.run_dir / CONFIG_NAME).write_text(OmegaConf.to_yaml(cfg, resolve=True))

        if cfg.trainer.get("cpu_threads"):
            torch.set_num_threads(int(cfg.trainer.cpu_threads))  # tiny CPU runs: 1 beats 2 on a busy machine
        _seed_all(int(cfg.trainer.seed))
        self.resume_from = self._find_resume()
        self.model = self._build_model(self.resume_from)
        self.forward = PackedForward(self.model)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = self._build_optimizer()
        self.scheduler = LambdaLR(self.optimizer, lr_lambda(cfg.optim, int(cfg.trainer.max_steps)))
        self.weight_table = role_weight_table(cfg.trainer.loss.get("role_weights"), self.device)
        self.stream = build_train_stream(
            cfg.data, int(cfg.trainer.seed), self.rank, self.world, self.model_config.vocab_size
        )
        self._eval_set: list[Batch] | None = None
        if self.resume_from is not None:
            self._load_state(self.resume_from)

    # ---------------------------------------------------------------------------------------- setup
    def _find_resume(self) -> Path | None:
        r = self.cfg.trainer.resume
        if r in (None, False, "none", "never"):
            return None
        if r == "auto":
            return latest_checkpoint(self.run_dir)
        path = Path(str(r))
        if not path.is_dir():
            raise TrainingError(f"trainer.resume={r}: no checkpoint folder there")
        return path

    def _build_model(self, ckpt: Path | None) -> torch.nn.Module:
        spec = self.spec
        if ckpt is not None and not self.lora:
            spec = ModelSpec(**{**spec.__dict__, "name": None, "path": str(ckpt / "model"), "overrides": None})
        model = build_model(spec, self.device, seed=int(self.cfg.trainer.seed))
        if self.spec.gradient_checkpointing:
            enable_activation_checkpointing(model)
        if not self.lora:
            return model
        if not self.spec.path and self.main and not (self.run_dir / BASE_MODEL_DIR).exists():
            # A random-init base exists nowhere else: keep it so `yue-train export` can merge into it.
            model.save_pretrained(self.run_dir / BASE_MODEL_DIR)
        base_ref = self.spec.path or str((self.run_dir / BASE_MODEL_DIR).resolve())
        if ckpt is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, ckpt / "adapter", is_trainable=True)
        else:
            model = apply_lora(model, self.cfg.lora, self.spec.load_in_4bit, self.spec.gradient_checkpointing)
        model.peft_config["default"].base_model_name_or_path = base_ref
        return model

    def _build_optimizer(self) -> torch.optim.Optimizer:
        o = self.cfg.optim
        decay = [p for p in self.params if p.ndim >= 2]
        no_decay = [p for p in self.params if p.ndim < 2]  # norms and biases
        groups = [{"params": decay, "weight_decay": float(o.weight_decay)}, {"params": no_decay, "weight_decay": 0.0}]
        return torch.optim.AdamW(
            [g for g in groups if g["params"]],
            lr=float(o.lr),
            betas=(float(o.betas[0]), float(o.betas[1])),
            eps=float(o.eps),
            fused=self.device.type == "cuda",
            foreach=None if self.device.type == "cuda" else True,  # CPU default is a slow per-tensor loop
        )

    # ---------------------------------------------------------------------------------- checkpoints
    def _write_checkpoint(self, folder: Path) -> None:
        if self.lora:
            self.model.save_pretrained(folder / "adapter")
        else:
            unwrap(self.model).save_pretrained(folder / "model")
        torch.save(self.optimizer.state_dict(), folder / "optimizer.pt")
        torch.save(self.scheduler.state_dict(), folder / "scheduler.pt")
        torch.save(_rng_state(), folder / f"rng_rank{self.rank}.pt")
        torch.save(self.stream.state_dict(), folder / f"data_rank{self.rank}.pt")
        state = {"step": self.step, "tokens_seen": self.tokens_seen, "skipped_steps": self.skipped_steps}
        (folder / "trainer_state.json").write_text(json.dumps(state, indent=2) + "\n")
        (folder / CONFIG_NAME).write_text(OmegaConf.to_yaml(self.cfg, resolve=True))

    def save(self) -> Path | None:
        if not self.main:  # multi-rank saving (per-rank RNG/data files) belongs to the scale-out issue
            return None
        return save_checkpoint(self.run_dir, self.step, self._write_checkpoint, int(self.cfg.trainer.keep_last))

    def _load_state(self, ckpt: Path) -> None:
        state = json.loads((ckpt / "trainer_state.json").read_text())
        self.step, self.tokens_seen, self.skipped_steps = state["step"], state["tokens_seen"], state["skipped_steps"]
        self.optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location=self.device, weights_only=True))
        self.scheduler.load_state_dict(torch.load(ckpt / "scheduler.pt", weights_only=True))
        self.stream.load_state_dict(torch.load(ckpt / f"data_rank{self.rank}.pt", weights_only=False))
        _set_rng_state(torch.load(ckpt / f"rng_rank{self.rank}.pt", weights_only=False))
        if self.main:
            truncate_metrics(self.run_dir, self.step)

    # ----------------------------------------------------------------------------------------- steps
    def loss_sums(self, batch: Batch) -> LossSums:
        batch = batch.to(self.device)
        hidden = self.forward.hidden_states(batch)
        return chunked_loss(
            hidden, self.forward.lm_head, batch.labels, batch.target_roles, self.weight_table,
            int(self.cfg.trainer.loss.chunk_size),
        )  # fmt: skip

    def _weight_sum(self, batches: list[Batch]) -> torch.Tensor:
        total = torch.zeros((), dtype=torch.float64)
        table = self.weight_table.cpu()
        for b in batches:
            keep = b.labels != IGNORE_INDEX
            total += table[b.target_roles[keep]].double().sum()
        return dist.all_reduce_sum(total.to(self.device))

    def train_step(self) -> dict[str, Any]:
        """One optimizer step over ``grad_accum`` micro-batches; returns the step's metrics."""
        t0 = time.perf_counter()
        micro = [self.stream.next_batch() for _ in range(int(self.cfg.trainer.grad_accum))]
        # The loss is normalised by the weight of the whole accumulated (and, later, all-rank) batch, so
        # every label token counts the same however tokens fall into micro-batches.
        denom = self._weight_sum(micro)
        total: LossSums | None = None
        for b in micro:
            sums = self.loss_sums(b)
            (sums.weighted / denom * self.world).backward()  # DDP averages gradients over ranks
            total = sums.detached() if total is None else total + sums.detached()
        assert total is not None
        total = LossSums.from_vector(dist.all_reduce_sum(total.as_vector()))
        metrics = total.report()
        loss = metrics["loss"]
        max_norm = float(self.cfg.optim.max_grad_norm)
        grad_norm = float("nan")
        if math.isfinite(loss):
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, max_norm if max_norm > 0 else float("inf")))
        self.step += 1
        n_tokens = sum(int(b.labels.ne(IGNORE_INDEX).sum()) for b in micro) * self.world
        self.tokens_seen += n_tokens
        if math.isfinite(loss) and math.isfinite(grad_norm):
            self.optimizer.step()
            self.scheduler.step()
        else:
            self.skipped_steps += 1
            if self.skipped_steps > int(self.cfg.trainer.max_bad_steps):
                self.optimizer.zero_grad(set_to_none=True)
                raise TrainingError(
                    f"step {self.step}: {self.skipped_steps} steps with non-finite loss or gradient "
                    f"(trainer.max_bad_steps={self.cfg.trainer.max_bad_steps}); stopping"
                )
        self.optimizer.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        metrics.update(
            step=self.step,
            lr=self.scheduler.get_last_lr()[0],
            grad_norm=grad_norm,
            tokens=self.tokens_seen,
            tokens_per_s=n_tokens / dt,
            skipped_steps=self.skipped_steps,
        )
        return metrics

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        if self._eval_set is None:
            self._eval_set = eval_batches(
                self.cfg.data,
                int(self.cfg.trainer.eval_max_batches),
                self.rank,
                self.world,
                self.model_config.vocab_size,
            )
        if not self._eval_set:
            wanted = bool(self.cfg.data.get("eval")) or float(self.cfg.data.eval_fraction) > 0
            if wanted and self.main and not getattr(self, "_warned_no_eval", False):
                print("yue-train: note: no held-out documents (data.eval / data.eval_fraction); skipping evaluation",
                      file=sys.stderr)  # fmt: skip
                self._warned_no_eval = True
            return {}
        was_training = self.model.training
        self.model.eval()
        total: LossSums | None = None
        for b in self._eval_set:
            s = self.loss_sums(b).detached()
            total = s if total is None else total + s
        self.model.train(was_training)
        assert total is not None
        total = LossSums.from_vector(dist.all_reduce_sum(total.as_vector()))
        out = total.report("eval/")
        out["eval/ppl"] = math.exp(min(out["eval/loss"], 50.0))
        return out

    # ------------------------------------------------------------------------------------------ run
    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._stop_signal = signum

    def train(self) -> dict[str, Any]:
        t = self.cfg.trainer
        max_steps, log_every = int(t.max_steps), int(t.log_every)
        eval_every, save_every = int(t.eval_every), int(t.save_every)
        logger = RunLogger(self.run_dir, self.cfg, self.resolved, self.main, max_steps, self.step)
        previous = signal.signal(signal.SIGTERM, self._on_signal)
        self.model.train()
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
                if self._stop_signal is not None:
                    self.save()
                    status = f"stopped by signal {self._stop_signal} at step {self.step}; checkpoint saved"
                    break
                if save_every > 0 and self.step % save_every == 0 and self.step < max_steps:
                    self.save()
            if self.step >= max_steps:
                eval_metrics = self.evaluate()
                if eval_metrics:
                    logger.log({"step": self.step, **eval_metrics})
                self.save()
            logger.summary({"final_loss": last_loss, **eval_metrics})
        finally:
            signal.signal(signal.SIGTERM, previous)
            logger.close()
        ckpt = latest_checkpoint(self.run_dir)
        return {
            "status": status,
            "step": self.step,
            "first_loss": first_loss,
            "last_loss": last_loss,
            "skipped_steps": self.skipped_steps,
            "eval": eval_metrics,
            "checkpoint": str(ckpt) if ckpt else None,
            "run_dir": str(self.run_dir),
        }


def run_training(cfg: DictConfig) -> dict[str, Any]:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return Trainer(cfg).train()
