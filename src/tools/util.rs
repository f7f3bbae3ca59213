//! Errors a model can act on, and small helpers shared by tools.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

/// A tool failure. Every variant says what was wrong and what to try; the MCP adapter returns
/// them in-band (`isError: true`), never as protocol errors.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The arguments are wrong: a missing field, a bad value, an invalid name.
    #[error("{message}. {hint}")]
    InvalidInput { message: String, hint: String },
    /// The object, namespace or kind does not exist.
    #[error("{message}. {hint}")]
    NotFound { message: String, hint: String },
    /// The cluster's RBAC refused the identity.
    #[error("forbidden: {message}. {hint}")]
    Forbidden { message: String, hint: String },
    /// The server's policy flags refuse the call.
    #[error("refused by policy: {0}")]
    Policy(String),
    /// The cluster could not be reached.
    #[error("cluster unreachable: {message}. {hint}")]
    Unreachable { message: String, hint: String },
    /// Any other API error, with the server's message.
    #[error("Kubernetes API error: {0}")]
    Api(String),
    /// A bug or unexpected state in the server itself.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ToolError {
    pub fn invalid(message: impl Into<String>, hint: impl Into<String>) -> Self {
        ToolError::InvalidInput {
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn not_found(message: impl Into<String>, hint: impl Into<String>) -> Self {
        ToolError::NotFound {
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// Bad arguments: names the valid parameters from the schema.
    pub fn invalid_args(tool: &str, err: &str, schema: &Value) -> Self {
        let props: Vec<String> = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        ToolError::invalid(
            format!("invalid arguments for {tool}: {err}"),
            format!("valid parameters: {}", props.join(", ")),
        )
    }

    /// Maps a kube-rs error to something a model can act on. `what` names the attempted action
    /// (e.g. "list pods in namespace todo-app").
    pub fn from_kube(err: kube::Error, what: &str) -> Self {
        match err {
            kube::Error::Api(s) if s.code == 403 => ToolError::Forbidden {
                message: format!("{} ({what})", s.message),
                hint: "the server's identity lacks this permission; ask an admin for a Role/ClusterRole granting it, or use a context that has it".into(),
            },
            kube::Error::Api(s) if s.code == 404 => ToolError::NotFound {
                message: format!("{} ({what})", s.message),
                hint: "check the name and namespace; list the kind with resources_list".into(),
            },
            kube::Error::Api(s) if s.code == 401 => ToolError::Forbidden {
                message: format!("unauthorized ({what}): {}", s.message),
                hint: "the credentials in the kubeconfig were rejected; refresh them".into(),
            },
            kube::Error::Api(s) if s.code == 422 || s.code == 400 => ToolError::invalid(format!("{} ({what})", s.message), "fix the object and try again"),
            kube::Error::Api(s) if s.code == 409 => ToolError::Api(format!("conflict: {} ({what}); the object changed meanwhile — read it again and retry", s.message)),
            kube::Error::Api(s) => ToolError::Api(format!("{} {} ({what})", s.code, s.message)),
            kube::Error::HyperError(e) => ToolError::Unreachable { message: format!("{e} ({what})"), hint: "check that the API server runs and the kubeconfig's server URL is right (contexts_list shows it)".into() },
            kube::Error::Service(e) => ToolError::Unreachable { message: format!("{e} ({what})"), hint: "check that the API server runs and the kubeconfig's server URL is right (contexts_list shows it)".into() },
            other => ToolError::Api(format!("{other} ({what})")),
        }
    }
}

/// Checks a DNS-1123 subdomain name (most object names).
pub fn check_name(field: &str, name: &str) -> Result<(), ToolError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(ToolError::invalid(
            format!("{field} '{name}' is not a valid Kubernetes name"),
            "names are lowercase letters, digits, '-' and '.', start and end with a letter or digit, at most 253 characters (DNS-1123), e.g. 'todo-backend'",
        ))
    }
}

/// Checks a namespace name (DNS-1123 label: no dots, ≤ 63).
pub fn check_namespace_name(ns: &str) -> Result<(), ToolError> {
    if ns.len() <= 63 && !ns.contains('.') && check_name("namespace", ns).is_ok() {
        Ok(())
    } else {
        Err(ToolError::invalid(
            format!("namespace '{ns}' is not a valid namespace name"),
            "namespace names are lowercase letters, digits and '-', start and end with a letter or digit, at most 63 characters, e.g. 'todo-app'",
        ))
    }
}

/// Up to 3 candidates closest to `word` (edit distance, then prefix/substring matches).
pub fn close_matches<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let w = word.to_lowercase();
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .map(|c| {
            let lc = c.to_lowercase();
            let d = if lc.contains(&w) || w.contains(&lc) {
                1
            } else {
                edit_distance(&w, &lc)
            };
            (d, c)
        })
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(2))
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(3)
        .map(|(_, c)| c.to_string())
        .collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `3d4h`, `5m`, `12s` — like kubectl's AGE column.
