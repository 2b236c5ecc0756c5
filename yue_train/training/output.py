"""How much a process prints: the ``--quiet`` / ``--verbose`` convention of yue-train, yue-prep and yue-infer.

``QUIET``: errors and the final summary only: no progress bars, notes, warnings or library logs.
``NORMAL`` (default): progress bars and notes; third-party deprecation/future warnings and DeepSpeed's log
records below ERROR are dropped. ``VERBOSE``: every warning (once per place) and every library log record.
Library progress bars never run over the training bar (:func:`set_library_bars`).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator

from tqdm import tqdm

QUIET, NORMAL, VERBOSE = 0, 1, 2
FLAGS = {"-q": QUIET, "--quiet": QUIET, "-v": VERBOSE, "--verbose": VERBOSE}
HELP = "-q/--quiet: errors and the final summary only; -v/--verbose: library warnings and logs too"
_verbosity = NORMAL
_quieted_transformers = False


class VerbosityError(ValueError):
    """``--quiet`` and ``--verbose`` given together."""


def split_verbosity(argv: list[str]) -> tuple[int, list[str]]:
    """(the level the flags ask for, the other arguments); the flags may stand anywhere."""
    levels = {FLAGS[a] for a in argv if a in FLAGS}
    if len(levels) > 1:
        raise VerbosityError("--quiet and --verbose contradict each other; give one")
    return (levels.pop() if levels else NORMAL), [a for a in argv if a not in FLAGS]


class _BelowLevel(logging.Filter):
    """Drops records under ``level`` (attached to a library logger before the library configures it)."""

    def __init__(self) -> None:
        super().__init__()
        self.level = logging.ERROR

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level


# DeepSpeed sets its logger's level and handler (on stdout) when imported; a filter on the logger object
# outlives that. Its warnings in a normal run are detection chatter ("Setting accelerator to CPU").
_DEEPSPEED_FILTER = _BelowLevel()
logging.getLogger("DeepSpeed").addFilter(_DEEPSPEED_FILTER)


def verbosity() -> int:
    return _verbosity


def set_verbosity(level: int) -> None:
    """Apply an output level to this process (warning filters, library loggers and bars)."""
    global _verbosity, _quieted_transformers
    _verbosity = level
    logging.getLogger("yue_train").setLevel(logging.WARNING if level == QUIET else logging.NOTSET)
    if level == QUIET:
        import transformers.utils.logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()  # transformers' and huggingface_hub's bars
        _quieted_transformers = True
    elif _quieted_transformers:  # a later call in the same process (tests) undoes --quiet
        import transformers.utils.logging as hf_logging

        hf_logging.set_verbosity_warning()
        hf_logging.enable_progress_bar()
        _quieted_transformers = False
    if level == VERBOSE:
        warnings.simplefilter("default")
        _DEEPSPEED_FILTER.level = logging.NOTSET
        return
    _DEEPSPEED_FILTER.level = logging.ERROR
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if level == QUIET:
        warnings.simplefilter("ignore")


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
