"""One writer per run folder: `<output_dir>/.lock` names the owning process (pid, host).

A second run on the same folder is refused while the owner lives; a lock left by a process that
has died (on this host) is taken over, and said so.
"""

import json
import os
import socket
import time
from pathlib import Path

from .errors import RunLocked


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


class RunLock:
    def __init__(self, output_dir: str | Path):
        self.path = Path(output_dir) / ".lock"
        self.owner = {"pid": os.getpid(), "host": socket.gethostname()}

    def acquire(self) -> str | None:
        """Take the lock; returns a note when a stale lock was taken over."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        note = None
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                held = self._read()
                pid = held.get("pid")
                if held.get("host") != self.owner["host"] or not isinstance(pid, int) or _alive(pid):
                    raise RunLocked(
                        f"{self.path.parent} is in use by pid {held.get('pid')} on "
                        f"{held.get('host')} (since {held.get('since', '?')}); wait for it, or "
                        f"choose another output_dir (if that process is gone, delete {self.path})"
                    ) from None
                note = (f"took over the lock of pid {held.get('pid')} on {held.get('host')}, "
                        f"which is no longer running")
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump({**self.owner, "since": time.strftime("%Y-%m-%d %H:%M:%S")}, f)
            return note
        raise RunLocked(f"could not take {self.path}: another process took it first")

    def _read(self) -> dict:
        """The owner; an unreadable lock is being written (young) or was left half-written by a
        process that died (old)."""
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            young = time.time() - self.path.stat().st_mtime < 10 if self.path.exists() else False
            return {"pid": "?", "host": "?"} if young else {"pid": -1, "host": self.owner["host"]}

    def release(self) -> None:
        if self._read().get("pid") == self.owner["pid"]:
            self.path.unlink(missing_ok=True)
