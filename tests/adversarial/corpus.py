"""A generator of hostile and broken inputs, each a named case with the phrase its refusal must contain.

Surfaces: manifest records (CoT and ICL share them), tokenizer files, generation numbers and adapter configs
(``yue-infer generate``), token shards and checkpoint folders. Each function writes its cases under a folder
given to it and returns ``{name: Case}``; nothing here runs the project's code paths under test, so a case
is the same input whatever the code does with it.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tests.data_prep.manifests import good_record
from yue_train.training.checkpointing.layout import TRAINER_STATE

# The suite runs tokenize with this limit, so the huge-lyrics case needs only ~1 MB of text.
SUITE_MAX_DOC_TOKENS = 20_000
HUGE_LYRICS_CHARS = SUITE_MAX_DOC_TOKENS * 32 + 1_000


@dataclass(frozen=True)
class Case:
    """One hostile input: ``value`` is what the surface takes (a record, a path, CLI arguments, a folder);
    ``expect`` a phrase the rejection or refusal must contain."""

    name: str
    surface: str
    value: Any
    expect: str


# --------------------------------------------------------------------------------------------------
# Manifest records (yue-prep tokenize, CoT and ICL)
# --------------------------------------------------------------------------------------------------


def _edit(root: Path, rid: str, fn) -> dict:
    r = good_record(root, rid)
    fn(r)
    return r


def _seg(r: dict, i: int) -> dict:
    return r["splitted_lyrics"]["segmented_lyrics"][i]


def _save(root: Path, r: dict, field: str, arr: np.ndarray, allow_pickle: bool = False) -> None:
    np.save(root / r[field], arr, allow_pickle=allow_pickle)


def record_cases(root: Path) -> dict[str, Case]:
    """Bad manifest records of every kind, keyed by the record id each is reported under. ``root`` is the
    folder their codes paths start from. Lines that are not records are keyed ``line N`` by the caller."""
    out: dict[str, Case] = {}

    def add(rid: str, record: dict, expect: str) -> None:
        out[rid] = Case(rid, "record", record, expect)

    def field_value(rid: str, key: str, value: Any, expect: str) -> None:
        add(rid, _edit(root, rid, lambda r: r.__setitem__(key, value)), expect)

    # fields of the record
    r = good_record(root, "missing-genres")
    del r["genres"]
    add("missing-genres", r, "missing field 'genres'")
    field_value("genres-null", "genres", None, "field 'genres' is null")
    field_value("genres-list", "genres", ["pop"], "field 'genres' has type list")
    field_value("genres-surrogate", "genres", "pop \udc80", "field 'genres' is not valid Unicode text")
    field_value("length-string", "audio_length_in_sec", "30", "field 'audio_length_in_sec' has type str")
    field_value("length-nan", "audio_length_in_sec", math.nan, "field 'audio_length_in_sec' is nan")
    field_value("length-inf", "audio_length_in_sec", math.inf, "field 'audio_length_in_sec' is inf")
    field_value("length-zero", "audio_length_in_sec", 0, "audio_length_in_sec is 0.0, must be > 0")
    field_value("fps", "audio_length_in_sec", 35.0, "42.86 frames/s, outside [49, 51]")
    field_value("msa-not-list", "msa", {"start": 0}, "field 'msa' must be a list")
    field_value("lyrics-not-object", "splitted_lyrics", "la la", "field 'splitted_lyrics' has type str")
    # structure sections (the ICL prompt may be cut from a chorus)
    for rid, value, expect in (
        ("msa-null", None, "msa[1]: field 'start' is null"),
        ("msa-string", "15", "msa[1]: field 'start' has type str"),
        ("msa-list", [15], "msa[1]: field 'start' has type list"),
        ("msa-nan", math.nan, "msa[1]: field 'start' is nan, not a finite number"),
        ("msa-inf", math.inf, "msa[1]: field 'start' is inf, not a finite number"),
        ("msa-negative", -3.0, "msa[1]: start -3.0 s is negative"),
        ("msa-huge-int", 10**400, "msa[1]: field 'start' is an integer beyond the range of a float"),
    ):
        add(rid, _edit(root, rid, lambda r, v=value: r["msa"][1].__setitem__("start", v)), expect)
    add("msa-reversed", _edit(root, "msa-reversed", lambda r: r["msa"][1].update(end=2.0)), "start 15.0 s is after end")
    add("msa-label", _edit(root, "msa-label", lambda r: r["msa"][1].update(label=7)), "field 'label' has type int")
    # lyrics segments
    add(
        "seg-overlap",
        _edit(root, "seg-overlap", lambda r: _seg(r, 1).update(codec_frame_start=700)),
        "overlap the previous",
    )
    add("seg-reversed", _edit(root, "seg-reversed", lambda r: _seg(r, 1).update(codec_frame_end=100)), "are reversed")
    add("seg-negative", _edit(root, "seg-negative", lambda r: _seg(r, 0).update(codec_frame_start=-5)), "are negative")
    add("seg-beyond", _edit(root, "seg-beyond", lambda r: _seg(r, 1).update(codec_frame_end=2000)), "lie beyond the")
    add(
        "seg-float-frame",
        _edit(root, "seg-float-frame", lambda r: _seg(r, 0).update(codec_frame_end=750.5)),
        "has type float",
    )
    add(
        "seg-offset-string",
        _edit(root, "seg-offset-string", lambda r: _seg(r, 0).update(offset="soon")),
        "'offset' has type str",
    )
    add(
        "seg-duration-nan",
        _edit(root, "seg-duration-nan", lambda r: _seg(r, 0).update(duration=math.nan)),
        "'duration' is nan",
    )
    add(
        "seg-not-object",
        _edit(root, "seg-not-object", lambda r: r["splitted_lyrics"].update(segmented_lyrics=[1])),
        "is not an object",
    )
    add("lyrics-blank", _edit(root, "lyrics-blank", lambda r: [s.update(line_content=" ") for s in r["splitted_lyrics"]["segmented_lyrics"]]), "lyrics are empty")  # fmt: skip
    huge = "[verse]\n" + "la " * (HUGE_LYRICS_CHARS // 3) + "\n\n"
    add("lyrics-huge", _edit(root, "lyrics-huge", lambda r: _seg(r, 0).update(line_content=huge)), "more than a document of --max-doc-tokens")  # fmt: skip
    # code files
    r = good_record(root, "npy-not-numpy")
    (root / r["vocals_codec"]).write_bytes(b"not a numpy file")
    add("npy-not-numpy", r, "is not a .npy file")
    r = good_record(root, "npy-truncated")
    data = (root / r["vocals_codec"]).read_bytes()
    (root / r["vocals_codec"]).write_bytes(data[: len(data) // 2])
    add("npy-truncated", r, "its header claims")
    r = good_record(root, "npy-pickled")
    _save(root, r, "vocals_codec", np.array([{"payload": 1}], dtype=object), allow_pickle=True)
    add("npy-pickled", r, "holds Python objects (a pickle; refused, never loaded)")
    r = good_record(root, "npy-float")
    _save(root, r, "vocals_codec", np.zeros((8, 1500), dtype=np.float32))
    add("npy-float", r, "has dtype float32, expected integer codes")
    r = good_record(root, "npy-3d")
    _save(root, r, "vocals_codec", np.zeros((8, 1500, 2), dtype=np.int64))
    add("npy-3d", r, "has shape (8, 1500, 2)")
    r = good_record(root, "npy-range")
    arr = np.load(root / r["vocals_codec"])
    arr[0, 17] = 1024
    _save(root, r, "vocals_codec", arr)
    add("npy-range", r, "code 1024 at index (0, 17)")
    r = good_record(root, "npy-length-mismatch")
    _save(root, r, "instrumental_codec", np.load(root / r["instrumental_codec"])[:, :1400])
    add("npy-length-mismatch", r, "differ by 100 frames")
    add("npy-missing", _edit(root, "npy-missing", lambda r: r.update(vocals_codec="npy/absent.npy")), "file not found")
    add(
        "npy-folder",
        _edit(root, "npy-folder", lambda r: r.update(vocals_codec="npy")),
        "is a folder, not a regular file",
    )
    add("npy-device", _edit(root, "npy-device", lambda r: r.update(vocals_codec="/dev/zero")), "is a character device")
    r = good_record(root, "npy-fifo")
    os.mkfifo(root / "npy" / "fifo.npy")
    r["vocals_codec"] = "npy/fifo.npy"
    add("npy-fifo", r, "is a FIFO (named pipe), not a regular file")
    return out


def manifest_lines(root: Path) -> tuple[list[dict | bytes], dict[str, Case]]:
    """A manifest: good records first and last, every bad record and unparseable line between. Returns the
    lines and the cases keyed by the id each is reported under (``line N`` for unparseable lines)."""
    cases = record_cases(root)
    lines: list[dict | bytes] = [good_record(root, "good-first"), *(c.value for c in cases.values())]
    for raw, expect in (
        (b'{"id": "latin1", "genres": "caf\xe9"}', "is not UTF-8"),
        (b"{not json", "is not valid JSON"),
        (b"[1, 2, 3]", "is a JSON list, not an object"),
        (b'{"id": "x", "genres": NaN', "is not valid JSON"),
    ):
        lines.append(raw)
        name = f"line {len(lines)}"
        cases[name] = Case(name, "record", raw, expect)
    lines.append(_edit(root, "id-blank", lambda r: r.update(id="  ")))  # reported by its line number
    name = f"line {len(lines)}"
    cases[name] = Case(name, "record", lines[-1], "field 'id' is blank")
    dup = good_record(root, "good-first")
    lines.append(dup)
    cases["good-first"] = Case("good-first", "record", dup, "duplicate id (first seen on line 1)")
    lines.append(good_record(root, "good-last", seed=5))
    return lines, cases


# --------------------------------------------------------------------------------------------------
# Tokenizer files
# --------------------------------------------------------------------------------------------------


def tokenizer_cases(root: Path) -> dict[str, Case]:
    """Files given as ``--tokenizer`` that are not a SentencePiece model (or not a file)."""
    root.mkdir(parents=True, exist_ok=True)
    cases = {}

    def add(name: str, expect: str) -> Path:
        path = root / f"{name}.model"
        cases[name] = Case(name, "tokenizer", path, expect)
        return path

    add("tok-text", "is not a SentencePiece tokenizer model").write_text("root:x:0:0:root:/root:/bin/bash\n")
    add("tok-empty", "is not a SentencePiece tokenizer model").write_bytes(b"")
    add("tok-random", "is not a SentencePiece tokenizer model").write_bytes(np.random.default_rng(0).bytes(4096))
    add("tok-folder", "is a folder, not a regular file").mkdir()
    os.mkfifo(add("tok-fifo", "is a FIFO (named pipe), not a regular file"))
    with add("tok-huge", "too large for a SentencePiece model").open("wb") as f:
        f.truncate(65 * 2**20)  # sparse
    return cases


# --------------------------------------------------------------------------------------------------
# Generation (yue-infer generate)
# --------------------------------------------------------------------------------------------------

GENERATION_NUMBER_CASES = {
    "ref-end-inf": (["--ref-end", "inf"], "--ref-end is inf: give a finite number"),
    "ref-end-nan": (["--ref-end", "nan"], "--ref-end is nan: give a finite number"),
    "ref-start-neg-inf": (["--ref-start=-inf"], "--ref-start is -inf: give a finite number"),
    "ref-start-negative": (["--ref-start", "-2"], "--ref-start -2 is negative"),
    "ref-reversed": (["--ref-start", "10", "--ref-end", "4"], "--ref-end 4 must be after --ref-start 10"),
    "temperature-nan": (["--temperature", "nan"], "--temperature is nan: give a finite number"),
    "top-p-nan": (["--top-p", "nan"], "top_p must be in (0, 1], got nan"),
    "guidance-inf": (["--guidance-rest", "inf"], "--guidance-rest is inf"),
    "penalty-zero": (["--repetition-penalty", "0"], "--repetition-penalty must be > 0"),
    "songs-zero": (["--n-songs", "0"], "--n-songs must be >= 1"),
    "sections-negative": (["--n-sections", "-3"], "--n-sections must be >= 1"),
    "seed-negative": (["--seed", "-1"], "--seed must be >= 0"),
}


def generation_cases() -> dict[str, Case]:
    return {n: Case(n, "generate", args, expect) for n, (args, expect) in GENERATION_NUMBER_CASES.items()}


def adapter_cases(root: Path, good_adapter: Path) -> dict[str, Case]:
    """Copies of a good LoRA adapter folder with a broken ``adapter_config.json`` or weights file."""
    good = json.loads((good_adapter / "adapter_config.json").read_text())
    configs: dict[str, tuple[Any, str]] = {
        "adapter-empty": ({}, "has peft_type None; a LoRA adapter has 'LORA'"),
        "adapter-not-json": ("{peft_type: LORA", "cannot read adapter_config.json"),
        "adapter-list": ([good], "holds a JSON list, not an object"),
        "adapter-rank-string": ({**good, "r": "8"}, "has rank r='8'"),
        "adapter-rank-negative": ({**good, "r": -4}, "has rank r=-4"),
        "adapter-alpha-inf": ({**good, "lora_alpha": math.inf}, "has lora_alpha=inf"),
        "adapter-no-targets": ({**good, "target_modules": []}, "has target_modules=[]"),
        "adapter-foreign-targets": ({**good, "target_modules": ["c_attn"]}, "targets c_attn, which the stage-1 model"),
        "adapter-other-type": ({**good, "peft_type": "IA3"}, "has peft_type 'IA3'"),
    }
    cases = {}
    for name, (config, expect) in configs.items():
        folder = root / name
        shutil.copytree(good_adapter, folder)
        text = config if isinstance(config, str) else json.dumps(config)
        (folder / "adapter_config.json").write_text(text)
        cases[name] = Case(name, "adapter", folder, expect)
    folder = root / "adapter-pickle-weights"
    shutil.copytree(good_adapter, folder)
    (folder / "adapter_model.safetensors").rename(folder / "adapter_model.bin")
    cases[folder.name] = Case(folder.name, "adapter", folder, "a pickle adapter_model.bin is not loaded")
    return cases


# --------------------------------------------------------------------------------------------------
# Token shards (training input) and checkpoints
# --------------------------------------------------------------------------------------------------


class Payload:
    """Pickled, it asks the unpickler to create ``marker``: whether a loader executes code shows on disk."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _npy(arr: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def _members(shard: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(shard) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()]


