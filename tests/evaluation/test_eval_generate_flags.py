"""``yue-eval --generate`` takes ``yue-infer generate``'s flags from the one function that declares them, and
each one reaches the options generation runs with."""

import argparse

import pytest

from inference.cli import build_parser as infer_parser
from inference.evaluate import build_parser as eval_parser
from inference.evaluate import main as eval_main
from inference.evaluate import prompt_set_options
from yue_train.evaluation.generate import PromptSetOptions

# yue-infer generate's flags that name its single song's inputs, which a prompt set gives instead.
SONG_INPUTS = {"genre_txt", "lyrics_txt", "ref_audio", "ref_vocal_audio", "ref_inst_audio", "ref_codes",
               "ref_vocal_codes", "ref_inst_codes", "ref_start", "ref_end", "continue_from", "n_songs",
               "allow_mismatch", "help", "no_progress"}  # fmt: skip


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions}


def test_every_generation_flag_of_yue_infer_is_a_yue_eval_flag_with_the_same_default():
    sub = next(a for a in infer_parser()._actions if isinstance(a, argparse._SubParsersAction))
    generate = _actions(sub.choices["generate"])
    ours = _actions(eval_parser())
    shared = set(generate) - SONG_INPUTS
    assert shared <= set(ours), sorted(shared - set(ours))
    for dest in shared:
        assert (ours[dest].option_strings, ours[dest].default) == (
            generate[dest].option_strings,
            generate[dest].default,
        )
        assert not ours[dest].required  # needed only with --generate: checked there, one line


def test_the_flags_fill_every_option_of_a_prompt_set_generation(tmp_path):
    args = eval_parser().parse_args(
        ["--generate", "--prompts", "p.jsonl", "--stage1-model", "s1", "--stage2-model", "s2", "--out", str(tmp_path),
         "--adapter", "lora_a", "--adapter", "lora_b", "--active-adapter", "a1", "--n-sections", "2",
         "--stage2-batch-size", "4", "--seed", "7", "--top-p", "0.5", "--guidance-first", "2.0",
         "--max-new-tokens", "50", "--min-new-tokens", "80", "--greedy"]
    )  # fmt: skip
    opts = prompt_set_options(args, progress=False)
    assert (opts.adapters, opts.adapter, opts.n_sections, opts.stage2_batch_size, opts.seed) == (
        ["lora_a", "lora_b"],
        "a1",
        2,
        4,
        7,
    )
    s = opts.sampling
    assert (s.top_p, s.guidance_first, s.max_new_tokens, s.min_new_tokens, s.greedy) == (0.5, 2.0, 50, 50, True)
    flagged = {a.dest for a in eval_parser()._actions}
    assert {f for f in PromptSetOptions.__dataclass_fields__} - flagged == {"sampling", "progress"}


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--top-p", "2"], "top_p must be in (0, 1]"),
        (["--seed", "-1"], "--seed must be >= 0"),
        (["--n-sections", "0"], "--n-sections must be >= 1"),
        (["--codec", "{tmp}"], "not a converted codec folder"),
    ],
)
def test_generation_values_are_checked_before_anything_loads(tmp_path, capsys, extra, message):
    args = ["--generate", "--prompts", "p.jsonl", "--stage1-model", "s1", "--stage2-model", "s2",
            "--out", str(tmp_path / "out"), "--no-progress", *extra]  # fmt: skip
    assert eval_main([a.replace("{tmp}", str(tmp_path)) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("yue-eval: error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()
