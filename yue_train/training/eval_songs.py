"""Songs generated during training (``eval.generate``): the model under training writes one song per prompt
with the generation code ``yue-infer`` uses, stage 2 and the codec turn them into audio when configured,
and the metrics, audio and report go to ``RUN_DIR/eval/step-N/`` (the layout of ``yue-infer generate``
plus ``eval.json`` and ``report.html``) and to W&B.

The first process generates with the unwrapped model (the LoRA or full model inside DDP or DeepSpeed
ZeRO-2); the others wait at a barrier, which the process group's 30-minute timeout bounds: keep an
evaluation (songs x seconds) well inside it. Sharded weights (FSDP2, ZeRO-3) are not gathered for this:
such runs are refused at start, and score checkpoints with ``yue-eval --generate`` instead. Every
evaluation uses the same seeds, so the songs of successive steps differ only by the training in between.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from yue_train.codec.folder import check_codec_folder
from yue_train.evaluation.metrics import MetricError
from yue_train.evaluation.scoring import parse_metrics
from yue_train.generation.inputs import GenerateInputError
from yue_train.generation.loading import load_codec, load_stage2
from yue_train.generation.prompts import PromptInputError
from yue_train.generation.sampling import SamplingConfig
from yue_train.generation.songs import SongPrompt, generate_song_set, read_prompt_set
from yue_train.training import ranks
from yue_train.training.output import note
from yue_train.training.validate import ConfigError

EVAL_DIR = "eval"
TOKENS_PER_SECOND = 100  # stage 1 writes vocal and accompaniment codes, 50 frames per second each


class EvalGenerateError(ConfigError):
    """An ``eval.generate`` setting training cannot evaluate with; one line naming the key."""


def check_eval_generate(cfg: Any) -> None:
    """The ``eval.generate`` checks that need no model: raise :class:`EvalGenerateError`."""
    g = cfg.eval.generate
    if not g.enabled:
        return
    if not g.prompts:
        raise EvalGenerateError("eval.generate.prompts: give a prompt set (JSONL of {id, genres, lyrics})")
    try:
        read_prompt_set(g.prompts)
        parse_metrics(list(g.metrics) if g.metrics is not None else None)
    except (PromptInputError, MetricError) as e:
        raise EvalGenerateError(f"eval.generate: {e}") from None
    if cfg.model.tokenizer is None:
        raise EvalGenerateError("eval.generate needs model.tokenizer (synthetic or tokenizer.model) to write prompts")
    if g.codec is not None and g.stage2_model is None:
        raise EvalGenerateError(
            "eval.generate.codec needs eval.generate.stage2_model: audio is decoded from 8 codebooks"
        )
    if g.codec is not None:
        check_codec_folder(g.codec, "eval.generate.codec", EvalGenerateError)
    if g.reference is not None and not Path(g.reference).is_dir():
        raise EvalGenerateError(f"eval.generate.reference={g.reference}: no such folder of reference audio")
    if g.every < 0 or g.seconds <= 0 or (g.n_songs is not None and g.n_songs < 1):
        raise EvalGenerateError("eval.generate: every >= 0, seconds > 0 and n_songs >= 1 (or null)")


def _sharded(strategy: Any) -> bool:
    if type(strategy).__name__ == "FSDP2Strategy":
        return True
    return int((getattr(strategy, "ds_config", None) or {}).get("zero_optimization", {}).get("stage", 0)) == 3


class SongEvaluation:
    """``eval.generate`` of one run: :meth:`due` says when, :meth:`run` does it (every process calls it)."""

    def __init__(self, cfg: Any, strategy: Any, run_dir: Path, device: torch.device) -> None:
        if _sharded(strategy):
            raise EvalGenerateError(
                "eval.generate needs whole weights on one process: use distributed=single, ddp or "
                "deepspeed_zero2, or score checkpoints with yue-eval --generate"
            )
        self.g, self.strategy, self.device = cfg.eval.generate, strategy, device
        self.folder = Path(run_dir) / EVAL_DIR
        self.tokenizer_ref = cfg.model.tokenizer
        self.main = ranks.is_main()
        self.started = time.perf_counter()
        self.spent = 0.0  # seconds spent in song evaluations so far
        self._stage2: torch.nn.Module | None = None
        self._codec: Any = None
        self._tokenizer: Any = None
        if self.main and self.g.codec is None:
            note(
                "yue-train: eval.generate has no codec (eval.generate.stage2_model and .codec): songs are scored on "
                "their tokens only (structure); audio metrics are skipped"
            )

    def due(self, step: int, max_steps: int) -> bool:
        every = int(self.g.every)
        return step == max_steps or (every > 0 and step % every == 0)

    def prompts(self) -> list[SongPrompt]:
        """The prompts of one evaluation: ``n_songs`` of them, in order, repeated with numbered ids."""
        base = read_prompt_set(self.g.prompts)
        n = len(base) if self.g.n_songs is None else int(self.g.n_songs)
        out = []
        for k in range(n):
            p = base[k % len(base)]
            out.append(p if k < len(base) else dataclasses.replace(p, id=f"{p.id}-{k // len(base) + 1}"))
        return out

    def _models(self) -> tuple[Any, torch.nn.Module | None, Any]:
        """The tokenizer, stage-2 model and codec, loaded at the first evaluation and kept."""
        if self._tokenizer is None:
            from yue_train.tokenizer import load_tokenizer

            self._tokenizer = load_tokenizer(None if self.tokenizer_ref == "synthetic" else self.tokenizer_ref)
        if self.g.stage2_model is not None and self._stage2 is None:
            try:
                self._stage2 = load_stage2(str(self.g.stage2_model), self.device, "eval.generate.stage2_model")
            except GenerateInputError as e:
                raise EvalGenerateError(str(e)) from None
        if self._codec is None:
            self._codec = load_codec(self.g.codec, self.device)
        return self._tokenizer, self._stage2, self._codec

    def _generate_and_score(self, step: int, lm: torch.nn.Module, logger: Any) -> dict[str, float]:
        from yue_train.evaluation.run import evaluate
        from yue_train.evaluation.songs import load_generated, load_songs
        from yue_train.evaluation.wandb_log import log_evaluation

        out = self.folder / f"step-{step}"
        if out.exists():  # an evaluation of this step from before a resume
            shutil.rmtree(out)
        tokenizer, stage2, codec = self._models()
        max_new = max(1, int(round(float(self.g.seconds) * TOKENS_PER_SECOND)))
        sampling = SamplingConfig(max_new_tokens=max_new, min_new_tokens=min(100, max_new))
        was_training = lm.training
        lm.eval()
        try:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bool(self.strategy.autocast_bf16)):
                generate_song_set(
                    lm, tokenizer, self.prompts(), sampling, out, seed=int(self.g.seed),
                    n_sections=self.g.max_sections, stage2=stage2, codec=codec,
                )  # fmt: skip
        finally:
            lm.train(was_training)
        songs = load_generated(out)  # info["target_voice"]: the prompt's reference audio, for voice_similarity
        reference = load_songs(self.g.reference) if self.g.reference else None
        metrics = list(self.g.metrics) if self.g.metrics is not None else None
        options = OmegaConf.to_container(self.g.metric_options, resolve=True) if self.g.metric_options else {}
        result = evaluate(
            songs, out, metrics, options, reference, title=f"step {step}", progress=False, config={"step": step}
        )
        aggregate = result.evaluation.aggregate
        logger.log({"step": step, **{f"eval_songs/{k}": v for k, v in aggregate.items()}})  # metrics.jsonl, W&B
        if logger.wandb is not None:
            log_evaluation(logger.wandb, result.evaluation, result.pictures, result.report, step=step, scalars=False)
        return aggregate

    def run(self, step: int, logger: Any) -> None:
        """Generate and score on the first process; every process returns when it is done."""
        t0 = time.perf_counter()
        if self.main:
            aggregate = self._generate_and_score(step, self.strategy.lm, logger)
            self.spent += time.perf_counter() - t0
            total = time.perf_counter() - self.started
            summary = ", ".join(f"{k} {v:.3g}" for k, v in aggregate.items() if k != "songs")
            note(
                f"yue-train: songs at step {step}: {int(aggregate.get('songs', 0))} in {time.perf_counter() - t0:.1f} s "
                f"-> {self.folder / f'step-{step}'}; {summary}. Song evaluation so far: {self.spent:.1f} s of "
                f"{total:.1f} s ({100 * self.spent / max(total, 1e-9):.0f}% of training's wall clock)"
            )
        ranks.barrier()
