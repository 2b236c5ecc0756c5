"""Data-parallel strategies: ``distributed=single | ddp | fsdp2 | deepspeed_zero2 | deepspeed_zero3``.

Each strategy wraps the :class:`~yue_train.training.forward.PackedLossModule` with the library that does
the work (torch DDP, torch FSDP2 ``fully_shard``, DeepSpeed ZeRO) and answers the few calls the training
loop makes: a micro-batch backward (with gradient sync only on the last micro-batch), clip + optimizer
step, and state for checkpoints. The loop itself is the same for all of them.

Loss scaling: the loop divides each micro-batch's loss sum by the weight of the *global* batch and
multiplies by the world size, because every wrapper here averages gradients over ranks. So gradients are
those of the global-batch mean whatever the number of processes (the 1-process and 2-process runs of
the same global batch take the same steps; a test checks it).

Checkpoints: ``single``/``ddp``/``fsdp2`` write DCP (:mod:`.checkpointing.dcp`: each process its shard, loadable
under any world size among the three); DeepSpeed writes its own partitioned files (:mod:`.checkpointing.deepspeed`,
converted to its universal checkpoint for another world size).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from concurrent.futures import Future
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

from yue_train.training.checkpointing import dcp
from yue_train.training.checkpointing.deepspeed import (
    STATE_TAG,
    convert_to_universal,
    repair_zero3_universal_load,
    save_model_config,
    saved_world_size,
    universal_folder,
)
from yue_train.training.checkpointing.layout import DEEPSPEED_DIR, MODEL_CONFIG_DIR, SCHEDULER
from yue_train.training.checkpointing.state_files import CheckpointFileError, load_plain, save_plain
from yue_train.training.forward import unwrap

STRATEGIES = ("single", "ddp", "fsdp2", "deepspeed")


class DistributedConfigError(ValueError):
    """A ``distributed`` config that cannot run as launched; the message says what to change."""


# ------------------------------------------------------------------------------------ process group
def init_process_group(strategy: str, device_type: str) -> None:
    """Join the process group torchrun / the DeepSpeed launcher / srun describe in the environment.

    A strategy other than ``single`` started as one plain process gets a one-rank group of its own, so
    ``yue-train recipe=... distributed=fsdp2`` also runs without a launcher.
    """
    if dist.is_initialized():
        return
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if strategy == "single":
        if world > 1:
            raise DistributedConfigError(
                f"launched with {world} processes but distributed=single; choose distributed=ddp, fsdp2, "
                "deepspeed_zero2 or deepspeed_zero3 (or launch one process)"
            )
        return
    if world == 1 and "MASTER_ADDR" not in os.environ:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), RANK="0", LOCAL_RANK="0")
        os.environ["WORLD_SIZE"] = "1"
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if strategy == "deepspeed":
        import deepspeed

        # DeepSpeed prints its op builds ("... built successfully") to stdout, which carries the run's
        # JSON summary: send them to stderr with the other progress notes.
        with contextlib.redirect_stdout(sys.stderr):
            deepspeed.init_distributed(dist_backend=backend, timeout=timedelta(minutes=30))
    else:
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


# ----------------------------------------------------------------------------------------- strategies
class Strategy:
    """One process, no wrapper (also the base the others extend)."""

    def __init__(self, cfg: Any, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        # ``model``: the PackedLossModule inside DDP/FSDP2/DeepSpeed (what trains); ``lm``: the Hugging Face /
        # PEFT model inside it (what checkpoints name parameters by).
        self._module: nn.Module | None = None
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Any = None
        self.autocast_bf16 = False  # set by the trainer for full fine-tuning in bf16 mixed precision

    # setup
    def wrap(self, module: nn.Module, make_optimizer, make_scheduler) -> None:
        """Wrap ``module``; then build the optimizer over the (possibly sharded) trainable parameters."""
        self._module = module
        self.model = self._wrap_module(module)
        self.optimizer = make_optimizer(self.trainable_parameters())
        self.scheduler = make_scheduler(self.optimizer)

    def _wrap_module(self, module: nn.Module) -> nn.Module:
        return module

    def trainable_parameters(self) -> list[nn.Parameter]:
        assert self._module is not None
        return [p for p in self._module.parameters() if p.requires_grad]

    @property
    def lm(self) -> nn.Module:
        """The Hugging Face / PEFT model inside (what checkpoints name parameters by)."""
        assert self._module is not None
        return self._module.lm

    # step
    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        assert self.model is not None
        if self.autocast_bf16:
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                return self.model(*tensors)
        return self.model(*tensors)

    def sync_context(self, last_micro_batch: bool) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor, last_micro_batch: bool) -> None:
        loss.backward()

    def clip_and_step(self, max_norm: float, finite_loss: bool) -> tuple[float, bool]:
        """Clip, then step unless the loss or gradient norm is not finite; returns (grad norm, stepped)."""
        assert self.optimizer is not None
        grad_norm = float("nan")
        if finite_loss:
            norm = torch.nn.utils.clip_grad_norm_(
                self.trainable_parameters(), max_norm if max_norm > 0 else float("inf")
            )
            if hasattr(norm, "full_tensor"):  # a DTensor under FSDP2
                norm = norm.full_tensor()
            grad_norm = float(norm)
        stepped = finite_loss and torch.isfinite(torch.tensor(grad_norm)).item()
        if stepped:
            self.optimizer.step()
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm, bool(stepped)

    # state
    def full_model_state_dict(self, trainable_only: bool) -> dict[str, torch.Tensor]:
        """The whole model's (or only the trainable) weights on rank 0 (empty elsewhere); a collective."""
        options = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=trainable_only)
        return get_model_state_dict(self.lm, options=options)

    def save_state(
        self, folder: Path, is_main: bool, trainable_only: bool, async_group: Any = None, fault: Any = None
    ) -> Future | None:
        """Model (trainable part) + optimizer shards into ``folder/dcp``, scheduler on the main process; a
        collective. With ``async_group``: the future of the background write (see :func:`.checkpointing.dcp.save`)."""
        assert self.optimizer is not None
        if is_main:
            save_plain(self.scheduler.state_dict(), folder / SCHEDULER)
            save_model_config(self.lm, folder / MODEL_CONFIG_DIR)
        return dcp.save(folder, self.lm, self.optimizer, trainable_only, async_group, fault)

    def load_state(self, folder: Path, is_main: bool, trainable_only: bool) -> None:
        """This process's share of ``folder``'s model and optimizer state (any world size); a collective."""
        assert self.optimizer is not None
        dcp.load(folder, self.lm, self.optimizer, trainable_only)
        self.scheduler.load_state_dict(load_plain(folder / SCHEDULER))


