"""How much a process prints: the ``--quiet`` / ``--verbose`` convention of yue-train, yue-prep and yue-infer.

``QUIET``: errors and the final summary only: no progress bars, notes, warnings or library logs.
``NORMAL`` (default): progress bars and notes; third-party deprecation/future warnings and DeepSpeed's log
records below ERROR are dropped. ``VERBOSE``: every warning (once per place) and every library log record.
Library progress bars never run over the training bar (:func:`set_library_bars`).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import logging
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

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


def _quiet_transformers() -> None:
    global _quieted_transformers
    hf_logging = sys.modules[_HF_LOGGING]  # loaded (this runs right after its import, or once it is in)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # transformers' and huggingface_hub's bars
    _quieted_transformers = True


class _AfterImport(importlib.abc.MetaPathFinder):
    """Calls ``apply`` right after module ``name`` is first executed, then leaves ``sys.meta_path``."""

    def __init__(self, name: str, apply: Callable[[], None]) -> None:
        self.name, self.apply = name, apply

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != self.name:
            return None
        for finder in sys.meta_path:
            spec = None if finder is self else getattr(finder, "find_spec", lambda *a: None)(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(self)
            self.apply()

        loader.exec_module = exec_module  # type: ignore[method-assign]  # this spec's own loader object
        return spec


_pending_quiet: _AfterImport | None = None


def verbosity() -> int:
    return _verbosity


def set_verbosity(level: int) -> None:
    """Apply an output level to this process (warning filters, library loggers and bars). Under ``QUIET``
    transformers is quieted when it is first imported, not imported for it (commands that never use it,
    such as ``yue-prep tokenize``, stay free of it)."""
    global _verbosity, _quieted_transformers, _pending_quiet, _deepspeed_level
    _verbosity = level
    logging.getLogger("yue_train").setLevel(logging.WARNING if level == QUIET else logging.NOTSET)
    if _pending_quiet is not None:  # a later call in the same process (tests) replaces the earlier one
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(_pending_quiet)
        _pending_quiet = None
    if level == QUIET:
        if _HF_LOGGING in sys.modules:
            _quiet_transformers()
        else:
            _pending_quiet = _AfterImport(_HF_LOGGING, _quiet_transformers)
            sys.meta_path.insert(0, _pending_quiet)
    elif _quieted_transformers:  # a later call in the same process (tests) undoes --quiet
        import transformers.utils.logging as hf_logging

        hf_logging.set_verbosity_warning()
        hf_logging.enable_progress_bar()
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
