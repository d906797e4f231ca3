"""Command lines: the library's training entry points (`python -m classification.pretrain`,
`python -m detection.train`) and the error handling every tool shares: the toolkit's own errors
reach the user as one line and a non-zero exit; `--debug` (or TOOLKIT_DEBUG=1) shows the
traceback."""

import argparse
import os
import sys
import traceback
from pathlib import Path

import torch.distributed as dist

from .logs import own_packages, process_rank, show_messages
from .metrics import format_metrics

FILE_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
               PermissionError)


def is_users_error(error: BaseException) -> bool:
    """About the user's input or run, not a bug: one of the toolkit's own error classes, a file
    error, or a ValueError / OSError the toolkit itself raised (a check of a value or a file)."""
    if type(error).__module__.split(".")[0] in own_packages() or isinstance(error, FILE_ERRORS):
        return True
    frames = traceback.extract_tb(error.__traceback__)
    raiser = sys.modules.get(_module_of(frames[-1].filename)) if frames else None
    return isinstance(error, (ValueError, OSError)) and raiser is not None


def _module_of(filename: str) -> str:
    """The toolkit module a source file is, or "" (a frame in torch, numpy, ...)."""
    parts = Path(filename).with_suffix("").parts
    for index, part in enumerate(parts):
        if part in own_packages():
            return ".".join(parts[index:])
    return ""


def run_tool(main) -> None:
    """Call `main()`; a user's error prints `error: <message>` and exits 2, an interruption
    exits 130. The toolkit's messages are shown (`engine.logs.show_messages`). Under `accelerate
    launch` the process group is destroyed before the interpreter exits (`end_processes`)."""
    show_messages()
    debug = "--debug" in sys.argv or os.environ.get("TOOLKIT_DEBUG") == "1"
    if "--debug" in sys.argv:
        sys.argv.remove("--debug")
    try:
        main()
    except KeyboardInterrupt:  # the trainer said what it saved
        sys.exit(130)
    except Exception as error:
        if debug or not is_users_error(error):
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    finally:
        end_processes()


def end_processes() -> None:
    """Destroy this process's process group, if one was made. Left to the interpreter's exit, a
    gloo group's threads can abort the process ("terminate called without an active exception",
    SIGABRT), and torchrun's other node then waits 300 s in its exit barrier: a two-node
    reduce-and-exit script aborted 7 times in 50 runs without this, 0 in 50 with it."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def train_from_command_line(description: str, load_config, train, argv=None) -> None:
    """Parse `--config FILE key=value ...`, train `load_config(file, overrides)`, print metrics."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", required=True, help="YAML experiment file")
    parser.add_argument("overrides", nargs="*", help="key=value, e.g. optim.lr=0.05 train.batch_size=64")
    args = parser.parse_args(argv)
    metrics = train(load_config(args.config, args.overrides))
    if metrics and process_rank()[0] == 0:  # once per job
        print(format_metrics(metrics))
