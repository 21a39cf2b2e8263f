//! Prometheus metrics on atomics: counters, gauges, histograms, families of them by label, and
//! the text exposition format 0.0.4 that `/metrics` serves.
//!
//! Hand-written instead of a crate: the daemons need a few dozen series, and this keeps the
//! probe's dependency tree (a Raspberry Pi build) unchanged. Hot paths touch one relaxed atomic
//! (a histogram: three); locks are taken only to find or add a labelled child, and to render.
//! Each binary builds its own [`Registry`] and keeps the handles it bumps.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

/// The `Content-Type` of [`Registry::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Bucket bounds in seconds for latencies from sub-millisecond to tens of seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Children of one family at most. Label values come from bounded sets (enums, route
/// templates); this is the guard if one ever is not: further label sets share one child whose
/// values are all `_overflow`.
pub const MAX_CHILDREN: usize = 512;
const OVERFLOW: &str = "_overflow";

/// A value that only goes up.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn set(&self, value: i64) {
        self.0.store(value, Ordering::Relaxed);
    }

    /// Sets from an unsigned count, saturating at `i64::MAX`.
    pub fn set_u64(&self, value: u64) {
        self.set(i64::try_from(value).unwrap_or(i64::MAX));
    }

    pub fn add(&self, delta: i64) {
        self.0.fetch_add(delta, Ordering::Relaxed);
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn dec(&self) {
        self.add(-1);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Observations counted into buckets by upper bound (`le`), with their count and sum.
#[derive(Debug)]
pub struct Histogram {
    /// Finite, ascending, distinct.
    bounds: Vec<f64>,
    /// Per bucket (not cumulative); the last one is `+Inf`.
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// An `f64` as its bits, updated by compare-and-swap.
    sum_bits: AtomicU64,
}

/// What a histogram held at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Upper bound and cumulative count, ending with `+Inf` and the total.
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum: f64,
}

impl Histogram {
    /// A histogram with these bucket bounds; non-finite bounds are left out (`+Inf` is always
    /// there), the rest sorted and made distinct.
    pub fn new(bounds: &[f64]) -> Self {
        let mut bounds: Vec<f64> = bounds.iter().copied().filter(|b| b.is_finite()).collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        Self {
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            bounds,
            count: AtomicU64::new(0),
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Counts `value` in the first bucket whose bound is at least `value`. NaN is ignored.
    pub fn observe(&self, value: f64) {
        if value.is_nan() {
            return;
        }
        let index = self.bounds.partition_point(|bound| *bound < value);
        if let Some(bucket) = self.buckets.get(index) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }

    /// Observes a duration in seconds.
    pub fn observe_duration(&self, duration: Duration) {
        self.observe(duration.as_secs_f64());
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0u64;
        let mut buckets = Vec::with_capacity(self.buckets.len());
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative = cumulative.saturating_add(bucket.load(Ordering::Relaxed));
            let bound = self.bounds.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push((bound, cumulative));
        }
        HistogramSnapshot {
            // Read after the buckets: a concurrent observation may be in the count but not yet
            // in a bucket, never the other way round, so `+Inf` is the buckets' own total.
            count: cumulative,
            sum: f64::from_bits(self.sum_bits.load(Ordering::Relaxed)),
            buckets,
        }
    }
}

/// Something a family can hold and the registry can render.
pub trait Metric: Send + Sync + 'static {
    /// `counter`, `gauge` or `histogram`.
    const TYPE: &'static str;
    /// Appends this metric's sample lines; `labels` is `a="x",b="y"` or empty.
    fn render(&self, name: &str, labels: &str, out: &mut String);
}

impl Metric for Counter {
    const TYPE: &'static str = "counter";
    fn render(&self, name: &str, labels: &str, out: &mut String) {
        sample(out, name, labels, &self.get().to_string());
    }
}

impl Metric for Gauge {
    const TYPE: &'static str = "gauge";
    fn render(&self, name: &str, labels: &str, out: &mut String) {
        sample(out, name, labels, &self.get().to_string());
    }
}

impl Metric for Histogram {
    const TYPE: &'static str = "histogram";
    fn render(&self, name: &str, labels: &str, out: &mut String) {
        let snapshot = self.snapshot();
        let bucket_name = format!("{name}_bucket");
        for (bound, count) in &snapshot.buckets {
            let le = format!("le=\"{}\"", float(*bound));
            let labels = if labels.is_empty() {
                le
            } else {
                format!("{labels},{le}")
            };
            sample(out, &bucket_name, &labels, &count.to_string());
        }
        sample(out, &format!("{name}_sum"), labels, &float(snapshot.sum));
        sample(
            out,
            &format!("{name}_count"),
            labels,
            &snapshot.count.to_string(),
        );
    }
}

fn sample(out: &mut String, name: &str, labels: &str, value: &str) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

/// A float as the format writes it (Go's `ParseFloat` syntax).
fn float(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value == f64::INFINITY {
        "+Inf".into()
    } else if value == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        value.to_string()
    }
}

