"""Compiled point kernels, numba against C through cffi against numpy: the measurement behind
the choice of numba for :mod:`fe2.kernels`, on the J2 return mapping.

The same inputs go through three implementations of :class:`fe2.materials.plasticity.J2Plasticity`'s
return mapping, in plane strain (Mandel components ``[0, 1, 5]``) and in 3D, for four
hardening variants (perfect; linear ``H_iso``; Voce ``Q``, ``b`` with ``H_iso``; mixed: Voce
with ``H_iso`` and kinematic ``H_kin``):

- ``numpy``: ``J2Plasticity.integrate_3d_numpy``, the reference;
- ``numba``: ``J2Plasticity.integrate_3d``, which calls :func:`fe2.kernels.j2.return_mapping`;
- ``c``: the same algorithm ported line by line to C (``C_SOURCE`` below: the same operations
  in the same order), compiled with cffi's API mode (``ffi.set_source`` / ``ffi.compile``,
  no fast-math, no floating-point contraction) and called from a copy of
  ``integrate_3d`` whose only change is the kernel call (arrays passed with
  ``ffi.from_buffer``).

Per batch size (micro points per call: 1, 1e3, 1e4, 1e5) it measures the time of a call as
fe2 makes it (input checks, output allocation, the kernel) and, for the two compiled ones,
of the kernel alone on prepared arguments and preallocated outputs: best of ``--rounds``
repeats, interleaved (numba, C, numpy, numba kernel, C kernel, numba, ...), each repeat a
loop of calls long enough to time. A batch of one point gives the per-call overhead. The
one-time costs run in fresh interpreters: importing numba, the first call with an empty
numba cache (compilation) and with the warm cache (loading it), compiling the C module
with cffi and importing the built module. All three implementations must agree to 1e-12
(stress, tangent and new state); the JSON records the largest differences.

    bash docker/fe2-env python3 benchmarks/kernels.py            # full, ~40 s
    bash docker/fe2-env python3 benchmarks/kernels.py --quick    # smoke test, ~5 s

Results go to ``benchmarks/results/kernels.json`` (see ``benchmarks/README.md``).
"""

from __future__ import annotations

import machine  # first: pins BLAS/OpenMP threads to one (one core) before numpy loads

import datetime
import gc
import importlib
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "results" / "kernels.json"

FULL_SIZES = (1, 1_000, 10_000, 100_000)
QUICK_SIZES = (1, 1_000)
#: the law (E, nu, sigma_y) and its hardening variants, as in tests/kernels/test_kernels.py
LAW = {"E": 1.0, "nu": 0.3, "sigma_y": 0.01}
HARDENING = {"perfect": {}, "linear": {"H_iso": 0.05}, "voce": {"H_iso": 0.05, "Q": 0.01, "b": 30.0},
             "mixed": {"H_iso": 0.05, "Q": 0.01, "b": 30.0, "H_kin": 0.02}}
TOLERANCE = 1e-12
#: gcc flags: optimised, but rounding like numba and numpy: no fast-math, and no fused
#: multiply-adds (-ffp-contract=off; gcc contracts by default where the target has FMA, e.g.
#: with -march=native or on aarch64). -march=native made the 3D kernel about 1.4 times slower
#: on the development VM (AVX-512 code for the short loops over 6 components)
CFLAGS = "-O3 -ffp-contract=off"
C_MODULE = "_fe2_bench_j2"

C_CDEF = """
int64_t j2_return_mapping(int64_t N, int64_t k, const double *eps, const double *state, const int64_t *comps,
                          const double *C, const double *Idev, double K, double G, double sigma_y,
                          double H_iso, double Q, double b, double H_kin, double rtol, int64_t maxiter,
                          double *sigma, double *tangent, double *trial);
"""

