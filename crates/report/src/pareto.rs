//! The Pareto front of cost vs benefit, where a cost may be known only within an
//! interval.

/// A cost known within a 95% interval `[lo, hi]`; a point cost has `lo == hi`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    /// The point value (the median).
    pub value: f64,
    /// Lower end of its interval.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
}

impl Cost {
    /// `value` within `[lo, hi]`; where an end is not finite (a run made before
    /// slimbench timed with intervals) or the interval does not hold the value, the
    /// point value alone.
    pub fn new(value: f64, lo: f64, hi: f64) -> Self {
        match crate::format::interval(lo, hi) {
            Some((lo, hi)) if lo <= value && value <= hi => Cost { value, lo, hi },
            _ => Cost::point(value),
        }
    }

    /// A cost known exactly.
    pub fn point(value: f64) -> Self {
        Cost { value, lo: value, hi: value }
    }

    /// Lower than `other` beyond noise: this interval lies entirely below the other's.
    /// Overlapping intervals are the same cost within noise.
    pub fn below(&self, other: &Cost) -> bool {
        self.hi < other.lo
    }
}

/// Indices of the Pareto-optimal points among `(cost, benefit)` pairs, where lower cost
/// and higher benefit are better (for the report: batch-1 latency and accuracy). A point
/// is optimal when no other point is at least as good on both and strictly better on
/// one; identical points are all optimal. Points with a non-finite coordinate are
/// ignored. The result is sorted by cost, then by benefit (descending), so it can be
/// drawn as a step line directly.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<usize> {
    let costs: Vec<(Cost, f64)> = points.iter().map(|&(c, b)| (Cost::point(c), b)).collect();
    pareto_front_within(&costs)
}

/// [`pareto_front`] with costs known within intervals: a cost is lower than another
/// only when its interval lies entirely below the other's, and two costs whose
/// intervals overlap count as equal (the same speed within noise). So a variant 80.0 µs
/// [78, 84] does not beat one 82.9 µs [80, 86] of the same accuracy; both are optimal.
pub fn pareto_front_within(points: &[(Cost, f64)]) -> Vec<usize> {
    let valid = |&(c, b): &(Cost, f64)| c.value.is_finite() && b.is_finite();
    let dominates = |(c1, b1): (Cost, f64), (c2, b2): (Cost, f64)| {
        let cheaper = c1.below(&c2);
        let as_cheap = cheaper || !c2.below(&c1);
        as_cheap && b1 >= b2 && (cheaper || b1 > b2)
    };
    // Quadratic, which is fine: a run has tens of variants, not thousands.
    let mut front: Vec<usize> = (0..points.len())
        .filter(|&i| valid(&points[i]))
        .filter(|&i| !points.iter().filter(|p| valid(p)).any(|&p| dominates(p, points[i])))
        .collect();
    front.sort_by(|&a, &b| {
        points[a].0.value.total_cmp(&points[b].0.value).then(points[b].1.total_cmp(&points[a].1))
    });
    front
}

#[cfg(test)]
mod tests {
    use super::{Cost, pareto_front, pareto_front_within};

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

    /// `fp16` is 80.0 µs [78, 84] and `train` 82.9 µs [80, 86] at the same accuracy:
    /// the intervals overlap, so fp16 is not faster and does not dominate train.
    #[test]
    fn overlapping_intervals_are_the_same_speed() {
        let train = (Cost::new(82.9, 80.0, 86.0), 0.9601);
        let fp16 = (Cost::new(80.0, 78.0, 84.0), 0.9601);
        assert!(!fp16.0.below(&train.0) && !train.0.below(&fp16.0));
        assert_eq!(pareto_front_within(&[train, fp16]), vec![1, 0]);
        // On the point values alone fp16 would win.
        assert_eq!(pareto_front(&[(82.9, 0.9601), (80.0, 0.9601)]), vec![1]);
        // The same speed within noise and more accurate: that one dominates.
        let better = (Cost::new(83.5, 81.0, 85.0), 0.9650);
        assert_eq!(pareto_front_within(&[train, fp16, better]), vec![2]);
        // Disjoint intervals: faster beyond noise.
        let fast = (Cost::new(60.0, 58.0, 62.0), 0.9601);
        assert_eq!(pareto_front_within(&[train, fast]), vec![1]);
        // Old runs: no intervals, so point values decide.
        let old = (Cost::new(80.0, f64::NAN, f64::NAN), 0.9601);
        assert_eq!(old.0, Cost::point(80.0));
        assert_eq!(pareto_front_within(&[(Cost::point(82.9), 0.9601), old]), vec![1]);
        // An interval that misses its own value is not trusted.
        assert_eq!(Cost::new(80.0, 81.0, 84.0), Cost::point(80.0));
    }
}
