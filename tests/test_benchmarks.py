"""The benchmark scripts still run (smoke test; speed itself is never asserted)."""

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from mpi4py import MPI

from helpers import ROOT, serial_env

pytestmark = pytest.mark.skipif(MPI.COMM_WORLD.size > 1, reason="spawns a serial process; serial run only")

#: mpirun as root, for the benchmarks that spawn ``mpirun -n 2`` themselves
AS_ROOT = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
#: every benchmark's quick run, the longest first: its output file and extra environment
QUICK = {"ranks_per_rve.py": ("rpr.json", AS_ROOT), "mesh_objectivity.py": ("mo.json", {}),
         "rve_throughput.py": ("bench.json", {}), "load_balance.py": ("lb.json", AS_ROOT),
         "micro_engine.py": ("me.json", {}), "fe2_vs_dns.py": ("dns.json", {}), "factorisers.py": ("f.json", {}),
         "kernels.py": ("k.json", {}), "examples.py": ("ex.json", {}), "long_run.py": ("lr.json", {})}


def run_quick(script: str, out, **env: str) -> dict:
    """Run ``benchmarks/<script> --quick`` in a serial process (extra environment ``env``);
    its JSON output."""
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--output", str(out)],
                       capture_output=True, text=True, env=serial_env(**env), timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def quick(request, tmp_path_factory):
    """``quick(script) -> (JSON, output file)`` of the quick runs of the selected tests'
    benchmarks: all started at the module's first test, two at a time (a serial test run
    leaves the second core idle otherwise), each waited for by its test."""
    folder = tmp_path_factory.mktemp("benchmarks")
    selected = " ".join(item.name for item in request.session.items)
    pool = ThreadPoolExecutor(max_workers=2)
    runs = {script: pool.submit(run_quick, script, folder / name, **env)
            for script, (name, env) in QUICK.items() if script.removesuffix(".py") in selected}
    yield lambda script: (runs[script].result(), folder / QUICK[script][0])
    pool.shutdown(wait=True, cancel_futures=True)


def test_rve_throughput_quick_writes_consistent_json(quick):
    data, _ = quick("rve_throughput.py")
    assert data["complete"] and len(data["cases"]) == 4
    for case in data["cases"]:
        assert case["dofs"] > 0
        assert case["evaluations_per_second"] > 0 and case["full_resolves_per_second"] > 0
        assert 0.0 < case["petsc_fraction"]["evaluate"] <= 1.0
        # what the timings stand for: every path gives the effective tensor's answer
        assert case["evaluate_rel_error_vs_Ceff"] < 1e-12
        assert case["full_resolve_rel_error_vs_Ceff"] < 1e-12
        assert case["loop_kspsolve_rel_diff"] < 1e-12 and case["batched_matsolve_rel_diff"] < 1e-12
        assert case["full_resolve_numeric_factorisations"] == 1  # a re-solve re-factorises once


def test_fe2_vs_dns_quick_writes_consistent_json(quick):
    data, _ = quick("fe2_vs_dns.py")
    rows = data["table"]
    assert data["complete"] and [r["n"] for r in rows] == [2, 4]
    for row in rows:
        assert row["dns_dofs"] > 0 and row["dns_plastic_point_fraction"] > 0.5  # really plastic
    # what the benchmark exists for: FE2 approaches the DNS as the cells get smaller
    # (quick setting, n = 2 -> 4: force error 0.091 -> 0.017, displacement error 0.024 -> 0.011)
    coarse, fine = rows
    assert fine["force_error_rel"] < 0.5 * coarse["force_error_rel"] and fine["force_error_rel"] < 0.04
    assert fine["displacement_error_rel"] < 0.7 * coarse["displacement_error_rel"]
    assert fine["displacement_error_rel"] < 0.03


