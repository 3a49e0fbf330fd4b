//! The ZDT1, ZDT2 and ZDT3 test problems (Zitzler, Deb and Thiele 2000),
//! 30 real variables in `[0, 1]`, two objectives, with their true fronts.

use super::{Problem, Variables};

/// Which ZDT problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ZdtKind {
    /// Convex front `f2 = 1 - sqrt(f1)`.
    Zdt1,
    /// Concave front `f2 = 1 - f1²`.
    Zdt2,
    /// Disconnected front `f2 = 1 - sqrt(f1) - f1 sin(10 π f1)`.
    Zdt3,
}

/// A ZDT problem instance.
#[derive(Debug, Clone, Copy)]
pub struct Zdt {
    kind: ZdtKind,
    n: usize,
}

impl Zdt {
    /// The standard instance (30 variables).
    pub fn new(kind: ZdtKind) -> Self {
        Self { kind, n: 30 }
    }

    /// The problem's kind.
    pub fn kind(&self) -> ZdtKind {
        self.kind
    }

    fn shape(&self, f1: f64, g: f64) -> f64 {
        let r = f1 / g;
        match self.kind {
            ZdtKind::Zdt1 => g * (1.0 - r.sqrt()),
            ZdtKind::Zdt2 => g * (1.0 - r * r),
            ZdtKind::Zdt3 => g * (1.0 - r.sqrt() - r * (10.0 * std::f64::consts::PI * f1).sin()),
        }
    }

    /// `points` points of the true Pareto front (for ZDT3, the non-dominated
    /// part of a fine sampling of the curve), sorted by `f1`.
    pub fn true_front(&self, points: usize) -> Vec<Vec<f64>> {
        let points = points.max(2);
        match self.kind {
            ZdtKind::Zdt1 | ZdtKind::Zdt2 => (0..points)
                .map(|i| {
                    let f1 = i as f64 / (points - 1) as f64;
                    vec![f1, self.shape(f1, 1.0)]
                })
                .collect(),
            ZdtKind::Zdt3 => {
                let samples = points * 20;
                let curve: Vec<[f64; 2]> = (0..samples)
                    .map(|i| {
                        let f1 = 0.852 * i as f64 / (samples - 1) as f64;
                        [f1, self.shape(f1, 1.0)]
                    })
                    .collect();
                // Sweep by f1: keep points whose f2 is below every earlier one.
                let mut best = f64::INFINITY;
                let front: Vec<[f64; 2]> = curve
                    .into_iter()
                    .filter(|p| {
                        if p[1] < best {
                            best = p[1];
                            true
                        } else {
                            false
                        }
                    })
                    .collect();
                let step = front.len() as f64 / points as f64;
                (0..points)
                    .map(|i| {
                        let p = front[((i as f64 * step) as usize).min(front.len() - 1)];
                        vec![p[0], p[1]]
                    })
                    .collect()
            }
        }
    }
}

impl Problem for Zdt {
    fn variables(&self) -> Variables {
        Variables::Real(vec![(0.0, 1.0); self.n])
    }

    fn objectives(&self) -> usize {
        2
    }

    fn evaluate(&self, x: &[f64], objectives: &mut [f64], _constraints: &mut [f64]) {
        let f1 = x[0];
        let tail: f64 = x[1..].iter().sum();
        let g = 1.0 + 9.0 * tail / (self.n - 1) as f64;
        objectives[0] = f1;
        objectives[1] = self.shape(f1, g);
    }
}
