//! Non-dominated sorting with Deb's constrained domination.
//!
//! Two algorithms give the same fronts: Deb's fast non-dominated sort
//! (O(M N²) comparisons, simple) and ENS-BS, the efficient non-dominated sort
//! with binary search of Zhang et al. 2015 (presort by objectives, then each
//! solution only meets the fronts it is checked against; O(M N √N) on
//! average), which is faster for large populations.

/// Which non-dominated sort to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SortAlgorithm {
    /// ENS-BS above 64 solutions, Deb's sort below.
    #[default]
    Auto,
    /// Deb et al. 2002, fast non-dominated sort.
    FastNonDominated,
    /// Zhang et al. 2015, efficient non-dominated sort, binary search.
    EfficientBinary,
}

/// Whether solution `a` constrained-dominates `b` (Deb's rules): a feasible
/// solution beats an infeasible one, of two infeasible ones the smaller total
/// violation wins, and two feasible ones compare by Pareto dominance
/// (all objectives minimised).
#[inline]
pub fn constrained_dominates(fa: &[f64], cva: f64, fb: &[f64], cvb: f64) -> bool {
    if cva > 0.0 || cvb > 0.0 {
        return cva < cvb;
    }
    pareto_dominates(fa, fb)
}

/// Pareto dominance for minimisation: no worse in every objective and better
/// in at least one.
#[inline]
pub fn pareto_dominates(a: &[f64], b: &[f64]) -> bool {
    let mut strictly = false;
    for (x, y) in a.iter().zip(b) {
        if x > y {
            return false;
        }
        if x < y {
            strictly = true;
        }
    }
    strictly
}

/// Sorts `n` solutions (objectives row-major in `f`, `m` per row, violations
/// in `cv`) into fronts; returns the rank (0 = best front) of each solution
/// and the fronts as index lists.
pub fn non_dominated_sort(
    f: &[f64],
    m: usize,
    cv: &[f64],
    algorithm: SortAlgorithm,
) -> (Vec<usize>, Vec<Vec<usize>>) {
    let n = cv.len();
    let use_ens = match algorithm {
        SortAlgorithm::Auto => n > 64,
        SortAlgorithm::FastNonDominated => false,
        SortAlgorithm::EfficientBinary => true,
    };
    let fronts = if use_ens {
        ens_bs(f, m, cv)
    } else {
        fast_non_dominated(f, m, cv)
    };
    let mut rank = vec![0; n];
    for (r, front) in fronts.iter().enumerate() {
        for &i in front {
            rank[i] = r;
        }
    }
    (rank, fronts)
}

fn row(f: &[f64], m: usize, i: usize) -> &[f64] {
    &f[i * m..(i + 1) * m]
}

fn fast_non_dominated(f: &[f64], m: usize, cv: &[f64]) -> Vec<Vec<usize>> {
    let n = cv.len();
    let mut dominated_by_count = vec![0usize; n];
    // Flat adjacency: for each i, the solutions it dominates.
    let mut dominates: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in (i + 1)..n {
            if constrained_dominates(row(f, m, i), cv[i], row(f, m, j), cv[j]) {
                dominates[i].push(j);
                dominated_by_count[j] += 1;
            } else if constrained_dominates(row(f, m, j), cv[j], row(f, m, i), cv[i]) {
                dominates[j].push(i);
                dominated_by_count[i] += 1;
            }
        }
    }
    let mut fronts = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&i| dominated_by_count[i] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            for &j in &dominates[i] {
                dominated_by_count[j] -= 1;
                if dominated_by_count[j] == 0 {
                    next.push(j);
                }
            }
        }
        fronts.push(current);
        current = next;
    }
    fronts
}

