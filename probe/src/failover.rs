//! Which collector to use next, when the probe's config lists several (issue #11). Pure: no
//! I/O, no clock; the session loop feeds it outcomes and sleeps as it says.
//!
//! Collectors sharing one store (and one CA) are interchangeable: a result stored at one is a
//! duplicate at the others, so the probe may deliver anywhere. The probe stays with a
//! collector while it works; when an attempt fails or a session breaks it moves to the next one
//! in the list, after a short pause. Only when every collector failed in a row does the
//! exponential backoff grow, so a dead collector costs one short pause, and a dead site is not
//! hammered.
//!
//! A refusal that retrying cannot fix (unknown certificate, version too old) ends the probe
//! only once every collector of the list refused it since the last working session: with a
//! shared store they all answer alike, and one collector set up with the wrong store must not
//! stop every probe that fails over to it. (A revocation ends the probe at once; the session
//! loop does not ask here.)

/// How long to wait before the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pause {
    /// The first backoff step (about a second, jittered): another collector is worth a try.
    Short,
    /// The next step of the growing backoff: the whole list failed in a row.
    Backoff,
}

/// What to do after a collector refused the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Another collector may still accept: pause, then try it.
    TryNext(Pause),
    /// Every collector refused: stop.
    GiveUp,
}

/// The configured collectors and the one in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    collectors: Vec<String>,
    current: usize,
    /// Attempts that failed since the last welcome (or the start).
    failures: usize,
    /// Per collector: its latest attempt since the last welcome ended in a refusal.
    refused: Vec<bool>,
}

impl Rotation {
    /// `None` for an empty list (the config refuses one).
    pub fn new(collectors: Vec<String>) -> Option<Self> {
        (!collectors.is_empty()).then_some(Self {
            refused: vec![false; collectors.len()],
            collectors,
            current: 0,
            failures: 0,
        })
    }

    /// The collector to try now.
    pub fn current(&self) -> &str {
        // `current` is always an index into the non-empty list.
        self.collectors
            .get(self.current)
            .or_else(|| self.collectors.first())
            .map_or("", String::as_str)
    }

    pub fn all(&self) -> &[String] {
        &self.collectors
    }

    /// Records that the current collector failed (`welcomed`: after a working session; else
    /// the attempt never got that far), moves to the next one and says how long to pause.
    pub fn failed(&mut self, welcomed: bool) -> Pause {
        if welcomed {
            self.refused.fill(false);
        } else if let Some(refused) = self.refused.get_mut(self.current) {
            *refused = false;
        }
        self.advance(welcomed)
    }

    /// Records that the current collector refused the probe for a reason retrying it cannot
    /// fix; says whether another collector remains to be asked.
    pub fn refused(&mut self) -> Refusal {
        if let Some(refused) = self.refused.get_mut(self.current) {
            *refused = true;
        }
        if self.refused.iter().all(|r| *r) {
            return Refusal::GiveUp;
        }
        Refusal::TryNext(self.advance(false))
    }

    fn advance(&mut self, welcomed: bool) -> Pause {
        // A session that worked restarts the count: its collector is the first failure of a
        // new round.
        self.failures = if welcomed { 1 } else { self.failures + 1 };
        self.current = (self.current + 1) % self.collectors.len();
        if self.failures.is_multiple_of(self.collectors.len()) {
            Pause::Backoff
        } else {
            Pause::Short
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rotation(n: usize) -> Rotation {
        Rotation::new((0..n).map(|i| format!("https://c{i}:7400")).collect()).unwrap()
    }

    #[test]
    fn an_empty_list_is_refused() {
        assert_eq!(Rotation::new(Vec::new()), None);
    }

    #[test]
    fn one_collector_behaves_as_before() {
        let mut r = rotation(1);
        for welcomed in [false, false, true, false] {
            assert_eq!(r.failed(welcomed), Pause::Backoff);
            assert_eq!(r.current(), "https://c0:7400");
        }
    }

    #[test]
    fn a_dead_first_collector_costs_one_short_pause() {
        let mut r = rotation(2);
        assert_eq!(r.current(), "https://c0:7400");
        assert_eq!(r.failed(false), Pause::Short);
        assert_eq!(r.current(), "https://c1:7400");
        // c1 works for a while, then dies: c0 is tried next, at once.
        assert_eq!(r.failed(true), Pause::Short);
        assert_eq!(r.current(), "https://c0:7400");
        // Both down: back off once per round, not per collector.
        assert_eq!(r.failed(false), Pause::Backoff);
        assert_eq!(r.current(), "https://c1:7400");
        assert_eq!(r.failed(false), Pause::Short);
        assert_eq!(r.failed(false), Pause::Backoff);
        assert_eq!(r.current(), "https://c1:7400");
    }

    #[test]
    fn the_probe_gives_up_only_when_every_collector_refused() {
        let mut one = rotation(1);
        assert_eq!(one.refused(), Refusal::GiveUp);
        let mut r = rotation(3);
        assert_eq!(r.refused(), Refusal::TryNext(Pause::Short));
        // c1 is down: that says nothing about whether it would accept.
        assert_eq!(r.failed(false), Pause::Short);
        assert_eq!(r.refused(), Refusal::TryNext(Pause::Backoff));
        assert_eq!(r.current(), "https://c0:7400");
        assert_eq!(r.refused(), Refusal::TryNext(Pause::Short));
        assert_eq!(r.current(), "https://c1:7400");
        assert_eq!(r.refused(), Refusal::GiveUp);
        // A working session anywhere forgets earlier refusals.
        let mut r = rotation(2);
        assert_eq!(r.refused(), Refusal::TryNext(Pause::Short));
        assert_eq!(r.failed(true), Pause::Short);
        assert_eq!(r.refused(), Refusal::TryNext(Pause::Backoff));
        assert_eq!(r.refused(), Refusal::GiveUp);
    }

    /// A model: under any sequence of outcomes every collector is tried within one round, the
    /// pauses between two welcomes grow only once per full round of failures, and the
    /// index never leaves the list.
    #[test]
    fn every_collector_is_tried_and_backoff_is_per_round() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for n in 1..6 {
            let mut r = rotation(n);
            let mut since_welcome: Vec<String> = Vec::new();
            let mut backoffs = 0;
            for _ in 0..2000 {
                let welcomed = next() % 4 == 0;
                let tried = r.current().to_owned();
                assert!(r.all().contains(&tried));
                if welcomed {
                    since_welcome.clear();
                    backoffs = 0;
                }
                since_welcome.push(tried);
                if r.failed(welcomed) == Pause::Backoff {
                    backoffs += 1;
                    // A backoff only after each collector failed since the last welcome.
                    let mut distinct = since_welcome.clone();
                    distinct.sort();
                    distinct.dedup();
                    assert_eq!(distinct.len(), n, "{since_welcome:?}");
                }
                assert_eq!(backoffs, since_welcome.len() / n, "{since_welcome:?}");
            }
        }
    }
}
