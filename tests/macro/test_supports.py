"""Supports and reactions of the macro problem: the rigid-body motions that the Dirichlet
conditions leave free are found and named (the system would be singular), and the reported
reactions balance the applied tractions also where a loaded edge meets a support."""

import numpy as np
import pytest
from mpi4py import MPI

from fe2.core.tensors import isotropic_stiffness
from fe2.macro.loads import Amplitude, Dirichlet, Traction
from fe2.macro.mesh import BOUNDARY_TAGS, box, rectangle
from fe2.macro.observables import Observables
from fe2.macro.problem import MacroProblem
from fe2.macro.supports import conflicting_supports, free_rigid_motions
from fe2.materials.points import LinearMaterial

TAG = BOUNDARY_TAGS


def plate(dirichlet, traction=(), comm=MPI.COMM_WORLD, degree=1):
    """An elastic 2 x 1 plate on a 4 x 2 crossed mesh, centre (1, 0.5)."""
    bcs = [Dirichlet(TAG[name], comp, value, name) for name, comp, value in dirichlet]
    loads = [Traction(TAG[name], value, name) for name, value in traction]
    return MacroProblem(rectangle(comm, 2.0, 1.0, 4, 2), LinearMaterial(isotropic_stiffness(1.0, 0.3, 2)),
                        degree=degree, dirichlet=bcs, traction=loads)


@pytest.mark.parametrize("supports,free", [
    ([("left", 0, 0.0), ("bottom", 1, 0.0)], []),
    ([("left", 0, 0.0)], ["translation in y"]),  # the case: only left fixed in x
    ([("bottom", 1, 0.0)], ["translation in x"]),
    ([("bottom", 1, 0.0), ("top", 1, 0.0)], ["translation in x"]),
    # u_y = 0 on x = 0 leaves u_x free and the rotation about the left edge's points: the
    # one about (0, 0.5) is the part of it not already a translation in x
    ([("left", 1, 0.0)], ["translation in x", "rotation about (0, 0.5)"]),
    ([("left", 0, 0.0), ("left", 1, 0.0)], []),
])
def test_free_rigid_motions_are_named(supports, free):
    p = plate(supports)
    assert free_rigid_motions(p) == free
    p.destroy()


STEP = Amplitude.from_pairs([(0, 0), (1, 1), (2, 1)], "step")
SAME_STEP = Amplitude.from_pairs([(0, 0), (1, 1), (2, 1)], "same")
RAMP = Amplitude.from_pairs([(0, 0), (2, 1)], "ramp")


@pytest.mark.parametrize("left,top,clash", [
    ((0, 0.0, None), (0, 0.0, RAMP), []),  # both 0, whatever their amplitudes
    ((0, 0.01, STEP), (0, 0.01, SAME_STEP), []),  # the same table under another name
    ((0, 0.01, None), (1, 0.02, None), []),  # other components
    ((0, 0.0, None), (0, 0.01, None), ["'left' and 'top' both prescribe u_x at 1 node (0 and 0.01)"]),
    ((0, 0.01, STEP), (0, 0.01, RAMP),
     ["'left' and 'top' both prescribe u_x at 1 node (0.01 x amplitude 'step' and 0.01 x amplitude 'ramp')"]),
    ((1, 0.01, None), (1, -0.01, STEP),
     ["'left' and 'top' both prescribe u_y at 1 node (0.01 and -0.01 x amplitude 'step')"]),
])
def test_supports_that_disagree_at_a_shared_corner_are_named(left, top, clash):
    """``left`` and ``top`` share the corner (0, 1), a node of P2 too; it is counted once on
    any number of ranks (the plate is left free: nothing is solved)."""
    bcs = [Dirichlet(TAG["left"], left[0], left[1], "left", left[2]),
           Dirichlet(TAG["top"], top[0], top[1], "top", top[2])]
    p = MacroProblem(rectangle(MPI.COMM_WORLD, 2.0, 1.0, 4, 2), LinearMaterial(isotropic_stiffness(1.0, 0.3, 2)),
                     degree=2, dirichlet=bcs)
    assert conflicting_supports(p) == clash
    p.destroy()


def test_a_face_shared_by_two_supports_counts_its_nodes():
    """In 3D two faces share an edge: a box of 2 x 2 x 2 hexahedra cut into tetrahedra has 3
    P1 nodes on it, 5 P2 nodes."""
    for degree, n in ((1, 3), (2, 5)):
        bcs = [Dirichlet(TAG["left"], 2, 0.0, "left"), Dirichlet(TAG["bottom"], 2, 0.01, "bottom")]
        p = MacroProblem(box(MPI.COMM_WORLD, 1.0, 1.0, 1.0, 2, 2, 2), LinearMaterial(isotropic_stiffness(1.0, 0.3, 3)),
                         degree=degree, dirichlet=bcs)
        assert conflicting_supports(p) == [f"'left' and 'bottom' both prescribe u_z at {n} nodes (0 and 0.01)"]
        p.destroy()


def test_reactions_balance_a_traction_on_a_supported_corner():
    """Traction on ``top`` in x and y, ``left`` fixed in x, ``bottom`` fixed in y: the
    corners (0, 1) and (2, 0) are supported and loaded in the same direction. Linear
    elasticity: one Newton update solves it."""
    p = plate([("left", 0, 0.0), ("bottom", 1, 0.0)], [("top", (0.01, 0.02))], degree=2)
    p.set_load(1.0)
    rep = p.newton(rtol=1e-12, atol=1e-14, max_iterations=3)
    assert rep.converged
    r = Observables(p).reactions()
    assert r["force_top_x"] == pytest.approx(0.02, rel=1e-12)  # 0.01 x the edge length 2
    assert r["force_top_y"] == pytest.approx(0.04, rel=1e-12)
    assert abs(r["reaction_left_x"] + r["force_top_x"]) < 1e-10 * r["force_top_x"]
    assert abs(r["reaction_bottom_y"] + r["force_top_y"]) < 1e-10 * r["force_top_y"]
    p.destroy()


def test_reactions_are_the_same_on_one_and_two_ranks():
    world = MPI.COMM_WORLD
    out = []
    for comm in (MPI.COMM_SELF, world):
        p = plate([("left", 0, 0.0), ("bottom", 1, 0.0), ("right", 0, 0.01)], [("top", (0.0, -0.005))], comm=comm)
        p.set_load(1.0)
        assert p.newton(rtol=1e-12, atol=1e-14, max_iterations=3).converged
        out.append(Observables(p).reactions())
        p.destroy()
    for key in out[0]:
        assert out[1][key] == pytest.approx(out[0][key], rel=1e-10, abs=1e-14), key
    assert np.isclose(out[1]["reaction_left_x"], -out[1]["reaction_right_x"], rtol=1e-10)
