//! Figures collected per server per round, and the Markdown table of their
//! medians, spreads and ratios (what the README's `## Performance` shows).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::server::Kind;

#[derive(Clone, Copy)]
pub enum Better {
    Higher,
    Lower,
}

pub struct Row {
    pub key: &'static str,
    pub label: &'static str,
    pub unit: &'static str,
    pub better: Better,
}

#[derive(Default)]
pub struct Results {
    values: BTreeMap<(Kind, &'static str), Vec<f64>>,
    client: BTreeMap<(Kind, &'static str), Vec<f64>>,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn fmt(x: f64) -> String {
    let a = x.abs();
    if x.is_nan() {
        "-".into()
    } else if a >= 1000.0 {
        format!("{x:.0}")
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

impl Results {
    pub fn add(&mut self, kind: Kind, key: &'static str, value: f64) {
        self.values.entry((kind, key)).or_default().push(value);
    }

    /// The client's CPU (cores busy) while producing `key`.
    pub fn client(&mut self, kind: Kind, key: &'static str, cores: f64) {
        self.client.entry((kind, key)).or_default().push(cores);
    }

    fn cell(&self, kind: Kind, key: &str) -> (String, f64) {
        match self
            .values
            .iter()
            .find(|((k, n), _)| *k == kind && *n == key)
        {
            Some((_, v)) if !v.is_empty() => {
                let min = v.iter().copied().fold(f64::INFINITY, f64::min);
                let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let m = median(v);
                let cell = if v.len() > 1 {
                    format!("{} ({}–{})", fmt(m), fmt(min), fmt(max))
                } else {
                    fmt(m)
                };
                (cell, m)
            }
            _ => ("-".into(), f64::NAN),
        }
    }

    fn client_cell(&self, kind: Kind, key: &str) -> String {
        self.client
            .iter()
            .find(|((k, n), _)| *k == kind && *n == key)
            .map_or("-".into(), |(_, v)| format!("{:.2}", median(v)))
    }

    /// The Markdown table of every row.
    pub fn table(&self, rows: &[Row], reference: bool) -> String {
        let mut s = String::new();
        s.push_str(
            "| workload | unit | better | Berth median (min–max) | registry:2 median (min–max) | Berth / registry:2 | client CPU (cores) Berth / registry:2 |\n\
             |---|---|---|---|---|---|---|\n",
        );
        for r in rows {
            let (b, bm) = self.cell(Kind::Berth, r.key);
            let (g, gm) = if reference {
                self.cell(Kind::Registry2, r.key)
            } else {
                ("-".into(), f64::NAN)
            };
            let ratio = if bm.is_finite() && gm.is_finite() && gm != 0.0 {
                format!("{:.2}x", bm / gm)
            } else {
                "-".into()
            };
            let better = match r.better {
                Better::Higher => "higher",
                Better::Lower => "lower",
            };
            let cb = self.client_cell(Kind::Berth, r.key);
            let cg = self.client_cell(Kind::Registry2, r.key);
            let client = if cb == "-" && cg == "-" {
                String::new()
            } else {
                format!("{cb} / {cg}")
            };
            let _ = writeln!(
                s,
                "| {} | {} | {better} | {b} | {g} | {ratio} | {client} |",
                r.label, r.unit
            );
        }
        s
    }
}