def test_fe2_vs_dns_quick_compares_schemes(quick):
    data, _ = quick("fe2_vs_dns.py")
    assert data["config"]["schemes"] == ["monolithic", "nested"]
    runs = data["fe2_schemes"]
    assert list(runs) == ["monolithic", "nested"] and data["fe2"] == runs["monolithic"]
    mono, nested = runs["monolithic"], runs["nested"]
    assert data["fe2_macro_check"]["scheme"] == "monolithic" and data["fe2_macro_check"]["macro_n"] == 2
    for run in runs.values():
        # the steps add up, and the forces at the load factors are those of the steps there
        assert sum(st["newton_iterations"] for st in run["steps"]) == run["newton_iterations"]
        assert len(run["steps"]) == run["load_steps"] >= len(run["load_factors"])
        at = {round(st["load_factor"], 12): st["force"] for st in run["steps"]}
        assert [at[round(t, 12)] for t in run["load_factors"]] == run["forces"]
    assert all(r["fe2_wall_s"] == mono["wall_s"] for r in data["table"])  # the ratios use the first scheme
    # the monolithic scheme converges to the nested answer (fe2's acceptance: 1e-8) ...
    F_m, F_n = np.array(mono["forces"]), np.array(nested["forces"])
    diff = np.abs(F_m - F_n).max() / np.abs(F_n).max()
    assert data["scheme_force_difference_rel"] == pytest.approx(diff, rel=1e-12, abs=1e-300)
    assert data["scheme_force_difference_rel"] <= 1e-8
    # ... with fewer factorisations (quick: 1876 against 4108) and every RVE solved
    assert mono["rve_statistics"]["factorisations"] < 0.6 * nested["rve_statistics"]["factorisations"]
    assert mono["rve_evaluations"] > 0 and nested["rve_evaluations"] > 0


def test_fe2_vs_dns_quick_compares_dns_solvers_and_cost(quick):
    data, _ = quick("fe2_vs_dns.py")
    assert data["config"]["dns_solvers"] == ["lu", "cholesky"]
    opts = data["config"]["dns_petsc_options"]
    assert opts["lu"]["pc_type"] == "lu" and opts["cholesky"] == {
        "ksp_type": "preonly", "pc_type": "cholesky", "pc_factor_mat_solver_type": "cholmod"}  # one rank
    fe2_wall = data["fe2"]["wall_s"]
    for row in data["table"]:
        lu, chol = row["dns_solvers"]["lu"], row["dns_solvers"]["cholesky"]
        assert (lu["factor_solver"], chol["factor_solver"]) == ("mumps", "cholmod")  # what was asked for ran
        # the accuracy columns are the first solver's DNS
        assert row["dns_wall_s"] == lu["wall_s"] and row["forces_dns"] == lu["forces"]
        assert row["dns_newton_iterations"] == lu["newton_iterations"]
        for name, run in row["dns_solvers"].items():
            assert run["wall_s"] == pytest.approx(row["dns_mesh_s"] + run["solve_s"], rel=1e-12)
            assert run["fe2_over_dns"] == pytest.approx(fe2_wall / run["wall_s"], rel=1e-12)
            assert row["fe2_over_dns"][name] == run["fe2_over_dns"]
        # both solvers solve the same equations to the same tolerance: the same answer
        diff = np.abs(np.array(chol["forces"]) - lu["forces"]).max() / np.abs(lu["forces"]).max()
        assert chol["force_difference_rel"] == pytest.approx(diff, rel=1e-12, abs=1e-300)
        assert lu["force_difference_rel"] == 0 and chol["force_difference_rel"] <= 1e-8
        assert row["dns_solver_force_difference_rel"] == chol["force_difference_rel"]
        assert chol["displacement_difference_rel"] <= 1e-8
        assert chol["load_steps"] == lu["load_steps"]
    # the crossover agrees with the ratios per n: FE2/DNS = 1 interpolated in log-log between the
    # first bracketing pair of n, or none, on the side all the ratios are on
    ns = [r["n"] for r in data["table"]]
    for solver in ("lu", "cholesky"):
        c = data["crossover"][solver]
        ratios = [r["fe2_over_dns"][solver] for r in data["table"]]
        pairs = [(i, i + 1) for i in range(len(ns) - 1) if (ratios[i] - 1) * (ratios[i + 1] - 1) <= 0
                 and ratios[i] != ratios[i + 1]]
        assert c["crossings"] == len(pairs)
        if pairs:
            i, j = pairs[0]
            assert c["bracket"] == [ns[i], ns[j]] and ns[i] <= c["n"] <= ns[j] and c["side"] is None
            t = (np.log(c["n"]) - np.log(ns[i])) / (np.log(ns[j]) - np.log(ns[i]))
            assert np.log(ratios[i]) + t * (np.log(ratios[j]) - np.log(ratios[i])) == pytest.approx(0, abs=1e-12)
            assert c["eps"] == pytest.approx(1 / c["n"])
        else:
            assert c["n"] is None and c["bracket"] is None
            assert c["side"] == ("above" if min(ratios) > 1 else "below" if max(ratios) < 1 else None)


