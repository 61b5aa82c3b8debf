//! The summary of a drill's history (CONTRACT section 7): how many ran, how many passed, and
//! the recovery times and data losses seen. Pure.

use serde::{Deserialize, Serialize};

use super::{EvidenceRecord, Verdict};

/// `{"count", "passed", "passRate", "rtoSecondsMedian", "rtoSecondsP90", "rtoSecondsMax",
/// "rpoSecondsMax", "lastPassedAt"}` over the records given (the page served). The RTO figures
/// count every drill that has one (those followed to an end); percentiles by nearest rank.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub count: usize,
    pub passed: usize,
    /// `passed / count`, rounded to 4 decimals; `null` with no drills.
    pub pass_rate: Option<f64>,
    pub rto_seconds_median: Option<u64>,
    pub rto_seconds_p90: Option<u64>,
    pub rto_seconds_max: Option<u64>,
    pub rpo_seconds_max: Option<u64>,
    /// `startedAt` of the newest drill that passed.
    pub last_passed_at: Option<String>,
}

impl Summary {
    pub fn of(records: &[EvidenceRecord]) -> Summary {
        let passed: Vec<&EvidenceRecord> = records
            .iter()
            .filter(|r| r.verdict == Verdict::Passed)
            .collect();
        let mut rto: Vec<u64> = records.iter().filter_map(|r| r.rto_seconds).collect();
        rto.sort_unstable();
        let count = records.len();
        Summary {
            count,
            passed: passed.len(),
            pass_rate: (count > 0)
                .then(|| (passed.len() as f64 / count as f64 * 10_000.0).round() / 10_000.0),
            rto_seconds_median: nearest_rank(&rto, 50),
            rto_seconds_p90: nearest_rank(&rto, 90),
            rto_seconds_max: rto.last().copied(),
            rpo_seconds_max: records.iter().filter_map(|r| r.rpo_seconds).max(),
            last_passed_at: passed.iter().map(|r| r.started_at.clone()).max(),
        }
    }
}

/// The `percent`-th percentile of sorted values by nearest rank: the smallest value with at
/// least that share of the values at or below it.
fn nearest_rank(sorted: &[u64], percent: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_is_the_smallest_value_covering_the_share() {
        assert_eq!(nearest_rank(&[], 50), None);
        assert_eq!(nearest_rank(&[7], 50), Some(7));
        assert_eq!(nearest_rank(&[7], 90), Some(7));
        assert_eq!(nearest_rank(&[1, 2, 3, 4], 50), Some(2));
        assert_eq!(nearest_rank(&[1, 2, 3, 4, 5], 50), Some(3));
        let ten: Vec<u64> = (1..=10).collect();
        assert_eq!(nearest_rank(&ten, 90), Some(9));
        let eleven: Vec<u64> = (1..=11).collect();
        assert_eq!(nearest_rank(&eleven, 90), Some(10));
    }
}
