"""Where metrics go: ``metrics.jsonl`` in the run folder, W&B (rank 0), and a tqdm bar (rank 0)."""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path
from typing import Any

from tqdm import tqdm

METRICS = "metrics.jsonl"
WANDB_ID = "wandb_id.txt"


def truncate_metrics(run_dir: Path, after_step: int) -> None:
    """Drop records logged after ``after_step`` (a resumed run redoes those steps)."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a kill
            continue
        if rec.get("step", 0) <= after_step:
            keep.append(line)
    tmp = path.with_name(METRICS + ".tmp")
    tmp.write_text("".join(k + "\n" for k in keep))
    os.replace(tmp, path)


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


class RunLogger:
    def __init__(self, run_dir: Path, cfg: Any, resolved: dict, main: bool, total_steps: int, start_step: int) -> None:
        self.run_dir, self.main = Path(run_dir), main
        self._file = open(self.run_dir / METRICS, "a") if main else None  # noqa: SIM115 (kept open for the run)
        self.wandb = None
        wcfg = cfg.logging.wandb
        if main and wcfg.enabled and wcfg.mode != "disabled":
            self.wandb = _init_wandb(self.run_dir, wcfg, resolved)
        self.bar = tqdm(
            total=total_steps,
            initial=start_step,
            disable=not (main and cfg.logging.progress),
            dynamic_ncols=True,
            unit="step",
        )

    def log(self, record: dict[str, Any]) -> None:
        if not self.main:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        assert self._file is not None
        self._file.write(json.dumps(clean) + "\n")
        self._file.flush()
        if self.wandb is not None:
            self.wandb.log({k: v for k, v in record.items() if k != "step"}, step=int(record["step"]))

    def progress(self, n: int, **postfix: Any) -> None:
        self.bar.update(n)
        if postfix:
            self.bar.set_postfix(
                {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in postfix.items()}, refresh=False
            )

    def summary(self, values: dict[str, Any]) -> None:
        if self.wandb is not None:
            for k, v in values.items():
                self.wandb.summary[k] = v

    def close(self) -> None:
        self.bar.close()
        if self._file is not None:
            self._file.close()
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None


def _init_wandb(run_dir: Path, wcfg: Any, resolved: dict) -> Any:
    import wandb

    id_file = run_dir / WANDB_ID
    run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:8]
    id_file.write_text(run_id + "\n")
    return wandb.init(
        project=wcfg.project,
        entity=wcfg.entity,
        name=wcfg.name,
        tags=list(wcfg.tags or []),
        mode=wcfg.mode,
        dir=str(run_dir),
        id=run_id,
        resume="allow",  # a resumed run continues the same W&B run
        config=resolved,
    )
