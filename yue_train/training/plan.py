"""The plan of one training phase: how much of each dataset, how many tokens per step, how many steps.

``data.train`` lists datasets in one of two styles (never both in one list):

* ``{path, weight}``: the mixture draws each next document from a dataset with probability proportional
  to its weight; the phase lasts ``trainer.max_tokens`` tokens (or ``trainer.max_steps`` steps).
* ``{path, rounds}``: the official YuE ``N_ROUND`` lists (``finetune/core/parse_mixture.py``): each
  dataset is passed over ``rounds`` times in this phase (a float, may be below 1), and the phase budget
  is ``sum(rounds x tokens)``, i.e. the official ``TRAIN_ITERS = total tokens / (global batch x seq_len)``.

Either style may add ``tokens: N`` (and ``docs: N``) for a dataset that has no ``summary.json`` to read
(URLs, a single ``.tar``) and ``name``. Rounds need every dataset's size.

Document draws versus token shares: the official Megatron blend samples fixed-length token windows, so its
blend weight ``rounds x tokens`` is a token share. Our mixture (:class:`yue_train.data.planner.Planner`)
draws whole documents, so a dataset's expected token share is its draw probability times its mean
document length. To give every dataset its rounds, the draw probability must be proportional to
``rounds x documents`` (= ``rounds x tokens / mean length``); that is what :meth:`PhasePlan.sampling_weights`
returns when document counts are known (``rounds x tokens`` otherwise, exact only when mean lengths agree).
The budget counts padded rows: with ``data.overflow=next_row`` a little of each row is padding, so
datasets get slightly fewer tokens than planned.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from yue_train.config.schema import DatasetConfig
from yue_train.data.shard_reader import SUMMARY_FILES, url_kind
from yue_train.data.shards import folder_provenance
from yue_train.format.bounded_json import JsonFileError, read_json_object
from yue_train.format.bounded_json import field as json_field

ENTRY_KEYS = tuple(f.name for f in fields(DatasetConfig))


class PlanError(ValueError):
    """A phase that cannot be planned; the message says what to change."""


@dataclass(frozen=True)
class DatasetSize:
    tokens: int | None
    docs: int | None


@dataclass(frozen=True)
class DatasetPlan:
    name: str
    path: str
    tokens: int | None  # size of the dataset (all of it, held-out documents included)
    docs: int | None
    rounds: float | None  # passes in this phase: given (rounds style) or planned tokens / tokens
    weight: float | None  # as given (weight style)
    sampling_weight: float  # probability that the next document comes from this dataset
    token_share: float  # expected share of the phase's tokens
    planned_tokens: float
    mode: str = "?"  # document modes recorded in the folder's summary ("?" when unknown)


@dataclass(frozen=True)
class PhasePlan:
    style: str  # "rounds" | "weight"
    datasets: list[DatasetPlan]
    global_batch_size: int  # packed rows per optimizer step, all processes
    micro_batch: int  # data.batch_size
    grad_accum: int  # micro-batches per process per step
    world_size: int
    seq_len: int
    budget_tokens: int
    budget_source: str  # "rounds" | "trainer.max_tokens" | "trainer.max_steps"
    max_steps: int
    name: str = ""

    @property
    def tokens_per_step(self) -> int:
        return self.global_batch_size * self.seq_len

    def sampling_weights(self) -> list[float]:
        """Per ``data.train`` entry, in order: the document-draw probabilities for the mixture."""
        return [d.sampling_weight for d in self.datasets]

    def as_dict(self) -> dict[str, Any]:
        """Plain values for logs, summaries and W&B."""
        return {**asdict(self), "tokens_per_step": self.tokens_per_step}

    def format(self) -> str:
        """A table to print before training."""
        head = ("dataset", "mode", "tokens", "docs", "rounds", "weight", "draw", "share", "planned")
        rows = [
            (
                d.name,
                d.mode,
                human(d.tokens),
                human(d.docs),
                "?" if d.rounds is None else f"{d.rounds:.3g}",
                "-" if d.weight is None else f"{d.weight:g}",
                f"{d.sampling_weight:.1%}",
                f"{d.token_share:.1%}",
                human(d.planned_tokens),
            )
            for d in self.datasets
        ]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

        def line(cells: tuple[str, ...]) -> str:
            left = [c.ljust(w) for c, w in zip(cells[:2], widths[:2], strict=True)]
            return "  " + "  ".join([*left, *(c.rjust(w) for c, w in zip(cells[2:], widths[2:], strict=True))])

        given = "rounds" if self.style == "rounds" else "weights"
        out = [f"phase plan{f' ({self.name})' if self.name else ''}: data.train by {given}", line(head)]
        out += [line(r) for r in rows]
        procs = "process" if self.world_size == 1 else "processes"
        out += [
            f"  global batch {self.global_batch_size:,} rows x {self.seq_len:,} tokens = "
            f"{human(self.tokens_per_step)} tokens/step (data.batch_size {self.micro_batch} x grad_accum "
            f"{self.grad_accum} x {self.world_size} {procs})",
            f"  {self.max_steps:,} steps, budget {human(self.budget_tokens)} tokens (from {self.budget_source})",
        ]
        if any(d.tokens is None for d in self.datasets):
            out.append("  ?: no summary.json and no `tokens:` given; shares assume equal mean document lengths")
        return "\n".join(out)


def human(n: float | None) -> str:
    """6291456 -> 6.3M, 2.8e11 -> 280.0B; None -> ?."""
    if n is None:
        return "?"
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}" if float(n).is_integer() else f"{n:.1f}"


# ----------------------------------------------------------------------------------------- datasets
def _plain(entry: Any) -> dict[str, Any]:
    """The keys an entry gives (the schema sets every key it leaves out to null)."""
    if OmegaConf.is_config(entry):
        entry = OmegaConf.to_container(entry, resolve=True)
    if not isinstance(entry, dict):
        raise PlanError(f"a data.train entry must be a mapping like {{path: ..., weight: 1}}, got {entry!r}")
    return {k: v for k, v in entry.items() if v is not None}


def _first_path(entry: dict[str, Any]) -> str:
    path = entry.get("path")
    if isinstance(path, (list, tuple)):
        path = path[0] if path else None
    return "" if path is None else str(path)


def entry_name(entry: Any) -> str:
    """``name``, else the last part of the (first) path: ``/data/yue/cot_en`` -> ``cot_en``."""
    e = _plain(entry)
    if e.get("name"):
        return str(e["name"])
    path = _first_path(e).rstrip("/")
    return path.rsplit("/", 1)[-1] or path or "?"


def _count(obj: Any, key: str, file: Path) -> int:
    value = json_field(obj, key, int, f"{file}: shards entry" if key != "tokens_total" else file)
    if value < 0:
        raise JsonFileError(f"{file}: {key}={value} is negative")
    return value


def _summary_size(folder: Path, shard: str | None = None) -> DatasetSize | None:
    for name in SUMMARY_FILES:
        file = folder / name
        if not file.is_file():
            continue
        try:
            summary = read_json_object(file)
            shards = json_field(summary, "shards", (list, type(None)), file, None) or []
            if shard is not None:
                shards = [s for s in shards if isinstance(s, dict) and s.get("name") == shard]
                if not shards:
                    return None
            elif not shards and "tokens_total" in summary:
                docs = json_field(summary, "documents_written", (int, type(None)), file, None)
                return DatasetSize(_count(summary, "tokens_total", file), docs)
            return DatasetSize(
                sum(_count(s, "n_tokens", file) for s in shards),
                sum(_count(s, "n_docs", file) for s in shards) if shards else None,
            )
        except JsonFileError as e:
            raise PlanError(str(e)) from None
    return None


def dataset_size(entry: Any) -> DatasetSize:
    """Tokens and documents of a dataset: ``tokens``/``docs`` as given, else its folder's summary.json."""
    e = _plain(entry)
    found = DatasetSize(None, None)
    paths = e.get("path")
    if isinstance(paths, str) and paths and url_kind(paths) == "local":
        p = Path(paths)
        if p.is_dir():
            found = _summary_size(p) or found
        elif p.is_file():  # a single shard: its line in the folder's summary, if any
            found = _summary_size(p.parent, shard=p.name) or found
    where = f"data.train entry {entry_name(e)}"
    tokens = count(e["tokens"], f"{where}: tokens") if e.get("tokens") is not None else found.tokens
    docs = count(e["docs"], f"{where}: docs") if e.get("docs") is not None else found.docs
    return DatasetSize(tokens, docs)