class DDPStrategy(Strategy):
    def _wrap_module(self, module: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DDP(module, device_ids=ids, find_unused_parameters=self.cfg.find_unused_parameters)

    def sync_context(self, last_micro_batch: bool) -> contextlib.AbstractContextManager:
        # Gradients are all-reduced once per optimizer step, on the last micro-batch.
        return contextlib.nullcontext() if last_micro_batch else self.model.no_sync()  # type: ignore[union-attr]


class FSDP2Strategy(Strategy):
    """``torch.distributed.fsdp.fully_shard`` on every decoder layer, then on the whole module."""

    def _wrap_module(self, module: nn.Module) -> nn.Module:
        from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard

        kwargs: dict[str, Any] = {}
        if self.autocast_bf16:  # fp32 master weights, bf16 compute, fp32 gradient reduction
            kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
            self.autocast_bf16 = False  # the policy casts; no autocast on top
        if self.cfg.cpu_offload:
            kwargs["offload_policy"] = CPUOffloadPolicy()
        layer_names = set(getattr(unwrap(module.lm), "_no_split_modules", None) or ["LlamaDecoderLayer"])
        for sub in module.modules():
            if type(sub).__name__ in layer_names:
                fully_shard(sub, reshard_after_forward=self.cfg.reshard_after_forward, **kwargs)
        fully_shard(module, **kwargs)  # in place: the module is its own wrapper
        return module

    def backward(self, loss: torch.Tensor, last_micro_batch: bool) -> None:
        # Reduce-scatter gradients only after the last micro-batch; earlier ones accumulate unsharded.
        self.model.set_requires_gradient_sync(last_micro_batch)  # type: ignore[union-attr]
        loss.backward()


class DeepSpeedStrategy(Strategy):
    """DeepSpeed ZeRO-2/3 through ``deepspeed.initialize`` with our AdamW and LR schedule.

    Checkpoints are DeepSpeed's own files (``engine.save_checkpoint``, :mod:`.checkpointing.deepspeed`): each
    process writes its partition and the module state needs no gather, so whole Hugging Face weights are
    written only when the trainer asks for them. A checkpoint written by another number of processes is
    converted to DeepSpeed's universal checkpoint and loaded with ``checkpoint.load_universal``, which
    must be in the config before ``deepspeed.initialize``: :meth:`configure` looks at the checkpoint.
    """

    def __init__(self, cfg: Any, device: torch.device) -> None:
        super().__init__(cfg, device)
        self.engine: Any = None
        self.ds_config: dict[str, Any] = {}
        self.universal = False  # the checkpoint to resume was written by another number of processes

    def configure(
        self, micro_batch: int, grad_accum: int, world: int, max_grad_norm: float, bf16: bool,
        resume: Path | None = None,
    ) -> None:  # fmt: skip
        self.ds_config = deepspeed_config(self.cfg, micro_batch, grad_accum, world, max_grad_norm, bf16)
        # ZeRO-1/2/3 partition the optimizer state by process (one file each); without ZeRO (stage 0)
        # DeepSpeed saves it whole, and it loads under any number of processes as it is.
        saved = saved_world_size(resume / DEEPSPEED_DIR / STATE_TAG) if resume is not None else 0
        if saved and saved != world:
            self.universal = True
            self.ds_config["checkpoint"] = {**self.ds_config.get("checkpoint", {}), "load_universal": True}

    def wrap(self, module: nn.Module, make_optimizer, make_scheduler) -> None:
        import deepspeed

        self._module = module
        optimizer = make_optimizer(self.trainable_parameters())
        scheduler = make_scheduler(optimizer)
        self.autocast_bf16 = False  # DeepSpeed's bf16 mode casts the module and keeps fp32 master weights
        with contextlib.redirect_stdout(sys.stderr):  # op builds print to stdout (see init_process_group)
            self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
                model=module, optimizer=optimizer, lr_scheduler=scheduler, config=self.ds_config
            )
        self.model = self.engine

    def backward(self, loss: torch.Tensor, last_micro_batch: bool) -> None:
        self.engine.set_gradient_accumulation_boundary(last_micro_batch)
        # Our loss is already the global-batch mean; DeepSpeed must not divide by the accumulation steps.
        self.engine.backward(loss, scale_wrt_gas=False)

    def clip_and_step(self, max_norm: float, finite_loss: bool) -> tuple[float, bool]:
        # DeepSpeed clips (gradient_clipping) and skips the update itself when the gradient norm is not
        # finite (its "overflow" path, which also holds back the LR schedule); we report what it did.
        self.engine.step()
        norm = self.engine.get_global_grad_norm()
        grad_norm = float(norm) if norm is not None else float("nan")
        overflow = bool(getattr(self.engine.optimizer, "overflow", False))
        return grad_norm, finite_loss and not overflow

    def full_model_state_dict(self, trainable_only: bool) -> dict[str, torch.Tensor]:
        from deepspeed.utils import safe_get_full_fp32_param

        out: dict[str, torch.Tensor] = {}
        is_main = not dist.is_initialized() or dist.get_rank() == 0
        for name, p in self.lm.named_parameters():
            if trainable_only and not p.requires_grad:
                continue
            # Collective under ZeRO-3 (parameters are partitioned): every rank takes part.
            full = safe_get_full_fp32_param(p) if p.requires_grad else _gather_frozen(p)
            if is_main:
                out[name] = full.detach().to("cpu", copy=True)
        return out

    def save_state(
        self, folder: Path, is_main: bool, trainable_only: bool, async_group: Any = None, fault: Any = None
    ) -> None:
        """DeepSpeed's checkpoint (each process its partition; the module state without frozen weights),
        and the model's small config files that an export needs. Always written in the foreground."""
        self.engine.save_checkpoint(str(folder / DEEPSPEED_DIR), tag=STATE_TAG, exclude_frozen_parameters=True)
        if is_main:
            save_model_config(self.lm, folder / MODEL_CONFIG_DIR)

    def load_state(self, folder: Path, is_main: bool, trainable_only: bool) -> None:
        """Module weights (trainable ones), optimizer, scheduler and counters from DeepSpeed's files."""
        path = folder / DEEPSPEED_DIR
        if not (path / STATE_TAG).is_dir():
            raise DistributedConfigError(
                f"{folder} holds no DeepSpeed state (it was written by another strategy); resume it with that "
                "strategy, or start from its weights with trainer.init_from"
            )
        options = {"load_module_strict": False, "load_optimizer_states": True, "load_lr_scheduler_states": True}
        if not self.universal:
            self.engine.load_checkpoint(str(path), tag=STATE_TAG, **options)
            return
        # Another number of processes: one process converts, all load the universal form, then it goes.
        root, tag, failed = universal_folder(folder), "", ""
        if is_main:
            try:
                root, tag = convert_to_universal(folder)
            except Exception as e:  # noqa: BLE001 (every process must learn it, or the others wait forever)
                failed = (
                    str(e) if isinstance(e, CheckpointFileError) else f"{folder}: universal conversion failed ({e})"
                )
        if dist.is_initialized():
            payload = [(tag, failed)]
            dist.broadcast_object_list(payload, src=0)
            tag, failed = payload[0]
        if failed:
            raise CheckpointFileError(failed)
        try:
            self.engine.load_checkpoint(str(root), tag=tag, **options)
            if self.engine.zero_optimization_stage() == 3:
                repair_zero3_universal_load(self.engine.optimizer.optimizer, root, tag)
        finally:
            if dist.is_initialized():
                dist.barrier()
            if is_main:
                shutil.rmtree(root, ignore_errors=True)