pub fn age(since: Option<Timestamp>, now: Timestamp) -> String {
    let Some(t) = since else { return "?".into() };
    let s = now.duration_since(t).as_secs().max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// Longest duration [`parse_duration`] takes: ten years, far beyond any log or event retention,
/// and far inside the range of a timestamp (so `now - duration` cannot overflow).
pub const MAX_DURATION_SECS: i64 = 3650 * 86400;

/// Parses `30s`, `5m`, `2h`, `1d` (or a plain number of seconds), at most
/// [`MAX_DURATION_SECS`].
pub fn parse_duration(s: &str) -> Result<i64, ToolError> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let too_long = || {
        ToolError::invalid(
            format!("duration '{s}' is too long"),
            "the longest is 3650d (ten years); e.g. 30m, 2h or 7d",
        )
    };
    let n: i64 = match num.parse() {
        Ok(n) => n,
        // only digits, so the number is too big for an i64
        Err(_) if !num.is_empty() => return Err(too_long()),
        Err(_) => {
            return Err(ToolError::invalid(
                format!("'{s}' is not a duration"),
                "use e.g. 30s, 5m, 2h or 1d",
            ))
        }
    };
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => {
            return Err(ToolError::invalid(
                format!("'{s}' has an unknown unit '{unit}'"),
                "use s, m, h or d, e.g. 30m",
            ))
        }
    };
    n.checked_mul(mult)
        .filter(|secs| *secs <= MAX_DURATION_SECS)
        .ok_or_else(too_long)
}

/// The label selector at `spec.selector` of a workload (matchLabels and matchExpressions) as
/// the API's `labelSelector` string; `None` when there is none, it is empty, or it cannot be
/// expressed.
pub fn workload_selector(obj: &Value) -> Option<String> {
    let ls: LabelSelector = serde_json::from_value(obj.pointer("/spec/selector")?.clone()).ok()?;
    let s = kube::core::Selector::try_from(ls).ok()?.to_string();
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn workload_selectors_include_match_expressions() {
        let d = serde_json::json!({"spec": {"selector": {"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}}});
        let s = super::workload_selector(&d).unwrap();
        assert!(s.contains("app=web") && s.contains("tier in (a,b)"), "{s}");
        assert_eq!(
            super::workload_selector(&serde_json::json!({"spec": {}})),
            None
        );
        assert_eq!(
            super::workload_selector(&serde_json::json!({"spec": {"selector": {}}})),
            None
        );
    }

    use super::*;

    #[test]
    fn names_follow_dns_1123() {
        assert!(check_name("name", "todo-backend").is_ok());
        assert!(check_name("name", "a.b-c").is_ok());
        assert!(check_name("name", "Todo").is_err());
        assert!(check_name("name", "-x").is_err());
        assert!(check_namespace_name("a.b").is_err());
        let e = check_name("name", "Bad_Name").unwrap_err().to_string();
        assert!(e.contains("DNS-1123"), "{e}");
    }

    #[test]
    fn close_matches_suggest_typos_first() {
        let c = close_matches("todo-ap", ["default", "todo-app", "kube-system"]);
        assert_eq!(c, vec!["todo-app"]);
        assert!(close_matches("zzzzzz", ["default"]).is_empty());
    }

    #[test]
    fn durations_and_ages_are_human() {
        assert_eq!(parse_duration("5m").unwrap(), 300);
        assert!(parse_duration("5y").is_err());
        assert_eq!(parse_duration("3650d").unwrap(), MAX_DURATION_SECS);
        let now: Timestamp = "2026-01-02T00:00:00Z".parse().unwrap();
        assert_eq!(
            age(Some("2026-01-01T00:00:00Z".parse().unwrap()), now),
            "24h"
        );
        assert_eq!(
            age(Some("2025-12-01T00:00:00Z".parse().unwrap()), now),
            "32d"
        );
    }

    #[test]
    fn durations_too_long_for_the_arithmetic_are_refused_with_the_limit() {
        for d in [
            "99999999999999999d",
            "3651d",
            "99999999999999999999",
            "9223372036854775807m",
        ] {
            let e = parse_duration(d).unwrap_err().to_string();
            assert!(e.contains("too long") && e.contains("3650d"), "{d}: {e}");
        }
        let e = parse_duration("m").unwrap_err().to_string();
        assert!(e.contains("not a duration"), "{e}");
    }
}
