"""Training against provenance: what the model expects (stage, tokenizer) compared with what each dataset
records, and the record every checkpoint of the run carries (:mod:`yue_train.format.provenance`).

Checks return one line naming the mismatch and the fix, or None; :mod:`.validate` raises them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from yue_train.data.shard_reader import url_kind
from yue_train.data.shards import folder_provenance
from yue_train.format.provenance import Provenance, TokenizerId, read_provenance, stages_of_modes
from yue_train.models.architectures import ARCHITECTURE_STAGES

_KIND = {
    1: "cot or icl shards (yue-prep tokenize --mode cot|icl)",
    2: "stage2 shards (yue-prep tokenize --mode stage2)",
}


def model_stage(model_cfg: Any) -> tuple[int | None, str | None]:
    """(stage, problem): ``model.stage``, else the local ``model.path``'s record, else the named
    architecture's stage; a problem line when ``model.stage`` contradicts the model folder's record."""
    given = model_cfg.get("stage")
    path = model_cfg.get("path")
    recorded = read_provenance(path) if path and Path(str(path)).is_dir() else None
    if given is not None:
        stage = int(given)
        if recorded is not None and recorded.stage is not None and recorded.stage != stage:
            return stage, (
                f"model.stage={stage} but model.path {path} is a stage-{recorded.stage} model (its "
                f"yue_provenance.json); set model.stage={recorded.stage} or use a stage-{stage} model"
            )
        return stage, None
    if recorded is not None and recorded.stage is not None:
        return recorded.stage, None
    name = model_cfg.get("name")
    return (ARCHITECTURE_STAGES.get(str(name)) if name and not path else None), None


def dataset_records(path: Any) -> list[tuple[str, Provenance]]:
    """(item, record) for each local folder or ``.tar`` of a dataset entry's path that has a record."""
    items = [str(p) for p in ([path] if isinstance(path, str) else list(path or []))]
    records = [(item, folder_provenance(item)) for item in items if url_kind(item) == "local"]
    return [(item, prov) for item, prov in records if prov is not None]


def dataset_problem(
    where: str,
    prov: Provenance,
    stage: int | None,
    model_desc: str,
    tokenizer: TokenizerId | None,
    vocab_size: int,
) -> str | None:
    """What makes a dataset with record ``prov`` unfit for the model, in one line, or None."""
    stages = stages_of_modes(prov.modes)
    modes = ", ".join(prov.modes)
    if len(stages) > 1:
        return f"{where}: the folder mixes stage-1 and stage-2 documents ({modes}); give each stage its own folder"
    if stage is not None and stages and stages[0] != stage:
        s = stages[0]
        return (
            f"{where}: {modes} documents are stage-{s} data but the model {model_desc} is a stage-{stage} model "
            f"(model.stage={stage}); give it {_KIND[stage]}, or train a stage-{s} model on these"
        )
    if tokenizer is not None and prov.tokenizer is not None and not prov.tokenizer.same_as(tokenizer):
        theirs = "synthetic" if prov.tokenizer.synthetic else (prov.tokenizer.file or "<their tokenizer.model>")
        fix = f"set model.tokenizer={theirs}"
        if not tokenizer.synthetic:  # the stand-in is never what real shards should be re-tokenized with
            fix = f"re-tokenize them with --tokenizer {tokenizer.file} or {fix}"
        return (
            f"{where}: shards were tokenized with {prov.tokenizer.describe()} but model.tokenizer is "
            f"{tokenizer.describe()}; {fix}"
        )
    if prov.max_token_id is not None and prov.max_token_id >= vocab_size:
        return (
            f"{where}: the shards hold token id {prov.max_token_id} but the model has {vocab_size} embedding rows "
            "(data tokenized for another vocabulary)"
        )
    return None


def _agreed(values: list[Any]) -> Any:
    distinct = {repr(v): v for v in values if v is not None}
    return next(iter(distinct.values())) if len(distinct) == 1 else None


def model_tokenizer(model_cfg: Any) -> TokenizerId | None:
    """The tokenizer ``model.tokenizer`` names (None when it is null)."""
    tok = model_cfg.get("tokenizer")
    if not tok:
        return None
    from yue_train.tokenizer import load_tokenizer

    return TokenizerId.of(load_tokenizer(None if tok == "synthetic" else tok))


def run_provenance(cfg: Any, vocab_size: int) -> Provenance:
    """The record of a model this run trains: its stage, tokenizer and vocabulary, and what its data was."""
    stage, _ = model_stage(cfg.model)
    tokenizer = model_tokenizer(cfg.model)
    datasets = []
    for entry in cfg.data.get("train") or []:
        plain = OmegaConf.to_container(entry, resolve=True) if OmegaConf.is_config(entry) else dict(entry)
        for item, prov in dataset_records(plain.get("path")):
            datasets.append(
                {
                    "path": str(Path(item).resolve()),
                    "modes": prov.modes,
                    "tokenizer": prov.tokenizer.__dict__ if prov.tokenizer else None,
                    "codec": prov.codec,
                }
            )
    if tokenizer is None and stage != 2:  # model.tokenizer=null: the tokenizer the data agrees on, if any
        tokenizer = _agreed([TokenizerId.from_dict(d["tokenizer"]) for d in datasets])
    modes = sorted({m for d in datasets for m in d["modes"]})
    name = OmegaConf.select(cfg, "recipe_name", default=None, throw_on_missing=False)
    return Provenance(
        modes=modes,
        stage=stage,
        tokenizer=tokenizer if stage != 2 else None,
        vocab_size=vocab_size,
        codec=_agreed([d["codec"] for d in datasets]),
        seq_len=int(cfg.data.seq_len),
        extra={
            "model": str(cfg.model.get("path") or cfg.model.get("name")),
            "lora": bool(cfg.lora.enabled),
            "recipe": name,
            "datasets": datasets,
        },
    )