def test_mesh_objectivity_quick_writes_json_and_plot(quick):
    data, out = quick("mesh_objectivity.py")
    assert data["complete"] and len(data["runs"]) == 4
    runs = {(r["variant"], r["n"]): r for r in data["runs"]}
    for r in data["runs"]:
        assert r["status"] == "completed"
        assert r["peak_force"] > r["final_force"] > 0  # through the peak
        assert 0 < r["dissipated_energy"] < r["external_work"] * 1.05
    # what the benchmark exists for (quick setting: 5 and 9 cells along a bar of length 10):
    # the local band shrinks to one element and its energy falls with the mesh (-17 %), the
    # gradient-regularized energy and peak hardly change (1.9 %, 3.3 %)
    local5, local9 = runs["local", 5], runs["local", 9]
    grad5, grad9 = runs["gradient", 5], runs["gradient", 9]
    assert local9["band_width_equivalent"] < 1.5 * 10.0 / 9
    assert local9["dissipated_energy"] < 0.9 * local5["dissipated_energy"]
    assert abs(grad9["dissipated_energy"] / grad5["dissipated_energy"] - 1) < 0.05
    assert abs(grad9["peak_force"] / grad5["peak_force"] - 1) < 0.06
    assert grad9["band_width_equivalent"] > 3 * local9["band_width_equivalent"]
    assert out.with_suffix(".png").stat().st_size > 10_000


