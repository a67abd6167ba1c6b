"""Objects rebuilt from ``{"name": ..., **arguments}`` configs (schedules, regularizers, ...)."""

from __future__ import annotations

from cnn.utils.naming import lookup


class Configurable:
    """Base for small registered objects: ``get_config()`` returns the name and the
    constructor arguments, and the repr shows them."""

    name = "configurable"

    def get_config(self) -> dict:
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


def from_config(kind: str, config: dict, table: dict):
    """Build ``table[config["name"]](**other entries)``; a ValueError names a bad name or
    argument (``kind`` is what is built, for the message)."""
    config = dict(config)
    cls = lookup(kind, config.pop("name", None), table)
    try:
        return cls(**config)
    except TypeError as exc:
        raise ValueError(f"bad config for {kind} {getattr(cls, 'name', cls.__name__)!r}: {exc}") from None
