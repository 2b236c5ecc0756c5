"""model.gradient_checkpointing=auto and the start-of-run memory lines, on CPU with a given device size."""

from __future__ import annotations

import pytest
import torch

from tests.training.helpers import compose
from yue_train.models.architectures import architecture_config
from yue_train.training.memory_estimate import GIB
from yue_train.training.memory_plan import plan_memory

CPU = torch.device("cpu")


TINY = architecture_config("tiny_v512")  # the estimate's model: a small vocabulary keeps it fast


def _cfg(*overrides: str):
    return compose("recipe=demo", "lora=qkvo", "data.seq_len=512", *overrides)


def test_auto_on_cpu_is_off_and_says_nothing():
    plan = plan_memory(_cfg(), TINY, CPU, micro_batch=1)
    assert plan.checkpointing is False and plan.lines == []
    assert plan_memory(_cfg("model.gradient_checkpointing=true"), TINY, CPU, 1).checkpointing


def test_auto_checkpoints_only_when_the_step_does_not_fit():
    roomy = plan_memory(_cfg(), TINY, CPU, micro_batch=1, device_bytes=8 * GIB)
    assert roomy.checkpointing is False and len(roomy.lines) == 1 and "without activation" in roomy.lines[0]
    # 0.5 GiB of context + the step fit neither 0.5 GiB + 1 MiB without checkpointing nor with it: a warning.
    tight = plan_memory(_cfg(), TINY, CPU, micro_batch=1, device_bytes=GIB // 2 + 2**20)
    assert tight.checkpointing is True
    assert "auto:" in tight.lines[0] and tight.lines[1].startswith("warning:")


def test_a_bad_setting_is_one_clear_error():
    with pytest.raises(ValueError, match="choose auto, true or false"):
        plan_memory(_cfg("model.gradient_checkpointing=sometimes"), TINY, CPU, 1)
