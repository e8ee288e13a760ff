import numpy as np, time
from mpi4py import MPI
from dolfinx import mesh as dmesh
from fe2.macromesh import rectangle
from fe2.macro import MacroProblem, Dirichlet
from fe2.damage import IsotropicDamage
from fe2.phasematerial import PhaseMaterial
L, H = 10.0, 1.0
for nx in (40,):
    mm = rectangle(MPI.COMM_WORLD, L, H, nx, 1)
    m = mm.mesh; tdim=2
    nc = m.topology.index_map(tdim).size_local
    mid = dmesh.compute_midpoints(m, tdim, np.arange(nc, dtype=np.int32))
    tags = dmesh.meshtags(m, tdim, np.arange(nc, dtype=np.int32), np.where(np.abs(mid[:,0]-L/2) < 0.5, 2, 1).astype(np.int32))
    law = IsotropicDamage(1.0, 0.0, 1e-3, 2, softening="exponential", alpha=0.99, beta=100.)
    weak = IsotropicDamage(1.0, 0.0, 0.9e-3, 2, softening="exponential", alpha=0.99, beta=100.)
    mat = PhaseMaterial(tags, {1: law, 2: weak})
    p = MacroProblem(mm, mat, degree=1, dirichlet=[Dirichlet(1,0,0.0,"left"), Dirichlet(2,1,0.0,"bottom"), Dirichlet(3,0,1.0,"right")],
                     nonlocal_length=0.5)
    F=[]; lam=0; dlam=5e-4
    while lam < 0.03:
        p.set_load(lam+dlam)
        rep = p.newton(1e-9, 1e-14, 12)
        if not rep.converged:
            p.revert(); dlam/=2; print("cut", lam, dlam); 
            if dlam<1e-7: break
            continue
        lam += dlam
        p.commit()
        F.append(p.reactions()["reaction_right_x"])
        print(f"{lam:.5f} {F[-1]:.4e} {rep.iterations} " + " ".join(f"{r:.1e}" for r in rep.residuals))
