"""Tag help against YuE's real top-200 list (tests/fixtures)."""

from __future__ import annotations

import pytest

from yue_train.data.synthetic import TAG_CHOICES
from yue_train.data.tags import TAG_KINDS, check_tags, load_top_tags, tag_kinds


def test_list_groups_tags_by_kind(tags_file):
    top = load_top_tags(tags_file)
    assert set(top) == set(TAG_KINDS)
    assert tag_kinds("Pop", top) == tag_kinds("pop", top) and "genre" in tag_kinds("pop", top)


def test_complete_known_tags_give_no_warning(tags_file):
    top = load_top_tags(tags_file)
    assert check_tags(["pop", "piano", "uplifting", "female", "bright vocal"], top) == []


def test_unknown_tags_and_missing_kinds_are_warned(tags_file):
    top = load_top_tags(tags_file)
    warnings = check_tags(["pop", "zzz-not-a-tag"], top)
    assert any("'zzz-not-a-tag' is not in YuE's top-200" in w for w in warnings)
    missing = {w.split()[1] for w in warnings if w.startswith("no ")}
    assert missing == {"instrument", "mood", "gender", "timbre"}


def test_demo_tags_are_all_real(tags_file):
    top = load_top_tags(tags_file)
    for kind, choices in TAG_CHOICES.items():
        for tag in choices:
            assert kind in tag_kinds(tag, top), (kind, tag)


def test_bad_tags_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="top_200_tags"):
        load_top_tags(tmp_path / "missing.json")
    (tmp_path / "t.json").write_text('{"colour": ["red"]}')
    with pytest.raises(ValueError, match="unknown kinds"):
        load_top_tags(tmp_path / "t.json")
