import cProfile, pstats, sys, time, json
t0 = time.perf_counter()
sys.path.insert(0, "tests")
from mpi4py import MPI
import helpers
from fe2 import twoscale
from fe2.io import config
t1 = time.perf_counter()
case = helpers.plastic_plate_case("prof")
cfg = config.parse_case(json.loads(json.dumps(case)), "x")
pr = cProfile.Profile(); pr.enable()
twoscale.run(cfg, MPI.COMM_WORLD, output=".cmp-out/prof", verbose=False)
pr.disable()
t2 = time.perf_counter()
print("imports", t1 - t0, "run", t2 - t1)
pstats.Stats(pr).sort_stats("cumulative").print_stats(35)
