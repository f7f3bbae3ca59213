//! Generic writes: server-side apply of manifests, and delete.

use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy};
use kube::discovery::Scope;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::read::{
    client, dyn_api, ensure_namespace, get_object, resolve_kind, resolve_object, slim, ObjectRef,
};
use super::util::{check_name, check_namespace_name, ToolError};
use super::{Common, Ctx, Effect, Render, Tool, ToolMeta};

/// The field manager of every change aiops-mcp makes.
pub const FIELD_MANAGER: &str = "aiops-mcp";

/// Server-side applies one or many YAML/JSON documents (field manager `aiops-mcp`) and reports
/// per object whether it was created, configured or unchanged, with the changed fields.
/// Use dry_run=true first to see what would change.
pub struct ResourcesApply;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyParams {
    #[serde(flatten)]
    pub common: Common,
    /// One or more YAML or JSON documents (YAML documents separated by `---`).
    pub manifest: String,
    /// Namespace for namespaced objects that do not name one (default `default`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Validate and compute the result on the server without changing anything (dryRun=All).
    #[serde(default)]
    pub dry_run: bool,
    /// Take ownership of fields another manager (e.g. kubectl) owns instead of failing on the conflict.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AppliedObject {
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// created, configured or unchanged (prefixed `would be` in a dry run).
    pub result: String,
    /// Field paths that changed (at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ApplyOutput {
    pub dry_run: bool,
    pub objects: Vec<AppliedObject>,
}

/// Splits YAML/JSON text into documents.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, ToolError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let v: Value = serde_json::from_str(trimmed).map_err(|e| {
            ToolError::invalid(
                format!("manifest is not valid JSON: {e}"),
                "pass YAML documents separated by --- or one JSON object/array",
            )
        })?;
        return Ok(match v {
            Value::Array(a) => a,
            other => vec![other],
        });
    }
    let mut docs = vec![];
    for (i, de) in serde_norway::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(de).map_err(|e| {
            ToolError::invalid(
                format!("document {} of the manifest is not valid YAML: {e}", i + 1),
                "check indentation and quoting",
            )
        })?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    if docs.is_empty() {
        return Err(ToolError::invalid(
            "the manifest has no documents",
            "pass at least one object with apiVersion, kind and metadata.name",
        ));
    }
    Ok(docs)
}

/// Parameters of a merge patch by aiops-mcp (optionally a server-side dry run).
pub fn merge_params(dry_run: bool) -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        dry_run,
        ..Default::default()
    }
}

/// A JSON merge patch (RFC 7386) that turns `from` into `to`: changed and new keys carry the
/// new value, keys `to` lacks are set to null, equal parts are left out. Arrays are replaced whole.
pub fn merge_diff(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(a), Value::Object(b)) => {
            let mut out = serde_json::Map::new();
            for (k, v) in b {
                match a.get(k) {
                    Some(old) if old == v => {}
                    Some(old) if old.is_object() && v.is_object() => {
                        out.insert(k.clone(), merge_diff(old, v));
                    }
                    _ => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            for k in a.keys().filter(|k| !b.contains_key(*k)) {
                out.insert(k.clone(), Value::Null);
            }
            Value::Object(out)
        }
        _ => to.clone(),
    }
}

/// A JSON merge patch that takes `live` to `target` the way Helm 3's three-way merge does: every
/// field the target sets is (re)set where the live object differs (drift such as a manual
/// scale or `kubectl set image` is undone), fields the previous manifest (`original`) had and
/// the target drops are removed, and what neither manifest mentions (defaults, fields other
/// controllers own) is left alone. Arrays are replaced whole, and only when the live array does
/// not already hold the target's elements (live elements carry defaulted fields).
pub fn three_way_patch(original: &Value, target: &Value, live: &Value) -> Value {
    let (Value::Object(t), Value::Object(l)) = (target, live) else {
        return target.clone();
    };
    let empty = serde_json::Map::new();
    let o = original.as_object().unwrap_or(&empty);
    let mut out = serde_json::Map::new();
    for (k, tv) in t {
        match l.get(k) {
            Some(lv) if contains(lv, tv) => {}
            Some(lv) if tv.is_object() && lv.is_object() => {
                let ov = o.get(k).unwrap_or(&Value::Null);
                out.insert(k.clone(), three_way_patch(ov, tv, lv));
            }
            _ => {
                out.insert(k.clone(), tv.clone());
            }
        }
    }
    for k in o
        .keys()
        .filter(|k| !t.contains_key(*k) && l.contains_key(*k))
    {
        out.insert(k.clone(), Value::Null);
    }
    Value::Object(out)
}