#: fe2/kernels/j2.py's return_mapping, line by line; arrays C-contiguous, row i of ``eps``
#: at ``eps + i k``, of ``state``/``trial`` at ``+ 13 i``, of ``tangent`` at ``+ i k k``
C_SOURCE = r"""
#include <math.h>
#include <stdint.h>

int64_t j2_return_mapping(int64_t N, int64_t k, const double *eps, const double *state, const int64_t *comps,
                          const double *C, const double *Idev, double K, double G, double sigma_y,
                          double H_iso, double Q, double b, double H_kin, double rtol, int64_t maxiter,
                          double *sigma, double *tangent, double *trial)
{
    const double SQRT32 = sqrt(1.5), SQRT23 = sqrt(2.0 / 3.0), SQRT6 = sqrt(6.0);
    const int voce = Q > 0.0 && b > 0.0;
    const double h0 = 3.0 * G + H_kin;
    int64_t failed = 0;
    double e[6], xi[6];
    for (int64_t i = 0; i < N; i++) {
        const double *st = state + 13 * i, *ep = eps + k * i;
        double *sg = sigma + k * i, *tg = tangent + k * k * i, *tr_i = trial + 13 * i;
        for (int a = 0; a < 6; a++)
            e[a] = -st[a];
        for (int64_t j = 0; j < k; j++)
            e[comps[j]] += ep[j];
        const double tr = e[0] + e[1] + e[2];
        for (int a = 0; a < 6; a++)
            xi[a] = (2.0 * G) * e[a];
        for (int a = 0; a < 3; a++)
            xi[a] -= (2.0 * G / 3.0) * tr;
        const double mean = K * tr;
        for (int64_t j = 0; j < k; j++) {
            const int64_t c = comps[j];
            sg[j] = xi[c] + (c < 3 ? mean : 0.0);
        }
        double norm2 = 0.0;
        for (int a = 0; a < 6; a++) {
            xi[a] -= st[6 + a];
            norm2 += xi[a] * xi[a];
        }
        const double norm_xi = sqrt(norm2);
        const double q_tr = SQRT32 * norm_xi;
        const double p_n = st[12];
        const double R_n = H_iso * p_n + (voce ? Q * (1.0 - exp(-b * p_n)) : 0.0);
        const double f_tr = q_tr - sigma_y - R_n;
        for (int a = 0; a < 13; a++)
            tr_i[a] = st[a];
        for (int64_t j = 0; j < k; j++)
            for (int64_t m = 0; m < k; m++)
                tg[k * j + m] = C[k * j + m];
        if (!(f_tr > 0.0))
            continue;
        /* the plastic multiplier */
        double dp;
        if (!voce) {
            dp = f_tr / (h0 + H_iso);
        } else {
            dp = 0.0;
            int done = 0;
            for (int64_t it = 0; it < maxiter; it++) {
                const double e_b = exp(-b * (p_n + dp));
                const double R = H_iso * (p_n + dp) + Q * (1.0 - e_b);
                const double dR = H_iso + Q * b * e_b;
                const double g = q_tr - h0 * dp - sigma_y - R;
                const double step = g / (h0 + dR);
                if (fabs(g) <= rtol * q_tr || fabs(step) <= 1e-16 * dp) {
                    done = 1;
                    break;
                }
                dp += step;
            }
            if (!done) {
                failed += 1;
                continue;
            }
        }
        const double p = p_n + dp;
        for (int64_t j = 0; j < k; j++)
            sg[j] -= (SQRT6 * G * dp) * (xi[comps[j]] / norm_xi);
        for (int a = 0; a < 6; a++) {
            const double n_a = xi[a] / norm_xi;
            tr_i[a] += (SQRT32 * dp) * n_a;
            tr_i[6 + a] += (SQRT23 * H_kin * dp) * n_a;
        }
        tr_i[12] = p;
        const double dR = H_iso + (voce ? Q * b * exp(-b * p) : 0.0);
        const double aa = 3.0 * G * dp / q_tr;
        const double theta_bar = 3.0 * G / (3.0 * G + H_kin + dR) - aa;
        for (int64_t j = 0; j < k; j++) {
            const double nj = xi[comps[j]] / norm_xi;
            for (int64_t m = 0; m < k; m++) {
                const double nm = xi[comps[m]] / norm_xi;
                tg[k * j + m] -= (2.0 * G * aa) * Idev[k * j + m] + (2.0 * G * theta_bar) * (nj * nm);
            }
        }
    }
    return failed;
}
"""

