//! Grouping Accuracy (Zhu et al., "Tools and Benchmarks for Automated Log Parsing", ICSE-SEIP
//! 2019): a line counts as correct only when the set of lines in its predicted group is exactly
//! the set of lines in its ground-truth group. GA = correct lines / all lines.
//!
//! Also a small RFC 4180 CSV reader and writer helper, enough for loghub's structured files and
//! the miner's CSV output.

use std::collections::HashMap;
use std::hash::Hash;

/// Grouping accuracy of `predicted` against `truth` (same length, one label per line).
/// Empty input gives 1.0.
pub fn grouping_accuracy<P: Hash + Eq, T: Hash + Eq>(predicted: &[P], truth: &[T]) -> f64 {
    assert_eq!(
        predicted.len(),
        truth.len(),
        "one label per line on both sides"
    );
    if predicted.is_empty() {
        return 1.0;
    }
    let mut truth_size: HashMap<&T, usize> = HashMap::new();
    for t in truth {
        *truth_size.entry(t).or_default() += 1;
    }
    // per predicted group: its size and whether all its lines share one truth label
    let mut groups: HashMap<&P, (usize, &T, bool)> = HashMap::new();
    for (p, t) in predicted.iter().zip(truth) {
        let g = groups.entry(p).or_insert((0, t, true));
        g.0 += 1;
        if g.1 != t {
            g.2 = false;
        }
    }
    let correct: usize = groups
        .values()
        .filter(|(n, t, pure)| *pure && truth_size[t] == *n)
        .map(|(n, _, _)| *n)
        .sum();
    correct as f64 / predicted.len() as f64
}

/// Splits CSV text into records of fields (RFC 4180: quoted fields may hold commas, doubled
/// quotes and newlines).
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    field.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                any = false;
            }
            _ => field.push(c),
        }
    }
    if any {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// Appends `s` as one CSV field, quoted only when needed.
pub fn push_csv_field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        for c in s.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
    } else {
        out.push_str(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_accuracy_counts_only_exactly_matching_groups() {
        // truth: {0,1,2} A, {3} B, {4,5} C ; predicted merges B into A's group, splits C
        let truth = ["A", "A", "A", "B", "C", "C"];
        assert_eq!(grouping_accuracy(&[1, 1, 1, 2, 3, 3], &truth), 1.0);
        assert_eq!(grouping_accuracy(&[1, 1, 1, 1, 3, 4], &truth), 0.0);
        let ga = grouping_accuracy(&[1, 1, 1, 2, 3, 4], &truth);
        assert!((ga - 4.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn csv_reader_handles_quotes_commas_and_doubled_quotes() {
        let rows = parse_csv("a,b,c\n1,\"x, \"\"y\"\"\",3\n2,,\"multi\nline\"\n");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1], vec!["1", "x, \"y\"", "3"]);
        assert_eq!(rows[2], vec!["2", "", "multi\nline"]);
        let mut s = String::new();
        push_csv_field(&mut s, "x, \"y\"");
        assert_eq!(s, "\"x, \"\"y\"\"\"");
    }

    /// GA reached with the default configuration (rounded down to 3 decimals); a change that
    /// lowers any of them is a regression.
    const LOGHUB_GA: [(&str, f64); 8] = [
        ("HDFS", 0.997),
        ("Hadoop", 0.987),
        ("Spark", 0.922),
        ("Zookeeper", 0.994),
        ("BGL", 0.984),
        ("HPC", 0.950),
        ("Linux", 0.996),
        ("Apache", 1.000),
    ];

    /// Mines one loghub-2k system with the default configuration (plus nothing system-specific
    /// but its log format) and returns its GA.
    pub(crate) fn loghub_ga(root: &std::path::Path, system: &str, format: &str) -> f64 {
        use crate::logs::{LogFormat, Miner, MinerConfig};
        let raw = std::fs::read_to_string(root.join(system).join(format!("{system}_2k.log")))
            .expect("raw log");
        let gt = std::fs::read_to_string(
            root.join(system)
                .join(format!("{system}_2k.log_structured.csv")),
        )
        .expect("structured csv");
        let rows = parse_csv(&gt);
        let col = rows[0]
            .iter()
            .position(|h| h == "EventId")
            .expect("EventId");
        let truth: Vec<&str> = rows[1..].iter().map(|r| r[col].as_str()).collect();
        let fmt = LogFormat::parse(format).expect("format");
        let mut miner = Miner::new(MinerConfig::default());
        let mut spans = Vec::new();
        let ids: Vec<u32> = raw
            .lines()
            .map(|l| miner.add(fmt.content(l, &mut spans)))
            .collect();
        let pred: Vec<u32> = ids.iter().map(|i| miner.resolve(*i)).collect();
        grouping_accuracy(&pred, &truth)
    }

    #[test]
    fn loghub_2k_grouping_accuracy_does_not_regress() {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/loghub-2k");
        let Ok(settings) = std::fs::read_to_string(root.join("drain_benchmark_settings.json"))
        else {
            eprintln!(
                "skipping: loghub-2k data not found at {} (it lives in the shared data folder \
                 next to the repository)",
                root.display()
            );
            return;
        };
        let settings: serde_json::Value = serde_json::from_str(&settings).expect("settings json");
        let mut sum = 0.0;
        let mut report = String::new();
        for (system, floor) in LOGHUB_GA {
            let format = settings["systems"][system]["log_format"]
                .as_str()
                .expect("log_format");
            let ga = loghub_ga(&root, system, format);
            report.push_str(&format!("{system}: {ga:.4}\n"));
            assert!(
                ga >= floor,
                "{system}: GA {ga:.4} fell below {floor}\n{report}"
            );
            sum += ga;
        }
        let avg = sum / LOGHUB_GA.len() as f64;
        eprintln!("{report}average: {avg:.4}");
        assert!(avg >= 0.95, "average GA {avg:.4} < 0.95\n{report}");
    }
}
