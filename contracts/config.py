"""Turns raw config into frozen dataclasses, with one-line errors that name the file and the key.

Every settings section is a frozen dataclass; this module knows how to read any of them, so that adding a
section means declaring a dataclass, not writing another parser. It is the one parser for the stack settings,
the training config and the serving config, and it lives in the dependency-free contracts package (rather than
being pydantic) so the workload images and the policy pack can import it without the infrastructure's
packages, and so errors keep the stack's camelCase key paths. Stack files use camelCase keys (Pulumi's
convention); dataclass fields are snake_case and mapped automatically.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import re
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")


class SettingsError(ValueError):
    """Bad stack configuration: the message is one line and names the file, the key and what is allowed."""


def camel(name: str) -> str:
    """`az_count` -> `azCount`, `text-classifier` -> `textClassifier`: the one camelCase rule.

    Stack file keys and stack output names follow Pulumi's camelCase convention; dataclass fields are
    snake_case and resource names kebab-case.
    """
    head, *rest = name.replace("-", "_").split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def show(value: Any) -> str:
    """A short, readable rendering of a config value for error messages."""
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Where:
    """Where a value came from: the stack file and the dotted key under the `aiinfra:` namespace."""

    source: str
    key: str
    environment: str = ""

    def child(self, part: str | int) -> Where:
        if isinstance(part, int):
            suffix = f"[{part}]"
        else:
            suffix = part if not self.key or self.key.endswith(":") else f".{part}"
        return dataclasses.replace(self, key=self.key + suffix)

    def error(self, problem: str, value: Any = dataclasses.MISSING) -> SettingsError:
        shown = "" if value is dataclasses.MISSING else f" = {show(value)}"
        return SettingsError(f"{self.source}: {self.key}{shown}: {problem}")


def field(default: Any = dataclasses.MISSING, *, doc: str = "", **checks: Any) -> Any:
    """A settings field: `doc` explains it; `checks` are validated when parsed.

    `min`, `max` (numbers; lengths of lists), `choices`; for strings `pattern` (a regular expression the whole
    value must match) with `rule` (the message when it does not); for mappings `keys` and `values`, each a
    dict of the same string checks applied to every key or value.

    Mapping defaults are copied per instance (read-only), so no two settings objects share one.
    """
    metadata = {"doc": doc, **checks}
    if isinstance(default, Mapping):
        frozen = dict(default)
        return dataclasses.field(default_factory=lambda: types.MappingProxyType(dict(frozen)), metadata=metadata)
    if isinstance(default, (list, set)):
        raise TypeError("settings defaults must be immutable: use a tuple")
    return dataclasses.field(default=default, metadata=metadata)


class Section:
    """Base for settings dataclasses: per-environment defaults and a cross-field `check` hook."""

    # Defaults that differ by environment, keyed by environment then snake_case field name.
    ENV_DEFAULTS: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    def check(self, where: Where) -> None:
        """Cross-field validation; raise `where.child(key).error(...)` on a bad combination."""


def parse(cls: type[T], raw: Any, where: Where, *, key: Callable[[str], str] = camel) -> T:
    """Parse `raw` (a mapping, or a JSON string as Pulumi passes objects) into the dataclass `cls`.

    `key` names a field in `raw` and in errors: camelCase for stack files; a command line passes its flag names.
    """
    raw = _decode_json(raw, where)
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise where.error(f"expected a mapping of keys for {cls.__name__}", raw)
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    by_key = {key(name): name for name in fields}
    for given in raw:
        if given not in by_key:
            raise where.child(str(given)).error(unknown_key_hint(str(given), by_key))
    env_defaults = getattr(cls, "ENV_DEFAULTS", {}).get(where.environment, {})
    values: dict[str, Any] = {}
    for name_key, name in by_key.items():
        f = fields[name]
        if name_key in raw:
            values[name] = convert(hints[name], raw[name_key], where.child(name_key), f.metadata)
        elif dataclasses.is_dataclass(hints[name]):
            values[name] = parse(hints[name], {}, where.child(name_key))  # its own per-environment defaults
        elif name in env_defaults:
            values[name] = env_defaults[name]
        elif f.default is not dataclasses.MISSING:
            values[name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            values[name] = f.default_factory()
        else:
            raise where.child(name_key).error("is required" + _doc_suffix(f.metadata))
    obj = cls(**values)
    if isinstance(obj, Section):
        obj.check(where)
    return obj


def unknown_key_hint(key: str, known: Mapping[str, Any] | Sequence[str]) -> str:
    names = sorted(known)
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else "allowed keys: " + ", ".join(names)
    return f"unknown key; {hint}"


def convert(tp: Any, value: Any, where: Where, meta: Mapping[str, Any] | None = None) -> Any:
    """Check `value` against the annotation `tp` and convert it (lists to tuples, mappings to dataclasses)."""
    meta = meta or {}
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return convert(options[0], value, where, meta)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise where.error("allowed: " + ", ".join(str(a) for a in allowed), value)
        return value
    if dataclasses.is_dataclass(tp):
        return parse(tp, value, where)
    if origin in (tuple, Sequence) or tp is tuple:
        value = _decode_json(value, where)
        if not isinstance(value, (list, tuple)):
            raise where.error("expected a list", value)
        item_tp = get_args(tp)[0] if get_args(tp) else Any
        items = tuple(convert(item_tp, item, where.child(i)) for i, item in enumerate(value))
        return _check_bounds(items, len(items), where, meta, what="entries")
    if origin in (dict, Mapping) or tp is dict:
        value = _decode_json(value, where)
        if not isinstance(value, Mapping):
            raise where.error("expected a mapping", value)
        _, val_tp = get_args(tp) or (str, Any)
        for k in value:
            _check_text(str(k), where.child(str(k)), meta.get("keys") or {}, shown=False)
        return types.MappingProxyType(
            {str(k): convert(val_tp, v, where.child(str(k)), meta.get("values")) for k, v in value.items()}
        )
    if tp is bool:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise where.error("expected true or false", value)
        return value
    if tp is int:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise where.error("expected a whole number", value)
        return _check_bounds(value, value, where, meta)
    if tp is float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise where.error("expected a number", value) from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise where.error("expected a number", value)
        return _check_bounds(float(value), float(value), where, meta)
    if tp is str:
        if not isinstance(value, str) or isinstance(_structure(value), (Mapping, list)):
            # A top-level key given an object or list reaches the program as JSON text (Pulumi's convention).
            raise where.error("expected a string", _structure(value))
        if "choices" in meta and value not in meta["choices"]:
            raise where.error("allowed: " + ", ".join(meta["choices"]), value)
        return _check_text(value, where, meta)
    if tp is Path:
        if not isinstance(value, (str, Path)) or not str(value):
            raise where.error("expected a path", value)
        return Path(value)
    if tp is Any:
        return value
    raise TypeError(f"settings type {tp!r} at {where.key} is not supported")


def _structure(value: Any) -> Any:
    """`value` itself, or the object or list it spells as JSON text."""
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _check_text(value: str, where: Where, meta: Mapping[str, Any], *, shown: bool = True) -> str:
    """The string checks: a `pattern` the whole value must match, explained by `rule` when it does not."""
    pattern = meta.get("pattern")
    if pattern is not None and not re.fullmatch(pattern, value):
        rule = meta.get("rule") or f"allowed: text matching {pattern}"
        raise where.error(rule, value) if shown else where.error(rule)
    return value


def _check_bounds(result: Any, measure: float, where: Where, meta: Mapping[str, Any], what: str = "") -> Any:
    low, high = meta.get("min"), meta.get("max")
    unit = f" {what}" if what else ""
    if (low is not None and measure < low) or (high is not None and measure > high):
        bounds = f"{low}..{high}" if low is not None and high is not None else (
            f"at least {low}" if low is not None else f"at most {high}")
        raise where.error(f"out of range; allowed: {bounds}{unit}", result if not what else list(result))
    if "choices" in meta and result not in meta["choices"]:
        raise where.error("allowed: " + ", ".join(str(c) for c in meta["choices"]), result)
    return result


def _decode_json(value: Any, where: Where) -> Any:
    """Pulumi hands structured config to programs as JSON text; decode it where a structure is expected."""
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise where.error(f"is not valid JSON ({exc.msg})") from None
    return value


def _doc_suffix(meta: Mapping[str, Any]) -> str:
    return f" ({meta['doc']})" if meta.get("doc") else ""


def parse_cidr(value: str, where: Where) -> ipaddress.IPv4Network:
    """A CIDR block that must parse as an IPv4 network with no host bits set."""
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        raise where.error(f"not a valid IPv4 CIDR block ({exc})", value) from None


def first_overlap(
    cidrs: Sequence[tuple[str, ipaddress.IPv4Network]],
) -> tuple[str, str] | None:
    """The first pair of named CIDR blocks that overlap, if any."""
    for i, (name_a, net_a) in enumerate(cidrs):
        for name_b, net_b in cidrs[i + 1:]:
            if net_a.overlaps(net_b):
                return name_a, name_b
    return None


__all__ = [
    "Section", "SettingsError", "Where", "camel", "convert", "field", "first_overlap", "parse",
    "parse_cidr", "show", "unknown_key_hint",
]