/// Whether `live` holds everything `want` says: objects key by key, arrays element by element
/// (extra live elements and fields allowed), scalars equal.
fn contains(live: &Value, want: &Value) -> bool {
    match (live, want) {
        (Value::Object(l), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| l.get(k).is_some_and(|lv| contains(lv, wv)) || wv.is_null()),
        (Value::Array(l), Value::Array(w)) => {
            l.len() >= w.len() && w.iter().zip(l).all(|(wv, lv)| contains(lv, wv))
        }
        _ => live == want,
    }
}

/// Paths where two JSON values differ (objects recursed, arrays compared whole).
pub fn changed_paths(before: &Value, after: &Value, prefix: &str, out: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => changed_paths(x, y, &p, out),
                    (None, None) => {}
                    _ => out.push(p),
                }
            }
        }
        (x, y) if x != y => out.push(prefix.to_string()),
        _ => {}
    }
}

/// The parts of an object an apply can change (no status, no bookkeeping).
fn comparable(mut v: Value) -> Value {
    slim(&mut v);
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "resourceVersion",
            "generation",
            "uid",
            "creationTimestamp",
            "selfLink",
        ] {
            m.remove(k);
        }
    }
    v
}

/// Server-side applies one object and says what happened: (`created`/`configured`/`unchanged`,
/// prefixed `would be ` in a dry run; the changed field paths).
pub(crate) async fn apply_object(
    api: &kube::Api<DynamicObject>,
    kind: &str,
    name: &str,
    doc: Value,
    dry_run: bool,
    force: bool,
) -> Result<(String, Vec<String>), ToolError> {
    let what = format!("apply {kind} {name}");
    let before = api
        .get_opt(name)
        .await
        .map_err(|e| ToolError::from_kube(e, &what))?;
    let mut pp = PatchParams::apply(FIELD_MANAGER);
    pp.force = force;
    pp.dry_run = dry_run;
    let obj: DynamicObject = serde_json::from_value(doc).map_err(|e| {
        ToolError::invalid(
            format!("{kind} {name} is not a valid object: {e}"),
            "check the document's structure",
        )
    })?;
    let after = api
        .patch(name, &pp, &Patch::Apply(&obj))
        .await
        .map_err(|e| match e {
            kube::Error::Api(s) if s.code == 409 => ToolError::invalid(
                format!("apply conflict on {kind} {name}: {}", s.message),
                "another field manager owns these fields; pass force=true to take them over",
            ),
            e => ToolError::from_kube(e, &what),
        })?;
    let prefix = if dry_run { "would be " } else { "" };
    Ok(match before {
        None => (format!("{prefix}created"), vec![]),
        Some(b) => {
            let mut changed = vec![];
            let b = comparable(serde_json::to_value(&b).unwrap_or_default());
            let a = comparable(serde_json::to_value(&after).unwrap_or_default());
            changed_paths(&b, &a, "", &mut changed);
            changed.truncate(20);
            if changed.is_empty() {
                (format!("{prefix}unchanged"), changed)
            } else {
                (format!("{prefix}configured"), changed)
            }
        }
    })
}

impl Tool for ResourcesApply {
    type Params = ApplyParams;
    type Output = ApplyOutput;
    const META: ToolMeta = ToolMeta {
        name: "resources_apply",
        title: "Apply manifests (server-side apply)",
        description: "Create or update objects from YAML/JSON documents with server-side apply (field manager aiops-mcp). Reports created/configured/unchanged per object and the changed fields. Use dry_run=true to preview; force=true to take over fields another manager owns.",
        effect: Effect::Write,
        idempotent: true,
    };

