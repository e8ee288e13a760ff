"""RVE snapshots (``[[output.rve_snapshots]]``): the file of a snapshot is the RVE of its macro
point. Read back with meshio: the volume average of its stress is the macro stress there (and
the reaction per area of a homogeneous block), the average of its strain is the macro strain,
its displacement jumps across the cell by the macro gradient times the edge, its internal
variables average to the macro point's; the point is the nearest quadrature point, or the one
with the largest internal variable; 1 and 2 ranks write the same snapshots."""

import json
import re
from pathlib import Path

import meshio
import numpy as np
import pytest
from mpi4py import MPI

from fe2.core.tensors import mandel_to_tensor
from fe2.io import results
from helpers import J2_TABLE, serial_and_parallel
from helpers import run_case as run

PLATE = {"generator": "plate_with_hole", "h": 0.3, "h_hole": 0.15, "radius": 0.3}
CIRCLE = {"kind": "circle", "radius": 0.3, "h": 0.25}
NEO_HOOKE = {"law": "neo_hooke", "E": 1.0, "nu": 0.3}
DAMAGE = {"law": "damage", "E": 1.0, "nu": 0.2, "kappa0": 1e-3, "softening": "exponential", "beta": 100.0}

VARIANTS = {  # physics, phases, the right edge's value, internal variable to select by
    "j2": ("elasticity", {"matrix": dict(J2_TABLE, tag=1), "inclusion": {"law": "elastic", "tag": 2, "E": 10.0,
                                                                          "nu": 0.2}}, 0.03,
           "equivalent_plastic_strain"),
    "elastic": ("elasticity", {"matrix": {"tag": 1, "E": 1.0, "nu": 0.35},
                               "inclusion": {"tag": 2, "E": 10.0, "nu": 0.2}}, 0.01, None),
    "neo_hooke": ("finite_strain", {"matrix": dict(NEO_HOOKE, tag=1), "inclusion": dict(NEO_HOOKE, tag=2, E=5.0)},
                  0.2, None),
    "conduction": ("conduction", {"matrix": {"law": "nonlinear_conduction", "tag": 1, "k": 1.0, "grad_ref": 0.5},
                                  "inclusion": {"law": "conduction", "tag": 2, "k": 5.0}}, 1.0, None),
}


def plate(variant: str, engine: str = "batched", steps: int = 3) -> dict:
    physics, phases, value, internal = VARIANTS[variant]
    if physics == "conduction":
        dirichlet = [{"boundary": "left", "value": 0.0}, {"boundary": "right", "value": value}]
    else:
        dirichlet = [{"boundary": "left", "component": "x", "value": 0.0},
                     {"boundary": "bottom", "component": "y", "value": 0.0},
                     {"boundary": "right", "component": "x", "value": value}]
    snaps = [{"name": "near", "point": [0.62, 0.2], "steps": "all"}]
    if internal:
        snaps.append({"max": internal})  # default name rve2, steps "last"
    return {
        "title": f"snapshots {variant}",
        "macro": {"degree": 1, "mesh": dict(PLATE), "dirichlet": dirichlet},  # one quadrature point per cell
        "loading": {"steps": steps},
        "rve": {"physics": physics, "rtol": 1e-12, "engine": engine, "generate": dict(CIRCLE), "phases": phases},
        "solver": {"rtol": 1e-11, "atol": 1e-14, "max_iterations": 12},
        "output": {"format": "xdmf", "checkpoint_every": 0, "rve_snapshots": snaps},
    }


def read_one(path):
    """Points, cell volumes and the nodal and cell data of a one-stamp XDMF file."""
    with meshio.xdmf.TimeSeriesReader(str(path)) as reader:
        points, cells = reader.read_points_cells()
        t, nodal, cell = reader.read_data(0)
    (block,) = cells
    X = points[block.data]
    if block.type == "triangle":
        a, b = X[:, 1, :2] - X[:, 0, :2], X[:, 2, :2] - X[:, 0, :2]
        vol = 0.5 * np.abs(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])
    else:
        vol = np.abs(np.linalg.det(X[:, 1:] - X[:, :1])) / 6.0
    return t, points, block.data, vol, nodal, joined(cell)


def joined(cell_data):
    """meshio's cell data (a list of arrays per cell block) as one array per name."""
    return {k: np.concatenate(v) if isinstance(v, list) else v for k, v in cell_data.items()}


def average(vol, values):
    return np.tensordot(vol, values, axes=1) / vol.sum()