def _write_tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def shard_cases(good: Path, root: Path, marker: Path) -> dict[str, Case]:
    """Copies of the shard folder ``good`` (one or more ``*.tar`` and ``summary.json``) with the first
    document of its first shard broken in one way each. ``marker`` is what a pickled member would create.
    ``expect`` is the reason training gives when it reads the document without a checksum to compare ("" where
    nothing is to be skipped: an extra member that no reader asks for)."""
    shard = sorted(good.glob("*.tar"))[0]
    members = _members(shard)
    key = members[0][0].split(".", 1)[0]
    ids = np.load(io.BytesIO(dict(members)[f"{key}.input_ids.npy"]))

    def variant(name: str, expect: str, change) -> None:
        folder = root / name
        shutil.copytree(good, folder)
        target = folder / shard.name
        change(target, [*members])
        cases[name] = Case(name, "shard", folder, expect)

    def replace(member: str, data: bytes | None):
        def change(target: Path, ms: list[tuple[str, bytes]]) -> None:
            full = f"{key}.{member}"
            out = (
                [(n, d) for n, d in ms if n != full] if data is None else [(n, data if n == full else d) for n, d in ms]
            )
            if data is not None and full not in dict(ms):
                out.insert(0, (full, data))
            _write_tar(target, out)

        return change

    cases: dict[str, Case] = {}
    size = shard.stat().st_size
    variant("shard-truncated", "(truncated)", lambda t, ms: t.write_bytes(shard.read_bytes()[: size // 2 + 100]))
    variant(
        "shard-garbage",
        "garbage or damage in the file",
        lambda t, ms: t.write_bytes(np.random.default_rng(1).bytes(size)),
    )
    variant("shard-empty-file", "(truncated)", lambda t, ms: t.write_bytes(b""))
    variant("shard-bad-json", "bad JSON member", replace("json", b"{not json"))
    variant("shard-json-array", "JSON member is a list, not an object", replace("json", b"[1, 2]"))
    variant("shard-missing-roles", "missing member roles.npy", replace("roles.npy", None))
    variant("shard-missing-ids", "missing member input_ids.npy", replace("input_ids.npy", None))
    variant("shard-float-ids", "input_ids has dtype float32", replace("input_ids.npy", _npy(ids.astype(np.float32))))
    variant(
        "shard-wrapping-ids",
        "input_ids has values in [4294967",
        replace("input_ids.npy", _npy(ids.astype(np.int64) + 2**32)),
    )
    variant("shard-negative-ids", "input_ids has values in [-", replace("input_ids.npy", _npy(-np.abs(ids) - 1)))
    variant("shard-2d-ids", "must be equal 1-D", replace("input_ids.npy", _npy(np.stack([ids, ids]))))
    variant("shard-length-mismatch", "must be equal 1-D", replace("roles.npy", _npy(np.zeros(len(ids) + 3, np.uint8))))
    variant(
        "shard-role-range",
        "roles has values in [250, 250]",
        replace("roles.npy", _npy(np.full(len(ids), 250, np.uint8))),
    )
    variant("shard-pickled-npy", "input_ids.npy holds Python objects (a pickle; refused, never loaded)", replace("input_ids.npy", _npy(np.array([Payload(marker)], dtype=object), True)))  # fmt: skip
    variant("shard-pickle-member", "", replace("pyd", pickle.dumps(Payload(marker))))
    return cases


def checkpoint_cases(good: Path, root: Path, marker: Path) -> dict[str, Case]:
    """Copies of the run folder ``good`` whose newest checkpoint is broken in one way each (older complete
    checkpoints, when ``good`` has them, stay intact for a fallback). ``marker`` is what a pickled payload
    would create if a loader executed it."""
    import torch

    cases: dict[str, Case] = {}

    def variant(name: str, expect: str, change) -> None:
        folder = root / name
        shutil.copytree(good, folder, symlinks=True)  # checkpoints/latest is a relative link
        steps = [p for p in (folder / "checkpoints").glob("step-*") if p.is_dir()]
        newest = max(steps, key=lambda p: int(p.name.split("-", 1)[1]))
        change(newest)
        cases[name] = Case(name, "checkpoint", folder, expect)

    def truncate(rel: str):
        return lambda c: (c / rel).write_bytes((c / rel).read_bytes()[: max(1, (c / rel).stat().st_size // 2)])

    def flip(rel: str):
        def change(c: Path) -> None:
            data = bytearray((c / rel).read_bytes())
            for i in range(len(data) - 4096, len(data)):
                data[i] ^= 0xFF
            (c / rel).write_bytes(bytes(data))

        return change

    def payload(rel: str):
        return lambda c: torch.save({"state": Payload(marker)}, c / rel)

    def first(c: Path, pattern: str) -> str:
        return sorted(p.relative_to(c).as_posix() for p in c.rglob(pattern))[0]

    variant("ckpt-truncated-weights", "safetensors", lambda c: truncate(first(c, "*.safetensors"))(c))
    variant("ckpt-bitrot-weights", "checksum", lambda c: flip(first(c, "*.safetensors"))(c))
    variant("ckpt-truncated-optimizer", "optimizer", lambda c: truncate(first(c, "optimizer*.pt"))(c))
    variant("ckpt-missing-optimizer", "optimizer", lambda c: (c / first(c, "optimizer*.pt")).unlink())
    variant("ckpt-pickled-data", "data", lambda c: payload(first(c, "data*.pt"))(c))
    variant("ckpt-pickled-rng", "rng", lambda c: payload(first(c, "rng*.pt"))(c))
    variant("ckpt-pickled-optimizer", "optimizer", lambda c: payload(first(c, "optimizer*.pt"))(c))
    variant("ckpt-bad-state-json", "trainer_state", lambda c: (c / TRAINER_STATE).write_text("{not json"))
    return cases
