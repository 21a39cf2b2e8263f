//! Rate limit for log lines that can repeat without end (a task refused at every run, an
//! outbox that stays full): the first of a class is logged, then at most one summary per
//! interval saying how often it repeated. An SD card must not take a line per measurement.
//!
//! A class is the caller's kind and target plus the message with its numbers masked, so
//! "packet budget exhausted: ..., 12 of 600 per minute left" and "... 3 of 600 ..." are one
//! class. Pure: the caller passes the time in.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How often a repeating class is summarised in the log.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(600);
/// Classes remembered at once; the least recently seen is forgotten first.
const MAX_CLASSES: usize = 256;

/// What to do with one occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it: the first of its class (or the first after a quiet interval).
    First,
    /// Do not log it; it is counted for the next summary.
    Suppressed,
    /// Log it with the count of occurrences (this one included) since the class was last
    /// logged.
    Summary { repeated: u64, over: Duration },
}

#[derive(Debug)]
struct Class {
    logged_at: Instant,
    seen_at: Instant,
    suppressed: u64,
}

#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    classes: HashMap<String, Class>,
}

/// The class of a message: digits masked, so changing figures do not make a new class.
pub fn class_of(kind: &str, target: &str, message: &str) -> String {
    let mut class = String::with_capacity(kind.len() + target.len() + message.len() + 2);
    class.push_str(kind);
    class.push('\u{1f}');
    class.push_str(target);
    class.push('\u{1f}');
    let mut in_number = false;
    for c in message.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                class.push('#');
            }
            in_number = true;
        } else {
            in_number = false;
            class.push(c);
        }
    }
    class
}

impl LogLimiter {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            classes: HashMap::new(),
        }
    }

    /// Decides about one occurrence of `class` at `now`.
    pub fn check(&mut self, class: &str, now: Instant) -> Verdict {
        if let Some(entry) = self.classes.get_mut(class) {
            entry.seen_at = now;
            let since = now.saturating_duration_since(entry.logged_at);
            if since < self.interval {
                entry.suppressed += 1;
                return Verdict::Suppressed;
            }
            let repeated = entry.suppressed;
            entry.logged_at = now;
            entry.suppressed = 0;
            return if repeated == 0 {
                Verdict::First
            } else {
                Verdict::Summary {
                    repeated: repeated + 1,
                    over: since,
                }
            };
        }
        if self.classes.len() >= MAX_CLASSES
            && let Some(oldest) = self
                .classes
                .iter()
                .min_by_key(|(_, c)| c.seen_at)
                .map(|(k, _)| k.clone())
        {
            self.classes.remove(&oldest);
        }
        self.classes.insert(
            class.to_owned(),
            Class {
                logged_at: now,
                seen_at: now,
                suppressed: 0,
            },
        );
        Verdict::First
    }
}

/// The probe's one limiter, shared by all tasks.
pub fn check(class: &str) -> Verdict {
    static LIMITER: OnceLock<Mutex<LogLimiter>> = OnceLock::new();
    let limiter = LIMITER.get_or_init(|| Mutex::new(LogLimiter::new(SUMMARY_INTERVAL)));
    match limiter.lock() {
        Ok(mut limiter) => limiter.check(class, Instant::now()),
        // A panic elsewhere while holding it: logging everything beats logging nothing.
        Err(_) => Verdict::First,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changing_numbers_are_one_class() {
        let a = class_of(
            "ping",
            "2001:db8::1",
            "packet budget exhausted: needs up to 5 packets, 3 of 600 per minute left",
        );
        let b = class_of(
            "ping",
            "2001:db8::1",
            "packet budget exhausted: needs up to 5 packets, 417 of 600 per minute left",
        );
        assert_eq!(a, b);
        assert_ne!(
            a,
            class_of("ping", "2001:db8::2", "packet budget exhausted")
        );
        assert_ne!(a, class_of("tcp", "2001:db8::1", "packet budget exhausted"));
    }

    /// The field report: one refusal every ~55 ms for 25 minutes made 27,454 lines. With a
    /// fake clock: one first line and one summary per interval, counting every occurrence.
    #[test]
    fn a_refusal_repeated_for_25_minutes_logs_a_handful_of_lines() {
        let start = Instant::now();
        let mut limiter = LogLimiter::new(Duration::from_secs(600));
        let (mut lines, mut counted) = (0, 0);
        for i in 0..27_454u64 {
            let now = start + Duration::from_micros(i * 1_500_000_000 / 27_454);
            let message = format!(
                "packet budget exhausted: needs up to 5 packets, {} of 600 per minute left",
                i % 600
            );
            match limiter.check(&class_of("ping", "2001:db8::1", &message), now) {
                Verdict::First => {
                    lines += 1;
                    counted += 1;
                }
                Verdict::Suppressed => {}
                Verdict::Summary { repeated, over } => {
                    lines += 1;
                    counted += repeated;
                    assert!(over >= Duration::from_secs(600), "{over:?}");
                }
            }
        }
        assert!(lines <= 4, "{lines} lines");
        // Occurrences after the last summary wait for the next one; none is lost before it.
        assert!(counted > 27_454 * 2 / 3, "{counted}");
    }

    #[test]
    fn summaries_count_exactly_and_quiet_classes_start_over() {
        let t0 = Instant::now();
        let s = |secs| t0 + Duration::from_secs(secs);
        let mut limiter = LogLimiter::new(Duration::from_secs(60));
        assert_eq!(limiter.check("a", s(0)), Verdict::First);
        assert_eq!(limiter.check("b", s(1)), Verdict::First);
        for t in 2..10 {
            assert_eq!(limiter.check("a", s(t)), Verdict::Suppressed);
        }
        assert_eq!(
            limiter.check("a", s(70)),
            Verdict::Summary {
                repeated: 9,
                over: Duration::from_secs(70)
            }
        );
        assert_eq!(limiter.check("a", s(71)), Verdict::Suppressed);
        // Nothing suppressed since the last line: after a quiet interval it is a first again.
        assert_eq!(limiter.check("b", s(200)), Verdict::First);
    }

    #[test]
    fn classes_are_bounded() {
        let t0 = Instant::now();
        let mut limiter = LogLimiter::new(Duration::from_secs(60));
        for i in 0..(MAX_CLASSES as u64 * 3) {
            limiter.check(&format!("class {i:x}x"), t0 + Duration::from_millis(i));
        }
        assert!(limiter.classes.len() <= MAX_CLASSES);
    }
}
