//! The image catalogue: what each simulated container image does.
//!
//! The catalogue is YAML (`sandbox/images.yaml`). Every entry is keyed by `name:tag`, where
//! `name` is the last path segment of the image reference (`ghcr.io/acme/todo-backend:1.0.0` and
//! `todo-backend:1.0.0` are the same image). An entry may inherit another with `from:` and
//! override any of its top-level fields.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// One image's behaviour, after `from:` inheritance has been resolved.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Image {
    /// What this image is, for people reading the catalogue.
    pub description: String,
    /// `python`, `node`, `go`, `nginx` or `shell`: picks the default text of start-up failures.
    pub runtime: Runtime,
    /// TCP ports the process listens on (after `startup_seconds`).
    pub ports: Vec<u16>,
    /// HTTP path → status code answered on every listening port; other paths answer 404.
    pub http: BTreeMap<String, u16>,
    /// Memory the process uses once started, as a Kubernetes quantity (`180Mi`).
    pub memory: Option<String>,
    /// Memory growth in MiB per second while running (a leak); OOMKilled when it crosses the limit.
    pub leak_mib_per_second: f64,
    /// Environment variables the process needs; a missing one makes it exit 1 at start.
    pub requires_env: Vec<String>,
    /// Executables in the image. The first one is the entrypoint used when the pod sets no
    /// `command`. A `command` whose executable is not listed fails with StartError.
    pub commands: Vec<String>,
    /// Seconds between process start and its ports answering.
    pub startup_seconds: f64,
    /// Log output while running.
    pub logs: Logs,
    /// An optional crash of the long-running process.
    pub crash: Option<Crash>,
    /// Short-lived commands: executable → what running it does (e.g. `alembic`).
    pub run: BTreeMap<String, Run>,
}