def macro_tensors(meta, physics, gdim=2):
    """The macro gradient and flux of a snapshot's point as the file's tensors (vectors)."""
    E, S = np.asarray(meta["macro_gradient"]), np.asarray(meta["macro_stress"])
    words = {"conduction": "vectors", "finite_strain": "F and P row-major"}.get(physics, "mandel")
    assert meta["notation"].startswith(words)  # the summary says how to read them
    if physics == "conduction":
        return E, -S  # heat_flux = -K grad T
    if physics == "finite_strain":
        return E.reshape(gdim, gdim) - np.eye(gdim), S.reshape(gdim, gdim)
    return mandel_to_tensor(E), mandel_to_tensor(S)


def assert_is_the_rve_of(meta, snapshot, physics, gdim=2):
    """Hill's averages: the snapshot's volume-averaged flux is the macro flux at its point and
    its averaged gradient the macro gradient; its displacement (temperature) jumps across the
    cell by the macro gradient times the edge, and its fluctuation is periodic."""
    _, points, _, vol, nodal, cell = snapshot
    H, S = macro_tensors(meta, physics, gdim)
    g, s = ("temperature_gradient", "heat_flux") if physics == "conduction" else ("strain", "stress")
    mean_g, mean_s = average(vol, cell[g]), average(vol, cell[s])
    if physics == "conduction":  # vectors padded to 3 components
        mean_g, mean_s = mean_g[:gdim], mean_s[:gdim]
    else:
        mean_g, mean_s = mean_g.reshape(3, 3)[:gdim, :gdim], mean_s.reshape(3, 3)[:gdim, :gdim]
    assert np.abs(mean_s - S).max() < 1e-9 * np.abs(S).max() and np.abs(S).max() > 0
    assert np.abs(mean_g - H).max() < 1e-10 * np.abs(H).max()
    assert np.asarray(meta["rve_average_stress"]) == pytest.approx(meta["macro_stress"], rel=1e-9, abs=1e-14)
    u = nodal["temperature" if physics == "conduction" else "displacement"]
    lo, hi = points[:, 0].min(), points[:, 0].max()
    left = np.flatnonzero(np.isclose(points[:, 0], lo))
    right = np.flatnonzero(np.isclose(points[:, 0], hi))
    pairs = [(i, right[np.argmin(np.linalg.norm(points[right, 1:] - points[i, 1:], axis=1))]) for i in left]
    assert len(pairs) >= 3
    jump = np.array([u[j] - u[i] for i, j in pairs])
    if physics == "conduction":
        assert np.abs(jump - H[0] * (hi - lo)).max() < 1e-10 * np.abs(H).max()
    else:
        assert np.abs(jump[:, :gdim] - H[:, 0] * (hi - lo)).max() < 1e-10 * np.abs(H).max()
    w = nodal["fluctuation"]
    assert np.abs(np.array([w[j] - w[i] for i, j in pairs])).max() < 1e-12
    assert set(np.unique(cell["phase"])) == {1.0, 2.0}


def centroids(path):
    """Cell centroids and the last stamp's cell data of ``fields.xdmf``."""
    with meshio.xdmf.TimeSeriesReader(str(path)) as reader:
        points, cells = reader.read_points_cells()
        stamps = [reader.read_data(k) for k in range(reader.num_steps)]
    return points[cells[0].data].mean(axis=1)[:, :2], [(t, nodal, joined(cell)) for t, nodal, cell in stamps]


@pytest.mark.parametrize("variant,engine,degree", [("j2", "batched", 1), ("j2", "reference", 1),
                                                   ("elastic", "batched", 2), ("neo_hooke", "batched", 1),
                                                   ("conduction", "batched", 1)])