/// A label value with `\`, `"` and newlines escaped, as the format requires.
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// HELP text with `\` and newlines escaped (quotes stay as they are there).
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Whether `name` is a valid metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
pub fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `name` is a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`, not `__`-prefixed, and not
/// `le`, which histograms use).
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
        && name != "le"
}

type Children<M> = RwLock<Vec<(Vec<String>, Arc<M>)>>;

/// Metrics of one name told apart by label values, e.g. results by outcome.
pub struct Family<M> {
    labels: Vec<&'static str>,
    children: Children<M>,
    make: Box<dyn Fn() -> M + Send + Sync>,
}

impl<M> std::fmt::Debug for Family<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Family")
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl<M: Metric> Family<M> {
    fn new(labels: &[&'static str], make: Box<dyn Fn() -> M + Send + Sync>) -> Self {
        Self {
            labels: labels.to_vec(),
            children: RwLock::new(Vec::new()),
            make,
        }
    }

    /// The child for these label values (one per label name, in order; missing ones are
    /// empty, extra ones ignored), made on first use.
    pub fn with(&self, values: &[&str]) -> Arc<M> {
        let wanted: Vec<&str> = (0..self.labels.len())
            .map(|i| values.get(i).copied().unwrap_or(""))
            .collect();
        let find = |children: &[(Vec<String>, Arc<M>)], wanted: &[&str]| {
            children
                .iter()
                .find(|(values, _)| values.iter().map(String::as_str).eq(wanted.iter().copied()))
                .map(|(_, metric)| metric.clone())
        };
        if let Some(found) = find(
            &self.children.read().unwrap_or_else(PoisonError::into_inner),
            &wanted,
        ) {
            return found;
        }
        let mut children = self
            .children
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let wanted = if children.len() >= MAX_CHILDREN {
            vec![OVERFLOW; wanted.len()]
        } else {
            wanted
        };
        if let Some(found) = find(&children, &wanted) {
            return found;
        }
        let metric = Arc::new((self.make)());
        children.push((
            wanted.iter().map(|v| (*v).to_owned()).collect(),
            metric.clone(),
        ));
        metric
    }

    fn render(&self, name: &str, out: &mut String) {
        let children = self.children.read().unwrap_or_else(PoisonError::into_inner);
        for (values, metric) in children.iter() {
            let labels = self
                .labels
                .iter()
                .zip(values)
                .map(|(label, value)| format!("{label}=\"{}\"", escape_label_value(value)))
                .collect::<Vec<_>>()
                .join(",");
            metric.render(name, &labels, out);
        }
    }
}

trait Render: Send + Sync {
    fn render_samples(&self, name: &str, out: &mut String);
    fn label_names(&self) -> &[&'static str];
}

impl<M: Metric> Render for Family<M> {
    fn render_samples(&self, name: &str, out: &mut String) {
        self.render(name, out);
    }
    fn label_names(&self) -> &[&'static str] {
        &self.labels
    }
}

/// A metric without labels, shared with the code that bumps it.
struct Single<M>(Arc<M>);

impl<M: Metric> Render for Single<M> {
    fn render_samples(&self, name: &str, out: &mut String) {
        self.0.render(name, "", out);
    }
    fn label_names(&self) -> &[&'static str] {
        &[]
    }
}

struct Entry {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    metric: Arc<dyn Render>,
}

/// A problem with a registered name, found by [`Registry::check`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    #[error("metric name {0:?} is not [a-zA-Z_:][a-zA-Z0-9_:]*")]
    BadName(String),
    #[error("metric {metric}: label name {label:?} is not [a-zA-Z_][a-zA-Z0-9_]* (or is reserved)")]
    BadLabel { metric: String, label: String },
    #[error("metric name {0:?} is registered twice")]
    Duplicate(String),
    #[error("counter {0:?} must end in _total")]
    CounterSuffix(String),
}

/// The metrics one process exposes, in registration order.
#[derive(Default)]
pub struct Registry {
    entries: Mutex<Vec<Entry>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_list()
            .entries(entries.iter().map(|e| e.name))
            .finish()
    }
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    fn add(
        &self,
        name: &'static str,
        help: &'static str,
        kind: &'static str,
        metric: Arc<dyn Render>,
    ) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Entry {
                name,
                help,
                kind,
                metric,
            });
    }

    fn single<M: Metric>(&self, name: &'static str, help: &'static str, metric: M) -> Arc<M> {
        let metric = Arc::new(metric);
        self.add(name, help, M::TYPE, Arc::new(Single(metric.clone())));
        metric
    }

    fn family<M: Metric>(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[&'static str],
        make: Box<dyn Fn() -> M + Send + Sync>,
    ) -> Arc<Family<M>> {
        let family = Arc::new(Family::new(labels, make));
        self.add(name, help, M::TYPE, family.clone());
        family
    }

    /// A counter; its name ends in `_total`.
    pub fn counter(&self, name: &'static str, help: &'static str) -> Arc<Counter> {
        self.single(name, help, Counter::default())
    }

    pub fn gauge(&self, name: &'static str, help: &'static str) -> Arc<Gauge> {
        self.single(name, help, Gauge::default())
    }

    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        bounds: &[f64],
    ) -> Arc<Histogram> {
        self.single(name, help, Histogram::new(bounds))
    }

    pub fn counter_family(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[&'static str],
    ) -> Arc<Family<Counter>> {
        self.family(name, help, labels, Box::new(Counter::default))
    }

    pub fn gauge_family(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[&'static str],
    ) -> Arc<Family<Gauge>> {
        self.family(name, help, labels, Box::new(Gauge::default))
    }

    pub fn histogram_family(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[&'static str],
        bounds: &[f64],
    ) -> Arc<Family<Histogram>> {
        let bounds = bounds.to_vec();
        self.family(
            name,
            help,
            labels,
            Box::new(move || Histogram::new(&bounds)),
        )
    }

    /// Names and label names are constants of each binary; its tests call this so that a bad
    /// one fails there rather than in a scraper.
    pub fn check(&self) -> Result<(), MetricsError> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let mut seen = std::collections::HashSet::new();
        for entry in entries.iter() {
            if !valid_metric_name(entry.name) {
                return Err(MetricsError::BadName(entry.name.into()));
            }
            if !seen.insert(entry.name) {
                return Err(MetricsError::Duplicate(entry.name.into()));
            }
            if entry.kind == "counter" && !entry.name.ends_with("_total") {
                return Err(MetricsError::CounterSuffix(entry.name.into()));
            }
            for label in entry.metric.label_names() {
                if !valid_label_name(label) {
                    return Err(MetricsError::BadLabel {
                        metric: entry.name.into(),
                        label: (*label).into(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Every metric in the text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::with_capacity(entries.len() * 128);
        for entry in entries.iter() {
            let _ = writeln!(out, "# HELP {} {}", entry.name, escape_help(entry.help));
            let _ = writeln!(out, "# TYPE {} {}", entry.name, entry.kind);
            entry.metric.render_samples(entry.name, &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_gauges_and_families_render() {
        let registry = Registry::new();
        let results = registry.counter("x_results_total", "Results.\nAll of them \\ really");
        let open = registry.gauge("x_open", "Open.");
        let by_class = registry.counter_family("x_errors_total", "Errors.", &["class"]);
        results.add(3);
        open.inc();
        open.inc();
        open.dec();
        by_class.with(&["net\"work\\\n"]).inc();
        by_class.with(&["policy"]).add(2);
        by_class.with(&["policy"]).inc();
        registry.check().unwrap();
        let text = registry.render();
        assert_eq!(
            text,
            "# HELP x_results_total Results.\\nAll of them \\\\ really\n\
             # TYPE x_results_total counter\n\
             x_results_total 3\n\
             # HELP x_open Open.\n\
             # TYPE x_open gauge\n\
             x_open 1\n\
             # HELP x_errors_total Errors.\n\
             # TYPE x_errors_total counter\n\
             x_errors_total{class=\"net\\\"work\\\\\\n\"} 1\n\
             x_errors_total{class=\"policy\"} 3\n"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_with_le() {
        let registry = Registry::new();
        let h = registry.histogram_family(
            "x_seconds",
            "Latency.",
            &["route"],
            &[0.1, 1.0, f64::NAN, 0.1],
        );
        let child = h.with(&["/a"]);
        for v in [0.05, 0.1, 0.5, 2.0, f64::NAN] {
            child.observe(v);
        }
        child.observe_duration(Duration::from_millis(250));
        let s = child.snapshot();
        assert_eq!(s.buckets, vec![(0.1, 2), (1.0, 4), (f64::INFINITY, 5)]);
        assert_eq!(s.count, 5);
        assert!((s.sum - 2.9).abs() < 1e-9, "{}", s.sum);
        let text = registry.render();
        assert!(
            text.contains("x_seconds_bucket{route=\"/a\",le=\"0.1\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_bucket{route=\"/a\",le=\"+Inf\"} 5\n"),
            "{text}"
        );
        assert!(text.contains("x_seconds_count{route=\"/a\"} 5\n"), "{text}");
        assert!(text.contains("x_seconds_sum{route=\"/a\"} 2.9"), "{text}");
        let single = registry.histogram("y_seconds", "Y.", LATENCY_BUCKETS);
        single.observe(100.0);
        assert!(
            registry
                .render()
                .contains("y_seconds_bucket{le=\"+Inf\"} 1\n")
        );
    }

    #[test]
    fn families_are_bounded_and_label_counts_forgiven() {
        let registry = Registry::new();
        let f = registry.counter_family("x_total", "X.", &["a", "b"]);
        for i in 0..MAX_CHILDREN + 10 {
            f.with(&[&i.to_string()]).inc();
        }
        f.with(&["1", "", "extra"]).inc();
        let text = registry.render();
        assert!(text.contains("x_total{a=\"1\",b=\"\"} 2\n"), "{text}");
        assert!(
            text.contains("x_total{a=\"_overflow\",b=\"_overflow\"} 10\n"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 2 + MAX_CHILDREN + 1);
    }

    #[test]
    fn bad_names_are_found_by_check() {
        let registry = Registry::new();
        registry.counter("ok_total", "ok");
        registry.check().unwrap();
        registry.counter("ok_total", "again");
        assert_eq!(
            registry.check(),
            Err(MetricsError::Duplicate("ok_total".into()))
        );
        for (name, label, want) in [
            ("9bad", "a", "9bad"),
            ("no_suffix", "a", "_total"),
            ("x_total", "le", "\"le\""),
            ("y_total", "__a", "__a"),
            ("z_total", "a-b", "a-b"),
        ] {
            let registry = Registry::new();
            registry.counter_family(name, "h", &[label]);
            let err = registry.check().unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
        assert!(valid_metric_name("a:b_c9"));
        assert!(!valid_metric_name(""));
        assert!(valid_label_name("_x1"));
    }

    #[test]
    fn concurrent_updates_are_all_counted() {
        let registry = Registry::new();
        let c = registry.counter("c_total", "c");
        let h = registry.histogram("h_seconds", "h", &[1.0]);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        c.inc();
                        h.observe(0.5);
                    }
                });
            }
        });
        assert_eq!(c.get(), 40_000);
        let snapshot = h.snapshot();
        assert_eq!(snapshot.count, 40_000);
        assert!((snapshot.sum - 20_000.0).abs() < 1e-6);
    }

    #[test]
    fn floats_use_the_format_spelling() {
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(0.0005), "0.0005");
        assert_eq!(float(30.0), "30");
    }
}
