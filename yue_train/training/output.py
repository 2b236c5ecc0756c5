"""How much a process prints: the ``--quiet`` / ``--verbose`` convention of yue-train, yue-prep and yue-infer.

``QUIET``: errors and the final summary only: no progress bars, notes, warnings or library logs.
``NORMAL`` (default): progress bars and notes; third-party deprecation/future warnings and DeepSpeed's log
records below ERROR are dropped. ``VERBOSE``: every warning (once per place) and every library log record.
Library progress bars never run over the training bar (:func:`set_library_bars`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Sequence

from tqdm import tqdm

QUIET, NORMAL, VERBOSE = 0, 1, 2
FLAGS = {"-q": QUIET, "--quiet": QUIET, "-v": VERBOSE, "--verbose": VERBOSE}
_verbosity = NORMAL
_quieted_transformers = False
_HF_LOGGING = "transformers.utils.logging"


class VerbosityError(ValueError):
    """``--quiet`` and ``--verbose`` given together."""


def split_verbosity(argv: list[str]) -> tuple[int, list[str]]:
    """(the level the flags ask for, the other arguments); the flags may stand anywhere."""
    levels = {FLAGS[a] for a in argv if a in FLAGS}
    if len(levels) > 1:
        raise VerbosityError("--quiet and --verbose contradict each other; give one")
    return (levels.pop() if levels else NORMAL), [a for a in argv if a not in FLAGS]


# DeepSpeed sets its logger's level and handler (on stdout) when imported; a filter on the logger object
# outlives that. Its warnings in a normal run are detection chatter ("Setting accelerator to CPU").
_deepspeed_level = logging.ERROR
logging.getLogger("DeepSpeed").addFilter(lambda record: record.levelno >= _deepspeed_level)


# Read by transformers and huggingface_hub when they are first imported: how --quiet reaches them without
# importing them for it (commands that never use them, such as ``yue-prep tokenize``, stay free of them).
_QUIET_ENV = {"TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


def verbosity() -> int:
    return _verbosity


def set_verbosity(level: int) -> None:
    """Apply an output level to this process (warning filters, library loggers and bars); under ``QUIET``
    transformers and huggingface_hub are quieted through :data:`_QUIET_ENV` when not yet imported."""
    global _verbosity, _quieted_transformers, _deepspeed_level
    _verbosity = level
    logging.getLogger("yue_train").setLevel(logging.WARNING if level == QUIET else logging.NOTSET)
    if level == QUIET:
        if _HF_LOGGING in sys.modules:
            sys.modules[_HF_LOGGING].set_verbosity_error()
            sys.modules[_HF_LOGGING].disable_progress_bar()  # transformers' and huggingface_hub's bars
        elif "huggingface_hub" in sys.modules:  # its bar setting is read from the environment at import
            sys.modules["huggingface_hub"].utils.disable_progress_bars()
        os.environ.update(_QUIET_ENV)
        _quieted_transformers = True
    elif _quieted_transformers:  # a later call in the same process (tests) undoes --quiet
        for name, value in _QUIET_ENV.items():
            if os.environ.get(name) == value:
                del os.environ[name]
        if _HF_LOGGING in sys.modules:
            sys.modules[_HF_LOGGING].set_verbosity_warning()
            sys.modules[_HF_LOGGING].enable_progress_bar()
        _quieted_transformers = False
    if level == VERBOSE:
        warnings.simplefilter("default")
        _deepspeed_level = logging.NOTSET
        return
    _deepspeed_level = logging.ERROR
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if level == QUIET:
        warnings.simplefilter("ignore")


def apply_verbosity(prog: str, argv: Sequence[str]) -> list[str] | None:
    """Set this process's output level from ``-q``/``-v`` in ``argv`` and return the other arguments; on
    contradicting flags print ``PROG: error: ...`` and return None (the caller exits with 2)."""
    try:
        level, rest = split_verbosity(list(argv))
    except VerbosityError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return None
    set_verbosity(level)
    return rest


def show_progress() -> bool:
    """Whether progress bars are wanted (not under ``--quiet``)."""
    return _verbosity > QUIET


def note(message: str) -> None:
    """A status line on stderr (not under ``--quiet``), printed above an active progress bar."""
    if _verbosity > QUIET:
        tqdm.write(message, file=sys.stderr)


def set_library_bars(enabled: bool) -> bool:
    """Turn transformers' and huggingface_hub's progress bars on or off; returns the previous state.
    Under ``--quiet`` they stay off."""
    import transformers.utils.logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if enabled and _verbosity > QUIET:
        hf_logging.enable_progress_bar()
    else:
        hf_logging.disable_progress_bar()
    return was


@contextlib.contextmanager
def library_bars_off() -> Iterator[None]:
    """No library progress bars (e.g. transformers' "Writing model shards") inside the block."""
    was = set_library_bars(False)
    try:
        yield
    finally:
        set_library_bars(was)
