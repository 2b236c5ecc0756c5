"""``yue-prep tokenize``: an official-format manifest (or a list of in-memory songs) -> webdataset token
shards + a summary.

Records are processed in a worker pool but written in manifest order, and every random draw comes from
a generator seeded by (seed, record id), so the shards do not depend on the number of workers.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

import yue_train
from yue_train.data.folder_lock import FolderLock
from yue_train.data.manifest import (
    DEFAULT_MAX_DOC_TOKENS,
    TEXT_CHARS_PER_TOKEN,
    RawRecord,
    RecordError,
    check_timing,
    load_song,
    printable,
    read_manifest,
)
from yue_train.data.shards import SUMMARY_NAME, ShardWriter, owned_files, write_summary
from yue_train.format import codec_layout as cl
from yue_train.format import sequences as seq
from yue_train.format.bounded_json import read_json_object
from yue_train.format.document import Document
from yue_train.format.files import check_regular_file
from yue_train.format.roles import role_token_counts
from yue_train.format.song import CODE_FIELDS, Song
from yue_train.tokenizer import load_tokenizer

MODES = ("cot", "icl", "stage2")
STAGE2_SOURCES = tuple(CODE_FIELDS)

EXIT_OK, EXIT_REJECTED, EXIT_FATAL = 0, 3, 2


@dataclass
class TokenizeOptions:
    manifest: Path | None  # None when the songs are given in memory (run_tokenize's ``songs``)
    out: Path
    root: Path = Path(".")
    tokenizer: str | None = None
    mode: str = "cot"
    icl_prompt: str = "dual"
    stage2_sources: tuple[str, ...] = ("mixture",)
    seed: int = 0
    workers: int = 1
    shard_docs: int = 1000
    strict: bool = False
    overwrite: bool = False
    progress: bool = True
    codec_fingerprint: str | None = None  # of the codec that made the codes (recorded, when known)
    max_doc_tokens: int = DEFAULT_MAX_DOC_TOKENS  # a longer document rejects its record

    def __post_init__(self) -> None:
        if self.max_doc_tokens < 1:
            raise ValueError(f"--max-doc-tokens must be >= 1, got {self.max_doc_tokens}")
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.icl_prompt not in seq.ICL_PROMPT_MODES:
            raise ValueError(f"unknown ICL prompt {self.icl_prompt!r}; choose one of {', '.join(seq.ICL_PROMPT_MODES)}")
        for s in self.stage2_sources:
            if s not in STAGE2_SOURCES:
                raise ValueError(f"unknown stage-2 source {s!r}; choose from {', '.join(STAGE2_SOURCES)}")

    @property
    def shard_prefix(self) -> str:
        return f"icl-{self.icl_prompt}" if self.mode == "icl" else self.mode


@dataclass
class RecordResult:
    line_no: int
    id: str
    documents: list[Document] = field(default_factory=list)
    error: str | None = None


_worker_tokenizer = None


def _init_worker(tokenizer_path: str | None) -> None:
    global _worker_tokenizer
    _worker_tokenizer = load_tokenizer(tokenizer_path)


def documents_for_record(record: dict[str, Any], opts: TokenizeOptions, tokenizer) -> list[Document]:
    """The documents one record yields in ``opts.mode``; raises RecordError/SequenceError when it cannot."""
    if opts.mode == "stage2":
        song = load_song(record, opts.root, tracks=tuple(opts.stage2_sources), lyrics=False)
    elif opts.mode == "cot":
        song = load_song(record, opts.root)
    else:
        tracks = ("vocal", "inst", "mixture") if opts.icl_prompt == "mixture" else ("vocal", "inst")
        song = load_song(record, opts.root, tracks=tracks)
    return documents_for_song(song, opts, tokenizer)


def _check_text_size(song: Song, limit: int) -> None:
    """Refuse text that cannot fit in ``limit`` tokens before spending time and memory tokenizing it (the
    lyrics appear twice in a stage-1 document: in the header and before each segment's audio)."""
    chars = len(song.genres) + 2 * sum(len(seg.line_content) for seg in song.segments)
    if chars > limit * TEXT_CHARS_PER_TOKEN:
        raise seq.SequenceError(
            f"genres and lyrics make {chars:,} characters of text, more than a document of --max-doc-tokens "
            f"{limit:,} can hold ({TEXT_CHARS_PER_TOKEN} characters per token at most)"
        )


def documents_for_song(song: Song, opts: TokenizeOptions, tokenizer) -> list[Document]:
    """The documents one loaded song yields in ``opts.mode``; raises SequenceError when it cannot or when
    one would exceed ``opts.max_doc_tokens``."""
    if opts.mode != "stage2":
        _check_text_size(song, opts.max_doc_tokens)
    docs = _build_documents(song, opts, tokenizer)
    for doc in docs:
        if len(doc) > opts.max_doc_tokens:
            raise seq.SequenceError(
                f"its {doc.mode} document has {len(doc):,} tokens, over --max-doc-tokens {opts.max_doc_tokens:,}"
            )
    return docs


def _build_documents(song: Song, opts: TokenizeOptions, tokenizer) -> list[Document]:
    if opts.mode == "stage2":
        arrays = {"mixture": song.mixture, "vocal": song.vocals, "inst": song.instrumental}
        missing = [s for s in opts.stage2_sources if arrays[s] is None]
        if missing:
            raise seq.SequenceError(f"{song.id}: stage-2 source(s) {', '.join(missing)} have no codes in the song")
        return [seq.build_stage2_document(arrays[s], song.id, source=s) for s in opts.stage2_sources]
    if opts.mode == "cot":
        return [seq.build_cot_document(tokenizer, song)]
    return [seq.build_icl_document(tokenizer, song, opts.icl_prompt, seq.record_rng(opts.seed, song.id))]


def record_failure(e: Exception) -> str:
    """One line saying why a record failed. The expected errors (RecordError, SequenceError, a code out of
    range) carry their own reason; anything else a record's contents raised is named by its type, so one
    record can never end the run."""
    expected = (RecordError, seq.SequenceError, cl.CodecRangeError)
    text = " ".join(x.strip() for x in str(e).splitlines() if x.strip())
    return printable(text if isinstance(e, expected) and text else f"{type(e).__name__}: {text or 'no message'}")


def _result(line_no: int, record_id: str, make: Callable[[], list[Document]]) -> RecordResult:
    """The documents ``make`` builds, each stamped with its ``line``; whatever it raises is this record's
    failure alone (see :func:`record_failure`)."""
    result = RecordResult(line_no, record_id)
    try:
        result.documents = make()
        for doc in result.documents:
            doc.meta["line"] = line_no
    except Exception as e:  # every record is its own failure
        result.documents, result.error = [], record_failure(e)
    return result


def _process(args: tuple[RawRecord, TokenizeOptions]) -> RecordResult:
    raw, opts = args
    if raw.error is not None:
        return RecordResult(raw.line_no, raw.id, error=raw.error)
    return _result(raw.line_no, raw.id, lambda: documents_for_record(raw.data, opts, _worker_tokenizer))


def _song_result(args: tuple[int, Song, TokenizeOptions]) -> RecordResult:
    """A song given in memory, numbered by its 1-based position (reported as its ``line``)."""
    position, song, opts = args

    def make() -> list[Document]:
        if opts.mode != "stage2":
            check_timing(song)
        return documents_for_song(song, opts, _worker_tokenizer)

    return _result(position, printable(str(song.id)), make)


def prepare_output(opts: TokenizeOptions) -> str | None:
    """Make ``opts.out`` (a folder, locked by the caller) ready; returns a note for the user, raises
    FileExistsError to refuse."""
    out = opts.out
    owned = owned_files(out, opts.shard_prefix)
    if not owned:
        return None
    failed = summary_failed(out / SUMMARY_NAME)
    if (out / SUMMARY_NAME).exists() and not failed and not opts.overwrite:
        raise FileExistsError(f"{out} already holds a finished run ({SUMMARY_NAME}); pass --overwrite to redo it")
    for path in owned:
        path.unlink()
    if opts.overwrite:
        return f"--overwrite: removed {len(owned)} files of the previous run"
    if failed:
        return f"previous run failed (no documents written): discarded its {len(owned)} files and started again"
    # No summary: a run was interrupted. Its shards were complete, but the rerun is cheap and rewriting
    # them keeps shard numbering and the summary consistent.
    return f"previous run did not finish: discarded its {len(owned)} files and started again"


def summary_failed(path: Path) -> bool:
    """Whether a summary records a failed run (one that wrote no document); unreadable counts as finished."""
    try:
        return read_json_object(path).get("status") == "failed"
    except ValueError:  # JsonFileError: missing, too large, not JSON, not an object
        return False


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def run_tokenize(opts: TokenizeOptions, songs: Sequence[Song] | None = None) -> tuple[dict[str, Any], int]:
    """Tokenize the manifest, or ``songs`` when given (in this process); returns (summary, exit code). The
    summary is also written to the output, which one process at a time may write (FolderBusyError)."""
    if songs is None:
        if opts.manifest is None:
            raise FileNotFoundError("manifest not found: None")
        try:
            check_regular_file(opts.manifest, "--manifest")
        except FileNotFoundError:
            raise FileNotFoundError(f"manifest not found: {opts.manifest}") from None
    tokenizer = load_tokenizer(opts.tokenizer)  # fail fast (and once) on a bad tokenizer file
    if opts.out.exists() and not opts.out.is_dir():
        raise FileExistsError(f"--out {opts.out} exists and is not a folder")
    with FolderLock(opts.out, "output folder"):
        return _run_locked(opts, tokenizer, songs)


def _run_locked(opts: TokenizeOptions, tokenizer, songs: Sequence[Song] | None) -> tuple[dict[str, Any], int]:
    note = prepare_output(opts)
    if note:
        print(f"yue-prep tokenize: {note}", file=sys.stderr)

    started = time.time()
    seen: dict[str, int] = {}
    rejected: list[dict[str, Any]] = []
    role_counts: Counter[str] = Counter()
    n_docs = n_records = segments_skipped = 0
    pool = None
    if songs is not None:
        work, total = _song_result, len(songs)
        items: Iterator[Any] = ((n, song, opts) for n, song in enumerate(songs, start=1))
    else:
        assert opts.manifest is not None
        work, total = _process, _count_lines(opts.manifest)
        items = ((raw, opts) for raw in read_manifest(opts.manifest))
    if opts.workers > 1 and songs is None:
        pool = mp.get_context().Pool(opts.workers, initializer=_init_worker, initargs=(opts.tokenizer,))
        results = pool.imap(work, items, chunksize=4)
    else:
        _init_worker(opts.tokenizer)
        results = map(work, items)
    writer = ShardWriter(
        opts.out, opts.shard_prefix, max_docs=opts.shard_docs, tokenizer=tokenizer, codec=opts.codec_fingerprint
    )
    bar = tqdm(total=total, unit="song", desc=f"tokenize {opts.shard_prefix}", disable=not opts.progress)
    try:
        for result in results:
            n_records += 1
            bar.update()
            if result.error is None and result.id in seen:
                result.error = f"duplicate id (first seen on line {seen[result.id]})"
            seen.setdefault(result.id, result.line_no)
            if result.error is not None:
                rejected.append({"id": printable(result.id), "line": result.line_no, "reason": result.error})
                if opts.strict:
                    raise RecordError(f"record {result.id} (line {result.line_no}): {result.error}")
                continue
            for doc in result.documents:
                writer.write(doc)
                n_docs += 1
                role_counts.update(role_token_counts(doc.roles))
                segments_skipped += int(doc.meta.get("segments_skipped", 0))
            bar.set_postfix(docs=n_docs, rejected=len(rejected))
        shards = writer.close()
    except BaseException:
        writer.abort()
        for path in owned_files(opts.out, opts.shard_prefix):
            path.unlink()
        raise
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()

    # No document at all is a failure, not a finished run: nothing downstream can train on it.
    failed = n_docs == 0
    summary: dict[str, Any] = {
        "yue_train_version": yue_train.__version__,
        "status": "failed" if failed else "finished",
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items() if k != "progress"},
        "tokenizer_file": str(tokenizer.path),
        "mode": opts.shard_prefix,
        "records_read": n_records,
        "records_rejected": len(rejected),
        "documents_written": n_docs,
        "segments_skipped": segments_skipped,
        "tokens_total": int(sum(role_counts.values())),
        "tokens_per_role": dict(sorted(role_counts.items())),
        "shards": shards,
        "rejected": rejected,
        "elapsed_s": round(time.time() - started, 3),
    }
    if failed:
        what = f"every record was rejected ({len(rejected)} of {n_records})" if n_records else "the manifest is empty"
        summary["error"] = f"{what}; no document was written"
    write_summary(opts.out, summary, writer)
    return summary, EXIT_FATAL if failed else EXIT_REJECTED if rejected else EXIT_OK