def _gather_frozen(p: nn.Parameter) -> torch.Tensor:
    """A frozen parameter's full value (ZeRO-3 partitions frozen parameters too)."""
    if hasattr(p, "ds_id"):
        import deepspeed

        with deepspeed.zero.GatheredParameters([p], modifier_rank=None):
            return p.data.clone()
    return p.data


def deepspeed_config(
    cfg: Any, micro_batch: int, grad_accum: int, world: int, max_grad_norm: float, bf16: bool
) -> dict[str, Any]:
    """The DeepSpeed JSON of ``distributed.config_file`` with every ``"auto"`` filled from the training
    config (batch sizes, clipping, precision), so the file never repeats what the recipe says.

    A value set in the file that disagrees with the training config is an error rather than a silent
    winner: DeepSpeed would otherwise train a different global batch than the one the run plans with.
    """
    path = deepspeed_config_path(cfg)
    ds = json.loads(path.read_text())
    wanted = {
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": grad_accum,
        "train_batch_size": micro_batch * grad_accum * world,
        "gradient_clipping": max_grad_norm if max_grad_norm > 0 else 0.0,
    }
    for key, value in wanted.items():
        given = ds.get(key, "auto")
        if given != "auto" and given != value:
            raise DistributedConfigError(
                f'{path.name}: {key}={given} but the training config gives {value}; set it to "auto"'
            )
        ds[key] = value
    bf = ds.setdefault("bf16", {})
    if bf.get("enabled", "auto") == "auto":
        bf["enabled"] = bf16
    zero = ds.setdefault("zero_optimization", {})
    if cfg.zero_stage is not None:
        zero["stage"] = cfg.zero_stage
    if cfg.cpu_offload:
        zero["offload_optimizer"] = {"device": "cpu"}
        # DeepSpeed refuses a client optimizer with offload unless told: ours is torch's AdamW on purpose
        # (the same update under every strategy), stepping on the offloaded fp32 partitions.
        ds.setdefault("zero_force_ds_cpu_optimizer", False)
    ds.setdefault("zero_allow_untested_optimizer", True)  # our torch AdamW, not DeepSpeed's
    ds.setdefault("steps_per_print", 10**12)  # the trainer logs; keep DeepSpeed quiet
    return ds