def test_micro_engine_quick_writes_consistent_json(quick):
    data, _ = quick("micro_engine.py")
    assert data["complete"]
    variants = [("reference", "nested"), ("batched", "nested"), ("batched", "monolithic")]
    assert data["config"]["variants"] == [f"{e}/{s}" for e, s in variants]
    assert [(c["dim"], c["engine"], c["scheme"]) for c in data["cases"]] == [
        (dim, *v) for dim in (2, 3) for v in variants]
    for case in data["cases"]:
        shapes = case["state_arrays"]
        matrix, inclusion = shapes["state_matrix"], shapes["state_inclusion"]
        assert matrix[0] + inclusion[0] == case["micro_points"] and matrix[1] == 13 and inclusion[1] == 0
        # the history of a macro point, in float64: its fluctuation, the predictor (dw/dE: n
        # fluctuations, and E), the last answer (stress, tangent, micro residual, settled) with its
        # input (E, drive, kind) and 13 J2 variables per matrix point
        n = 3 if case["dim"] == 2 else 6
        assert shapes["predictor_dwdE"] == [shapes["w"][0], n] and shapes["predictor_E"] == [n]
        assert shapes["answer"] == [n + n * n + 2] and shapes["answer_input"] == [n + 2]
        assert case["state_bytes_per_point"] == 8 * (shapes["w"][0] * (1 + n) + n + (n + n * n + 2) + (n + 2)
                                                     + 13 * matrix[0])
        elastic, *plastic = case["levels"]
        assert elastic["plastic_points"] == 0 and elastic["correction"]["factorisations_per_plastic_point"] is None
        assert all(lv["plastic_points"] == case["batch"] for lv in plastic)
        for lv in case["levels"]:
            assert 0.0 < lv["petsc_factorisation_and_solve_share"] < 1.0
        if case["scheme"] == "nested":
            # every evaluation converges: nothing left to settle, several micro iterations when plastic
            assert all(lv["settle_evaluations"] == lv["correction"]["settle_evaluations"] == 0
                       and lv["unsettled_points_after_first"] == 0 for lv in case["levels"])
            assert all(lv["newton_iterations_per_evaluation"] > 1 for lv in plastic)
        if case["engine"] == "reference":
            assert elastic["newton_iterations_per_evaluation"] == 1
            for lv in case["levels"]:
                # the per-point engine factorises once per Newton iteration and once at the converged state
                assert lv["factorisations_per_evaluation"] == lv["newton_iterations_per_evaluation"] + 1
        elif case["scheme"] == "nested":
            # elastic: every point answered by the exact shortcut, without a factorisation of its own
            assert elastic["shortcut_fraction"] == 1 and elastic["factorisations_per_evaluation"] == 0
            for lv in plastic:
                assert lv["shortcut_fraction"] == 0
                assert lv["factorisations_per_evaluation"] == lv["newton_iterations_per_evaluation"] + 1
                # a later macro iterate starts from the predicted fluctuation: fewer micro iterations
                cor = lv["correction"]
                assert cor["factorisations_per_evaluation"] == cor["newton_iterations_per_evaluation"] + 1
                assert cor["newton_iterations_per_evaluation"] < lv["newton_iterations_per_evaluation"]
                assert cor["factorisations_per_plastic_point"] == 2  # one micro update and the tangent
        else:  # monolithic: one Newton step per evaluation
            assert elastic["shortcut_fraction"] == 1 and elastic["factorisations_per_evaluation"] == 0
            # the elastic step is exact (a solve with the template's factorisation): settled by the
            # next evaluation, and a later iterate's predicted start needs no correction at all
            assert elastic["newton_iterations_per_evaluation"] == 1 and elastic["settle_evaluations"] == 1
            assert elastic["stress_difference_rel_first_evaluation"] < 1e-12
            cor = elastic["correction"]
            assert cor["factorisations_per_evaluation"] == cor["newton_iterations_per_evaluation"] == 0
            assert cor["unsettled_points_after"] == 0 == cor["settle_evaluations"]
            for lv in plastic:
                # exactly one factorisation per plastic point, first iterate and later iterate alike
                assert lv["shortcut_fraction"] == 0
                assert lv["factorisations_per_evaluation"] == lv["newton_iterations_per_evaluation"] == 1
                assert lv["unsettled_points_after_first"] == case["batch"] and lv["settle_evaluations"] >= 1
                assert 0 < lv["settle_factorisations_per_evaluation"] <= lv["settle_evaluations"]
                cor = lv["correction"]
                assert cor["factorisations_per_evaluation"] == cor["newton_iterations_per_evaluation"] == 1
                assert cor["factorisations_per_plastic_point"] == 1
                assert cor["unsettled_points_after"] > 0 and cor["settle_evaluations"] >= 1
                # the one-step stresses are first order only; the settled ones are compared below
                assert lv["stress_difference_rel_first_evaluation"] > 1e-8
    # every variant computed the same stresses at every level and correction (monolithic: settled)
    for first, *others in (data["cases"][:3], data["cases"][3:]):
        assert all(lv["stress_difference_rel"] is None and lv["correction"]["stress_difference_rel"] is None
                   for lv in first["levels"])
        for case in others:
            for a, b in zip(first["levels"], case["levels"]):
                assert b["stress_norm"] == pytest.approx(a["stress_norm"], rel=1e-10)
                assert b["correction"]["stress_norm"] == pytest.approx(a["correction"]["stress_norm"], rel=1e-10)
                assert b["stress_difference_rel"] < 1e-10 and b["correction"]["stress_difference_rel"] < 1e-10
    # the summary restates each case's figures
    assert len(data["summary"]) == len(data["cases"])
    for row, case in zip(data["summary"], data["cases"]):
        assert (row["dim"], row["engine"], row["scheme"]) == (case["dim"], case["engine"], case["scheme"])
        assert row["elastic_ms_per_evaluation"] == 1e3 * case["levels"][0]["seconds_per_evaluation"]
        assert row["settle_evaluations"] == [lv["settle_evaluations"] for lv in case["levels"]]
        assert row["correction_factorisations_per_plastic_point"] == \
            case["levels"][-1]["correction"]["factorisations_per_plastic_point"]


