"""Prompt sets (JSONL of {id, genres, lyrics, reference?}): read, and each mistake one line."""

import json

import pytest

from yue_train.generation.prompts import PromptInputError
from yue_train.generation.songs import read_prompt_set


def test_reads_entries_and_resolves_references(tmp_path):
    (tmp_path / "voice.wav").write_bytes(b"RIFF")
    lines = [
        {"id": "up", "genres": "pop female", "lyrics": "[verse]\nla\n", "reference": "voice.wav"},
        {"genres": "rock male", "lyrics": "[chorus]\nna\n"},
    ]
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    first, second = read_prompt_set(path)
    assert (first.id, first.reference) == ("up", str(tmp_path / "voice.wav"))
    assert (second.id, second.genres, second.reference) == ("prompt2", "rock male", None)


@pytest.mark.parametrize(
    "text,message",
    [
        ("{oops\n", "line 1: not JSON"),
        ('["a"]\n', "line 1: give an object"),
        ('{"genres": "pop", "lyrics": "x", "lyric": "y"}\n', "unknown key\\(s\\) lyric"),
        ('{"genres": "", "lyrics": "x"}\n', "'genres' must be a non-empty string"),
        ('{"genres": "pop", "lyrics": "x", "reference": "gone.wav"}\n', "reference audio .*gone.wav not found"),
        (
            '{"id": "a", "genres": "p", "lyrics": "x"}\n{"id": "a", "genres": "p", "lyrics": "y"}\n',
            "id 'a' appears twice",
        ),
        ("\n", "holds no prompts"),
    ],
)
def test_mistakes_are_one_line(tmp_path, text, message):
    path = tmp_path / "p.jsonl"
    path.write_text(text)
    with pytest.raises(PromptInputError, match=message) as err:
        read_prompt_set(path)
    assert "\n" not in str(err.value)