# -- one-time costs, each in a fresh interpreter (``python3 -c CODE CONFIG``) --------------------
#: both: the arrays of a one-point call (one plastic point), as J2Plasticity.integrate_3d passes
#: them: float64 and int64, C-contiguous; Python floats and an int for the scalars
_PREPARED = r"""
def prepared(a):
    comps = np.array(a["comps"], dtype=np.int64)
    k = comps.size
    return (np.array(a["eps"], dtype=float), np.zeros((1, 13)), comps, np.array(a["C"], dtype=float),
            np.array(a["Idev"], dtype=float), *a["scalars"],
            np.empty((1, k)), np.empty((1, k, k)), np.empty((1, 13)))
"""

#: numba: imports, then the first and second call of fe2.kernels.j2.return_mapping in plane strain
#: and a first 3D call (the same signature: nothing compiled); numba's cache statistics say
#: whether the first call compiled (a miss) or loaded the cache (a hit)
NUMBA_WORKER = r"""
import json, sys, time
clock = time.perf_counter
cfg = json.loads(sys.argv[1])
t0 = clock()
import numpy as np
t1 = clock()
import numba
t2 = clock()
sys.path.insert(0, cfg["root"])
import fe2.kernels.j2 as kj
from fe2 import kernels
t3 = clock()
assert kernels.enabled()
""" + _PREPARED + r"""
args2, args3 = prepared(cfg["call"]["2d"]), prepared(cfg["call"]["3d"])
c0 = clock()
kj.return_mapping(*args2)
c1 = clock()
kj.return_mapping(*args2)
c2 = clock()
kj.return_mapping(*args3)
c3 = clock()
stats = kj.return_mapping.stats
print(json.dumps({
    "import_numpy_s": t1 - t0, "import_numba_s": t2 - t1, "import_kernel_module_s": t3 - t2,
    "first_call_s": c1 - c0, "second_call_s": c2 - c1, "compile_or_load_s": (c1 - c0) - (c2 - c1),
    "first_3d_call_s": c3 - c2, "cache_hits": sum(stats.cache_hits.values()),
    "cache_misses": sum(stats.cache_misses.values()), "signatures": [str(s) for s in kj.return_mapping.signatures]}))
"""

#: cffi, both runs: the one-point call through ffi.from_buffer
_CFFI_CALL = _PREPARED + r"""
def call(mod, args):
    eps, state, comps, C, Idev, *scalars, sigma, tangent, trial = args
    fb = mod.ffi.from_buffer
    return mod.lib.j2_return_mapping(1, comps.size, fb("double[]", eps), fb("double[]", state), fb("int64_t[]", comps),
                                     fb("double[]", C), fb("double[]", Idev), *scalars,
                                     fb("double[]", sigma), fb("double[]", tangent), fb("double[]", trial))
"""

#: cffi with an empty build folder: set-up, compilation (C generation, gcc, link), import, calls
CFFI_COLD_WORKER = r"""
import json, os, sys, time
clock = time.perf_counter
cfg = json.loads(sys.argv[1])
t0 = clock()
import numpy as np
t1 = clock()
import cffi
t2 = clock()
""" + _CFFI_CALL + r"""
ffi = cffi.FFI()
ffi.cdef(cfg["cdef"])
ffi.set_source(cfg["module"], cfg["source"], extra_compile_args=cfg["cflags"], libraries=["m"])
t3 = clock()
so = ffi.compile(tmpdir=cfg["build"], verbose=False)
t4 = clock()
sys.path.insert(0, cfg["build"])
import importlib
mod = importlib.import_module(cfg["module"])
t5 = clock()
args = prepared(cfg["call"]["2d"])
c0 = clock()
call(mod, args)
c1 = clock()
call(mod, args)
c2 = clock()
print(json.dumps({"import_numpy_s": t1 - t0, "import_cffi_s": t2 - t1, "ffi_setup_s": t3 - t2, "compile_s": t4 - t3,
                  "import_module_s": t5 - t4, "first_call_s": c1 - c0, "second_call_s": c2 - c1,
                  "module_bytes": os.path.getsize(so)}))
"""

