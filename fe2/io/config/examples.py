"""The embedded example cases (``fe2 run --example NAME``; ``fe2 run`` alone runs the default).

The TOML files are package data of :mod:`fe2.io.cases`, read with :mod:`importlib.resources`.
"""

from __future__ import annotations

import tomllib
from importlib import resources

from fe2.core.errors import ConfigError
from fe2.io.config.schema import CaseConfig
from fe2.io.config.validation import parse_case

__all__ = ["DEFAULT_CASE", "default_case", "example_case", "example_names", "example_text"]

#: the file of the default case in fe2/io/cases/ (``fe2 run`` without a case)
DEFAULT_CASE = "plate_with_hole.toml"


def example_names() -> list[str]:
    """Names of the embedded example cases (``fe2 run --example NAME``)."""
    return sorted(p.name[:-5] for p in resources.files("fe2.io.cases").iterdir() if p.name.endswith(".toml"))


def example_text(name: str) -> str:
    """The TOML text of an embedded example case."""
    if name not in example_names():
        raise ConfigError(f"no example case '{name}' (examples: {', '.join(example_names())})")
    return resources.files("fe2.io.cases").joinpath(f"{name}.toml").read_text()


def example_case(name: str) -> CaseConfig:
    """An embedded example case, parsed."""
    return parse_case(tomllib.loads(example_text(name)), f"<example {name}>", ".")


def default_case() -> CaseConfig:
    """The embedded default case: a quarter plate with a hole in tension, made of a
    circular-inclusion composite."""
    return example_case(DEFAULT_CASE[:-5])
