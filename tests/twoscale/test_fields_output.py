"""What ParaView and meshio read from ``fields.xdmf``: every field of a time stamp (one
temporal collection), tensors in 3 x 3 slots in 2D and 3D (``XX XY XZ YX YY YZ ZX ZY ZZ``),
plane strain's out-of-plane stress, von Mises stress and equivalent strain, checked against
the history and closed forms of homogeneous states, single scale, homogenized and FE²."""

import meshio
import numpy as np
import pytest
from mpi4py import MPI

from helpers import run_case as run

NU = 0.3


def pulled(gdim: int, axis: str, strain: float = 0.01, material: str = "matrix", phases: dict | None = None) -> dict:
    """A homogeneous elastic block on rollers (x = 0 left, y = 0 bottom, z = 0 back), its face
    normal to ``axis`` moved by ``strain`` times the edge: uniaxial stress in 3D; in plane
    strain, sigma_xx = 0 or sigma_yy = 0 across the free face."""
    face = {"x": "right", "y": "top", "z": "front"}[axis]
    supports = [("left", "x"), ("bottom", "y"), ("back", "z")][:gdim]
    mesh = ({"generator": "rectangle", "width": 2.0, "height": 1.0, "structured": 2, "cells_y": 1} if gdim == 2 else
            {"generator": "box", "width": 2.0, "height": 1.0, "depth": 1.0, "structured": 2, "cells_y": 1,
             "cells_z": 1})
    size = {"x": 2.0, "y": 1.0, "z": 1.0}[axis]
    return {
        "title": f"pulled in {axis}",
        "macro": {"degree": 1, "material": material, "mesh": mesh,
                  "dirichlet": [{"boundary": b, "component": c, "value": 0.0} for b, c in supports]
                  + [{"boundary": face, "component": axis, "value": strain * size}]},
        "loading": {"steps": 2},
        "rve": {"generate": {"kind": "laminate", "dim": gdim, "fractions": [0.5, 0.5], "h": 0.5},
                "phases": phases or {"matrix": {"tag": 1, "E": 1.0, "nu": NU},
                                     "other": {"tag": 2, "E": 1.0, "nu": NU}}},
        "output": {"format": "xdmf", "checkpoint_every": 0},
    }


def read_series(path):
    with meshio.xdmf.TimeSeriesReader(str(path)) as reader:
        points, cells = reader.read_points_cells()
        stamps = [reader.read_data(k) for k in range(reader.num_steps)]
    return points, stamps


@pytest.mark.parametrize("gdim,axis,material", [(2, "y", "matrix"), (2, "x", "matrix"), (3, "z", "matrix"),
                                                (2, "y", "homogenized"), (2, "x", "rve")])