def test_snapshot_is_the_rve_of_its_macro_point(tmp_path, variant, engine, degree):
    physics, _, _, internal = VARIANTS[variant]
    data = plate(variant, engine)
    data["rve"]["degree"] = degree
    res = run(data, tmp=tmp_path)
    out = Path(MPI.COMM_WORLD.bcast(str(tmp_path), root=0))
    if MPI.COMM_WORLD.rank != 0:
        return
    steps = res.summary["steps"]
    assert len(steps) == 3
    cents, stamps = centroids(out / "fields.xdmf")
    # every step has "near"; only the last one has "rve2", whose older files were replaced
    names = sorted(p.name for p in (out / "rve_snapshots").iterdir())
    expected = [f"near_000{k}.{e}" for k in (1, 2, 3) for e in ("h5", "xdmf")]
    if internal:
        expected += ["rve2_0003.h5", "rve2_0003.xdmf"]
    assert names == sorted(expected)
    d_near = np.linalg.norm(cents - [0.62, 0.2], axis=1)
    for row, (t_macro, _, macro_cells) in zip(steps, stamps, strict=True):
        metas = {m["name"]: m for m in row["rve_snapshots"]}
        assert set(metas) == ({"near", "rve2"} if internal and row is steps[-1] else {"near"})
        for name, meta in metas.items():
            t, points, cells, vol, nodal, cell = read_one(out / meta["file"])
            assert t == pytest.approx(row["load_factor"]) and t_macro == pytest.approx(t)
            # the point: one quadrature point per macro cell, at its centroid
            x = np.asarray(meta["point"])
            at = np.argmin(np.linalg.norm(cents - x, axis=1))
            assert np.linalg.norm(cents[at] - x) < 1e-12
            if name == "near":  # the nearest point to (0.62, 0.2)
                assert np.linalg.norm(x - [0.62, 0.2]) == pytest.approx(d_near.min(), rel=1e-12)
            else:  # the largest equivalent plastic strain of the macro field, and the RVE's average
                field = macro_cells[internal]
                assert meta[internal] == pytest.approx(field.max(), rel=1e-12) and field.max() > 0
                assert field[at] == pytest.approx(field.max(), rel=1e-12)
                assert average(vol, cell[internal]) == pytest.approx(meta[internal], rel=1e-10)
            assert_is_the_rve_of(meta, (t, points, cells, vol, nodal, cell), physics)
            if physics == "elasticity":  # plane strain sigma_zz: the RVE average is the macro field's
                macro_zz = macro_cells["stress"].reshape(-1, 3, 3)[at, 2, 2]
                assert average(vol, cell["stress"].reshape(-1, 3, 3)[:, 2, 2]) == pytest.approx(macro_zz, rel=1e-9)
    results.clear(out)  # --overwrite removes the snapshots too
    assert not (out / "rve_snapshots").exists()


def test_snapshot_of_a_homogeneous_block_averages_to_the_reaction(tmp_path):
    """A block pulled on rollers: every macro point has the same strain, and the RVE's average
    stress is the reaction per area (x) and zero across the free face (y). (A laminate: its
    effective tensor couples no normal strain to shear, so the macro state is homogeneous.)"""
    data = plate("elastic")
    data["rve"]["generate"] = {"kind": "laminate", "fractions": [0.4, 0.6], "normal": 0, "h": 0.25}
    data["macro"]["mesh"] = {"generator": "rectangle", "width": 2.0, "height": 1.0, "structured": 2, "cells_y": 1}
    data["macro"]["dirichlet"][2]["value"] = 0.02
    data["output"]["rve_snapshots"] = [{"point": [1.9, 0.9], "steps": [2]}]
    res = run(data, tmp=tmp_path)
    out = Path(MPI.COMM_WORLD.bcast(str(tmp_path), root=0))
    if MPI.COMM_WORLD.rank != 0:
        return
    rows = res.summary["steps"]
    assert ["rve_snapshots" in r for r in rows] == [False, True, False]
    (meta,) = rows[1]["rve_snapshots"]
    assert meta["file"] == "rve_snapshots/rve1_0002.xdmf"
    _, _, _, vol, _, cell = read_one(out / meta["file"])
    sig = average(vol, cell["stress"]).reshape(3, 3)
    s = rows[1]["reaction_right_x"] / 1.0
    assert sig[0, 0] == pytest.approx(s, rel=1e-9) and s > 1e-4
    assert abs(sig[1, 1]) < 1e-9 * s and abs(sig[0, 1]) < 1e-9 * s


def test_gradient_damage_snapshot_of_the_most_damaged_point(tmp_path):
    """Gradient-regularized FE² (the damage is driven by the macro nonlocal strain) with a
    viscous phase: the snapshot's stress is the damaged stress of its state."""
    data = {
        "title": "gradient damage snapshots",
        "macro": {"degree": 1, "regularization": "gradient", "nonlocal_length": 0.2, "mesh": dict(PLATE, h=0.25),
                  "dirichlet": [{"boundary": "left", "component": "x", "value": 0.0},
                                {"boundary": "bottom", "component": "y", "value": 0.0},
                                {"boundary": "right", "component": "x", "value": 0.003}]},
        "loading": {"steps": 4},
        "rve": {"rtol": 1e-12, "generate": {"kind": "laminate", "fractions": [0.5, 0.5], "h": 0.5},
                "phases": {"a": dict(DAMAGE, tag=1), "b": dict(DAMAGE, tag=2, kappa0=2e-3, viscosity=0.1)}},
        "solver": {"rtol": 1e-11, "atol": 1e-15, "max_iterations": 15},
        "output": {"format": "xdmf", "checkpoint_every": 0, "rve_snapshots": [{"max": "damage", "steps": "all"}]},
    }
    res = run(data, tmp=tmp_path)
    out = Path(MPI.COMM_WORLD.bcast(str(tmp_path), root=0))
    if MPI.COMM_WORLD.rank != 0:
        return
    meta = res.summary["steps"][-1]["rve_snapshots"][0]
    assert meta["damage"] > 0.05
    snapshot = read_one(out / meta["file"])
    assert_is_the_rve_of(meta, snapshot, "elasticity")
    assert average(snapshot[3], snapshot[5]["damage"]) == pytest.approx(meta["damage"], rel=1e-10)


