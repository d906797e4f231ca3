"""Ctrl-C and SIGTERM (a scheduler's preemption, `kill`) ask the training loop to stop at the next
step boundary, where the state is whole: the loop saves there, so a resumed run is bit-identical
to an uninterrupted one. A second Ctrl-C stops at once (and saves nothing mid-step)."""

import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequests:
    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt("second Ctrl-C: stopped mid-step")
        self.signum = signum

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():  # signals reach only that one
            self._previous = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def ignore_sigterm(worker_id: int) -> None:
    """Loader workers leave SIGTERM to the main process, which saves before they are shut down
    (PyTorch's workers already ignore SIGINT)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class StopRequested(KeyboardInterrupt):
    """A signal stopped training at a step boundary, after saving."""
