//! The benchmark against the tools operators use today (`sixmap-bench-peers`): parsers of
//! each tool's output, the statistics, and the table. Everything here is pure, so CI checks
//! the parsers on small fixtures of each tool's real output; the binary runs the tools.

pub mod parse;
pub mod table;

/// Median of `values` (the mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    })
}

/// Which way a metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
    /// Shown for context only: no direction, no ratio.
    Info,
}

impl Better {
    pub fn arrow(self) -> &'static str {
        match self {
            Better::Lower => "lower is better",
            Better::Higher => "higher is better",
            Better::Info => "for context",
        }
    }

    /// The best of `values` in this direction.
    pub fn best(self, values: impl IntoIterator<Item = f64>) -> Option<f64> {
        values
            .into_iter()
            .filter(|v| v.is_finite())
            .reduce(|a, b| match self {
                Better::Lower | Better::Info => a.min(b),
                Better::Higher => a.max(b),
            })
            .filter(|_| self != Better::Info)
    }
}

/// How many positions of `measured` equal `expected` (hop by hop, first responder per hop),
/// and whether the path is complete: every hop right and nothing after the destination.
pub fn hops_correct(
    measured: &[Option<std::net::IpAddr>],
    expected: &[std::net::IpAddr],
) -> (usize, bool) {
    let correct = expected
        .iter()
        .zip(measured)
        .filter(|(e, m)| m.as_ref() == Some(e))
        .count();
    (
        correct,
        correct == expected.len() && measured.len() == expected.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_directions() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
        assert_eq!(Better::Lower.best([3.0, 1.0, f64::NAN]), Some(1.0));
        assert_eq!(Better::Higher.best([3.0, 1.0]), Some(3.0));
        assert_eq!(Better::Higher.best([]), None);
        assert_eq!(Better::Info.best([1.0]), None);
    }

    #[test]
    fn hops_are_compared_position_by_position() {
        let a: std::net::IpAddr = "2001:db8:1::1".parse().unwrap();
        let b: std::net::IpAddr = "2001:db8:2::1".parse().unwrap();
        assert_eq!(hops_correct(&[Some(a), Some(b)], &[a, b]), (2, true));
        assert_eq!(hops_correct(&[None, Some(b)], &[a, b]), (1, false));
        assert_eq!(
            hops_correct(&[Some(a), Some(b), Some(b)], &[a, b]),
            (2, false)
        );
        assert_eq!(hops_correct(&[Some(a)], &[a, b]), (1, false));
    }
}
