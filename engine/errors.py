"""Errors of a run that the user can act on; each message says what, where, and what is kept."""


class ToolkitError(Exception):
    """Base of the engine's run errors."""


class TrainingDiverged(ToolkitError):
    """A non-finite loss, gradient or weight: training stopped, the last good checkpoint kept."""


class RunLocked(ToolkitError):
    """Another live process is writing to the run folder."""


class CheckpointError(ToolkitError):
    """A checkpoint that cannot be read or written."""


class ResumeMismatch(ToolkitError):
    """The config differs from the checkpoint's in what changes the training trajectory."""


class ProcessLost(ToolkitError):
    """Another process of a multi-process job died or hung: every survivor stops, checkpoint kept."""
