//! Choosing whom to believe among several servers (RFC 5905 §11.2): the
//! intersection algorithm (Marzullo's, as modified for NTP) finds the
//! smallest interval that a majority of the servers' correctness intervals
//! share; a server whose interval misses it is a false-ticker and is ignored.
//! The survivors' offsets are averaged, weighted by how tight each interval
//! is, and the tightest survivor becomes the system peer.
//!
//! The cluster algorithm of RFC 5905 §11.2.2 is left out: with the handful of
//! servers an appliance uses, the weighted mean over the truechimers is enough.

/// Root distances are never taken below half of this (RFC 5905 MINDISP), so
/// that servers a few microseconds apart on a fast link still overlap.
pub const MIN_DISPERSION: f64 = 0.01;

/// A server whose root distance exceeds this cannot be selected
/// (RFC 5905 MAXDIST): its time is too uncertain to be worth anything.
pub const MAX_DISTANCE: f64 = 1.5;

/// One server's claim: the true time is within `offset ± distance`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// The caller's identifier (the index of the source).
    pub id: usize,
    pub offset: f64,
    /// Root distance, seconds: half the round trip to the primary reference
    /// plus every dispersion and the jitter on the way (see `root_distance`).
    pub distance: f64,
    pub stratum: u8,
}

/// Root distance of a server (RFC 5905 §11.2, `root_dist`).
pub fn root_distance(
    delay: f64,
    dispersion: f64,
    jitter: f64,
    root_delay: f64,
    root_dispersion: f64,
) -> f64 {
    (root_delay + delay).max(MIN_DISPERSION) / 2.0 + root_dispersion + dispersion + jitter
}

#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Ids of the candidates whose interval meets the majority's.
    pub survivors: Vec<usize>,
    /// Ids of the candidates left out: false-tickers, or too far to trust.
    pub falsetickers: Vec<usize>,
    /// The survivor to name as the reference (smallest distance).
    pub system_peer: usize,
    /// Weighted mean of the survivors' offsets, seconds.
    pub offset: f64,
    /// RMS of the survivors' offsets around that mean, seconds.
    pub jitter: f64,
}

/// Runs the intersection algorithm over `candidates`. `None` when there is
/// no majority to agree on (no candidates, or e.g. two that disagree): then
/// nobody is believed, which is the point.
pub fn select(candidates: &[Candidate]) -> Option<Selection> {
    let (eligible, too_far): (Vec<&Candidate>, Vec<&Candidate>) =
        candidates.iter().partition(|c| {
            c.distance <= MAX_DISTANCE && c.distance.is_finite() && c.offset.is_finite()
        });
    let (low, high) = intersection(&eligible)?;

    let mut survivors = Vec::new();
    let mut falsetickers: Vec<usize> = too_far.iter().map(|c| c.id).collect();
    for c in &eligible {
        // A candidate survives when its interval meets the intersection
        // (ntpd's test): a truechimer's midpoint need not lie inside it.
        if c.offset + c.distance < low || c.offset - c.distance > high {
            falsetickers.push(c.id);
        } else {
            survivors.push(*c);
        }
    }

    let weight_sum: f64 = survivors.iter().map(|c| 1.0 / c.distance).sum();
    let offset = survivors.iter().map(|c| c.offset / c.distance).sum::<f64>() / weight_sum;
    let jitter = (survivors
        .iter()
        .map(|c| (c.offset - offset).powi(2))
        .sum::<f64>()
        / survivors.len() as f64)
        .sqrt();
    let peer = survivors.iter().min_by(|a, b| {
        a.distance
            .total_cmp(&b.distance)
            .then(a.stratum.cmp(&b.stratum))
    })?;
    Some(Selection {
        system_peer: peer.id,
        survivors: survivors.iter().map(|c| c.id).collect(),
        falsetickers,
        offset,
        jitter,
    })
}

