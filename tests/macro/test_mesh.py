"""Macro mesh generators: the bar's height profile, centred or off-centre (a strip notched
near one end), on any number of ranks."""

import numpy as np
import pytest
from mpi4py import MPI

from fe2.macro import mesh as macromesh


@pytest.mark.parametrize("at", [0.5, 0.2])
def test_bar_height_is_reduced_where_asked(at):
    L, H, red, w = 4.0, 1.0, 0.25, 0.5
    mm = macromesh.bar(MPI.COMM_WORLD, L, H, 40, 4, imperfection=red, imperfection_width=w, imperfection_at=at)
    x = mm.mesh.geometry.x
    top = np.isclose(x[:, 1], H * (1.0 - red * np.exp(-(((x[:, 0] - at * L) / w) ** 2))), rtol=1e-14, atol=0.0)
    # the nodes of the top edge: the height there is h(x) (checked on every rank's nodes)
    xs = MPI.COMM_WORLD.allgather(x[top & (x[:, 1] > 0.5 * H), 0])
    xs = np.unique(np.concatenate(xs))
    assert xs.size == 41 and xs.min() == 0.0 and xs.max() == L
    lowest = MPI.COMM_WORLD.allreduce(
        float(np.min(np.where(np.isclose(x[:, 0], at * L), x[:, 1], np.inf), initial=np.inf)), op=MPI.MIN)
    assert lowest == 0.0
    highest_at_centre = MPI.COMM_WORLD.allreduce(
        float(np.max(np.where(np.isclose(x[:, 0], at * L), x[:, 1], -np.inf), initial=-np.inf)), op=MPI.MAX)
    assert highest_at_centre == pytest.approx(H * (1.0 - red), rel=1e-14)


def test_bar_refuses_an_imperfection_outside_the_bar():
    with pytest.raises(ValueError, match="imperfection_at must be in"):
        macromesh.bar(MPI.COMM_WORLD, 4.0, 1.0, 8, 2, imperfection_at=1.5)