#: cffi with the module already built: its import and calls
CFFI_WARM_WORKER = r"""
import json, sys, time
clock = time.perf_counter
cfg = json.loads(sys.argv[1])
t0 = clock()
import numpy as np
t1 = clock()
""" + _CFFI_CALL + r"""
sys.path.insert(0, cfg["build"])
import importlib
mod = importlib.import_module(cfg["module"])
t2 = clock()
args = prepared(cfg["call"]["2d"])
c0 = clock()
call(mod, args)
c1 = clock()
call(mod, args)
c2 = clock()
print(json.dumps({"import_numpy_s": t1 - t0, "import_module_s": t2 - t1, "first_call_s": c1 - c0,
                  "second_call_s": c2 - c1}))
"""


def run_worker(code: str, cfg: dict, env: dict) -> dict:
    """Run ``code`` in a fresh ``python3 -c`` with ``cfg`` as JSON; its JSON answer (last line)
    plus ``process_wall_s``, the whole process from start to exit."""
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code, json.dumps(cfg)], capture_output=True, text=True, env=env,
                       cwd=cfg["build"] if "build" in cfg else None, timeout=600)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"worker failed:\n{p.stderr[-3000:]}")
    return {**json.loads(p.stdout.strip().splitlines()[-1]), "process_wall_s": wall}


def call_config(law) -> dict:
    """What a worker's one-point calls need (one plastic point, plane strain and 3D), as JSON."""
    from fe2.core.tensors import DEVIATORIC3, PLANE_STRAIN

    scalars = [law.K, law.G, law.sigma_y, law.H_iso, law.Q, law.b, law.H_kin, law.newton_rtol, law.newton_maxiter]
    out = {}
    for key, c, eps in (("2d", PLANE_STRAIN, [[0.02, -0.01, 0.015]]),
                        ("3d", np.arange(6), [[0.02, -0.01, 0.0, 0.0, 0.0, 0.015]])):
        cc = np.ix_(c, c)
        out[key] = {"eps": eps, "comps": c.tolist(), "C": law.C3[cc].tolist(), "Idev": DEVIATORIC3[cc].tolist(),
                    "scalars": scalars}
    return out


def one_time_costs(repeats: int, cflags: list[str], law, tmp: Path) -> tuple[dict, Path]:
    """Cold and warm one-time costs of numba and cffi, ``repeats`` times interleaved (each cold
    run with a new empty cache / build folder); every run and the best (smallest) value of every
    field. Also the folder of the last built C module, which the timings then use."""
    env = {k: v for k, v in os.environ.items() if k != "FE2_KERNELS"}
    runs = {"numba": {"cold": [], "warm": []}, "cffi": {"cold": [], "warm": []}}
    build = None
    for r in range(repeats):
        cache = tmp / f"numba-cache-{r}"
        build = tmp / f"cffi-build-{r}"
        cache.mkdir()
        build.mkdir()
        numba_cfg = {"root": str(machine.ROOT), "call": call_config(law)}
        numba_env = {**env, "NUMBA_CACHE_DIR": str(cache)}
        cffi_cfg = {"build": str(build), "module": C_MODULE, "cdef": C_CDEF, "source": C_SOURCE, "cflags": cflags,
                    "call": call_config(law)}
        runs["numba"]["cold"].append(run_worker(NUMBA_WORKER, numba_cfg, numba_env))
        runs["cffi"]["cold"].append(run_worker(CFFI_COLD_WORKER, cffi_cfg, env))
        runs["numba"]["warm"].append(run_worker(NUMBA_WORKER, numba_cfg, numba_env))
        runs["cffi"]["warm"].append(run_worker(CFFI_WARM_WORKER, cffi_cfg, env))
        runs["numba"]["cold"][-1]["cache_files"] = sum(1 for f in cache.rglob("*") if f.is_file())
    out = {}
    for tool, kinds in runs.items():
        out[tool] = {}
        for kind, rs in kinds.items():
            best = {}
            for key, value in rs[0].items():
                if isinstance(value, float):
                    best[key] = min(r[key] for r in rs)
                elif key in ("cache_hits", "cache_misses", "cache_files", "module_bytes", "signatures"):
                    best[key] = value  # the same in every run (first run's value)
            out[tool][kind] = {"best": best, "runs": rs}
    return out, build


