"""Regenerate the example RVE meshes from meshes/examples.toml.

Usage::

    python3 meshes/make_examples.py [outdir]

``outdir`` defaults to the directory of this script. Each table of ``examples.toml`` names
a mesh ``<name>.msh`` and gives the generator ``kind`` and its parameters (see
:func:`fe2.geometry.generators.generate`).
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent

try:
    from fe2.core.errors import Fe2Error
    from fe2.geometry.generators import generate
except ModuleNotFoundError:  # run from a checkout without PYTHONPATH set
    sys.path.insert(0, str(HERE.parent))
    from fe2.core.errors import Fe2Error
    from fe2.geometry.generators import generate


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print("usage: python3 meshes/make_examples.py [outdir]", file=sys.stderr)
        return 2
    outdir = Path(argv[0]) if argv else HERE
    spec_file = HERE / "examples.toml"
    with spec_file.open("rb") as f:
        spec = tomllib.load(f)
    for name, table in spec.items():
        params = dict(table) if isinstance(table, dict) else {}
        kind = params.pop("kind", None)
        if not isinstance(kind, str):
            print(f"make_examples: error: [{name}] in {spec_file} needs a string 'kind'", file=sys.stderr)
            return 2
        try:
            mesh = generate(kind, outdir / f"{name}.msh", **params)
        except Fe2Error as exc:
            print(f"make_examples: error: [{name}] in {spec_file}: {exc}", file=sys.stderr)
            return 1
        fractions = ", ".join(f"{k} {v:.4f}" for k, v in mesh.volume_fractions.items())
        print(f"{mesh.path}: {mesh.dim}D, {mesh.num_nodes} nodes, {mesh.num_cells} cells; {fractions}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
