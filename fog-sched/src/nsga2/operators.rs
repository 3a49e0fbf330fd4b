//! Variation operators, with pymoo's formulas and defaults.

use crate::rng::SeededRng;

/// Simulated binary crossover (Deb and Agrawal 1995, bounded form as in
/// pymoo): each variable crosses with probability `var_prob` (pymoo 0.5)
/// when the parents differ; the two children are swapped per variable with
/// probability 0.5.
pub(crate) fn sbx(
    a: &mut [f64],
    b: &mut [f64],
    bounds: &[(f64, f64)],
    eta: f64,
    var_prob: f64,
    rng: &mut SeededRng,
) {
    let exp = 1.0 / (eta + 1.0);
    for (k, &(xl, xu)) in bounds.iter().enumerate() {
        if !rng.chance(var_prob) {
            continue;
        }
        let (x1, x2) = (a[k], b[k]);
        if (x1 - x2).abs() <= 1e-14 {
            continue;
        }
        let (y1, y2) = if x1 < x2 { (x1, x2) } else { (x2, x1) };
        let delta = y2 - y1;
        let u = rng.unit();
        let betaq = |beta: f64| {
            let alpha = 2.0 - beta.powf(-(eta + 1.0));
            if u <= 1.0 / alpha {
                (u * alpha).powf(exp)
            } else {
                (1.0 / (2.0 - u * alpha)).powf(exp)
            }
        };
        let bq1 = betaq(1.0 + 2.0 * (y1 - xl) / delta);
        let bq2 = betaq(1.0 + 2.0 * (xu - y2) / delta);
        let c1 = (0.5 * ((y1 + y2) - bq1 * delta)).clamp(xl, xu);
        let c2 = (0.5 * ((y1 + y2) + bq2 * delta)).clamp(xl, xu);
        if rng.chance(0.5) {
            a[k] = c2;
            b[k] = c1;
        } else {
            a[k] = c1;
            b[k] = c2;
        }
    }
}

/// Polynomial mutation (Deb and Goyal 1996, bounded form as in pymoo): each
/// variable mutates with probability `var_prob`.
pub(crate) fn polynomial_mutation(
    x: &mut [f64],
    bounds: &[(f64, f64)],
    eta: f64,
    var_prob: f64,
    rng: &mut SeededRng,
) {
    let exp = 1.0 / (eta + 1.0);
    for (k, &(xl, xu)) in bounds.iter().enumerate() {
        if !rng.chance(var_prob) {
            continue;
        }
        let range = xu - xl;
        if range <= 0.0 {
            continue;
        }
        let y = x[k];
        let d1 = (y - xl) / range;
        let d2 = (xu - y) / range;
        let u = rng.unit();
        let deltaq = if u <= 0.5 {
            let v = 2.0 * u + (1.0 - 2.0 * u) * (1.0 - d1).powf(eta + 1.0);
            v.powf(exp) - 1.0
        } else {
            let v = 2.0 * (1.0 - u) + 2.0 * (u - 0.5) * (1.0 - d2).powf(eta + 1.0);
            1.0 - v.powf(exp)
        };
        x[k] = (y + deltaq * range).clamp(xl, xu);
    }
}

/// Uniform crossover for integer genes: each gene is swapped with
/// probability 0.5.
pub(crate) fn uniform_crossover(a: &mut [f64], b: &mut [f64], rng: &mut SeededRng) {
    for (x, y) in a.iter_mut().zip(b.iter_mut()) {
        if rng.chance(0.5) {
            std::mem::swap(x, y);
        }
    }
}

/// Random-reset mutation for integer genes: each gene becomes a uniform value
/// in `[0, upper)` with probability `var_prob`.
pub(crate) fn reset_mutation(x: &mut [f64], upper: &[u32], var_prob: f64, rng: &mut SeededRng) {
    for (g, &u) in x.iter_mut().zip(upper) {
        if u > 0 && rng.chance(var_prob) {
            *g = rng.below(u as usize) as f64;
        }
    }
}
