//! Policy: what the server may do, decided in one place for every tool and every adapter.

pub mod redact;

use clap::Args;
use serde_json::Value;

use crate::tools::{Effect, ToolError, ToolMeta};

/// Policy flags, shared by `serve`, `call` and `ask`.
#[derive(Debug, Clone, Default, Args)]
pub struct PolicyArgs {
    /// Only read tools are listed and callable.
    #[arg(long, global = true)]
    pub read_only: bool,
    /// Hide and refuse destructive tools (deletes, teardowns).
    #[arg(long, global = true)]
    pub disable_destructive: bool,
    /// Allow-list of namespaces (comma-separated); anything outside is refused or filtered out.
    #[arg(long, global = true, value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Kinds no tool may read or change (comma-separated, e.g. Secret,ConfigMap).
    #[arg(long, global = true, value_delimiter = ',')]
    pub deny_kinds: Vec<String>,
    /// Let destructive calls run for clients that cannot confirm them (no MCP elicitation).
    #[arg(long, global = true)]
    pub allow_destructive_without_confirmation: bool,
    /// Largest text output of one tool call, in bytes; longer output is cut with a note.
    #[arg(long, global = true, default_value_t = 64 * 1024)]
    pub max_output_bytes: usize,
    /// Highest replica count workload_scale may set (no limit when omitted).
    #[arg(long, global = true)]
    pub max_replicas: Option<i32>,
}

/// The effective policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub read_only: bool,
    pub disable_destructive: bool,
    pub namespaces: Option<Vec<String>>,
    pub deny_kinds: Vec<String>,
    pub allow_destructive_without_confirmation: bool,
    pub max_output_bytes: usize,
    pub max_replicas: Option<i32>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::from(&PolicyArgs {
            max_output_bytes: 64 * 1024,
            ..Default::default()
        })
    }
}

impl From<&PolicyArgs> for Policy {
    fn from(a: &PolicyArgs) -> Self {
        Policy {
            read_only: a.read_only,
            disable_destructive: a.disable_destructive,
            namespaces: (!a.namespaces.is_empty())
                .then(|| a.namespaces.iter().map(|s| s.trim().to_string()).collect()),
            deny_kinds: a
                .deny_kinds
                .iter()
                .map(|k| k.trim().to_lowercase())
                .filter(|k| !k.is_empty())
                .collect(),
            allow_destructive_without_confirmation: a.allow_destructive_without_confirmation,
            max_output_bytes: a.max_output_bytes.max(1024),
            max_replicas: a.max_replicas,
        }
    }
}

impl Policy {
    /// Why a tool may not be listed or called, or None when it may.
    pub fn refusal(&self, m: &ToolMeta) -> Option<String> {
        match m.effect {
            Effect::Read => None,
            _ if self.read_only => Some(format!(
                "{} changes the cluster and the server runs with --read-only",
                m.name
            )),
            Effect::Destructive if self.disable_destructive => Some(format!(
                "{} is destructive and the server runs with --disable-destructive",
                m.name
            )),
            _ => None,
        }
    }

    pub fn namespace_allowed(&self, ns: &str) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|l| l.iter().any(|n| n == ns))
    }

    /// Refuses a namespace outside the allow-list.
    pub fn check_namespace(&self, ns: &str) -> Result<(), ToolError> {
        if self.namespace_allowed(ns) {
            return Ok(());
        }
        Err(ToolError::Policy(format!(
            "namespace '{ns}' is outside the server's --namespaces allow-list ({})",
            self.namespaces
                .as_ref()
                .map(|l| l.join(", "))
                .unwrap_or_default()
        )))
    }

    /// Whether a kind (Kind, plural or short name, any case) is denied.
    pub fn kind_denied(&self, names: &[&str]) -> bool {
        names
            .iter()
            .any(|n| self.deny_kinds.iter().any(|d| d.eq_ignore_ascii_case(n)))
    }

    pub fn check_kind(&self, names: &[&str]) -> Result<(), ToolError> {
        if self.kind_denied(names) {
            return Err(ToolError::Policy(format!(
                "kind '{}' is denied by --deny-kinds",
                names.first().copied().unwrap_or_default()
            )));
        }
        Ok(())
    }

    /// Checks the arguments every tool shares: `namespace` and `kind`.
    pub fn check_args(&self, args: &Value) -> Result<(), ToolError> {
        if let Some(ns) = args.get("namespace").and_then(Value::as_str) {
            self.check_namespace(ns)?;
        }
        if let Some(kind) = args.get("kind").and_then(Value::as_str) {
            self.check_kind(&[kind])?;
        }
        Ok(())
    }

    /// The namespaces a cluster-wide list may show, or None for all.
    pub fn namespace_filter(&self) -> Option<&[String]> {
        self.namespaces.as_deref()
    }

    /// Cuts text above the byte cap, saying so.
    pub fn cap_text(&self, text: String) -> String {
        if text.len() <= self.max_output_bytes {
            return text;
        }
        let mut cut = self.max_output_bytes.saturating_sub(200);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let cut = text[..cut].rfind('\n').map_or(cut, |i| i + 1);
        format!(
            "{}… output truncated: {} of {} bytes shown (cap --max-output-bytes={}); narrow the query (namespace, selector, limit) to see the rest\n",
            &text[..cut],
            cut,
            text.len(),
            self.max_output_bytes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(effect: Effect) -> ToolMeta {
        ToolMeta {
            name: "t",
            title: "T",
            description: "",
            effect,
            idempotent: false,
        }
    }

    #[test]
    fn read_only_refuses_writes_and_names_the_flag() {
        let p = Policy {
            read_only: true,
            ..Default::default()
        };
        assert!(p.refusal(&meta(Effect::Read)).is_none());
        assert!(p
            .refusal(&meta(Effect::Write))
            .unwrap()
            .contains("--read-only"));
    }

    #[test]
    fn disable_destructive_refuses_only_destructive_tools() {
        let p = Policy {
            disable_destructive: true,
            ..Default::default()
        };
        assert!(p.refusal(&meta(Effect::Write)).is_none());
        assert!(p
            .refusal(&meta(Effect::Destructive))
            .unwrap()
            .contains("--disable-destructive"));
    }

    #[test]
    fn namespace_allow_list_and_denied_kinds_hold_for_arguments() {
        let p = Policy {
            namespaces: Some(vec!["a".into()]),
            deny_kinds: vec!["secret".into()],
            ..Default::default()
        };
        assert!(p.check_args(&serde_json::json!({"namespace": "a"})).is_ok());
        assert!(p
            .check_args(&serde_json::json!({"namespace": "b"}))
            .is_err());
        assert!(p
            .check_args(&serde_json::json!({"kind": "Secret"}))
            .is_err());
    }

    #[test]
    fn long_text_is_cut_with_a_note() {
        let p = Policy {
            max_output_bytes: 1024,
            ..Default::default()
        };
        let text = "line\n".repeat(1000);
        let out = p.cap_text(text);
        assert!(out.len() < 1200);
        assert!(out.contains("output truncated"));
    }
}
