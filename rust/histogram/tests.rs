//! `cargo test`s of the histogram algorithm (`buckets.rs`).

use super::buckets::*;

fn build(values: &[f64]) -> LogHistogram {
    let mut h = LogHistogram::new();
    h.record_all(values).unwrap();
    h
}

/// A small deterministic spread of latencies (1 µs to ~100 s).
fn spread(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
            1e-6 * 10f64.powf(8.0 * unit)
        })
        .collect()
}

#[test]
fn values_land_in_the_bucket_whose_bounds_hold_them() {
    for v in [1e-6, 3.3e-4, 0.5, 1.0, 42.0, 3600.0] {
        let i = bucket_index(v);
        let (low, high) = (GAMMA.powf(i as f64 - 1.0), GAMMA.powf(i as f64));
        assert!(low < v * (1.0 + 1e-12) && v <= high * (1.0 + 1e-12), "{v}");
        let reported = representative(i);
        assert!(
            (reported - v).abs() <= RELATIVE_ERROR * v * (1.0 + 1e-9),
            "{v}"
        );
    }
}

#[test]
fn totals_follow_every_value_and_tiny_ones_count_as_zeros() {
    let h = build(&[0.0, 1e-10, 0.25, 0.125]);
    assert_eq!((h.count(), h.zeros()), (4, 2));
    assert_eq!(h.sum(), 0.0 + 1e-10 + 0.25 + 0.125);
    assert_eq!((h.min(), h.max()), (0.0, 0.25));
    assert_eq!(h.buckets().map(|(_, n)| n).sum::<u64>(), 2);
}

#[test]
fn negative_nan_and_infinite_values_are_refused_without_a_trace() {
    let mut h = LogHistogram::new();
    for v in [-1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(h.record(v).is_err());
    }
    assert_eq!(h, LogHistogram::new());
}

#[test]
fn record_all_keeps_the_values_before_a_refused_one() {
    let mut h = LogHistogram::new();
    assert_eq!(
        h.record_all(&[0.5, 1.5, -2.0, 3.0]),
        Err(InvalidLatency(-2.0))
    );
    assert_eq!(h, build(&[0.5, 1.5]));
}

#[test]
fn quantiles_are_within_the_relative_error_of_an_order_statistic() {
    let values = spread(500, 7);
    let h = build(&values);
    let mut sorted = values.clone();
    sorted.sort_by(f64::total_cmp);
    for q in [0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0] {
        let rank = q * (sorted.len() - 1) as f64;
        let candidates = [sorted[rank.floor() as usize], sorted[rank.ceil() as usize]];
        let estimate = h.quantile(q).unwrap();
        assert!(
            candidates
                .iter()
                .any(|c| (estimate - c).abs() <= RELATIVE_ERROR * c * (1.0 + 1e-9)),
            "q={q}: {estimate} vs {candidates:?}"
        );
    }
    assert!(h.quantile(1.5).is_err() && h.quantile(f64::NAN).is_err());
    assert_eq!(LogHistogram::new().quantile(0.99), Ok(0.0));
}

#[test]
fn merging_equals_recording_the_union_and_subtracting_undoes_it() {
    let (a, b) = (spread(200, 1), spread(300, 2));
    let mut merged = build(&a);
    merged.merge(&build(&b));
    let together = build(&[a.clone(), b.clone()].concat());
    assert!(merged.buckets().eq(together.buckets()));
    assert_eq!(
        (merged.zeros(), merged.count(), merged.min(), merged.max()),
        (
            together.zeros(),
            together.count(),
            together.min(),
            together.max()
        )
    );
    assert!((merged.sum() - together.sum()).abs() <= 1e-9 * together.sum());

    merged.subtract(&build(&b)).unwrap();
    assert!(merged.buckets().eq(build(&a).buckets()));
    assert_eq!(merged.count(), a.len() as u64);
}

#[test]
fn subtracting_what_was_never_merged_in_changes_nothing() {
    let mut h = build(&[0.5]);
    let before = h.clone();
    assert_eq!(h.subtract(&build(&[2.0])), Err(HistogramError::NotMergedIn));
    assert_eq!(
        h.subtract(&build(&[0.5, 0.5])),
        Err(HistogramError::NotMergedIn)
    );
    assert_eq!(h, before);
    h.subtract(&before).unwrap();
    assert_eq!((h.count(), h.sum()), (0, 0.0));
}

#[test]
fn cumulative_counts_put_each_value_under_the_first_bound_above_it() {
    let h = build(&[0.0, 0.004, 0.02, 0.02, 0.3, 7.0]);
    assert_eq!(h.cumulative_counts(&[0.01, 0.1, 1.0]), Ok(vec![2, 4, 5]));
    assert_eq!(h.cumulative_counts(&[]), Ok(vec![]));
    assert_eq!(
        h.cumulative_counts(&[0.1, 0.1]),
        Err(HistogramError::BoundsNotIncreasing)
    );
    assert_eq!(
        h.cumulative_counts(&[f64::NAN]),
        Err(HistogramError::BoundsNotIncreasing)
    );
}

#[test]
fn parts_round_trip_and_inconsistent_ones_are_refused() {
    let h = build(&spread(100, 3));
    let copy = LogHistogram::from_parts(
        h.buckets().collect::<Vec<_>>(),
        h.zeros(),
        h.count(),
        h.sum(),
        h.min(),
        h.max(),
    )
    .unwrap();
    assert_eq!(
        copy.buckets().collect::<Vec<_>>(),
        h.buckets().collect::<Vec<_>>()
    );
    assert_eq!(copy.quantile(0.5), h.quantile(0.5));
    assert!(matches!(
        LogHistogram::from_parts([(3, 2)], 0, 5, 1.0, 0.1, 0.2),
        Err(HistogramError::InconsistentCount {
            count: 5,
            counted: 2
        })
    ));
    assert!(matches!(
        LogHistogram::from_parts([(1 << 40, 1)], 0, 1, 1.0, 0.1, 0.2),
        Err(HistogramError::IndexOutOfRange(_))
    ));
}
