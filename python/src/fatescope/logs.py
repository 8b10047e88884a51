"""Logging and progress conventions: science code logs, loops show a bar only on a terminal."""
from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
LOGGER_NAME = "fatescope"
# set by the local engine for the stage processes it launches: the run log their records are appended to
RUN_LOG_ENV = "FATESCOPE_RUN_LOG"
# ... and the file a failing stage writes its one-line error message to, for the engine's error
ERROR_FILE_ENV = "FATESCOPE_ERROR_FILE"


def get_logger(name: str) -> logging.Logger:
    """Child logger under the package logger (``fatescope.<name>``)."""
    return logging.getLogger(f"{LOGGER_NAME}.{name.removeprefix(LOGGER_NAME + '.')}")


def configure(level: str = "INFO") -> None:
    """Send package logs to stderr once; repeated calls only change the level."""
    root = logging.getLogger(LOGGER_NAME)
    root.setLevel(level.upper())
    if not any(getattr(h, "_fatescope", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        handler._fatescope = True  # type: ignore[attr-defined]
        root.addHandler(handler)


def add_file_log(path) -> logging.Handler:
    """Also write package logs to ``path`` (the run log); returns the handler to remove later."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger(LOGGER_NAME).addHandler(handler)
    return handler


def progress(iterable: Iterable[T], desc: str, total: int | None = None, **kwargs) -> Iterator[T]:
    """tqdm bar that disables itself when stderr is not a terminal."""
    return iter(tqdm(iterable, desc=desc, total=total, disable=None, leave=False, **kwargs))


def progress_bar(total: int, desc: str, **kwargs) -> tqdm:
    """A manual tqdm bar (``update``/``set_postfix``) that disables itself when stderr is not a terminal."""
    return tqdm(total=total, desc=desc, disable=None, leave=False, **kwargs)