/// The intersection interval of RFC 5905 §11.2.1: for `allow` = 0, 1, ...
/// false-tickers (fewer than half), find the interval that `n - allow`
/// correctness intervals share and that holds no more than `allow`
/// midpoints outside it.
fn intersection(cands: &[&Candidate]) -> Option<(f64, f64)> {
    let n = cands.len();
    if n == 0 {
        return None;
    }
    // Endpoints typed -1 (low end), 0 (midpoint), +1 (high end). Sorting by
    // (edge, type) puts low ends before high ends at the same value, so
    // intervals that only touch still count as overlapping.
    let mut edges: Vec<(f64, i32)> = Vec::with_capacity(3 * n);
    for c in cands {
        edges.push((c.offset - c.distance, -1));
        edges.push((c.offset, 0));
        edges.push((c.offset + c.distance, 1));
    }
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));

    let mut allow = 0;
    while 2 * allow < n {
        let need = (n - allow) as i32;
        let mut found = 0;
        let mut chime = 0;
        let mut low = None;
        for &(edge, ty) in &edges {
            chime -= ty;
            if chime >= need {
                low = Some(edge);
                break;
            }
            if ty == 0 {
                found += 1;
            }
        }
        chime = 0;
        let mut high = None;
        for &(edge, ty) in edges.iter().rev() {
            chime += ty;
            if chime >= need {
                high = Some(edge);
                break;
            }
            if ty == 0 {
                found += 1;
            }
        }
        if found <= allow {
            if let (Some(low), Some(high)) = (low, high) {
                if high >= low {
                    return Some((low, high));
                }
            }
        }
        allow += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(id: usize, offset: f64, distance: f64) -> Candidate {
        Candidate {
            id,
            offset,
            distance,
            stratum: 2,
        }
    }

    #[test]
    fn nothing_to_select_from() {
        assert_eq!(select(&[]), None);
    }

    #[test]
    fn a_single_server_is_believed() {
        let s = select(&[cand(7, 0.25, 0.01)]).unwrap();
        assert_eq!(s.survivors, vec![7]);
        assert_eq!(s.system_peer, 7);
        assert_eq!(s.offset, 0.25);
    }

    #[test]
    fn a_false_ticker_among_three_is_rejected() {
        // Two agree on +1 ms; the third is 30 s out.
        let s = select(&[
            cand(0, 0.001, 0.005),
            cand(1, 30.0, 0.005),
            cand(2, 0.0012, 0.006),
        ])
        .unwrap();
        assert_eq!(s.survivors, vec![0, 2]);
        assert_eq!(s.falsetickers, vec![1]);
        assert_eq!(s.system_peer, 0);
        assert!((s.offset - 0.00109).abs() < 1e-4, "{}", s.offset);
    }

    #[test]
    fn false_ticker_first_in_order_is_rejected_too() {
        let s = select(&[
            cand(0, -30.0, 0.005),
            cand(1, 0.0, 0.005),
            cand(2, 0.0, 0.005),
        ])
        .unwrap();
        assert_eq!(s.falsetickers, vec![0]);
        assert_eq!(s.offset, 0.0);
    }

    #[test]
    fn two_servers_that_disagree_give_no_selection() {
        assert_eq!(select(&[cand(0, 0.0, 0.005), cand(1, 30.0, 0.005)]), None);
    }

    #[test]
    fn no_majority_among_three_gives_no_selection() {
        assert_eq!(
            select(&[
                cand(0, 0.0, 0.005),
                cand(1, 10.0, 0.005),
                cand(2, 20.0, 0.005)
            ]),
            None
        );
    }

    #[test]
    fn overlapping_truechimers_all_survive() {
        // Midpoints outside the all-three intersection [8, 10] ms still
        // survive: their intervals meet the majority's.
        let s = select(&[
            cand(0, 0.005, 0.005),
            cand(1, 0.010, 0.005),
            cand(2, 0.013, 0.005),
        ])
        .unwrap();
        assert_eq!(s.survivors, vec![0, 1, 2]);
        assert!(s.falsetickers.is_empty());
    }

    #[test]
    fn four_servers_with_one_false_ticker() {
        let s = select(&[
            cand(0, 0.002, 0.02),
            cand(1, -0.001, 0.03),
            cand(2, 0.0, 0.02),
            cand(3, -5.0, 0.02),
        ])
        .unwrap();
        assert_eq!(s.falsetickers, vec![3]);
        assert_eq!(s.survivors.len(), 3);
    }

    #[test]
    fn distant_servers_are_not_eligible() {
        let s = select(&[cand(0, 0.0, 0.005), cand(1, 0.0, 2.0)]).unwrap();
        assert_eq!(s.survivors, vec![0]);
        assert_eq!(s.falsetickers, vec![1]);
    }

    #[test]
    fn weighted_mean_favours_the_tighter_interval() {
        let s = select(&[cand(0, 0.0, 0.01), cand(1, 0.003, 0.03)]).unwrap();
        // weights 100 and 33.3: mean = 0.1 / 133.3 = 0.00075
        assert!((s.offset - 0.00075).abs() < 1e-9, "{}", s.offset);
        assert_eq!(s.system_peer, 0);
    }

    #[test]
    fn root_distance_has_a_floor() {
        let d = root_distance(20e-6, 1e-6, 1e-6, 0.0, 0.0);
        assert!((d - (MIN_DISPERSION / 2.0 + 2e-6)).abs() < 1e-12);
    }
}
