"""Library messages go through `logging`, one logger per package (`logging.getLogger("detection")`).

The library never configures logging (an application that imports it decides); the tools call
`show_messages()`: info from the main process only, so an N-process job prints each line once,
and warnings from every process, marked with its rank, since a problem on one node is worth
seeing wherever it happens. Lines are written through tqdm, so progress bars stay whole.
"""

import logging
import os
import sys

from tqdm.auto import tqdm

# The toolkit's own packages (their loggers, and what counts as its own error: engine.cli); each
# task's package joins when it registers its task (`engine.tasks.register_task`).
_PACKAGES = ["backbones", "engine", "experiments"]
_shown_level = None  # the level show_messages() set, for packages adopted after it ran


def own_packages() -> tuple[str, ...]:
    return tuple(_PACKAGES)


def adopt_package(name: str) -> None:
    """Treat package `name` as the toolkit's own: its messages shown as the others'."""
    if name not in _PACKAGES:
        _PACKAGES.append(name)
    if _shown_level is not None:
        _show(name, _shown_level)


def process_rank() -> tuple[int, int]:
    """(rank, world size) of this process, from the launcher's environment (torchrun, Accelerate,
    Slurm's srun through torchrun): known before any process group exists."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


class MainProcessOnly(logging.Filter):
    """Info and debug from process 0 alone; warnings and errors from all."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or process_rank()[0] == 0


class ProcessFormatter(logging.Formatter):
    """`message` for info; `warning: message`, prefixed `[process r of N]` on several processes."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno < logging.WARNING:
            return text
        rank, world = process_rank()
        where = f"[process {rank} of {world}] " if world > 1 else ""
        return f"{where}{record.levelname.lower()}: {text}"


class LineWriter:
    """What a progress bar writes, as whole lines: a log file gets one line per update instead of a
    wall of carriage-return redraws."""

    def __init__(self, file):
        self.file = file

    def write(self, text: str) -> None:
        line = text.replace("\r", "\n").strip("\n")
        if line.strip():
            self.file.write(line.split("\n")[-1] + "\n")

    def flush(self) -> None:
        self.file.flush()


class ProgressBar(tqdm):
    """tqdm, redrawn in a terminal; elsewhere (a log file, a pipe) a line every 30 s at most."""

    def __init__(self, *args, **kwargs):
        file = kwargs.get("file") or sys.stderr
        if not (hasattr(file, "isatty") and file.isatty()):
            kwargs["file"] = LineWriter(file)
            kwargs.setdefault("mininterval", 30)
        super().__init__(*args, **kwargs)


class TqdmHandler(logging.Handler):
    """Writes to the stderr of the moment, above the progress bars instead of through them."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging's convention: a failed message never stops the program
            self.handleError(record)


def show_messages(level: int = logging.INFO) -> None:
    """Show the toolkit's messages on stderr (idempotent): what every tool does first."""
    global _shown_level
    _shown_level = level
    for name in _PACKAGES:
        _show(name, level)


def _show(name: str, level: int) -> None:
    logger = logging.getLogger(name)
    logger.setLevel(level)
    if not any(isinstance(h, TqdmHandler) for h in logger.handlers):
        handler = TqdmHandler()
        handler.addFilter(MainProcessOnly())
        handler.setFormatter(ProcessFormatter())
        logger.addHandler(handler)
