"""What a plugin declares about itself (``plugin_info``, LRR-NOTES §9.8) and how its settings read.

A plugin declares its parameters in one of the original's two shapes: a mapping
``{name: {type, desc, default_value}}`` (named parameters, stored one field each) or a legacy list of
``{type, desc, default_value}`` (stored as the ``customargs`` JSON array). ``GET /api/plugins`` shows
both as an array; named ones carry their ``name``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

__all__ = [
    "PLUGIN_TYPES",
    "Parameter",
    "PluginError",
    "PluginInfo",
    "PluginParams",
    "coerce_parameter",
]

PLUGIN_TYPES = ("metadata", "login", "script", "download")
PARAMETER_TYPES = ("bool", "int", "string")


class PluginError(Exception):
    """Raised by a plugin to fail with a message meant for the user (the original's ``die``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Parameter:
    """One setting a plugin takes; ``name`` is empty for the legacy (array) shape."""

    type: str
    desc: str
    name: str = ""
    default_value: Any = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "desc": self.desc}
        if self.name:
            body["name"] = self.name
        if self.default_value is not None:
            body["default_value"] = self.default_value
        return body


def _parameter(raw: Mapping[str, Any], name: str = "") -> Parameter:
    kind = str(raw.get("type", "string"))
    if kind not in PARAMETER_TYPES:
        raise ValueError(f"parameter {name or raw!r}: unknown type {kind!r}")
    return Parameter(type=kind, desc=str(raw.get("desc", "")), name=name,
                     default_value=raw.get("default_value"))


def _parameters(raw: Any) -> tuple[tuple[Parameter, ...], bool]:
    """Normalise either declared shape; returns the parameters and whether they are named."""
    if raw is None:
        return (), False
    if isinstance(raw, Mapping):
        return tuple(_parameter(spec, str(name)) for name, spec in raw.items()), True
    if isinstance(raw, Sequence) and not isinstance(raw, (str, bytes)):
        return tuple(_parameter(spec) for spec in raw), False
    raise ValueError(f"parameters must be a mapping or a list, not {type(raw).__name__}")


@dataclass(frozen=True)
class PluginInfo:
    """The original's ``plugin_info`` hash, as a value.

    ``parameters`` is given in either of the original's shapes and normalised; ``declares_parameters``
    remembers whether the plugin declared any key at all, because the original's JSON shows
    ``"parameters":[]`` for a plugin declaring an empty list and no key for one declaring nothing.
    """

    name: str
    type: str
    namespace: str
    author: str = ""
    version: str = ""
    description: str = ""
    icon: str | None = None
    parameters: Any = None
    oneshot_arg: str | None = None
    login_from: str | None = None
    url_regex: str | None = None
    cooldown: int | None = None
    to_named_params: tuple[str, ...] | None = None
    params: tuple[Parameter, ...] = field(init=False, repr=False)
    named: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.type not in PLUGIN_TYPES:
            raise ValueError(f"plugin {self.namespace!r}: unknown type {self.type!r}")
        if not self.namespace:
            raise ValueError(f"plugin {self.name!r} has no namespace")
        params, named = _parameters(self.parameters)
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "named", named)

    @property
    def declares_parameters(self) -> bool:
        return self.parameters is not None

    def to_json(self) -> dict[str, Any]:
        """The element of ``GET /api/plugins/{type}``: hash parameters become an array with names."""
        body: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "namespace": self.namespace,
            "author": self.author,
            "version": self.version,
            "description": self.description,
        }
        optional = {
            "icon": self.icon,
            "oneshot_arg": self.oneshot_arg,
            "login_from": self.login_from,
            "url_regex": self.url_regex,
            "cooldown": self.cooldown,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        if self.declares_parameters:
            body["parameters"] = [param.to_json() for param in self.params]
        return body


def coerce_parameter(param: Parameter, raw: Any) -> Any:
    """A stored value (a Redis string, or a JSON value from ``customargs``) as the type declared.

    Missing or blank values fall back to the declared default, then to the type's empty value,
    so a plugin never has to tell "unset" from "off".
    """
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        if param.default_value is not None:
            raw = param.default_value
        else:
            return {"bool": False, "int": None, "string": ""}[param.type]
    if param.type == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, (int, float)):
            return raw != 0
        return str(raw).strip().lower() in ("1", "true", "on", "yes")
    if param.type == "int":
        try:
            return int(str(raw).strip())
        except ValueError:
            return None
    return raw if isinstance(raw, str) else str(raw)


class PluginParams(Mapping[Any, Any]):
    """A plugin's settings, coerced: by name for named parameters, by position for legacy ones."""

    def __init__(self, info: PluginInfo, stored: Mapping[str, Any] | None = None) -> None:
        stored = dict(stored or {})
        self._values: dict[Any, Any] = {}
        if info.named:
            for param in info.params:
                self._values[param.name] = coerce_parameter(param, stored.get(param.name))
        else:
            args = _custom_args(stored.get("customargs"))
            for index, param in enumerate(info.params):
                raw = args[index] if index < len(args) else None
                self._values[index] = coerce_parameter(param, raw)
        self.enabled = str(stored.get("enabled", "")).strip() in ("1", "true")

    def __getitem__(self, key: Any) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def flag(self, key: Any) -> bool:
        """A bool setting, False when the plugin has no such parameter."""
        return bool(self._values.get(key, False))

    def text(self, key: Any) -> str:
        value = self._values.get(key)
        return "" if value is None else str(value)


def _custom_args(raw: Any) -> list[Any]:
    if not raw:
        return []
    try:
        values = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
    except ValueError:
        return []
    return list(values) if isinstance(values, list) else []