fn ens_bs(f: &[f64], m: usize, cv: &[f64]) -> Vec<Vec<usize>> {
    let n = cv.len();
    let mut order: Vec<usize> = (0..n).collect();
    // Lexicographic by (violation, f1, f2, ...): nothing later can dominate
    // anything earlier under constrained domination.
    order.sort_by(|&a, &b| {
        cv[a].total_cmp(&cv[b]).then_with(|| {
            for k in 0..m {
                let c = f[a * m + k].total_cmp(&f[b * m + k]);
                if c.is_ne() {
                    return c;
                }
            }
            std::cmp::Ordering::Equal
        })
    });
    let mut fronts: Vec<Vec<usize>> = Vec::new();
    for &s in &order {
        let dominated_in = |front: &Vec<usize>| {
            if m == 2 {
                // Two objectives: a front's members share one violation and,
                // in presorted order, have falling f2; only the last one
                // can dominate `s` (Jensen's observation).
                let t = *front.last().expect("fronts are never empty");
                return if cv[s] > 0.0 || cv[t] > 0.0 {
                    cv[t] < cv[s]
                } else {
                    pareto_dominates(row(f, m, t), row(f, m, s))
                };
            }
            front
                .iter()
                .rev()
                .any(|&t| constrained_dominates(row(f, m, t), cv[t], row(f, m, s), cv[s]))
        };
        // The first front that does not dominate `s`; the predicate
        // "dominated by front k" is monotone in k, so binary search.
        let (mut lo, mut hi) = (0, fronts.len());
        while lo < hi {
            let mid = usize::midpoint(lo, hi);
            if dominated_in(&fronts[mid]) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == fronts.len() {
            fronts.push(vec![s]);
        } else {
            fronts[lo].push(s);
        }
    }
    fronts
}

/// Crowding distance of the solutions in `front` (Deb et al. 2002, with each
/// objective normalised by its range in the front). Boundary solutions, and
/// all solutions of a front of at most two, get infinity. Writes into
/// `out[i]` for each `i` in `front`.
pub fn crowding_distance(f: &[f64], m: usize, front: &[usize], out: &mut [f64]) {
    let len = front.len();
    if len <= 2 {
        for &i in front {
            out[i] = f64::INFINITY;
        }
        return;
    }
    for &i in front {
        out[i] = 0.0;
    }
    let mut sorted = front.to_vec();
    for k in 0..m {
        sorted.sort_unstable_by(|&a, &b| f[a * m + k].total_cmp(&f[b * m + k]).then(a.cmp(&b)));
        let lo = f[sorted[0] * m + k];
        let hi = f[sorted[len - 1] * m + k];
        out[sorted[0]] = f64::INFINITY;
        out[sorted[len - 1]] = f64::INFINITY;
        let range = hi - lo;
        if range <= 0.0 || !range.is_finite() {
            continue;
        }
        for w in 1..len - 1 {
            let i = sorted[w];
            if out[i].is_finite() {
                out[i] += (f[sorted[w + 1] * m + k] - f[sorted[w - 1] * m + k]) / range;
            }
        }
    }
}

/// Keeps `keep` solutions of `front` by removing, one at a time, the one
/// with the smallest crowding distance and updating the distances of its
/// neighbours (each objective keeps a linked list in sorted order, so a
/// removal costs O(M)). Ties go to the earliest position in `front`.
/// Writes the final distances of the kept solutions into `out`.
pub(crate) fn prune_by_crowding(
    f: &[f64],
    m: usize,
    front: &[usize],
    keep: usize,
    out: &mut [f64],
) -> Vec<usize> {
    let k = front.len();
    if keep >= k {
        return front.to_vec();
    }
    const NONE: usize = usize::MAX;
    // prev/next per objective, over positions 0..k of `front`.
    let mut prev = vec![NONE; k * m];
    let mut next = vec![NONE; k * m];
    let mut range = vec![0.0; m];
    let mut sorted: Vec<usize> = (0..k).collect();
    for j in 0..m {
        let val = |p: usize| f[front[p] * m + j];
        sorted.sort_by(|&a, &b| val(a).total_cmp(&val(b)).then(a.cmp(&b)));
        range[j] = val(sorted[k - 1]) - val(sorted[0]);
        for w in 0..k {
            prev[sorted[w] * m + j] = if w == 0 { NONE } else { sorted[w - 1] };
            next[sorted[w] * m + j] = if w + 1 == k { NONE } else { sorted[w + 1] };
        }
    }
    let distance = |p: usize, prev: &[usize], next: &[usize]| -> f64 {
        let mut d = 0.0;
        for j in 0..m {
            let (a, b) = (prev[p * m + j], next[p * m + j]);
            if a == NONE || b == NONE {
                return f64::INFINITY;
            }
            if range[j] > 0.0 && range[j].is_finite() {
                d += (f[front[b] * m + j] - f[front[a] * m + j]) / range[j];
            }
        }
        d
    };
    let mut dist: Vec<f64> = (0..k).map(|p| distance(p, &prev, &next)).collect();
    let mut alive = vec![true; k];
    for _ in 0..k - keep {
        let mut victim = NONE;
        for p in 0..k {
            if alive[p] && (victim == NONE || dist[p] < dist[victim]) {
                victim = p;
            }
        }
        alive[victim] = false;
        let mut touched = [NONE; 16];
        let mut count = 0;
        for j in 0..m {
            let (a, b) = (prev[victim * m + j], next[victim * m + j]);
            if a != NONE {
                next[a * m + j] = b;
            }
            if b != NONE {
                prev[b * m + j] = a;
            }
            for q in [a, b] {
                if q != NONE && count < touched.len() {
                    touched[count] = q;
                    count += 1;
                } else if q != NONE {
                    dist[q] = distance(q, &prev, &next);
                }
            }
        }
        for &q in &touched[..count] {
            dist[q] = distance(q, &prev, &next);
        }
    }
    let kept: Vec<usize> = (0..k).filter(|&p| alive[p]).map(|p| front[p]).collect();
    for p in (0..k).filter(|&p| alive[p]) {
        out[front[p]] = dist[p];
    }
    kept
}