def c_kernel(mod):
    """``return_mapping(...)`` with fe2.kernels.j2's signature, calling the C function on the
    arrays' buffers (C-contiguous float64 / int64; ``from_buffer`` refuses non-contiguous ones)."""
    fb, lib = mod.ffi.from_buffer, mod.lib

    def return_mapping(eps, state, comps, C, Idev, K, G, sigma_y, H_iso, Q, b, H_kin, rtol, maxiter,
                       sigma, tangent, trial):
        N, k = eps.shape
        return lib.j2_return_mapping(N, k, fb("double[]", eps), fb("double[]", state), fb("int64_t[]", comps),
                                     fb("double[]", C), fb("double[]", Idev), K, G, sigma_y, H_iso, Q, b, H_kin,
                                     rtol, maxiter, fb("double[]", sigma), fb("double[]", tangent),
                                     fb("double[]", trial))

    return return_mapping


def c_integrate_3d(kernel):
    """``J2Plasticity.integrate_3d`` (kernels enabled) with the C kernel: the same checks,
    conversions and allocations (``integrate_3d_with``), so that its timing compares with
    numba's."""

    def integrate_3d(self, eps, state, components=None):
        return self.integrate_3d_with(kernel, eps, state, components)

    return integrate_3d


def inputs(law, n: int, components, seed: int):
    """``n`` strains and committed states: a plastic history (numpy return mapping from the
    virgin state at 0.8 times the strain), then the strain itself. Strains N(0, 0.02²) per
    component (yield strain about 0.01); a random third of the points scaled by 0.01, so that
    they stay elastic. Both C-contiguous."""
    k = 6 if components is None else len(components)
    rng = np.random.default_rng(seed)
    eps = 0.02 * rng.standard_normal((n, k))
    eps[rng.random(n) < 1.0 / 3.0] *= 0.01
    committed = law.integrate_3d_numpy(0.8 * eps, law.initial_state(n), components).state
    return np.ascontiguousarray(eps), np.ascontiguousarray(committed)


def rel(a, b) -> float:
    """max |a - b| / max |b| (as tests/kernels)."""
    return float(np.abs(np.asarray(a) - b).max() / max(np.abs(b).max(), 1e-300))


def interleaved_times(calls: dict, rounds: int, min_time: float) -> tuple[dict, dict]:
    """Seconds per call of every callable in ``calls``, ``rounds`` times: each timed as a loop
    of calls lasting at least ``min_time`` (loop length calibrated once), the callables
    interleaved in every round (gc off while timing); per callable the list of the rounds'
    loop averages, and its loop length."""
    inner = {}
    for name, fn in calls.items():
        fn()  # warm: first-call costs, page faults of the outputs
        t0 = time.perf_counter()
        fn()
        once = time.perf_counter() - t0
        inner[name] = max(1, min(100_000, math.ceil(min_time / max(once, 1e-9))))
    times = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            n = inner[name]
            gc.disable()
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            dt = (time.perf_counter() - t0) / n
            gc.enable()
            times[name].append(dt)
    return times, inner

PAIRS = {"numba_vs_numpy": ("numba", "numpy"), "c_vs_numpy": ("c", "numpy"), "c_vs_numba": ("c", "numba")}


