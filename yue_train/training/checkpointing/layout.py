"""Every file and folder name of a run's checkpoints, defined here once.

::

    RUN_DIR/checkpoints/
        latest -> step-N              symlink, replaced atomically after each publish
        .tmp-step-N/                  a checkpoint being written (removed by the next save)
        .universal-step-N/            DeepSpeed's universal form while a resume loads it (then removed)
        step-N/
            trainer_state.json        format_version, step, tokens (trained, row, padding), world size, checkpoint_format,
                                      hf_weights
            config.yaml               the resolved config
            yue_provenance.json       stage, tokenizer, vocabulary, data
            data.pt                   the global data position (plain data)
            rng_rank{R}.pt            RNG states, one per process (plain data)
            scheduler.pt              the LR scheduler (plain data; DCP format)
            model_config/             config.json (+ generation_config.json), or adapter_config.json (LoRA)
            dcp/.metadata             checkpoint_format "dcp": model and optimizer tensors through
            dcp/__R_0.distcp              torch.distributed.checkpoint, one data file per process
            optimizer_groups.pt       the optimizer's param groups (plain data; DCP format)
            deepspeed/state/          checkpoint_format "deepspeed": DeepSpeed's own partitioned files
            model/ or adapter/        whole Hugging Face weights: end of a phase and every trainer.hf_every saves
            manifest.json             size and xxh3-128 checksum of every other file
            COMPLETE                  the step, written last

The DCP format is :mod:`.dcp`, DeepSpeed's :mod:`.deepspeed`, the atomic publish :mod:`.publish`, the checks
before a resume :mod:`.verify`, the Hugging Face export :mod:`.hf_export`. The names generation reads too
(``model_config/``, ``model/``, ``adapter/``) are defined in :mod:`yue_train.format.checkpoint_names`.
"""

from __future__ import annotations

from pathlib import Path

from yue_train.format.checkpoint_names import HF_ADAPTER_DIR as HF_ADAPTER_DIR
from yue_train.format.checkpoint_names import HF_MODEL_DIR as HF_MODEL_DIR
from yue_train.format.checkpoint_names import MODEL_CONFIG_DIR as MODEL_CONFIG_DIR

CHECKPOINTS = "checkpoints"
LATEST = "latest"
MARKER = "COMPLETE"
MANIFEST = "manifest.json"
TRAINER_STATE = "trainer_state.json"
FORMAT_VERSION = 1  # trainer_state.json "format_version": the layout this module draws
DCP_FORMAT, DEEPSPEED_FORMAT = "dcp", "deepspeed"  # trainer_state.json "checkpoint_format"
CONFIG = "config.yaml"
DATA_STATE = "data.pt"
SCHEDULER = "scheduler.pt"
DCP_DIR = "dcp"
DCP_METADATA = ".metadata"
OPTIMIZER_GROUPS = "optimizer_groups.pt"
DEEPSPEED_DIR = "deepspeed"
DEEPSPEED_TAG = "state"  # the DeepSpeed engine's checkpoint tag: deepspeed/state/
TMP_PREFIX = ".tmp-"
UNIVERSAL_PREFIX = ".universal-"


def step_name(step: int) -> str:
    return f"step-{step}"


def temp_folder(run_dir: Path, step: int) -> Path:
    """Where checkpoint ``step`` is written before it is published."""
    return Path(run_dir) / CHECKPOINTS / f"{TMP_PREFIX}{step_name(step)}"


def rng_file(rank: int) -> str:
    return f"rng_rank{rank}.pt"