#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    #[default]
    Python,
    Node,
    Go,
    Nginx,
    /// busybox-like: interprets `sleep N`, `sh -c "echo …; exit N"`.
    Shell,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Logs {
    /// Lines printed once at start.
    pub start: Vec<String>,
    /// Seconds between two steady-state lines (0 = none).
    pub every_seconds: f64,
    /// Steady-state lines, picked by weight.
    pub lines: Vec<WeightedLine>,
    /// Lines (picked like steady-state ones) printed at once right after start: a chatty log.
    pub burst: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedLine {
    #[serde(default = "one")]
    pub weight: u32,
    /// One line, or several printed together (a stack trace).
    pub text: Text,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Text {
    One(String),
    Many(Vec<String>),
}

impl Text {
    pub fn lines(&self) -> Vec<&str> {
        match self {
            Text::One(s) => s.lines().collect(),
            Text::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Crash {
    pub after_seconds: f64,
    pub exit_code: i32,
    #[serde(default)]
    pub lines: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    #[serde(default)]
    pub seconds: f64,
    #[serde(default)]
    pub exit_code: i32,
    #[serde(default)]
    pub lines: Vec<String>,
}

/// All images, keyed by `name:tag`.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    images: BTreeMap<String, Image>,
}

#[derive(Deserialize)]
struct RawCatalogue {
    images: BTreeMap<String, serde_json::Value>,
}

impl Catalogue {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading image catalogue {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in image catalogue {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        let raw: RawCatalogue = serde_norway::from_str(text)?;
        let mut images = BTreeMap::new();
        for key in raw.images.keys() {
            if !key.contains(':') {
                bail!("image key '{key}' must be name:tag");
            }
            let merged = resolve_from(&raw.images, key, 0)?;
            let image: Image =
                serde_json::from_value(merged).with_context(|| format!("image '{key}'"))?;
            images.insert(key.clone(), image);
        }
        Ok(Catalogue { images })
    }

    /// Finds the image for a pod's image reference (`registry/path/name:tag`, a digest is ignored).
    pub fn lookup(&self, reference: &str) -> Option<&Image> {
        self.images.get(&catalogue_key(reference))
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }
}

/// `docker.io/library/nginx:1.25@sha256:…` → `nginx:1.25`; no tag → `latest`.
pub fn catalogue_key(reference: &str) -> String {
    let no_digest = reference.split('@').next().unwrap_or(reference);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    if last.contains(':') {
        last.to_string()
    } else {
        format!("{last}:latest")
    }
}

fn resolve_from(
    all: &BTreeMap<String, serde_json::Value>,
    key: &str,
    depth: usize,
) -> Result<serde_json::Value> {
    if depth > 8 {
        bail!("'from:' chain too deep at '{key}' (a cycle?)");
    }
    let Some(value) = all.get(key) else {
        bail!("'from: {key}' names an image that is not in the catalogue");
    };
    let mut own = value.clone();
    let Some(obj) = own.as_object_mut() else {
        bail!("image '{key}' must be a mapping");
    };
    let Some(parent) = obj.remove("from") else {
        return Ok(own);
    };
    let parent = parent
        .as_str()
        .with_context(|| format!("'from' of '{key}' must be a string"))?;
    let mut base = resolve_from(all, parent, depth + 1)?;
    let base_obj = base.as_object_mut().expect("resolved images are mappings");
    // An inheriting entry describes itself; it never inherits its parent's description.
    base_obj.remove("description");
    for (k, v) in obj.iter() {
        base_obj.insert(k.clone(), v.clone());
    }
    Ok(base)
}

/// Parses a Kubernetes memory quantity into bytes (`512Mi`, `1G`, `1e9`, `134217728`).
pub fn parse_memory(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        "m" => 1e-3,
        _ => return None,
    };
    Some(n * mult)
}

/// Parses a CPU quantity into cores (`250m`, `1`, `0.5`).
#[cfg(test)]
pub fn parse_cpu(q: &str) -> Option<f64> {
    match q.strip_suffix('m') {
        Some(m) => m.parse::<f64>().ok().map(|v| v / 1000.0),
        None => q.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_map_to_catalogue_keys() {
        assert_eq!(
            catalogue_key("ghcr.io/acme/todo-backend:1.0.0"),
            "todo-backend:1.0.0"
        );
        assert_eq!(catalogue_key("busybox"), "busybox:latest");
        assert_eq!(catalogue_key("localhost:5000/web"), "web:latest");
        assert_eq!(catalogue_key("nginx:1.25@sha256:abcd"), "nginx:1.25");
    }

    #[test]
    fn memory_quantities_parse() {
        assert_eq!(parse_memory("128Mi"), Some(134217728.0));
        assert_eq!(parse_memory("1G"), Some(1e9));
        assert_eq!(parse_memory("1e3"), Some(1000.0));
        assert_eq!(parse_memory("12Xi"), None);
        assert_eq!(parse_cpu("250m"), Some(0.25));
    }

    #[test]
    fn from_inherits_and_overrides_fields() {
        let c = Catalogue::parse(
            "images:\n  a:1: {ports: [80], memory: 10Mi, description: base}\n  a:2: {from: 'a:1', memory: 20Mi}\n",
        )
        .unwrap();
        let b = c.lookup("a:2").unwrap();
        assert_eq!(b.ports, vec![80]);
        assert_eq!(b.memory.as_deref(), Some("20Mi"));
        assert_eq!(b.description, "");
    }

    #[test]
    fn unknown_parent_and_unknown_fields_are_errors() {
        assert!(Catalogue::parse("images:\n  a:1: {from: 'b:1'}\n").is_err());
        assert!(Catalogue::parse("images:\n  a:1: {portz: [1]}\n").is_err());
    }

    #[test]
    fn shipped_catalogue_parses_and_has_the_todo_stack() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../images.yaml");
        let c = Catalogue::load(&path).unwrap();
        for key in [
            "todo-frontend:1.0.0",
            "todo-backend:1.0.0",
            "todo-mcp:1.0.0",
            "busybox:1.36",
        ] {
            assert!(c.lookup(key).is_some(), "{key} missing");
        }
    }
}