def measure_size(law, components, eps, state, c_int, c_rm, rounds: int, min_time: float, case: dict,
                 worst: dict) -> dict:
    """One batch of ``len(eps)`` points: the three answers compared (the largest differences go
    into ``case`` and ``worst``), then the interleaved timings; the row of the JSON."""
    from fe2.kernels.j2 import return_mapping

    n = len(eps)
    results = {"numba": law.integrate_3d(eps, state, components), "c": c_int(law, eps, state, components),
               "numpy": law.integrate_3d_numpy(eps, state, components)}
    for pair, (a, b) in PAIRS.items():
        for field, x, y in zip(("flux", "tangent", "state"), results[a], results[b]):
            d = rel(x, y)
            case["max_rel_diff"][pair][field] = max(case["max_rel_diff"][pair][field], d)
            worst[pair] = max(worst[pair], d)
    case["c_bitwise_equal_numba"] &= all(np.array_equal(x, y) for x, y in zip(results["c"], results["numba"]))
    # both kernels write into the same outputs: the same memory layout (alignment, cache
    # associativity) for both, so that only the code differs
    args = law.kernel_arguments(eps, state, components)
    calls = {"numba": lambda: law.integrate_3d(eps, state, components),
             "c": lambda: c_int(law, eps, state, components),
             "numpy": lambda: law.integrate_3d_numpy(eps, state, components),
             "numba_kernel": lambda: return_mapping(*args),
             "c_kernel": lambda: c_rm(*args)}
    times, inner = interleaved_times(calls, rounds, min_time)
    best = {name: min(t) for name, t in times.items()}
    row = {"points": n, "plastic_fraction": float(np.mean(results["numpy"].state[:, 12] != state[:, 12]))}
    for impl in ("numba", "c", "numpy"):
        row[impl] = {"call_s": best[impl], "call_s_per_point": best[impl] / n,
                     "call_s_median": float(np.median(times[impl])), "calls_per_timing": inner[impl]}
        if impl != "numpy":
            kern = impl + "_kernel"
            row[impl].update({"kernel_s": best[kern], "kernel_s_per_point": best[kern] / n,
                              "kernel_s_median": float(np.median(times[kern])), "kernel_calls_per_timing": inner[kern]})
    row["c_over_numba"] = best["c"] / best["numba"]
    row["numpy_over_numba"] = best["numpy"] / best["numba"]
    row["c_over_numba_kernel"] = best["c_kernel"] / best["numba_kernel"]
    # the same ratios from the timings of one round (measured within milliseconds of each
    # other), median over the rounds: less affected by load that comes and goes
    paired = {"c_over_numba": ("c", "numba"), "numpy_over_numba": ("numpy", "numba"),
              "c_over_numba_kernel": ("c_kernel", "numba_kernel")}
    row["paired_median"] = {key: float(np.median(np.divide(times[a], times[b]))) for key, (a, b) in paired.items()}
    return row


def geometric_mean(values) -> float:
    return float(math.exp(sum(math.log(v) for v in values) / len(values)))


