"""Errors raised by the registry and weight loading, so callers can catch them precisely."""


class BackboneError(ValueError):
    """A backbone name, option or weight file is wrong; the message names what and why."""


class UnknownBackboneError(BackboneError):
    """The name is not registered."""


class InvalidOptionError(BackboneError):
    """An option the builder does not take, or a value it does not accept."""


class WeightsMismatchError(BackboneError):
    """A state dict whose keys or shapes do not fit the model."""


class UnsafeCheckpointError(BackboneError):
    """A checkpoint that needs arbitrary code to unpickle; it is refused, never executed."""


def check_choice(option: str, value, valid) -> None:
    """Raise InvalidOptionError naming `option` and the valid values unless `value` is one."""
    if value not in valid:
        raise InvalidOptionError(
            f"invalid value {value!r} for option {option!r}; valid values: "
            + ", ".join(repr(v) for v in valid)
        )