def test_factorisers_quick_writes_consistent_json(quick):
    data, _ = quick("factorisers.py")
    assert data["complete"] and [c["dim"] for c in data["cases"]] == [2, 3]
    for case in data["cases"]:
        for kind, solvers in (("symmetric", ["cholmod", "mumps", "petsc"]),
                              ("non_symmetric", ["umfpack", "klu", "superlu", "mumps", "petsc"])):
            runs = case[kind]
            assert [r["solver"] for r in runs] == solvers and not any("error" in r for r in runs)
            # every factoriser solves the same system: the same solution to round-off
            assert max(r["relative_difference"] for r in runs) < 1e-10
            assert all(r["per_point_s"] == r["numeric_factorisation_s"] + r["block_solve_s"] for r in runs)
            assert case[f"fastest_{kind}"] == min(runs, key=lambda r: r["per_point_s"])["solver"]
        assert 0 < case["free_dofs"] < case["dofs"] and case["nnz"] > case["free_dofs"]


def test_load_balance_quick_writes_consistent_json(quick):
    # spawns mpirun -n 2 itself: the same case on 1 rank, 2 ranks unbalanced, 2 balanced,
    # and two serial runs at once
    data, _ = quick("load_balance.py")
    runs = data["runs"]
    assert data["complete"] and list(runs) == ["serial", "unbalanced", "balanced", "serial_pair"]
    assert [len(r["rve_seconds_per_rank"]) for r in runs.values()] == [1, 2, 2, 1]
    assert runs["serial_pair"]["reaction_right_x"] == runs["serial"]["reaction_right_x"]
    assert runs["unbalanced"]["moved"] == 0 < runs["balanced"]["moved"]
    # balancing changes where a point is solved, never its answer (bit-identical whatever
    # the batch): the two 2-rank runs took the same path, bit for bit (on the same partition of
    # the macro mesh: fe2.core.environment.reproducible_partitions). Between 1 and 2 ranks
    # the macro round-off differs but the Newton path is the same: a step's first iterate
    # reuses each point's committed answer, so no point on its yield surface gets its tangent
    # from the sign of round-off
    assert runs["balanced"]["reaction_right_x"] == runs["unbalanced"]["reaction_right_x"]
    assert len({r["rve_evaluations"] for r in runs.values()}) == 1
    for name in ("unbalanced", "balanced"):  # the same answer wherever the RVEs were solved
        assert runs[name]["reaction_difference"] < 1e-10
        assert runs[name]["efficiency"] > 0 and runs[name]["rve_efficiency"] > 0


def test_ranks_per_rve_quick_writes_consistent_json(quick):
    data, _ = quick("ranks_per_rve.py")
    assert data["complete"] and len(data["per_evaluation"]) == 4 and len(data["throughput"]) == 4
    rows = data["per_evaluation"]
    n = data["sizes"]["big"]
    assert all(r["dofs"] == 3 * (n + 1) ** 3 and r["points"] == 1 for r in rows)  # P1 vector field on the box
    assert [(r["ranks"], r["ranks_per_rve"], r["engine"]) for r in rows] == [
        (1, 1, "batched"), (1, 1, "reference"), (2, 2, "batched"), (2, 2, "reference")]
    # what the timings stand for: the same plastic micro solve of the same point on every path
    sxx = [r["sigma_xx_first_point"] for r in rows]
    assert sxx[0] > 0 and max(abs(s - sxx[0]) for s in sxx) < 1e-8 * sxx[0]
    assert all(r["newton_iterations_rank0"] > 1 for r in rows[1:])  # plastic: more than one iteration
    for r in data["throughput"]:
        assert r["ranks"] == 2 and r["points"] == data["sizes"]["points"][r["rve"]]
        assert r["points_per_second"] > 0 and len(r["peak_rss_mb_per_rank"]) == 2
    assert [(r["rve"], r["ranks_per_rve"], r["engine"]) for r in data["throughput"]] == [
        ("small", 1, "batched"), ("small", 2, "batched"), ("big", 1, "batched"), ("big", 2, "batched")]
    assert all(data[k] > 0 for k in ("group_speedup_batched", "group_speedup_reference", "throughput_ratio_big"))