def main(argv=None) -> int:
    ap = machine.parser(__doc__, DEFAULT_OUTPUT, "sizes 1 and 1000, 3 rounds, short timings (smoke test)")
    ap.add_argument("--sizes", type=int, nargs="+", default=None,
                    help=f"micro points per call (default {' '.join(map(str, FULL_SIZES))}; quick "
                         f"{' '.join(map(str, QUICK_SIZES))})")
    ap.add_argument("--rounds", type=int, default=None,
                    help="interleaved repeats of every timing (default 15, quick 3)")
    ap.add_argument("--min-time", type=float, default=None,
                    help="seconds a timed loop of calls lasts at least (default 0.003, quick 0.002)")
    ap.add_argument("--cold-repeats", type=int, default=None,
                    help="repeats of the one-time cost measurements (default 3, quick 1)")
    ap.add_argument("--cflags", default=CFLAGS, help=f"gcc flags of the C module (default '{CFLAGS}')")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random strains")
    ap.add_argument("--only", default=None,
                    help="only the cases whose label DIM:HARDENING (e.g. 2:voce) starts with one of these "
                         "comma-separated prefixes (e.g. '3:' or '2:perfect,3:mixed')")
    args = ap.parse_args(argv)
    sizes = tuple(args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES))
    rounds = args.rounds or (3 if args.quick else 15)
    min_time = args.min_time or (0.002 if args.quick else 0.003)
    cold_repeats = args.cold_repeats or (1 if args.quick else 3)
    cflags = shlex.split(args.cflags)
    if any("fast-math" in f or f == "-Ofast" for f in cflags):
        ap.error("no fast-math: the C kernel must round like numba and numpy")

    if not machine.runs_serially("kernels.py"):
        return 2
    os.environ.pop("FE2_KERNELS", None)  # the kernels are measured whatever a run of fe2 would use
    import cffi
    import llvmlite
    import numba

    from fe2 import kernels
    from fe2.core.tensors import PLANE_STRAIN
    from fe2.kernels.j2 import return_mapping
    from fe2.materials.plasticity import J2Plasticity

    if not kernels.enabled():
        print("kernels.py: numba is not installed: nothing to measure", file=sys.stderr)
        return 2
    try:
        gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        gcc = None
    out = {"benchmark": "kernels", "machine": machine.machine_info(),
           "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
           "config": {"quick": args.quick, "sizes": list(sizes), "rounds": rounds, "min_time_s": min_time,
                      "cold_repeats": cold_repeats, "seed": args.seed, "only": args.only, "law": LAW,
                      "hardening": HARDENING,
                      "tolerance": TOLERANCE,
                      "inputs": "strains N(0, 0.02^2) per component, a random third scaled by 0.01 (elastic); "
                                "committed state: numpy return mapping at 0.8 x strain from the virgin state",
                      "timing": "time.perf_counter; per implementation the best of `rounds` interleaved repeats, "
                                "each a loop of calls lasting >= min_time_s (gc off)",
                      "c_compiler": gcc, "cflags": cflags,
                      "versions": {"numba": numba.__version__, "llvmlite": llvmlite.__version__,
                                   "cffi": cffi.__version__, "numba_cpu_name": numba.config.CPU_NAME or "host"}},
           "one_time": None, "cases": [], "agreement": None, "summary": None}
    record = machine.Record(args.output, out)

    with tempfile.TemporaryDirectory(prefix="fe2-kernels-") as tmp:
        out["one_time"], build = one_time_costs(cold_repeats, cflags, J2Plasticity(gdim=2, **LAW, **HARDENING["mixed"]),
                                                Path(tmp))
        record.write()
        sys.path.insert(0, str(build))
        mod = importlib.import_module(C_MODULE)
        c_rm = c_kernel(mod)
        c_int = c_integrate_3d(c_rm)

        worst = dict.fromkeys(PAIRS, 0.0)
        for dim, components in ((2, PLANE_STRAIN), (3, None)):
            for name, hardening in HARDENING.items():
                if args.only and not any(f"{dim}:{name}".startswith(p) for p in args.only.split(",")):
                    continue
                law = J2Plasticity(gdim=dim, **LAW, **hardening)
                eps_all, state_all = inputs(law, max(sizes), components, args.seed)
                case = {"dim": dim, "components": list(range(6)) if components is None else components.tolist(),
                        "hardening": name, "parameters": {**LAW, **hardening}, "sizes": [],
                        "max_rel_diff": {pair: {"flux": 0.0, "tangent": 0.0, "state": 0.0} for pair in PAIRS},
                        "c_bitwise_equal_numba": True}
                for n in sizes:
                    row = measure_size(law, components, eps_all[:n], state_all[:n], c_int, c_rm, rounds, min_time,
                                       case, worst)
                    case["sizes"].append(row)
                    print(f"{dim}D {name:<8s} {n:>7d} points ({100 * row['plastic_fraction']:3.0f} % plastic): "
                          f"ns per point numba {1e9 * row['numba']['call_s_per_point']:9.1f}, "
                          f"C {1e9 * row['c']['call_s_per_point']:9.1f}, "
                          f"numpy {1e9 * row['numpy']['call_s_per_point']:9.1f}; C/numba {row['c_over_numba']:.2f} "
                          f"(kernel {row['c_over_numba_kernel']:.2f}), numpy/numba {row['numpy_over_numba']:.1f}",
                          flush=True)
                out["cases"].append(case)
                record.write()
        out["agreement"] = {**{f"max_rel_diff_{k}": v for k, v in worst.items()}, "tolerance": TOLERANCE,
                            "all_agree": all(v <= TOLERANCE for v in worst.values()),
                            "c_bitwise_equal_numba": all(c["c_bitwise_equal_numba"] for c in out["cases"])}
        out["numba_signatures"] = [str(s) for s in return_mapping.signatures]
    summary = []
    for i, n in enumerate(sizes):
        rows = [c["sizes"][i] for c in out["cases"]]
        entry = {"points": n}
        for key in ("c_over_numba", "numpy_over_numba", "c_over_numba_kernel"):
            vals = [r[key] for r in rows]
            entry[key] = {"min": min(vals), "geomean": geometric_mean(vals), "max": max(vals)}
        entry["paired_median_geomean"] = {key: geometric_mean([r["paired_median"][key] for r in rows])
                                          for key in rows[0]["paired_median"]}
        for impl in ("numba", "c", "numpy"):
            entry[f"{impl}_call_s_per_point_geomean"] = geometric_mean([r[impl]["call_s_per_point"] for r in rows])
        summary.append(entry)
    out["summary"] = summary
    try:
        out["loadavg_at_end"] = list(os.getloadavg())
    except OSError:
        pass
    report(out)
    record.finish()
    return 0