def dataset_mode(entry: Any) -> str:
    """The document modes a local dataset's summary records (``cot``, ``icl-dual,icl-vocal``, ``stage2``), or ?."""
    path = _first_path(_plain(entry))
    if not path or url_kind(path) != "local":
        return "?"
    prov = folder_provenance(path)
    return ",".join(prov.modes) if prov is not None and prov.modes else "?"


def _number(value: Any, where: str) -> float:
    """A finite number >= 0 as written in YAML or on the command line: 280000000000, 2.8e11, "280e9"."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PlanError(f"{where}={value!r} is not a number") from None
    if not math.isfinite(number) or number < 0:
        raise PlanError(f"{where}={value!r} must be a finite number >= 0")
    return number


def count(value: Any, where: str) -> int:
    """A token or document count: :func:`_number`, rounded."""
    return int(round(_number(value, where)))


def _style(entries: list[dict[str, Any]]) -> str:
    for i, e in enumerate(entries):
        where = f"data.train[{i}] ({entry_name(e)})"
        unknown = sorted(set(e) - set(ENTRY_KEYS))
        if unknown:
            raise PlanError(f"{where}: unknown key(s) {', '.join(unknown)}; a dataset takes {', '.join(ENTRY_KEYS)}")
        if not e.get("path"):
            raise PlanError(f"{where}: no path")
        if "weight" in e and "rounds" in e:
            raise PlanError(f"{where} gives both weight and rounds; give one (every dataset in the list the same one)")
    with_rounds = [i for i, e in enumerate(entries) if "rounds" in e]
    if not with_rounds:
        return "weight"
    without = [i for i, e in enumerate(entries) if "rounds" not in e]
    if without:
        raise PlanError(
            f"data.train mixes styles: data.train[{with_rounds[0]}] ({entry_name(entries[with_rounds[0]])}) gives "
            f"rounds but data.train[{without[0]}] ({entry_name(entries[without[0]])}) does not; give every dataset "
            "rounds (passes over it in this phase) or every dataset a weight"
        )
    return "rounds"


def _normalise(values: list[float], what: str) -> list[float]:
    total = sum(values)
    if total <= 0:
        raise PlanError(f"data.train: the {what} add up to 0; give at least one dataset a positive value")
    return [v / total for v in values]


# -------------------------------------------------------------------------------------------- phase
def batch_geometry(cfg: Any, world_size: int) -> tuple[int, int, int]:
    """(global batch rows, micro batch rows, grad_accum) of ``cfg`` on ``world_size`` processes."""
    micro = cfg.data.batch_size
    if micro < 1:
        raise PlanError(f"data.batch_size must be >= 1, got {micro}")
    wanted = cfg.trainer.global_batch_size
    if wanted is None:
        accum = cfg.trainer.grad_accum
        if accum < 1:
            raise PlanError(f"trainer.grad_accum must be >= 1, got {accum}")
        return micro * accum * world_size, micro, accum
    per_accum = micro * world_size
    if wanted < per_accum or wanted % per_accum:
        lower = max(per_accum, wanted // per_accum * per_accum)
        raise PlanError(
            f"trainer.global_batch_size={wanted} is not a whole multiple of data.batch_size ({micro}) x processes "
            f"({world_size}) = {per_accum} rows per accumulation step; set trainer.global_batch_size to a multiple "
            f"of {per_accum} (e.g. {lower} or {lower + per_accum}) or change data.batch_size or the number of processes"
        )
    return wanted, micro, wanted // per_accum


def plan_phase(cfg: Any, world_size: int = 1) -> PhasePlan:
    """Plan the phase ``cfg`` describes on ``world_size`` processes (datasets sized from their summaries)."""
    if world_size < 1:
        raise PlanError(f"world_size must be >= 1, got {world_size}")
    train = None if OmegaConf.is_missing(cfg.data, "train") else cfg.data.train
    if not train:
        raise PlanError("data.train is empty: list at least one dataset ({path: ..., weight: ...})")
    entries = [_plain(e) for e in train]
    style = _style(entries)
    global_batch, micro, accum = batch_geometry(cfg, world_size)
    seq_len = cfg.data.seq_len
    tokens_per_step = global_batch * seq_len
    sizes = [dataset_size(e) for e in entries]
    names = [entry_name(e) for e in entries]
    max_tokens = cfg.trainer.max_tokens

    if style == "rounds":
        rounds = [_number(e["rounds"], f"data.train[{i}].rounds") for i, e in enumerate(entries)]
        for i, s in enumerate(sizes):
            if s.tokens is None:
                raise PlanError(
                    f"data.train[{i}] ({names[i]}) gives rounds, which need the dataset's size: no summary.json at "
                    f"{_first_path(entries[i])}; add tokens: N to the entry (and docs: N if known)"
                )
        if max_tokens is not None:
            raise PlanError(
                f"trainer.max_tokens={count(max_tokens, 'trainer.max_tokens')} is set but data.train gives rounds, which fix the budget "
                "themselves; set trainer.max_tokens=null, or give weights instead of rounds"
            )
        planned = [r * (s.tokens or 0) for r, s in zip(rounds, sizes, strict=True)]
        share = _normalise(planned, "rounds x tokens")
        # Document draws (see the module docstring): rounds x documents gives each dataset its rounds.
        if all(s.docs for s in sizes):
            draw = _normalise([r * (s.docs or 0) for r, s in zip(rounds, sizes, strict=True)], "rounds x docs")
        else:
            draw = share
        budget, source = int(round(sum(planned))), "rounds"
        weights: list[float | None] = [None] * len(entries)
        given_rounds: list[float | None] = list(rounds)
    else:
        weights = [
            _number(e["weight"], f"data.train[{i}].weight") if "weight" in e else 1.0 for i, e in enumerate(entries)
        ]
        draw = _normalise([w or 0.0 for w in weights], "weights")
        # Expected token share = draw probability x mean document length (when every length is known).
        lengths = [s.tokens / s.docs if s.tokens and s.docs else None for s in sizes]
        if all(lengths):
            share = _normalise([p * (n or 0.0) for p, n in zip(draw, lengths, strict=True)], "weights")
        else:
            share = draw
        if max_tokens is not None:
            budget, source = count(max_tokens, "trainer.max_tokens"), "trainer.max_tokens"
        else:
            budget, source = cfg.trainer.max_steps * tokens_per_step, "trainer.max_steps"
        planned = [f * budget for f in share]
        given_rounds = [p / s.tokens if s.tokens else None for p, s in zip(planned, sizes, strict=True)]

    # From trainer.max_steps the budget is max_steps x tokens/step, so this gives max_steps back.
    max_steps = math.ceil(budget / tokens_per_step)
    if max_steps < 1:
        raise PlanError(f"the phase budget ({human(budget)} tokens from {source}) gives no step; raise it")

    datasets = [
        DatasetPlan(
            name=names[i],
            path=_first_path(entries[i]),
            tokens=sizes[i].tokens,
            docs=sizes[i].docs,
            rounds=given_rounds[i],
            weight=weights[i],
            sampling_weight=draw[i],
            token_share=share[i],
            planned_tokens=planned[i],
            mode=dataset_mode(entries[i]),
        )
        for i in range(len(entries))
    ]
    return PhasePlan(
        style=style,
        datasets=datasets,
        global_batch_size=global_batch,
        micro_batch=micro,
        grad_accum=accum,
        world_size=world_size,
        seq_len=seq_len,
        budget_tokens=budget,
        budget_source=source,
        max_steps=max_steps,
        name=str(OmegaConf.select(cfg, "recipe_name", default="", throw_on_missing=False) or ""),
    )


def tokens_explained(
    plan: PhasePlan, steps: int, row_tokens: int, tokens_seen: int, padding: int, bad_docs: int = 0
) -> str:
    """One line saying where the ``row_tokens`` positions of ``steps`` steps' rows went: ``tokens_seen``
    (positions with a label: what the loss trains on), ``padding`` (positions that held no document) and,
    the rest, the last token of every document, which has no next token to predict. The plan's budget
    counts row positions, so a phase that ran to its end has ``row_tokens`` = the budget rounded up to
    whole steps."""
    ends = row_tokens - tokens_seen - padding
    where = "row ends" + (f" and in place of {bad_docs:,} bad documents" if bad_docs else "")
    return (
        f"tokens_seen {tokens_seen:,} = {row_tokens:,} tokens in {steps:,} steps' rows (planned "
        f"{human(plan.budget_tokens)}) - {padding:,} padding at {where} - {ends:,} documents' last tokens "
        "(nothing follows them to predict)"
    )
