"""Validation of named model options, shared by the builders and the registry."""

from collections.abc import Sequence


def check_choice(key: str, value: object, allowed: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise a ValueError naming both.

    Args:
        key: The option's name, quoted in the error (e.g. ``"activation"``).
        value: The value given in the config.
        allowed: The accepted values.

    Raises:
        ValueError: If ``value`` is not in ``allowed``.
    """
    if value not in allowed:
        raise ValueError(f"{key!r} must be one of {tuple(allowed)}, got {value!r}")
    return value  # type: ignore[return-value]
