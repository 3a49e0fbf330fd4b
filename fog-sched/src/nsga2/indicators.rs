//! Quality indicators for a set of objective vectors (minimisation).
//!
//! The hypervolume is exact for two objectives only (a sweep in
//! O(N log N)); that is what the ZDT checks need. For more objectives use
//! IGD against a reference front.

/// The exact hypervolume of two-objective points `points` (each `[f1, f2]`)
/// with respect to `reference`: the area dominated by the set and bounded by
/// the reference point. Points that do not strictly dominate the reference
/// contribute nothing; NaN points are ignored.
pub fn hypervolume_2d(points: &[[f64; 2]], reference: [f64; 2]) -> f64 {
    let mut inside: Vec<[f64; 2]> = points
        .iter()
        .copied()
        .filter(|p| p[0] < reference[0] && p[1] < reference[1])
        .collect();
    inside.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    let mut volume = 0.0;
    let mut best_f2 = reference[1];
    for p in inside {
        if p[1] < best_f2 {
            volume += (reference[0] - p[0]) * (best_f2 - p[1]);
            best_f2 = p[1];
        }
    }
    volume
}

/// Inverted generational distance: the mean, over the points of
/// `reference_front`, of the Euclidean distance to the nearest point of
/// `points`. Lower is better; infinity when `points` is empty, 0 when the
/// reference front is empty.
pub fn igd(points: &[Vec<f64>], reference_front: &[Vec<f64>]) -> f64 {
    if reference_front.is_empty() {
        return 0.0;
    }
    if points.is_empty() {
        return f64::INFINITY;
    }
    let total: f64 = reference_front
        .iter()
        .map(|r| {
            points
                .iter()
                .map(|p| r.iter().zip(p).map(|(a, b)| (a - b) * (a - b)).sum::<f64>())
                .fold(f64::INFINITY, f64::min)
                .sqrt()
        })
        .sum();
    total / reference_front.len() as f64
}
