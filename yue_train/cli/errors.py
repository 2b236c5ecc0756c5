"""How ``yue-train`` and ``yue-train chain`` end: every expected failure as one ``yue-train: error: ...``
line and exit code 2, a second Ctrl-C as one line and exit 130, and the process group torn down either way.

The library raises its own error types (each message one line saying what to change); this is the one
place that turns them into the command line's ending."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


def run_reporting_errors(run: Callable[[], Any]) -> tuple[int, Any]:
    """``(0, run())``, or ``(exit code, None)`` after printing the one-line reason."""
    from omegaconf.errors import OmegaConfBaseException

    from yue_train.config.compose import UsageError
    from yue_train.data.folder_lock import FolderBusyError
    from yue_train.data.packing import DataConfigError
    from yue_train.data.pretrain_corpus import SyntheticDataError
    from yue_train.training.checkpointing.disk import DiskSpaceError
    from yue_train.training.checkpointing.run_folder import RunFolderError
    from yue_train.training.checkpointing.state_files import CheckpointFileError
    from yue_train.training.logger import WandbLoginError
    from yue_train.training.plan import PlanError
    from yue_train.training.strategies import DistributedConfigError, destroy_process_group
    from yue_train.training.trainer import ABORTED, ABORTED_EXIT, TrainingError
    from yue_train.training.validate import ConfigError

    expected = (
        UsageError, ConfigError, DataConfigError, SyntheticDataError, PlanError, OmegaConfBaseException,
        WandbLoginError, DistributedConfigError, FolderBusyError, RunFolderError, CheckpointFileError,
        DiskSpaceError, TrainingError,
    )  # fmt: skip
    try:
        return 0, run()
    except expected as e:
        message = " ".join(x.strip() for x in str(e).splitlines() if x.strip())
        # one write with its newline: unbuffered processes of one torchrun launch end at the same moment, and
        # print's separate write of the newline lets their lines interleave
        sys.stderr.write(f"yue-train: error: {message}\n")
        return 2, None
    except KeyboardInterrupt:
        print(f"yue-train: {ABORTED}", file=sys.stderr)
        return ABORTED_EXIT, None
    finally:
        destroy_process_group()