    async fn call(&self, ctx: &Ctx, p: ApplyParams) -> Result<ApplyOutput, ToolError> {
        let docs = parse_documents(&p.manifest)?;
        let client = client(ctx, &p.common).await?;
        // Validate every document before changing anything.
        let mut plan = vec![];
        for (i, doc) in docs.into_iter().enumerate() {
            let n = i + 1;
            let api_version = doc.get("apiVersion").and_then(Value::as_str).ok_or_else(|| ToolError::invalid(format!("document {n} has no apiVersion"), "every object needs apiVersion, kind and metadata.name, e.g. apiVersion: v1, kind: ConfigMap"))?.to_string();
            let kind = doc
                .get("kind")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ToolError::invalid(
                        format!("document {n} has no kind"),
                        "every object needs apiVersion, kind and metadata.name",
                    )
                })?
                .to_string();
            let name = doc
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ToolError::invalid(
                        format!("document {n} ({kind}) has no metadata.name"),
                        "every object needs metadata.name (generateName is not supported by apply)",
                    )
                })?
                .to_string();
            check_name(&format!("metadata.name of document {n}"), &name)?;
            let (ar, caps) = resolve_kind(ctx, &p.common, &kind, Some(&api_version)).await?;
            ctx.policy.check_kind(&[&ar.kind, &ar.plural])?;
            let ns = match caps.scope {
                Scope::Namespaced => {
                    let ns = doc
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .or(p.namespace.clone())
                        .unwrap_or_else(|| "default".into());
                    check_namespace_name(&ns)?;
                    ctx.policy.check_namespace(&ns)?;
                    Some(ns)
                }
                Scope::Cluster => {
                    if ar.kind == "Namespace" {
                        ctx.policy.check_namespace(&name)?;
                    }
                    None
                }
            };
            plan.push((doc, ar, caps, ns, name));
        }
        let mut objects = vec![];
        for (mut doc, ar, caps, ns, name) in plan {
            if let (Some(ns), Some(meta)) =
                (&ns, doc.get_mut("metadata").and_then(Value::as_object_mut))
            {
                meta.insert("namespace".into(), Value::String(ns.clone()));
            }
            let api = dyn_api(client.clone(), &ar, &caps, ns.as_deref());
            let exists = api
                .get_opt(&name)
                .await
                .map_err(|e| ToolError::from_kube(e, &format!("get {} {name}", ar.kind)))?
                .is_some();
            if let (false, Some(ns)) = (exists, &ns) {
                // A missing namespace makes a clearer error than the apply's.
                let created_here = objects
                    .iter()
                    .any(|o: &AppliedObject| o.kind == "Namespace" && &o.name == ns);
                if !p.dry_run || !created_here {
                    ensure_namespace(&client, ns).await?;
                }
            }
            let (result, changed) =
                apply_object(&api, &ar.kind, &name, doc, p.dry_run, p.force).await?;
            objects.push(AppliedObject {
                kind: ar.kind.clone(),
                name,
                namespace: ns,
                result,
                changed,
            });
        }
        Ok(ApplyOutput {
            dry_run: p.dry_run,
            objects,
        })
    }
}

impl Render for ApplyOutput {
    fn render(&self) -> String {
        let mut s = String::new();
        if self.dry_run {
            s.push_str("Dry run (nothing changed):\n");
        }
        for o in &self.objects {
            let ns = o
                .namespace
                .as_ref()
                .map(|n| format!(" -n {n}"))
                .unwrap_or_default();
            s.push_str(&format!("{}/{}{}: {}", o.kind, o.name, ns, o.result));
            if !o.changed.is_empty() {
                s.push_str(&format!(" ({})", o.changed.join(", ")));
            }
            s.push('\n');
        }
        s
    }
}

/// Deletes one object (destructive: the client is asked to confirm). dry_run=true shows what
/// would be deleted without deleting.
pub struct ResourcesDelete;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteParamsIn {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub object: ObjectRef,
    /// Validate on the server without deleting (dryRun=All).
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DeleteOutput {
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub dry_run: bool,
    /// deleted, or would be deleted.
    pub result: String,
}

impl Tool for ResourcesDelete {
    type Params = DeleteParamsIn;
    type Output = DeleteOutput;
    const META: ToolMeta = ToolMeta {
        name: "resources_delete",
        title: "Delete an object",
        description: "Delete one object of any kind (dependents are garbage-collected in the background). Destructive: the client is asked to confirm. dry_run=true checks the delete on the server without doing it.",
        effect: Effect::Destructive,
        idempotent: false,
    };

