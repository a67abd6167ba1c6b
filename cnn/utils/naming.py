"""Name lookups shared by the registries (activations, losses, metrics, optimizers, ...).

Every registry resolves a user-given name the same way: exact spelling first (so that the
seed's upper-case names keep their own meaning where they differ from Keras's), then
case-insensitively; an unknown name raises ``ValueError`` listing the valid names. Nothing
falls back silently to a default.
"""

from __future__ import annotations

import re


def lookup(kind: str, name, table: dict, exact: dict | None = None):
    """Resolve ``name`` in ``table`` (lower-case keys) or ``exact`` (case-sensitive keys).

    Args:
        kind: what is looked up, for the error message ("loss", "activation", ...).
        name: the user's name.
        table: mapping from lower-case names to values.
        exact: optional mapping of case-sensitive names checked first.
    Raises:
        ValueError: ``name`` is not a string or is unknown; the message lists the valid names.
    """
    if not isinstance(name, str):
        raise ValueError(f"{kind} must be given by name (a string) or as an object, got {name!r}")
    if exact and name in exact:
        return exact[name]
    value = table.get(name.lower())
    if value is None:
        valid = sorted(set(table) | set(exact or ()), key=str.lower)
        raise ValueError(f"unknown {kind} {name!r}; valid {kind} names: {', '.join(valid)}")
    return value


def snake_case(name: str) -> str:
    """``"MaxPooling2D"`` -> ``"max_pooling2d"``, ``"LSTM"`` -> ``"lstm"``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()