def test_3d_snapshot(tmp_path):
    """A 3D beam of a J2 laminate clamped on the left, pulled and sheared on the right: the
    most plastic point's RVE."""
    phases = {"matrix": dict(J2_TABLE, tag=1), "fibre": {"law": "elastic", "tag": 2, "E": 8.0, "nu": 0.25}}
    data = {
        "title": "3D snapshots",
        "macro": {"degree": 1, "mesh": {"generator": "box", "width": 2.0, "height": 1.0, "depth": 1.0,
                                        "structured": 2},
                  "dirichlet": [{"boundary": "left", "component": c, "value": 0.0} for c in "xyz"]
                  + [{"boundary": "right", "component": "x", "value": 0.04},
                     {"boundary": "right", "component": "z", "value": 0.02}]},
        "loading": {"steps": 2},
        "rve": {"rtol": 1e-12, "generate": {"kind": "laminate", "dim": 3, "fractions": [0.5, 0.5], "normal": 1,
                                            "h": 0.5}, "phases": phases},
        "solver": {"rtol": 1e-11, "atol": 1e-15, "max_iterations": 12},
        "output": {"format": "none", "checkpoint_every": 0,
                   "rve_snapshots": [{"max": "equivalent_plastic_strain"}, {"point": [1.0, 0.5, 0.5]}]},
    }
    res = run(data, tmp=tmp_path)
    out = Path(MPI.COMM_WORLD.bcast(str(tmp_path), root=0))
    if MPI.COMM_WORLD.rank != 0:
        return
    metas = res.summary["steps"][-1]["rve_snapshots"]
    assert [m["file"] for m in metas] == ["rve_snapshots/rve1_0002.xdmf", "rve_snapshots/rve2_0002.xdmf"]
    assert metas[0]["equivalent_plastic_strain"] > 0
    for meta in metas:
        snapshot = read_one(out / meta["file"])
        assert snapshot[2].shape[1] == 4  # tetrahedra
        assert_is_the_rve_of(meta, snapshot, "elasticity", gdim=3)
    assert not (out / "fields.xdmf").exists()  # format = "none": snapshots only


def snapshot_data(base):
    """Every snapshot file's arrays and the summary's entries, without what depends on the
    partition (the rank, the macro cell number)."""
    summary = json.loads(Path(f"{base}/summary.json").read_text())
    metas = [{k: v for k, v in m.items() if k not in ("rank", "macro_cell")}
             for row in summary["steps"] for m in row.get("rve_snapshots", [])]
    files = {m["file"]: read_one(f"{base}/{m['file']}") for m in metas}
    return metas, files


@pytest.mark.skipif(MPI.COMM_WORLD.size == 1, reason="compares 1 and 2 ranks; runs under mpirun -n 2")
def test_one_and_two_ranks_write_the_same_snapshots(tmp_path):
    data = plate("j2")
    data["output"]["rve_snapshots"].append({"name": "far", "point": [0.1, 0.95], "steps": [1, 3]})
    base = MPI.COMM_WORLD.bcast(str(tmp_path), root=0)
    serial, parallel = serial_and_parallel(data, tmp_path)
    ranks = {m["rank"] for row in parallel.summary["steps"] for m in row.get("rve_snapshots", [])}
    ok = True
    if MPI.COMM_WORLD.rank == 0:
        (ms, fs), (mp, fp) = snapshot_data(f"{base}/s0"), snapshot_data(f"{base}/p")
        ok = len(ms) == len(mp) == 3 + 1 + 2 and [m["file"] for m in ms] == [m["file"] for m in mp]
        for a, b in zip(ms, mp):
            ok &= a["point"] == pytest.approx(b["point"], abs=1e-14)
            ok &= np.allclose(a["macro_stress"], b["macro_stress"], rtol=1e-9, atol=1e-14)
        for f in fs:
            for x, y in zip(fs[f][4:], fp[f][4:]):  # nodal and cell data of the same RVE mesh
                for k in x:
                    ok &= np.allclose(x[k], y[k], rtol=1e-8, atol=1e-12)
        ok &= all(re.fullmatch(r"rve_snapshots/(near|rve2|far)_000\d\.xdmf", f) is not None for f in fs)
    assert MPI.COMM_WORLD.bcast(ok, root=0)
    assert ranks == {0, 1}  # each rank wrote some (the owner of the point writes)



