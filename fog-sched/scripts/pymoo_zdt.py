#!/usr/bin/env python3
"""Runs pymoo's NSGA-II on ZDT1/2/3 with its defaults, as `fog sched bench` does.

Population 100, SBX (eta 15, prob 0.9), polynomial mutation (eta 20, 1/n),
25,000 evaluations, seeds 0..N-1. Prints one JSON document with, per problem,
the median hypervolume (reference point 1.1, 1.1), the median IGD against
pymoo's own Pareto front and the median milliseconds per generation (run time
over generations after the initial population, as fog counts them).

Usage: pymoo_zdt.py [--seeds N] [--evaluations E] [--problems zdt1,zdt2,zdt3]
                    [--crowding cd|pcd] [--fog PATH/TO/fog] [--fog-crowding cd|pcd]
With --fog, the same runs of `fog sched bench` follow in the same process
and the document holds both sides and their ratios (side by side, one run):
the difference of the median hypervolumes, the share of (fog, pymoo) seed
pairs in which fog's hypervolume is higher, and the two-sided Mann-Whitney U
p-value of the two samples (a small p means the two differ).
Needs `pip install pymoo` (tested with pymoo 0.6.2).
"""

import argparse
import json
import subprocess
import statistics
import time

import numpy as np
from scipy.stats import mannwhitneyu
from pymoo.algorithms.moo.nsga2 import NSGA2, RankAndCrowding
from pymoo.indicators.hv import HV
from pymoo.indicators.igd import IGD
from pymoo.optimize import minimize
from pymoo.problems import get_problem
from pymoo.termination import get_termination


def run(name, seeds, evaluations, crowding):
    problem = get_problem(name)
    front = problem.pareto_front()
    hv = HV(ref_point=np.array([1.1, 1.1]))
    igd = IGD(front)
    hvs, igds, ms, cpu = [], [], [], []
    for seed in range(seeds):
        if crowding == "cd":
            algorithm = NSGA2(pop_size=100)
        else:
            algorithm = NSGA2(pop_size=100, survival=RankAndCrowding(crowding_func=crowding))
        start = time.perf_counter()
        cpu_start = time.thread_time()
        res = minimize(
            problem,
            algorithm,
            get_termination("n_eval", evaluations),
            seed=seed,
            verbose=False,
        )
        elapsed = (time.perf_counter() - start) * 1e3
        cpu_elapsed = (time.thread_time() - cpu_start) * 1e3
        generations = max(res.algorithm.n_gen - 1, 1)
        hvs.append(float(hv(res.F)))
        igds.append(float(igd(res.F)))
        ms.append(elapsed / generations)
        cpu.append(cpu_elapsed / generations)
    return {
        "problem": name,
        "seeds": seeds,
        "hypervolume": statistics.median(hvs),
        "hypervolume_per_seed": hvs,
        "igd": statistics.median(igds),
        "evaluations": evaluations,
        "crowding": crowding,
        "ms_per_generation": statistics.median(ms),
        "cpu_ms_per_generation": statistics.median(cpu),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=11)
    parser.add_argument("--evaluations", type=int, default=25000)
    parser.add_argument("--problems", default="zdt1,zdt2,zdt3")
    parser.add_argument("--crowding", default="cd", choices=["cd", "pcd"])
    parser.add_argument("--fog", help="path of a release `fog` binary to run too")
    parser.add_argument("--fog-crowding", default="pcd", choices=["cd", "pcd"],
                        help="fog's survival (pcd is fog's default)")
    args = parser.parse_args()
    import pymoo

    document = {"pymoo_version": pymoo.__version__, "pymoo": {}}
    for name in args.problems.split(","):
        document["pymoo"][name] = run(name, args.seeds, args.evaluations, args.crowding)
    if args.fog:
        document["fog"] = {}
        document["ratio"] = {}
        for name in args.problems.split(","):
            out = subprocess.run(
                [args.fog, "sched", "bench", "--problem", name, "--seeds", str(args.seeds),
                 "--evaluations", str(args.evaluations), "--crowding", args.fog_crowding,
                 "--json"],
                check=True, capture_output=True, text=True,
            ).stdout
            fog = json.loads(out)
            py = document["pymoo"][name]
            document["fog"][name] = fog
            ratio = document["ratio"][name] = {
                "hypervolume_fog_minus_pymoo": fog["hypervolume"] - py["hypervolume"],
                "speedup_wall": py["ms_per_generation"] / fog["ms_per_generation"],
                "speedup_cpu": py["cpu_ms_per_generation"] / fog["cpu_ms_per_generation"],
            }
            if "hypervolume_per_seed" in fog:  # older fog binaries lack it
                samples = (fog["hypervolume_per_seed"], py["hypervolume_per_seed"])
                test = mannwhitneyu(*samples, alternative="two-sided")
                ratio["hypervolume_fog_wins_share"] = float(test.statistic) / (
                    len(samples[0]) * len(samples[1]))
                ratio["hypervolume_mann_whitney_p"] = float(test.pvalue)
    print(json.dumps(document, indent=1))


if __name__ == "__main__":
    main()
