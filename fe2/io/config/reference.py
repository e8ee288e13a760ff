"""The configuration reference (Markdown), generated from the schema.

``fe2 config`` prints it; README.md carries it (a test checks that it is current). One
table per ``[table]`` of a case file, with each key's type, default and ``doc``.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any

from fe2.io.config.binding import describe, public_fields
from fe2.io.config.schema import LoadingConfig, MacroConfig, OutputConfig, ParallelConfig, RVEConfig, SolverConfig

__all__ = ["reference_markdown"]


def reference_markdown() -> str:
    """The configuration reference (Markdown), generated from the schema."""
    lines = []

    def table(cls: Any, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        doc = re.sub(r"^``[^`]*``:\s*", "", cls.__doc__.strip())
        lines.append(f"#### `{prefix}`\n\n{doc}\n")
        lines.append("| key | type | default | meaning |")
        lines.append("| --- | --- | --- | --- |")
        nested = []
        for f in public_fields(cls):
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                nested.append((tp, f"[{prefix.strip('[]')}.{f.name}]".replace("[.", "[")))
                continue
            if typing.get_origin(tp) is tuple and dataclasses.is_dataclass(typing.get_args(tp)[0]):
                nested.append((typing.get_args(tp)[0], f"[[{prefix.strip('[]')}.{f.name}]]"))
                continue
            if typing.get_origin(tp) is dict and dataclasses.is_dataclass(typing.get_args(tp)[1]):
                nested.append((typing.get_args(tp)[1], f"[{prefix.strip('[]')}.{f.name}.<name>]"))
                continue
            if f.default is not dataclasses.MISSING:
                default = repr(f.default) if f.default is not None else "-"
            elif f.default_factory is not dataclasses.MISSING:
                default = repr(f.default_factory())
            else:
                default = "required"
            lines.append(f"| `{f.name}` | {describe(tp)} | `{default}` | {f.metadata.get('doc', '')} |")
        lines.append("")
        for tp, p in nested:
            table(tp, p)

    for cls, p in ((MacroConfig, "[macro]"), (RVEConfig, "[rve]"), (LoadingConfig, "[loading]"),
                   (SolverConfig, "[solver]"), (OutputConfig, "[output]"), (ParallelConfig, "[parallel]")):
        table(cls, p)
    return "\n".join(lines)
