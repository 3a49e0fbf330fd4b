//! Variation operators, with pymoo's formulas and defaults.

use crate::rng::SeededRng;

/// `x^p` for a fixed `p`: exponentiation by squaring when `p` is a small
/// whole number (pymoo's η = 15 and 20 give 16 and 21) and repeated square
/// roots when `p` is the inverse of a power of two (1/16 for η = 15), both
/// several times faster than `powf`; `powf` otherwise.
#[derive(Clone, Copy)]
struct Power {
    p: f64,
    whole: Option<u32>,
    roots: Option<u32>,
}

impl Power {
    fn new(p: f64) -> Self {
        let whole = (p.fract() == 0.0 && (1.0..=64.0).contains(&p)).then_some(p as u32);
        let inv = 1.0 / p;
        let roots = (inv.fract() == 0.0 && (inv as u32).is_power_of_two() && inv <= 64.0)
            .then_some((inv as u32).trailing_zeros());
        Self { p, whole, roots }
    }

    #[inline]
    fn of(self, x: f64) -> f64 {
        if let Some(mut n) = self.whole {
            let (mut base, mut acc) = (x, 1.0);
            while n > 0 {
                if n & 1 == 1 {
                    acc *= base;
                }
                base *= base;
                n >>= 1;
            }
            acc
        } else if let Some(k) = self.roots {
            (0..k).fold(x, |v, _| v.sqrt())
        } else {
            x.powf(self.p)
        }
    }
}

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
    let power = Power::new(eta + 1.0);
    let root = Power::new(1.0 / (eta + 1.0));
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
            let alpha = 2.0 - 1.0 / power.of(beta);
            if u <= 1.0 / alpha {
                root.of(u * alpha)
            } else {
                root.of(1.0 / (2.0 - u * alpha))
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
    let power = Power::new(eta + 1.0);
    let root = Power::new(1.0 / (eta + 1.0));
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
            let v = 2.0 * u + (1.0 - 2.0 * u) * power.of(1.0 - d1);
            root.of(v) - 1.0
        } else {
            let v = 2.0 * (1.0 - u) + 2.0 * (u - 0.5) * power.of(1.0 - d2);
            1.0 - root.of(v)
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
