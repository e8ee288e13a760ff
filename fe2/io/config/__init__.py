"""TOML configuration, parsed once into frozen dataclasses and validated.

Every key is a dataclass field with a ``doc`` (rendered by :func:`reference_markdown`
into the configuration reference of README.md) and, where it matters, a check. A
mistake gives one :class:`~fe2.core.errors.ConfigError` line naming the file, the key and
what is allowed, e.g.::

    case.toml: key 'rve.phases.matrix.E' must be > 0, got -1.0

Two kinds of files use the same tables:

- an RVE file (``fe2 homogenize RVE.toml``): ``[rve]`` with ``[rve.phases.<name>]``;
- a case file (``fe2 run CASE.toml``): ``[macro]``, ``[rve]``, ``[loading]``,
  ``[solver]``, ``[output]``.

Relative paths in a file are relative to that file's folder.

The package re-exports its public names from

- :mod:`~fe2.io.config.schema`: the tables as frozen dataclasses, each key's doc and check;
- :mod:`~fe2.io.config.binding`: the generic TOML-to-dataclass binding (no fe2 schema in it);
- :mod:`~fe2.io.config.validation`: the checks that relate several keys; parsing and loading files;
- :mod:`~fe2.io.config.examples`: the embedded example cases (``fe2/io/cases/``);
- :mod:`~fe2.io.config.reference`: the configuration reference generated from the schema.
"""

from fe2.io.config.examples import DEFAULT_CASE, default_case, example_case, example_names, example_text
from fe2.io.config.reference import reference_markdown
from fe2.io.config.schema import (
    SNAPSHOT_STEPS,
    CaseConfig,
    DirichletConfig,
    FluxConfig,
    LoadingConfig,
    MacroConfig,
    MacroMeshConfig,
    OutputConfig,
    ParallelConfig,
    PhaseConfig,
    RVEConfig,
    RVEFile,
    SnapshotConfig,
    SolverConfig,
    TractionConfig,
)
from fe2.io.config.validation import load_case, load_rve, parse_case, parse_rve

__all__ = ["CaseConfig", "DEFAULT_CASE", "DirichletConfig", "FluxConfig", "LoadingConfig", "MacroConfig",
           "MacroMeshConfig", "OutputConfig", "ParallelConfig", "PhaseConfig", "RVEConfig", "RVEFile", "SNAPSHOT_STEPS",
           "SnapshotConfig", "SolverConfig", "TractionConfig", "default_case", "example_case", "example_names",
           "example_text", "load_case", "load_rve", "parse_case", "parse_rve", "reference_markdown"]
