"""The audio metrics are registered by name and their heavy packages load only when a metric is built."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO
from yue_train.evaluation.metrics import MODULES, SetMetric, SongMetric, available, build_metric

AUDIO_METRICS = ["clap", "fad", "lyrics_wer", "vocal_activity", "vocal_range", "voice_similarity"]


def test_the_audio_metrics_are_registered():
    assert set(AUDIO_METRICS) <= set(available())
    assert isinstance(build_metric("vocal_range"), SongMetric)
    assert build_metric("vocal_activity").name == "vocal_activity"


def test_importing_the_metric_modules_loads_no_model_package():
    modules = sorted({MODULES[name] for name in AUDIO_METRICS})
    code = (
        "import sys, importlib\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(sorted(p for p in ('torch', 'transformers', 'resemblyzer', 'librosa', 'soxr') if p in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_fad_is_a_set_metric_that_needs_a_reference():
    import importlib

    cls = importlib.import_module(MODULES["fad"]).FrechetAudioDistance
    assert issubclass(cls, SetMetric) and cls.needs_reference