def report(out: dict) -> None:
    """The ratios per case and batch size, their summary, the one-time costs, the agreement."""
    sizes = out["config"]["sizes"]
    for key, title in (("c_over_numba", "C / numba, a call as fe2 makes it (the kernel alone)"),
                       ("numpy_over_numba", "numpy / numba, a call as fe2 makes it")):
        print(f"\n{title}; best of the rounds; > 1: numba faster")
        print(f"{'case':<12s}" + "".join(f"{n:>16d}" for n in sizes))
        for c in out["cases"]:
            cells = [f"{r[key]:.2f}" + (f" ({r['c_over_numba_kernel']:.2f})" if key == "c_over_numba" else "")
                     for r in c["sizes"]]
            print(f"{c['dim']}D {c['hardening']:<9s}" + "".join(f"{x:>16s}" for x in cells))
    print("\nsummary over the cases: geometric mean [min, max]; paired: median over rounds of the ratio within a round")
    print(f"{'points':>8s} {'C/numba':>20s} {'C/numba kernel':>20s} {'numpy/numba':>20s} {'C/numba paired':>15s} "
          f"{'numba ns/pt':>12s} {'C ns/pt':>10s} {'numpy ns/pt':>12s}")
    for e in out["summary"]:
        cells = [f"{e[k]['geomean']:.2f} [{e[k]['min']:.2f}, {e[k]['max']:.2f}]"
                 for k in ("c_over_numba", "c_over_numba_kernel", "numpy_over_numba")]
        print(f"{e['points']:>8d} {cells[0]:>20s} {cells[1]:>20s} {cells[2]:>20s} "
              f"{e['paired_median_geomean']['c_over_numba']:15.2f} "
              f"{1e9 * e['numba_call_s_per_point_geomean']:12.1f} {1e9 * e['c_call_s_per_point_geomean']:10.1f} "
              f"{1e9 * e['numpy_call_s_per_point_geomean']:12.1f}")
    nc, nw = out["one_time"]["numba"]["cold"]["best"], out["one_time"]["numba"]["warm"]["best"]
    cc, cw = out["one_time"]["cffi"]["cold"]["best"], out["one_time"]["cffi"]["warm"]["best"]
    print("\none-time costs (fresh interpreter, best of the repeats):")
    print(f"  numba: import numba {nc['import_numba_s']:.3f} s; import fe2.kernels.j2 "
          f"{nc['import_kernel_module_s']:.3f} s; first call, empty cache {nc['first_call_s']:.3f} s (cache misses "
          f"{nc['cache_misses']}); first call, warm cache {nw['first_call_s']:.4f} s (cache hits {nw['cache_hits']}); "
          f"second call {1e6 * nw['second_call_s']:.1f} us")
    print(f"  cffi:  import cffi {cc['import_cffi_s']:.3f} s; compile {cc['compile_s']:.3f} s; import of the built "
          f"module {cw['import_module_s']:.4f} s; first call {1e6 * cw['first_call_s']:.1f} us, second "
          f"{1e6 * cw['second_call_s']:.1f} us")
    ag = out["agreement"]
    print(f"\nagreement (max relative difference): numba-numpy {ag['max_rel_diff_numba_vs_numpy']:.1e}, "
          f"C-numpy {ag['max_rel_diff_c_vs_numpy']:.1e}, C-numba {ag['max_rel_diff_c_vs_numba']:.1e}; "
          f"C bitwise equal to numba: {ag['c_bitwise_equal_numba']}")


if __name__ == "__main__":
    sys.exit(main())
