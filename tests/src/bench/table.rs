//! The one table the benchmark prints: per benchmark and metric, each tool's median over the
//! rounds, and on our row the ratio ours / best peer. Tools that could not run keep a row
//! saying why.

use super::{Better, median};

#[derive(Debug, Clone)]
pub struct Metric {
    pub name: String,
    pub better: Better,
    /// Digits after the point.
    pub precision: usize,
}

#[derive(Debug, Clone)]
pub struct ToolResult {
    pub tool: String,
    /// The exact command (one round), for the notes.
    pub command: String,
    /// Per metric, the value of every successful round.
    pub values: Vec<Vec<f64>>,
    pub rounds: usize,
    /// Why it did not run (or failed every round), if so.
    pub failure: Option<String>,
}

impl ToolResult {
    pub fn new(tool: &str, metrics: usize) -> Self {
        Self {
            tool: tool.to_owned(),
            command: String::new(),
            values: vec![Vec::new(); metrics],
            rounds: 0,
            failure: None,
        }
    }

    pub fn median(&self, metric: usize) -> Option<f64> {
        self.values.get(metric).and_then(|v| median(v))
    }

    fn ok_rounds(&self) -> usize {
        self.values.first().map_or(0, Vec::len)
    }
}

#[derive(Debug, Clone)]
pub struct Benchmark {
    pub name: String,
    pub metrics: Vec<Metric>,
    /// Our row is the first.
    pub tools: Vec<ToolResult>,
}

impl Benchmark {
    /// Ours / the best peer's median, and that peer, for one metric.
    pub fn ratio(&self, metric: usize) -> Option<(f64, String)> {
        let (ours, rest) = self.tools.split_first()?;
        let ours = ours.median(metric)?;
        // Our own variants (e.g. "sixmap, no cap") are rows for context, not peers.
        let peers: Vec<&ToolResult> = rest
            .iter()
            .filter(|p| !p.tool.starts_with("sixmap"))
            .collect();
        let better = self.metrics.get(metric)?.better;
        let best = better.best(peers.iter().filter_map(|p| p.median(metric)))?;
        let peer = peers
            .iter()
            .find(|p| p.median(metric) == Some(best))
            .map(|p| p.tool.clone())?;
        let ratio = if best == 0.0 {
            if ours == 0.0 { 1.0 } else { f64::INFINITY }
        } else {
            ours / best
        };
        Some((ratio, peer))
    }
}

/// The table, in Markdown (also readable on a terminal).
pub fn render(benchmarks: &[Benchmark]) -> String {
    // Why a tool did not run goes below the table, once per tool and benchmark.
    let mut notes: Vec<String> = Vec::new();
    let mut rows: Vec<[String; 6]> = vec![[
        "benchmark".into(),
        "metric".into(),
        "tool".into(),
        "median".into(),
        "rounds ok".into(),
        "ours / best peer".into(),
    ]];
    for bench in benchmarks {
        for (m, metric) in bench.metrics.iter().enumerate() {
            for (t, tool) in bench.tools.iter().enumerate() {
                let value = match (tool.median(m), &tool.failure) {
                    (Some(v), _) => format!("{v:.*}", metric.precision),
                    (None, Some(why)) => {
                        let note = format!("{} in {}: {why}", tool.tool, bench.name);
                        let n = match notes.iter().position(|n| *n == note) {
                            Some(i) => i + 1,
                            None => {
                                notes.push(note);
                                notes.len()
                            }
                        };
                        format!("did not run [{n}]")
                    }
                    (None, None) => "no result".into(),
                };
                let ratio = if t == 0 {
                    bench.ratio(m).map_or("n/a".into(), |(r, peer)| {
                        if r.is_finite() {
                            format!("{r:.2} (vs {peer})")
                        } else {
                            format!("inf (vs {peer} at 0)")
                        }
                    })
                } else {
                    String::new()
                };
                rows.push([
                    if m == 0 && t == 0 {
                        bench.name.clone()
                    } else {
                        String::new()
                    },
                    if t == 0 {
                        format!("{} ({})", metric.name, metric.better.arrow())
                    } else {
                        String::new()
                    },
                    tool.tool.clone(),
                    value,
                    format!("{}/{}", tool.ok_rounds(), tool.rounds),
                    ratio,
                ]);
            }
        }
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&format!("|-{}-|\n", rule.join("-|-")));
        }
    }
    if !notes.is_empty() {
        out.push('\n');
        for (i, note) in notes.iter().enumerate() {
            out.push_str(&format!("[{}] {note}\n", i + 1));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str, values: &[f64], rounds: usize) -> ToolResult {
        ToolResult {
            tool: name.into(),
            command: String::new(),
            values: vec![values.to_vec()],
            rounds,
            failure: None,
        }
    }

    #[test]
    fn ratio_against_the_best_peer_and_rows_for_tools_that_did_not_run() {
        let mut gone = tool("dublin-traceroute", &[], 3);
        gone.failure = Some("IPv4 only".into());
        let bench = Benchmark {
            name: "traceroute".into(),
            metrics: vec![Metric {
                name: "wall time ms".into(),
                better: Better::Lower,
                precision: 1,
            }],
            tools: vec![
                tool("sixmap", &[10.0, 12.0, 11.0], 3),
                tool("traceroute", &[40.0, 44.0, 42.0], 3),
                tool("scamper", &[20.0, 24.0], 3),
                gone,
            ],
        };
        let (ratio, peer) = bench.ratio(0).unwrap();
        assert_eq!(peer, "scamper");
        assert!((ratio - 0.5).abs() < 1e-9);
        let text = render(&[bench]);
        assert!(text.contains("0.50 (vs scamper)"), "{text}");
        assert!(text.contains("did not run [1]"), "{text}");
        assert!(
            text.contains("[1] dublin-traceroute in traceroute: IPv4 only"),
            "{text}"
        );
        assert!(text.contains("wall time ms (lower is better)"), "{text}");
        assert!(text.contains("| 2/3 "), "{text}");
        assert_eq!(text.lines().count(), 2 + 4 + 2);
    }
}
