"""Where metrics go: ``metrics.jsonl`` in the run folder, W&B (rank 0), and a tqdm bar (rank 0)."""

from __future__ import annotations

import configparser
import contextlib
import json
import math
import netrc
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tqdm import tqdm

from yue_train.training.output import NORMAL, VERBOSE, note, set_library_bars, show_progress, verbosity

METRICS = "metrics.jsonl"
WANDB_ID = "wandb_id.txt"
WANDB_HOST = "https://api.wandb.ai"


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
        if main and wandb_mode(wcfg) != "disabled":
            self.wandb = _init_wandb(self.run_dir, wcfg, resolved)
        # Library bars (checkpoint writes: "Writing model shards") would break the step bar's line.
        self._library_bars = set_library_bars(False)
        self.bar = tqdm(
            total=total_steps,
            initial=start_step,
            disable=not (main and cfg.logging.progress and show_progress()),
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
        set_library_bars(self._library_bars)
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
    mode = wandb_mode(wcfg)
    run = wandb.init(
        project=wcfg.project,
        entity=wcfg.entity,
        name=wcfg.name,
        tags=list(wcfg.tags or []),
        mode=mode,
        dir=str(run_dir),
        id=run_id,
        resume="allow",  # a resumed run continues the same W&B run
        config=resolved,
        settings=wandb.Settings(silent=verbosity() < VERBOSE),  # its own lines only under --verbose
    )
    if verbosity() == NORMAL:
        where = getattr(run.settings, "sync_dir", None) or run_dir / "wandb"
        offline = f"yue-train: W&B offline run in {where} (upload it with: wandb sync {where})"
        note(f"yue-train: W&B run {run.url}" if mode == "online" else offline)
    return run


# ------------------------------------------------------------------------------------------- W&B
class WandbLoginError(ValueError):
    """W&B online logging was asked for on a machine with no W&B credentials."""


def wandb_mode(wcfg: Any) -> str:
    """The W&B mode a run uses: ``logging.wandb.mode``, unless W&B is off, or ``WANDB_MODE`` in the
    environment says offline/disabled (which wins, so a machine can be kept off the network)."""
    if not wcfg.enabled or str(wcfg.mode) == "disabled":
        return "disabled"
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env in ("offline", "dryrun"):
        return "offline"
    if env == "disabled" or os.environ.get("WANDB_DISABLED", "").strip().lower() in ("true", "1", "yes"):
        return "disabled"
    return str(wcfg.mode)


def _wandb_settings_file() -> configparser.ConfigParser:
    folder = Path(os.environ.get("WANDB_CONFIG_DIR") or Path.home() / ".config" / "wandb")
    parser = configparser.ConfigParser()
    with contextlib.suppress(configparser.Error, OSError):
        parser.read(folder / "settings")
    return parser


def _netrc_path() -> Path:
    if os.environ.get("NETRC"):
        return Path(os.environ["NETRC"]).expanduser()
    home = Path.home()
    return home / "_netrc" if not (home / ".netrc").exists() and (home / "_netrc").exists() else home / ".netrc"


def has_wandb_credentials() -> bool:
    """Whether ``wandb`` would find a login here, looked up as it does, without the network: an API key
    (``WANDB_API_KEY``, or ``api_key`` in its settings file), an identity token file, or a ``.netrc``
    entry for the W&B host (``WANDB_BASE_URL``, default api.wandb.ai) as ``wandb login`` writes."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    settings = _wandb_settings_file()
    if settings.get("default", "api_key", fallback=""):
        return True
    host = os.environ.get("WANDB_BASE_URL") or settings.get("default", "base_url", fallback="") or WANDB_HOST
    netloc = urlsplit(host.strip()).netloc
    try:
        entry = netrc.netrc(_netrc_path()).authenticators(netloc) if netloc else None
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(entry and entry[2])


def check_wandb_login(wcfg: Any) -> None:
    """Raise :class:`WandbLoginError` when W&B is to run online without credentials."""
    if wandb_mode(wcfg) == "online" and not has_wandb_credentials():
        raise WandbLoginError(
            "logging.wandb.mode=online but this machine has no W&B login: run `wandb login` (or set "
            "WANDB_API_KEY), or train with logging.wandb.mode=offline and upload later with `wandb sync`"
        )