def test_a_snapshot_that_cannot_be_written_ends_every_rank_and_keeps_the_steps(tmp_path, capsys):
    """The folder ``rve_snapshots`` is a file: the rank that owns the point fails to write, and
    every rank ends with one line and exit status 2; the converged step stays on disk."""
    from fe2.cli import main
    from helpers import ROOT

    tmp = Path(MPI.COMM_WORLD.bcast(str(tmp_path), root=0))
    text = (ROOT / "fe2" / "io" / "cases" / "plate_with_hole.toml").read_text()
    for a, b in (("h = 0.08", "h = 0.3"), ("h_hole = 0.025", "h_hole = 0.15"), ("h = 0.04", "h = 0.2")):
        text = text.replace(a, b)
    out = tmp / "results"
    if MPI.COMM_WORLD.rank == 0:
        (tmp / "case.toml").write_text(text + "\n[[output.rve_snapshots]]\npoint = [0.9, 0.9]\n")
        out.mkdir()
        (out / "rve_snapshots").write_text("a file in the way")
    MPI.COMM_WORLD.barrier()
    code = main(["run", str(tmp / "case.toml"), "-q", "-o", str(out)])
    _, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err
    if MPI.COMM_WORLD.rank == 0:
        (line,) = err.splitlines()
        assert line.startswith(f"fe2: error: {out}/rve_snapshots/rve1_0001.xdmf: the RVE snapshot cannot be written (")
        assert "1 converged steps are saved" not in line  # not a solver failure
        rows = results.read_history(out / "history.csv")
        assert [r["step"] for r in rows] == ["1"]
        summary = json.loads((out / "summary.json").read_text())
        assert summary["status"] == "failed" and len(summary["steps"]) == 1
        assert (out / "fields.xdmf").exists()
    else:
        assert err == ""


def test_what_looks_like_a_mistake_but_runs_is_warned_about(tmp_path, capsys):
    """A snapshot point far outside the macro mesh, snapshot steps beyond the planned ones
    and an amplitude table that no load follows run, each with one warning line (stderr,
    rank 0) that names the key, also kept in summary.json's ``warnings``; a case without
    them has none. On 1 and 2 ranks."""
    from helpers import plastic_plate_case

    case = plastic_plate_case("warnings")
    case["loading"]["steps"] = 2
    case["rve"]["phases"]["matrix"] = {"law": "elastic", "tag": 1, "E": 1.0, "nu": 0.3}
    out = Path(MPI.COMM_WORLD.bcast(str(tmp_path), root=0))
    res = run(case, tmp=out / "clean")
    assert res.summary["warnings"] == []
    case["output"]["rve_snapshots"] = [{"name": "far", "point": [5.0, 5.0]},
                                       {"name": "late", "point": [0.9, 0.9], "steps": [1, 9]}]
    case["loading"]["amplitudes"] = {"unused": [[0.0, 0.0], [1.0, 1.0]]}
    res = run(case, tmp=out / "warned")
    w = res.summary["warnings"]
    assert len(w) == 3, w
    assert re.search(r"key 'loading\.amplitudes\.unused': no load follows this amplitude", w[0])
    far = re.search(r"key 'output\.rve_snapshots\[0\]\.point' = \[5\.0, 5\.0\] lies outside the macro mesh, "
                    r"([0-9.]+) from the nearest", w[1])
    assert far and 5.0 < float(far.group(1)) < 5.0 * np.sqrt(2)  # (the plate is [0, 1]^2 minus the hole)
    assert "key 'output.rve_snapshots[1].steps': step 9 lies beyond the 2 steps the run plans" in w[2]
    err = capsys.readouterr().err
    if MPI.COMM_WORLD.rank == 0:
        assert [line for line in err.splitlines() if line.startswith("fe2: warning: ")] == \
            [f"fe2: warning: {line}" for line in w]
    assert json.loads((out / "warned" / "summary.json").read_text())["warnings"] == w