def deepspeed_config_path(cfg: Any) -> Path:
    if cfg.config_file is None:
        raise DistributedConfigError(
            "distributed.config_file: name a DeepSpeed JSON (distributed=deepspeed_zero2 or deepspeed_zero3 set one)"
        )
    path = Path(cfg.config_file)
    if not path.is_absolute():
        from yue_train.config.compose import conf_dir

        path = conf_dir() / "deepspeed" / path
    if not path.is_file():
        raise DistributedConfigError(f"distributed.config_file: no DeepSpeed config at {path}")
    return path


def check_config(cfg: Any, device_type: str) -> None:
    """The ``distributed`` config's own errors, before any process group, model or run folder exists."""
    name = cfg.strategy
    if name not in STRATEGIES:
        raise DistributedConfigError(f"distributed.strategy={name!r}; choose one of {', '.join(STRATEGIES)}")
    if name == "fsdp2" and cfg.cpu_offload and device_type != "cuda":
        raise DistributedConfigError(
            "distributed.cpu_offload=true moves GPU state to CPU memory; on a CPU-only run leave it false"
        )
    if name == "deepspeed":
        import importlib.util

        if importlib.util.find_spec("deepspeed") is None:
            raise DistributedConfigError(
                "DeepSpeed is not installed: pip install 'yue-train[deepspeed]', or choose distributed=ddp or fsdp2"
            )
        path = deepspeed_config_path(cfg)
        try:
            json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise DistributedConfigError(f"distributed.config_file: {path} is not valid JSON ({e})") from None


def make_strategy(cfg: Any, device: torch.device) -> Strategy:
    """The strategy ``cfg`` names (checked by :func:`check_config` first)."""
    classes = {"single": Strategy, "ddp": DDPStrategy, "fsdp2": FSDP2Strategy, "deepspeed": DeepSpeedStrategy}
    return classes[cfg.strategy](cfg, device)