def test_kernels_quick_writes_consistent_json(quick):
    data, _ = quick("kernels.py")
    sizes = data["config"]["sizes"]
    assert data["complete"] and sizes == [1, 1000]
    assert [(c["dim"], c["hardening"]) for c in data["cases"]] == [
        (d, h) for d in (2, 3) for h in ("perfect", "linear", "voce", "mixed")]
    # what the timings stand for: numba, C and numpy give the same stress, tangent and state
    ag = data["agreement"]
    assert ag["all_agree"] and ag["tolerance"] == 1e-12
    for case in data["cases"]:
        assert case["components"] == ([0, 1, 5] if case["dim"] == 2 else list(range(6)))
        for pair in ("numba_vs_numpy", "c_vs_numpy", "c_vs_numba"):
            assert set(case["max_rel_diff"][pair]) == {"flux", "tangent", "state"}
            assert all(0 <= d < 1e-12 for d in case["max_rel_diff"][pair].values())
        assert [r["points"] for r in case["sizes"]] == sizes
        # the batch of 1000 mixes elastic and plastic points: both branches are timed
        assert 0.3 < case["sizes"][1]["plastic_fraction"] < 0.9
        for row in case["sizes"]:
            for impl in ("numba", "c", "numpy"):
                t = row[impl]
                assert t["call_s"] > 0 and t["call_s_per_point"] == t["call_s"] / row["points"]
                if impl != "numpy":
                    assert t["kernel_s"] > 0
                    if row["points"] == 1:  # the kernel alone costs less than a call with its wrapper
                        assert t["kernel_s"] < t["call_s"]
            assert set(row["paired_median"]) == {"c_over_numba", "numpy_over_numba", "c_over_numba_kernel"}
            assert row["c_over_numba"] == row["c"]["call_s"] / row["numba"]["call_s"]
            assert row["numpy_over_numba"] == row["numpy"]["call_s"] / row["numba"]["call_s"]
    assert [e["points"] for e in data["summary"]] == sizes
    # the one-time costs measured what they say: the cold numba run compiled (a cache miss, into
    # the empty cache), the warm one loaded that cache (a hit), both the signature fe2 calls with
    once = data["one_time"]
    cold, warm = once["numba"]["cold"]["best"], once["numba"]["warm"]["best"]
    assert (cold["cache_misses"], cold["cache_hits"]) == (1, 0) and (warm["cache_misses"], warm["cache_hits"]) == (0, 1)
    assert cold["signatures"] == warm["signatures"] == data["numba_signatures"]
    assert cold["cache_files"] > 0
    assert cold["first_call_s"] > cold["second_call_s"] > 0 and warm["first_call_s"] > 0 and cold["import_numba_s"] > 0
    ccold, cwarm = once["cffi"]["cold"]["best"], once["cffi"]["warm"]["best"]
    assert ccold["compile_s"] > 0 and ccold["module_bytes"] > 0 and cwarm["import_module_s"] > 0
    assert "-ffast-math" not in data["config"]["cflags"]


def test_examples_quick_writes_consistent_json(quick):
    data, _ = quick("examples.py")
    assert data["complete"] and list(data["examples"]) == ["plate_with_hole"]
    run = data["examples"]["plate_with_hole"]
    assert run["status"] == "completed" and run["steps"] == 4
    # the process's wall time includes the run's own (set-up and steps) and its start-up
    assert run["median_wall_s"] == run["wall_s"][0] > run["run_wall_s"][0] > 0


def test_long_run_quick_writes_consistent_json(quick):
    data, _ = quick("long_run.py")
    assert data["complete"] and data["status"] == "completed" and data["complete_steps"] >= 60
    (rss,) = data["rss_mb"]
    assert len(rss) == data["complete_steps"] and min(rss) > 50.0  # (a Python with dolfinx: hundreds of MB)
    assert data["growth_after_50"][0] == (rss[-1] - rss[50]) / rss[50]
