//! The Pareto front of cost vs benefit.

/// Indices of the Pareto-optimal points among `(cost, benefit)` pairs, where lower cost
/// and higher benefit are better (for the report: batch-1 latency and accuracy). A point
/// is optimal when no other point is at least as good on both and strictly better on
/// one; identical points are all optimal. Points with a non-finite coordinate are
/// ignored. The result is sorted by cost, then by benefit (descending), so it can be
/// drawn as a step line directly.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<usize> {
    let valid = |&(c, b): &(f64, f64)| c.is_finite() && b.is_finite();
    let dominates = |(c1, b1): (f64, f64), (c2, b2): (f64, f64)| c1 <= c2 && b1 >= b2 && (c1 < c2 || b1 > b2);
    // Quadratic, which is fine: a run has tens of variants, not thousands.
    let mut front: Vec<usize> = (0..points.len())
        .filter(|&i| valid(&points[i]))
        .filter(|&i| !points.iter().filter(|p| valid(p)).any(|&p| dominates(p, points[i])))
        .collect();
    front.sort_by(|&a, &b| points[a].0.total_cmp(&points[b].0).then(points[b].1.total_cmp(&points[a].1)));
    front
}

#[cfg(test)]
mod tests {
    use super::pareto_front;

    #[test]
    fn keeps_only_undominated_points_sorted_by_cost() {
        let pts = [
            (200.0, 0.96), // 0: baseline, most accurate
            (100.0, 0.95), // 1: faster, a little worse: optimal
            (150.0, 0.94), // 2: dominated by 1
            (50.0, 0.80),  // 3: fastest: optimal
            (200.0, 0.90), // 4: dominated by 0 (same cost, worse)
            (300.0, 0.96), // 5: dominated by 0 (same accuracy, slower)
        ];
        assert_eq!(pareto_front(&pts), vec![3, 1, 0]);
    }

    #[test]
    fn ties_and_edge_cases() {
        assert!(pareto_front(&[]).is_empty());
        assert_eq!(pareto_front(&[(1.0, 0.5)]), vec![0]);
        // Identical points do not dominate each other.
        assert_eq!(pareto_front(&[(1.0, 0.5), (1.0, 0.5)]), vec![0, 1]);
        // NaN is ignored rather than poisoning the comparison.
        assert_eq!(pareto_front(&[(f64::NAN, 0.99), (2.0, 0.5), (1.0, f64::NAN)]), vec![1]);
        // A chain where each point is both faster and better: only the last survives.
        assert_eq!(pareto_front(&[(3.0, 0.1), (2.0, 0.2), (1.0, 0.3)]), vec![2]);
    }
}