    async fn call(&self, ctx: &Ctx, p: DeleteParamsIn) -> Result<DeleteOutput, ToolError> {
        let target = resolve_object(ctx, &p.common, &p.object).await?;
        get_object(&target, &p.object.name).await?;
        let what = format!("delete {}", target.describe(&p.object.name));
        let dp = DeleteParams {
            dry_run: p.dry_run,
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        target
            .api
            .delete(&p.object.name, &dp)
            .await
            .map_err(|e| ToolError::from_kube(e, &what))?;
        Ok(DeleteOutput {
            kind: target.ar.kind,
            name: p.object.name,
            namespace: target.namespace,
            dry_run: p.dry_run,
            result: if p.dry_run {
                "would be deleted".into()
            } else {
                "deleted".into()
            },
        })
    }
}

impl Render for DeleteOutput {
    fn render(&self) -> String {
        let ns = self
            .namespace
            .as_ref()
            .map(|n| format!(" -n {n}"))
            .unwrap_or_default();
        format!(
            "{}/{}{}: {}{}\n",
            self.kind,
            self.name,
            ns,
            self.result,
            if self.dry_run {
                " (dry run, nothing changed)"
            } else {
                ""
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_way_patch_undoes_drift_removes_dropped_fields_and_keeps_defaults() {
        let original = serde_json::json!({"spec": {"replicas": 1, "paused": false,
            "template": {"spec": {"containers": [{"name": "api", "image": "api:2"}]}}}});
        let target = serde_json::json!({"spec": {"replicas": 1,
            "template": {"spec": {"containers": [{"name": "api", "image": "api:1"}]}}}});
        // Live: scaled by hand to 3, defaults filled in, a field no manifest names.
        let live = serde_json::json!({"spec": {"replicas": 3, "paused": false, "strategy": {"type": "RollingUpdate"},
            "template": {"spec": {"containers": [{"name": "api", "image": "api:2", "imagePullPolicy": "IfNotPresent"}]}}}});
        assert_eq!(
            three_way_patch(&original, &target, &live),
            serde_json::json!({"spec": {"replicas": 1, "paused": null,
                "template": {"spec": {"containers": [{"name": "api", "image": "api:1"}]}}}})
        );
        // Live already as the target (plus defaults): nothing to send.
        let settled = serde_json::json!({"spec": {"replicas": 1, "strategy": {"type": "RollingUpdate"},
            "template": {"spec": {"containers": [{"name": "api", "image": "api:1", "imagePullPolicy": "IfNotPresent"}]}}}});
        assert_eq!(
            three_way_patch(&original, &target, &settled),
            serde_json::json!({})
        );
    }

    #[test]
    fn merge_diff_sets_removed_keys_to_null_and_skips_equal_parts() {
        let a = serde_json::json!({"keep": 1, "gone": {"x": 1}, "nested": {"a": 1, "b": 2}, "list": [1, 2]});
        let b = serde_json::json!({"keep": 1, "nested": {"a": 1, "b": 3, "c": 4}, "list": [1]});
        assert_eq!(
            merge_diff(&a, &b),
            serde_json::json!({"gone": null, "nested": {"b": 3, "c": 4}, "list": [1]})
        );
        assert_eq!(merge_diff(&a, &a), serde_json::json!({}));
    }

    #[test]
    fn yaml_documents_are_split_and_empty_ones_skipped() {
        let docs = parse_documents("a: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(parse_documents("[{\"a\":1},{\"b\":2}]").unwrap().len(), 2);
        assert!(parse_documents("").is_err());
        assert!(parse_documents("a: [")
            .unwrap_err()
            .to_string()
            .contains("not valid YAML"));
    }

    #[test]
    fn changed_paths_name_the_fields_that_differ() {
        let a = serde_json::json!({"spec": {"replicas": 1, "x": {"y": 1}}, "metadata": {"labels": {"a": "1"}}});
        let b = serde_json::json!({"spec": {"replicas": 2, "x": {"y": 1}}, "metadata": {"labels": {"a": "1", "b": "2"}}});
        let mut out = vec![];
        changed_paths(&a, &b, "", &mut out);
        assert_eq!(out, vec!["metadata.labels.b", "spec.replicas"]);
    }
}
