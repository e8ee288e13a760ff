"""The generic binding of TOML tables to frozen dataclasses, with one-line errors.

Knows nothing of fe2's schema. A table becomes a dataclass (:func:`build`): each public field
is a key, its type hint says what the value may be (bool, int, float, str, ``X | None``,
unions, tuples for lists, dicts for tables, nested dataclasses) and its ``metadata`` may hold

- ``doc``: what the key means (named when a required key is missing);
- ``check``: a callable that returns None if the value is fine, else the ``"must ..."`` text;
- ``internal``: True for a field that is not a key (set by the program, not the file).

A mistake raises one :class:`~fe2.core.errors.ConfigError` line naming the file, the key and
what is allowed (:meth:`Context.fail`).
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Union

from fe2.core.errors import ConfigError

__all__ = ["MAX_INT", "MAX_NUMBER", "Context", "build", "convert", "describe", "public_fields", "read_toml"]

#: the largest magnitude of a number in a case file: squares and products of such numbers
#: stay finite in double precision (1e300 would not)
MAX_NUMBER = 1e100
#: the largest magnitude of an integer (tags, counts): a 32-bit signed integer, as dolfinx
#: stores tags
MAX_INT = 2**31 - 1
_TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
_PLURAL_WORDS = {int: "integers", float: "numbers", str: "strings", bool: "booleans"}


def describe(tp: Any) -> str:
    """The type ``tp`` in words, for messages and the reference: ``a number``, ``a list of strings``."""
    origin = typing.get_origin(tp)
    if tp in _TYPE_WORDS:
        return _TYPE_WORDS[tp]
    if origin in (Union, types.UnionType):
        return " or ".join(describe(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is tuple:
        item = typing.get_args(tp)[0]
        if typing.get_origin(item) is tuple:
            return f"a list of lists of {_PLURAL_WORDS[typing.get_args(item)[0]]}"
        return f"a list of {_PLURAL_WORDS.get(item, 'tables' if dataclasses.is_dataclass(item) else str(item))}"
    if origin is dict and typing.get_origin(typing.get_args(tp)[1]) is tuple:
        return f"a table, each value {describe(typing.get_args(tp)[1])}"
    if origin is dict or tp is dict:
        return "a table"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return str(tp)


class Context:
    """The file a table comes from: :meth:`fail` raises the one-line error that names it."""

    def __init__(self, filename: str):
        self.filename = filename

    def fail(self, key: str, what: str) -> typing.NoReturn:
        raise ConfigError(f"{self.filename}: key '{key}' {what}")


def convert(tp: Any, value: Any, key: str, ctx: Context) -> Any:
    """``value`` (as read from TOML at ``key``) as type ``tp``: checked, lists made tuples, tables
    made dataclasses (:func:`build`)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # X | None: X's own message (e.g. "must be a finite number")
            return convert(options[0], value, key, ctx)
        for a in options:
            try:
                return convert(a, value, key, ctx)
            except ConfigError:
                continue
        ctx.fail(key, f"must be {describe(tp)}, got {value!r}")
    if tp is bool:
        if not isinstance(value, bool):
            ctx.fail(key, f"must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            ctx.fail(key, f"must be an integer, got {value!r}")
        if abs(value) > MAX_INT:
            ctx.fail(key, f"must be an integer of magnitude at most {MAX_INT}, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            ctx.fail(key, f"must be a number, got {value!r}")
        if not (math.isfinite(value) and abs(value) <= MAX_NUMBER):
            ctx.fail(key, f"must be a finite number of magnitude at most {MAX_NUMBER:g}, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            ctx.fail(key, f"must be a string, got {value!r}")
        return value
    if origin is tuple:
        (item,) = typing.get_args(tp)[:1]
        if not isinstance(value, list):
            ctx.fail(key, f"must be {describe(tp)}, got {value!r}")
        return tuple(convert(item, v, f"{key}[{i}]", ctx) for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            ctx.fail(key, f"must be a table, got {value!r}")
        args = typing.get_args(tp)
        if args and args[1] is not Any:
            return {k: convert(args[1], v, f"{key}.{k}", ctx) for k, v in value.items()}
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            ctx.fail(key, f"must be a table, got {value!r}")
        return build(tp, value, key, ctx)
    raise TypeError(f"unsupported schema type {tp}")  # a bug in the schema, not user input


def public_fields(cls: Any) -> list[dataclasses.Field]:
    """The fields of ``cls`` that are keys of its table (not ``internal``)."""
    return [f for f in dataclasses.fields(cls) if not f.metadata.get("internal")]


def build(cls: Any, data: dict, prefix: str, ctx: Context) -> Any:
    """The dataclass ``cls`` from the table ``data`` at ``prefix``: unknown keys refused, required
    keys demanded, every value converted and checked."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in public_fields(cls)}
    for k in data:
        if k not in fields:
            where = f"{prefix}.{k}" if prefix else k
            ctx.fail(where, f"is not a known key (allowed here: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                ctx.fail(key, f"is required ({f.metadata.get('doc', '')})")
            continue
        value = convert(hints[name], data[name], key, ctx)
        check = f.metadata.get("check")
        if check is not None and value is not None:
            problem = check(value)
            if problem:
                ctx.fail(key, f"{problem}, got {value!r}")
        kwargs[name] = value
    return cls(**kwargs)


def read_toml(path: Path) -> dict:
    """The table of a TOML file; every way it cannot be read is one :class:`ConfigError` line."""
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a case file (give a .toml file)")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read ({err.strerror or err})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (a case file is TOML text)") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
