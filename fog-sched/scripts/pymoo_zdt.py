#!/usr/bin/env python3
"""Runs pymoo's NSGA-II on ZDT1/2/3 with its defaults, as `fog sched bench` does.

Population 100, SBX (eta 15, prob 0.9), polynomial mutation (eta 20, 1/n),
25,000 evaluations, seeds 0..N-1. Prints one JSON document with, per problem,
the median hypervolume (reference point 1.1, 1.1), the median IGD against
pymoo's own Pareto front and the median milliseconds per generation (run time
over generations after the initial population, as fog counts them).

Usage: pymoo_zdt.py [--seeds N] [--evaluations E] [--problems zdt1,zdt2,zdt3]
Needs `pip install pymoo` (tested with pymoo 0.6).
"""

import argparse
import json
import statistics
import time

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.indicators.hv import HV
from pymoo.indicators.igd import IGD
from pymoo.optimize import minimize
from pymoo.problems import get_problem
from pymoo.termination import get_termination


def run(name, seeds, evaluations):
    problem = get_problem(name)
    front = problem.pareto_front()
    hv = HV(ref_point=np.array([1.1, 1.1]))
    igd = IGD(front)
    hvs, igds, ms = [], [], []
    for seed in range(seeds):
        algorithm = NSGA2(pop_size=100)
        start = time.perf_counter()
        res = minimize(
            problem,
            algorithm,
            get_termination("n_eval", evaluations),
            seed=seed,
            verbose=False,
        )
        elapsed = (time.perf_counter() - start) * 1e3
        generations = max(res.algorithm.n_gen - 1, 1)
        hvs.append(float(hv(res.F)))
        igds.append(float(igd(res.F)))
        ms.append(elapsed / generations)
    return {
        "problem": name,
        "seeds": seeds,
        "hypervolume": statistics.median(hvs),
        "igd": statistics.median(igds),
        "evaluations": evaluations,
        "ms_per_generation": statistics.median(ms),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=11)
    parser.add_argument("--evaluations", type=int, default=25000)
    parser.add_argument("--problems", default="zdt1,zdt2,zdt3")
    args = parser.parse_args()
    import pymoo

    results = {
        name: run(name, args.seeds, args.evaluations)
        for name in args.problems.split(",")
    }
    print(json.dumps({"pymoo_version": pymoo.__version__, "results": results}))


if __name__ == "__main__":
    main()
