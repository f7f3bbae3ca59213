//! Compact text for a model: the counts first, then the top findings with cause, evidence and
//! the first remediation steps; the rest as one line each.

use std::fmt::Write as _;

use super::ctx::clip;
use super::{Finding, Report, Severity, Step};

/// Findings shown with evidence and steps; the next ones get one line each.
const DETAILED: usize = 8;
/// Findings shown at all.
const LISTED: usize = 25;
const EVIDENCE_SHOWN: usize = 4;
const STEPS_SHOWN: usize = 3;

/// `1 pod`, `3 pods`.
fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

impl Report {
    /// Top findings first, compact (a few hundred bytes per finding).
    pub fn render(&self) -> String {
        let mut s = String::new();
        let scope = format!(
            "{} ({})",
            counted(self.workloads_checked, "workload"),
            counted(self.pods_checked, "pod")
        );
        if self.findings.is_empty() {
            let _ = writeln!(s, "No problems found in {scope}.");
        } else {
            let count = |sev: Severity| self.findings.iter().filter(|f| f.severity == sev).count();
            let _ = writeln!(
                s,
                "{} in {scope}: {} critical, {} warning, {} info.",
                counted(self.findings.len(), "problem"),
                count(Severity::Critical),
                count(Severity::Warning),
                count(Severity::Info)
            );
        }
        if !self.blind_spots.is_empty() {
            let _ = writeln!(
                s,
                "Not visible (could not read): {} — problems there are not reported.",
                self.blind_spots.join(", ")
            );
        }
        for (i, f) in self.findings.iter().enumerate().take(LISTED) {
            if i < DETAILED {
                detailed(&mut s, i + 1, f);
            } else {
                let _ = writeln!(
                    s,
                    "{}. {} {} [#{}] {}: {}",
                    i + 1,
                    f.severity.label(),
                    f.category,
                    f.row,
                    f.object,
                    clip(&f.summary, 120)
                );
            }
        }
        if self.findings.len() > LISTED {
            let _ = writeln!(
                s,
                "{} more findings not shown (all are in the structured result).",
                self.findings.len() - LISTED
            );
        }
        s
    }
}

fn detailed(s: &mut String, n: usize, f: &Finding) {
    let pods = if f.pod_count == 0 {
        String::new()
    } else {
        let more = f.pod_count.saturating_sub(f.pods.len());
        format!(
            " — {} pod{} ({}{})",
            f.pod_count,
            if f.pod_count == 1 { "" } else { "s" },
            f.pods
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            if f.pod_count > 3 {
                format!(", +{}", f.pod_count - f.pods.len().min(3))
            } else if more > 0 {
                format!(", +{more}")
            } else {
                String::new()
            }
        )
    };
    let via = if f.exposed_by.is_empty() {
        String::new()
    } else {
        format!(", behind {}", f.exposed_by.join(", "))
    };
    let _ = writeln!(
        s,
        "{n}. {} {} [#{}] {}{pods}{via}",
        f.severity.label(),
        f.category,
        f.row,
        f.object
    );
    let _ = writeln!(s, "   {}", clip(&f.summary, 160));
    if !f.cause.is_empty() && f.cause != f.summary {
        let _ = writeln!(s, "   cause: {}", clip(&f.cause, 160));
    }
    // log lines are the most telling evidence: keep one even when the list is long
    let mut shown: Vec<&str> = f
        .evidence
        .iter()
        .filter(|e| !e.starts_with("log|"))
        .take(EVIDENCE_SHOWN - 1)
        .map(String::as_str)
        .collect();
    shown.extend(
        f.evidence
            .iter()
            .filter(|e| e.starts_with("log|"))
            .take(1)
            .map(String::as_str),
    );
    if shown.len() < EVIDENCE_SHOWN {
        let extra: Vec<&str> = f
            .evidence
            .iter()
            .map(String::as_str)
            .filter(|e| !shown.contains(e))
            .take(EVIDENCE_SHOWN - shown.len())
            .collect();
        shown.extend(extra);
    }
    for e in shown {
        let _ = writeln!(s, "   - {}", clip(e, 140));
    }
    for (i, st) in f.remediation.iter().take(STEPS_SHOWN).enumerate() {
        let head = if i == 0 { "   fix: " } else { "        " };
        match st {
            Step::Tool {
                tool,
                arguments,
                why,
            } => {
                let _ = writeln!(s, "{head}{tool} {arguments} — {}", clip(why, 120));
            }
            Step::Manual { action, .. } => {
                let _ = writeln!(s, "{head}{}", clip(action, 160));
            }
        }
    }
}