def test_meshio_reads_every_field_with_tensors_in_their_slots(tmp_path, gdim, axis, material):
    """Homogeneous blocks (single scale, the homogenized tensor, or FE² with a cell of two
    equal phases) in uniaxial stress (3D) or plane strain with a free lateral face."""
    res = run(pulled(gdim, axis, material=material), tmp=tmp_path)
    out = MPI.COMM_WORLD.bcast(str(tmp_path), root=0)
    if MPI.COMM_WORLD.rank != 0:
        return
    steps = res.summary["steps"]
    face = {"x": "right", "y": "top", "z": "front"}[axis]
    k = "xyz".index(axis)
    area = {"x": 1.0, "y": 2.0, "z": 2.0}[axis]
    points, stamps = read_series(f"{out}/fields.xdmf")
    assert [t for t, _, _ in stamps] == pytest.approx([s["load_factor"] for s in steps])
    for (_t, nodal, cell), row in zip(stamps, steps, strict=True):
        assert set(nodal) == {"displacement"}
        assert set(cell) == {"strain", "stress", "von_mises_stress", "equivalent_strain"}
        u = nodal["displacement"]
        on_face = np.isclose(points[:, k], points[:, k].max())
        # the nodal displacement of the moved face is the history's mean displacement
        assert u[on_face, k] == pytest.approx(row[f"displacement_{face}_{axis}"], rel=1e-12)
        sig = np.concatenate(cell["stress"]).reshape(-1, 3, 3)
        eps = np.concatenate(cell["strain"]).reshape(-1, 3, 3)
        s = row[f"reaction_{face}_{axis}"] / area  # the uniform stress in the pulled direction
        assert sig[:, k, k] == pytest.approx(s, rel=1e-9) and abs(s) > 1e-3
        assert eps[:, k, k] == pytest.approx(row[f"displacement_{face}_{axis}"] / {"x": 2, "y": 1, "z": 1}[axis],
                                             rel=1e-9)
        others = [i for i in range(gdim) if i != k]
        for i in others:  # free lateral faces: no other stress component in the plane
            assert np.abs(sig[:, i, i]).max() < 1e-9 * abs(s)
        assert np.abs(sig - sig.transpose(0, 2, 1))[:, :gdim, :gdim].max() < 1e-14
        offdiag = ~np.eye(3, dtype=bool)
        assert np.abs(sig[:, offdiag]).max() < 1e-9 * abs(s)
        lateral = eps[:, others[0], others[0]]
        if gdim == 3:  # uniaxial stress: eps_lat = -nu eps
            assert lateral == pytest.approx(-NU * eps[:, k, k], rel=1e-9)
        else:  # plane strain: eps_zz = 0, eps_lat = -nu/(1-nu) eps, sigma_zz = nu sigma
            assert lateral == pytest.approx(-NU / (1 - NU) * eps[:, k, k], rel=1e-9)
            assert np.all(eps[:, 2, 2] == 0)
            assert sig[:, 2, 2] == pytest.approx(NU * s, rel=1e-9)
        zz = NU * s if gdim == 2 else 0.0  # the principal stresses are s, zz and 0
        vm = np.sqrt(s**2 + zz**2 - s * zz)
        assert np.concatenate(cell["von_mises_stress"]).ravel() == pytest.approx(abs(vm), rel=1e-9)
        e_k, e_lat = eps[0, k, k], lateral[0]
        e_zz = 0.0 if gdim == 2 else e_lat  # principal strains e_k, e_lat, e_zz: sqrt(2/3 e:e) = sqrt(2)/3 |..|
        e_eq = np.sqrt(2.0) / 3.0 * np.sqrt((e_k - e_lat) ** 2 + (e_lat - e_zz) ** 2 + (e_zz - e_k) ** 2)
        assert np.concatenate(cell["equivalent_strain"]).ravel() == pytest.approx(e_eq, rel=1e-9)


J2 = {"law": "j2", "E": 1.0, "nu": NU, "sigma_y": 0.005, "H_iso": 0.05, "H_kin": 0.02}


@pytest.mark.parametrize("engine", ["batched", "reference"])
def test_plastic_out_of_plane_stress_of_fe2_equals_the_single_scale_one(tmp_path, engine):
    """A homogeneous J2 cell: the RVE average of sigma_zz (from each point's committed
    fluctuation and plastic strain) equals the single-scale law's, and plasticity has moved
    it off the elastic nu (sigma_xx + sigma_yy)."""
    phases = {"matrix": dict(J2, tag=1), "other": dict(J2, tag=2)}
    fe2 = pulled(2, "x", 0.02, material="rve", phases=phases)
    fe2["rve"]["engine"] = engine
    run(fe2, tmp=tmp_path / "fe2")
    run(pulled(2, "x", 0.02, phases=phases), tmp=tmp_path / "single")
    out = MPI.COMM_WORLD.bcast(str(tmp_path), root=0)
    if MPI.COMM_WORLD.rank != 0:
        return
    (_, _, a), (_, _, b) = (read_series(f"{out}/{name}/fields.xdmf")[1][-1] for name in ("fe2", "single"))
    sa, sb = (np.concatenate(c["stress"]).reshape(-1, 3, 3) for c in (a, b))
    assert sa[:, 2, 2] == pytest.approx(sb[:, 2, 2], rel=1e-8)
    elastic = NU * (sa[:, 0, 0] + sa[:, 1, 1])
    assert np.abs(sa[:, 2, 2] - elastic).min() > 0.05 * np.abs(sa[:, 2, 2]).max()
