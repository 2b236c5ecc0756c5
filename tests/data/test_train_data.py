"""The training data path (:mod:`yue_train.data.train_data`): exact resume from any step without replaying
documents, each process reading about 1/W of the documents, a prefetch thread that changes nothing, no
held-out document in training, damage found at read time turned into padding and counted alike on every
process."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.data.bad_shards import flip_id_byte, written_folder
from tests.training.helpers import write_random_shards
from yue_train.data.packing import IGNORE_INDEX, PAD_ID, DataConfigError, eval_batches, is_eval_doc
from yue_train.data.shard_reader import iter_documents, shard_paths
from yue_train.data.train_data import TrainData, build_train_data

WEIGHTS = [3.0, 1.0]
SEED = 3


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("train_data")
    a = write_random_shards(root / "a", 30, docs_per_shard=7, seed=1)  # 20..200 tokens
    b = write_random_shards(root / "b", 14, docs_per_shard=5, seed=2, lengths=(100, 300))  # longer than a row
    return a, b


def _cfg(paths, **kw):
    base = dict(eval=None, eval_fraction=0.1, allow_commands=False, max_bad_docs=100, shuffle_buffer=6,
                seq_len=96, batch_size=2, overflow="next_row")  # fmt: skip
    return SimpleNamespace(train=[SimpleNamespace(path=str(p)) for p in paths], **{**base, **kw})


def _data(paths, rank=0, world=1, grad_accum=2, prefetch=False, **kw) -> TrainData:
    weights = WEIGHTS if len(paths) == 2 else [1.0] * len(paths)
    data = build_train_data(
        _cfg(paths, **kw),
        SEED,
        None,
        weights,
        rank=rank,
        world=world,
        grad_accum=grad_accum,
        log=None,
        prefetch=prefetch,
    )
    assert isinstance(data, TrainData)
    return data


def _same(x, y) -> bool:
    return all(torch.equal(s, t) for s, t in zip(x.tensors(), y.tensors(), strict=True))


def test_restoring_the_state_of_every_step_gives_the_same_batches(corpus):
    """Across epoch ends, with a shuffle buffer and documents cut across rows (and steps)."""
    run = _data(corpus)
    states, steps = [], []
    for _ in range(45):
        states.append(run.state_dict())
        steps.append(run.next_step())
    assert any(p is not None for p in (s["pending"] for s in states))  # a piece carried over between steps
    epochs = {tuple(src["epoch"] for src in s["sources"]) for s in states}
    assert len(epochs) >= 4
    fresh = _data(corpus)
    for k in range(0, 45, 1):
        fresh.load_state_dict(states[k])
        for want in steps[k : k + 3]:
            got = fresh.next_step()
            assert all(_same(x, y) for x, y in zip(got, want, strict=True)), k


def test_a_late_resume_decodes_only_the_documents_of_its_step(corpus):
    run = _data(corpus, prefetch=False)
    for _ in range(40):
        run.next_step()
    late = run.state_dict()
    fresh = _data(corpus, prefetch=False)
    t0 = time.perf_counter()
    fresh.load_state_dict(late)
    batches = fresh.next_step()
    elapsed = time.perf_counter() - t0
    assert fresh.stats()["docs_decoded"] <= sum(b.n_docs for b in batches)  # nothing replayed
    assert fresh.stats()["docs_decoded"] < run.stats()["docs_decoded"] / 10
    assert elapsed < 5


@pytest.mark.parametrize("world", [2, 4])
def test_each_rank_reads_its_share_and_the_ranks_rows_make_the_global_step(corpus, world):
    one = _data(corpus, grad_accum=4, seq_len=256)
    ranks = [_data(corpus, rank=r, world=world, grad_accum=4 // world, seq_len=256) for r in range(world)]
    for _ in range(30):
        everything = one.next_step()
        mine = [d.next_step() for d in ranks]
        for j, batch in enumerate(everything):  # micro-batch j is rank j % world's
            assert _same(batch, mine[j % world][j // world])
    total = one.stats()["docs_decoded"]
    for d in ranks:
        assert d.stats()["docs_decoded"] < 1.3 * total / world  # 1/W, plus the documents cut across ranks


def test_prefetching_changes_nothing_and_the_state_excludes_the_prefetched_step(corpus):
    plain, ahead = _data(corpus, prefetch=False), _data(corpus, prefetch=True)
    for _ in range(20):
        assert all(_same(x, y) for x, y in zip(plain.next_step(), ahead.next_step(), strict=True))
        time.sleep(0.002)  # let the thread plan the next step
        assert ahead.state_dict().keys() == plain.state_dict().keys()
        assert str(ahead.state_dict()) == str(plain.state_dict())
    state = ahead.state_dict()
    nxt = plain.next_step()
    ahead.load_state_dict(state)  # drops the prefetched step
    assert all(_same(x, y) for x, y in zip(ahead.next_step(), nxt, strict=True))
    ahead.close()


def test_training_plans_no_held_out_document_and_evaluation_holds_every_one(tmp_path):
    folder = write_random_shards(tmp_path / "s", 200, docs_per_shard=30, seed=4)
    ids = [[d.id for d in iter_documents([shard])] for shard in shard_paths(folder)]
    held = {i for shard in ids for i in shard if is_eval_doc(i, 0.2)}
    data = _data([folder], eval_fraction=0.2, shuffle_buffer=4, seq_len=200)
    trained: set[str] = set()
    while data.planner.sources[0].epoch == 0:
        trained |= {ids[shard][entry] for (_, shard, entry), _, _ in data.planner.next_row([])[0]}
    assert 20 <= len(held) <= 60 and not trained & held and len(trained | held) == 200
    batches = eval_batches(_cfg([folder], eval_fraction=0.2, seq_len=200), max_batches=1000)
    assert sum(b.n_docs for b in batches) == len(held)  # each held-out document once, in one piece


def test_damage_found_at_read_time_becomes_padding_counted_alike_on_every_rank(tmp_path):
    folder = written_folder(tmp_path / "s", n_docs=12, docs_per_shard=6)  # with checksums
    opts = dict(eval_fraction=0.0, shuffle_buffer=0)
    clean = _data([folder], grad_accum=2, **opts)
    want = [clean.next_step() for _ in range(4)]
    assert clean.bad_docs.count == 0
    shard = shard_paths(folder)[0]
    flip_id_byte(Path(shard), "000000002")  # a checksum mismatch, found only when the document is read
    ranks = [_data([folder], rank=r, world=2, grad_accum=1, **opts) for r in (0, 1)]
    found, padded = [], 0
    for step in range(4):
        mine = [d.next_step() for d in ranks]
        local = [[[b.shard, b.key, b.reason] for b in d.step_bad] for d in ranks]
        for d in ranks:
            d.gather = lambda _mine, local=local: local  # what all_gather_object gives every rank
            d.sync_bad_docs(any(local))
        found += [b for rank_bad in local for b in rank_bad]
        for j, batch in enumerate(want[step]):
            got = mine[j % 2][0]
            diff = (got.input_ids != batch.input_ids) | (got.labels != batch.labels)
            assert (got.labels[diff] == IGNORE_INDEX).all() and (got.input_ids[diff] == PAD_ID).all()
            padded += int(diff.sum())
    assert padded > 0  # the damaged document's tokens, in place (the rows around it unchanged)
    assert found and found[0][0] == shard and "checksum mismatch" in found[0][2]
    assert ranks[0].bad_docs.count == ranks[1].bad_docs.count == 1
    assert ranks[0].state_dict()["bad_docs"] == ranks[1].state_dict()["bad_docs"]


def test_a_data_position_it_cannot_read_is_refused_in_one_line(corpus):
    with pytest.raises(DataConfigError) as e:
        _data(corpus).load_state_dict({"position": 3})
    assert "trainer.resume=none" in str(e.value) and "\n" not in str(e.value)


def test_a_state_for_other_data_is_refused_in_one_line(corpus):
    state = _data(corpus).state_dict()
    with pytest.raises(DataConfigError, match="same data.train"):
        _data(corpus[:1]).load_state_dict(state)


def test_the_document_index_is_cached_beside_the_shards_or_in_the_fallback_folder(tmp_path, monkeypatch):
    from yue_train.data import doc_index

    folder = written_folder(tmp_path / "s", n_docs=8, docs_per_shard=4)
    shard = shard_paths(folder)[0]
    built = []
    real = doc_index.build_index
    monkeypatch.setattr(doc_index, "build_index", lambda url: built.append(url) or real(url))
    first = doc_index.load_index(shard)
    (cached,) = (folder / doc_index.INDEX_DIR).glob("*.npz")
    assert doc_index.load_index(shard).n_tokens.tolist() == first.n_tokens.tolist() and len(built) == 1
    assert list(first.n_tokens) == [len(d) for d in iter_documents([shard])]
    copy = Path(shutil.copytree(folder, tmp_path / "copy"))  # new mtimes and ctimes, the same documents
    assert doc_index.load_index(shard_paths(copy)[0]).n_tokens.tolist() == first.n_tokens.tolist()
    assert len(built) == 1  # a copy keeps its index (named by its documents' checksums)
    cached.write_bytes(b"PK garbage")  # a damaged index is rebuilt, never trusted
    assert doc_index.load_index(shard).n_tokens.tolist() == first.n_tokens.tolist() and len(built) == 2
    other = written_folder(tmp_path / "t", n_docs=4, docs_per_shard=4)
    (other / doc_index.INDEX_DIR).write_text("not a folder")  # the shard folder cannot take an index
    doc_index.load_index(shard_paths(other)[0], tmp_path / "run" / "data_index")
    assert len(list((tmp_path / "run" / "data_index").rglob("*.npz"))) == 1


def test_a_position_outside_the_data_is_refused_in_one_line(corpus):
    run = _data(corpus)
    run.next_step()
    state = run.state_dict()
    bad_buffer = {**state, "sources": [{**state["sources"][0], "buffer": torch.tensor([[99, 0]])}, state["sources"][1]]}
    bad_rng = {**state, "mixture_rng": {"bit_generator": "nothing"}}
    for broken in (bad_buffer, bad_rng, {**state, "pending": [0, 0, 10_000, 0, 5]}, {**state, "sources": None}):
        with pytest.raises(DataConfigError) as e:
            _data(corpus).load_state_dict(broken)
        assert "trainer.resume=none" in str(e.value) and "\n" not in str(e.value)
