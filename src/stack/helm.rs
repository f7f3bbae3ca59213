//! Helm release records: the Secrets `sh.helm.release.v1.<release>.v<N>` in Helm's own storage
//! format (JSON, gzipped, base64 — inside the Secret's own base64), so `helm list/history/
//! upgrade/rollback` work on stacks aiops-mcp deployed, and aiops-mcp reads releases Helm made.

use std::io::{Read, Write};

use base64::Engine;
use jiff::Timestamp;
use serde_json::{json, Value};

use super::{APP_VERSION, CHART_NAME, CHART_VERSION};

/// The chart's files, embedded so a release record carries the chart as `helm install` would.
pub const CHART_FILES: &[(&str, &str)] = &[
    (
        "Chart.yaml",
        include_str!("../../charts/todo-stack/Chart.yaml"),
    ),
    (
        "values.yaml",
        include_str!("../../charts/todo-stack/values.yaml"),
    ),
    (
        "templates/_helpers.tpl",
        include_str!("../../charts/todo-stack/templates/_helpers.tpl"),
    ),
    (
        "templates/configmap.yaml",
        include_str!("../../charts/todo-stack/templates/configmap.yaml"),
    ),
    (
        "templates/deployments.yaml",
        include_str!("../../charts/todo-stack/templates/deployments.yaml"),
    ),
    (
        "templates/services.yaml",
        include_str!("../../charts/todo-stack/templates/services.yaml"),
    ),
    (
        "templates/ingress.yaml",
        include_str!("../../charts/todo-stack/templates/ingress.yaml"),
    ),
    (
        "templates/NOTES.txt",
        include_str!("../../charts/todo-stack/templates/NOTES.txt"),
    ),
];
const SCHEMA: &str = include_str!("../../charts/todo-stack/values.schema.json");

pub fn secret_name(release: &str, version: u32) -> String {
    format!("sh.helm.release.v1.{release}.v{version}")
}

/// Helm's encoding of a release: base64(gzip(json)).
pub fn encode(release: &Value) -> String {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = gz.write_all(release.to_string().as_bytes());
    let bytes = gz.finish().unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes what `encode` (or Helm) wrote. Accepts gzipped or plain JSON, as Helm does.
pub fn decode(data: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(data).map_err(|e| format!("release data is not text: {e}"))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("release data is not base64: {e}"))?;
    let json = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| format!("release data is not gzip: {e}"))?;
        out
    } else {
        raw
    };
    serde_json::from_slice(&json).map_err(|e| format!("release data is not JSON: {e}"))
}

/// The template file a rendered object comes from (for the manifest's `# Source:` lines).
fn source_of(kind: &str) -> &'static str {
    match kind {
        "ConfigMap" => "templates/configmap.yaml",
        "Deployment" => "templates/deployments.yaml",
        "Service" => "templates/services.yaml",
        _ => "templates/ingress.yaml",
    }
}

/// The manifest as Helm stores it: documents with `# Source:` comments.
pub fn manifest(objs: &[Value]) -> String {
    objs.iter()
        .map(|o| {
            format!(
                "---\n# Source: {CHART_NAME}/{}\n{}",
                source_of(o["kind"].as_str().unwrap_or_default()),
                serde_norway::to_string(o).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("")
}

/// What one release revision records.
pub struct Revision<'a> {
    pub release: &'a str,
    pub namespace: &'a str,
    pub version: u32,
    /// The user's values (Helm's `config`).
    pub values: &'a Value,
    pub manifest: String,
    pub status: &'a str,
    pub description: String,
    pub first_deployed: Timestamp,
    pub now: Timestamp,
}

/// Builds the release JSON the way Helm v3 writes it.
pub fn release_json(r: &Revision<'_>) -> Value {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let templates: Vec<Value> = CHART_FILES
        .iter()
        .filter(|(n, _)| n.starts_with("templates/"))
        .map(|(n, d)| json!({"name": n, "data": b64(d)}))
        .collect();
    let defaults: Value = serde_norway::from_str(CHART_FILES[1].1).unwrap_or(json!({}));
    let notes = format!(
        "The todo stack is deployed as release {} in namespace {}.\nCheck it with: aiops-mcp status --release {} --namespace {}\n",
        r.release, r.namespace, r.release, r.namespace
    );
    json!({
        "name": r.release,
        "info": {
            "first_deployed": r.first_deployed.to_string(),
            "last_deployed": r.now.to_string(),
            "deleted": "",
            "description": r.description,
            "status": r.status,
            "notes": notes,
        },
        "chart": {
            "metadata": {
                "name": CHART_NAME,
                "version": CHART_VERSION,
                "description": "The todo application: Next.js frontend, FastAPI backend, MCP server",
                "apiVersion": "v2",
                "appVersion": APP_VERSION,
                "type": "application",
            },
            "lock": null,
            "templates": templates,
            "values": defaults,
            "schema": b64(SCHEMA),
            "files": [],
        },
        "config": r.values,
        "manifest": r.manifest,
        "version": r.version,
        "namespace": r.namespace,
    })
}

/// Labels Helm puts on its release Secrets.
pub fn secret_labels(release: &str, version: u32, status: &str, now: Timestamp) -> Value {
    json!({"name": release, "owner": "helm", "status": status, "version": version.to_string(), "modifiedAt": now.as_second().to_string()})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_records_round_trip_through_helm_encoding() {
        let now = Timestamp::now();
        let values = json!({"backend": {"tag": "1.0.1"}});
        let r = release_json(&Revision {
            release: "todo",
            namespace: "todo-app",
            version: 3,
            values: &values,
            manifest: "---\n".into(),
            status: "deployed",
            description: "Upgrade complete".into(),
            first_deployed: now,
            now,
        });
        let back = decode(encode(&r).as_bytes()).unwrap();
        assert_eq!(back["version"], 3);
        assert_eq!(back["config"]["backend"]["tag"], "1.0.1");
        assert_eq!(back["chart"]["metadata"]["name"], "todo-stack");
        assert_eq!(secret_name("todo", 3), "sh.helm.release.v1.todo.v3");
    }

    #[test]
    fn manifest_marks_each_document_with_its_template() {
        let m = manifest(&[json!({"kind": "Service", "metadata": {"name": "a"}})]);
        assert!(m.starts_with("---\n# Source: todo-stack/templates/services.yaml\n"));
    }
}
