//! THE tool registry. Every tool is declared once — name, description, typed params and result
//! (serde + schemars), annotations, effect — and the adapters (MCP server, CLI, NL agent) read it.
//!
//! A call flows through [`Registry::call`]: params are parsed and validated, the policy is
//! checked, the tool runs, and its result is redacted and capped before any adapter sees it.

pub mod diagnose;
pub mod helm;
pub mod logs;
pub mod read;
pub mod rollout;
pub mod stack;
mod util;
pub mod write;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cluster::Clusters;
use crate::policy::{redact, Policy};

pub use util::ToolError;

/// What a tool does to the cluster; drives annotations and policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Only reads.
    Read,
    /// Creates or changes objects.
    Write,
    /// Deletes objects or tears something down.
    Destructive,
}

/// The static description of a tool.
#[derive(Debug, Clone, Copy)]
pub struct ToolMeta {
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub effect: Effect,
    /// Calling again with the same arguments changes nothing more.
    pub idempotent: bool,
}

/// A compact text rendering of a result, for models and terminals.
pub trait Render {
    fn render(&self) -> String;
}

/// Receives (progress, total, message) of a long call.
pub type ProgressFn = Arc<dyn Fn(f64, Option<f64>, String) + Send + Sync>;

/// Everything a tool call may use.
#[derive(Clone)]
pub struct Ctx {
    pub clusters: Clusters,
    pub policy: Arc<Policy>,
    /// Reports progress of long calls (`notifications/progress` over MCP, stderr in the CLI).
    pub progress: Option<ProgressFn>,
}

/// Parameters every tool accepts.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
pub struct Common {
    /// Kubeconfig context; omit for the default (`contexts_list` names them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

/// One tool, typed.
pub trait Tool: Send + Sync + 'static {
    type Params: DeserializeOwned + JsonSchema + Send;
    type Output: Serialize + JsonSchema + Render + Send;
    const META: ToolMeta;
    fn call(
        &self,
        ctx: &Ctx,
        params: Self::Params,
    ) -> impl Future<Output = Result<Self::Output, ToolError>> + Send;
}

/// A finished call: the structured result and its text rendering (both redacted).
#[derive(Debug, Clone)]
pub struct ToolOutput {
    pub structured: Value,
    pub text: String,
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Object-safe view of a [`Tool`].
pub trait DynTool: Send + Sync {
    fn meta(&self) -> ToolMeta;
    fn input_schema(&self) -> Value;
    fn output_schema(&self) -> Value;
    fn call_json<'a>(
        &'a self,
        ctx: &'a Ctx,
        args: Value,
    ) -> BoxFut<'a, Result<ToolOutput, ToolError>>;
}

impl<T: Tool> DynTool for T {
    fn meta(&self) -> ToolMeta {
        T::META
    }
    fn input_schema(&self) -> Value {
        optional_not_nullable(schema_for::<T::Params>())
    }
    fn output_schema(&self) -> Value {
        schema_for::<T::Output>()
    }
    fn call_json<'a>(
        &'a self,
        ctx: &'a Ctx,
        args: Value,
    ) -> BoxFut<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let params: T::Params = serde_json::from_value(args).map_err(|e| {
                ToolError::invalid_args(T::META.name, &e.to_string(), &self.input_schema())
            })?;
            let out = self.call(ctx, params).await?;
            let text = out.render();
            let structured =
                serde_json::to_value(&out).map_err(|e| ToolError::Internal(e.to_string()))?;
            Ok(ToolOutput { structured, text })
        })
    }
}

/// A JSON schema an MCP client accepts: `type: object` at the top, `items` on every array, no
/// `$schema`, `$ref`s inlined.
pub fn schema_for<T: JsonSchema>() -> Value {
    let settings = schemars::generate::SchemaSettings::draft2020_12().with(|s| {
        s.inline_subschemas = true;
        s.meta_schema = None;
    });
    let schema = settings.into_generator().into_root_schema_for::<T>();
    let mut v = serde_json::to_value(schema).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("$schema");
        o.remove("$defs");
        o.remove("definitions");
        o.entry("type").or_insert(Value::String("object".into()));
        o.entry("properties")
            .or_insert(Value::Object(Default::default()));
    }
    fix_arrays(&mut v);
    compact(&mut v);
    v
}

/// Drops what tells a client nothing: generated `title`s (Rust type names), `default: null`, and
/// the width `format`s of integers (`uint32`, `int64`; a `minimum` stays).
fn compact(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if o.get("title").is_some_and(Value::is_string) {
                o.remove("title");
            }
            if o.get("default").is_some_and(Value::is_null) {
                o.remove("default");
            }
            let integer = |t: &Value| t == "integer";
            let is_int = match o.get("type") {
                Some(t @ Value::String(_)) => integer(t),
                Some(Value::Array(ts)) => ts.iter().any(integer),
                _ => false,
            };
            if is_int && o.get("format").is_some() {
                o.remove("format");
            }
            o.values_mut().for_each(compact);
        }
        Value::Array(a) => a.iter_mut().for_each(compact),
        _ => {}
    }
}

/// An input schema whose optional parameters are plain types: leaving a parameter out is how a
/// caller says "none", so `["string", "null"]` becomes `"string"` for every property not in
/// `required` (explicit nulls are still accepted). The top-level description (the shared params
/// struct's doc) is dropped: the tool's own description says what it does.
fn optional_not_nullable(mut v: Value) -> Value {
    let Some(o) = v.as_object_mut() else {
        return v;
    };
    o.remove("description");
    let required: Vec<String> = o
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let Some(props) = o.get_mut("properties").and_then(Value::as_object_mut) else {
        return v;
    };
    for (name, prop) in props.iter_mut() {
        if required.contains(name) {
            continue;
        }
        let Some(p) = prop.as_object_mut() else {
            continue;
        };
        if let Some(Value::Array(ts)) = p.get_mut("type") {
            ts.retain(|t| t != "null");
            if ts.len() == 1 {
                let t = ts.remove(0);
                p.insert("type".into(), t);
            }
        }
        if let Some(Value::Array(e)) = p.get_mut("enum") {
            e.retain(|x| !x.is_null());
        }
        if let Some(Value::Array(alts)) = p.get_mut("anyOf") {
            alts.retain(|a| a.get("type").is_none_or(|t| t != "null"));
            if alts.len() == 1 {
                if let Some(Value::Object(only)) = alts.pop() {
                    p.remove("anyOf");
                    for (k, x) in only {
                        p.entry(k).or_insert(x);
                    }
                }
            }
        }
    }
    v
}

/// A schema without its `description` texts (a property *named* description stays). Output
/// schemas go to clients in this form: the text rendering already explains a result, and the
/// descriptions would double the size of tools/list.
pub fn without_descriptions(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(o) => {
                if o.get("description").is_some_and(Value::is_string) {
                    o.remove("description");
                }
                o.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

fn fix_arrays(v: &mut Value) {
    match v {
        Value::Object(o) => {
            let is_array = match o.get("type") {
                Some(Value::String(t)) => t == "array",
                Some(Value::Array(ts)) => ts.iter().any(|t| t == "array"),
                _ => false,
            };
            if is_array && !o.contains_key("items") {
                o.insert("items".into(), serde_json::json!({}));
            }
            for (_, child) in o.iter_mut() {
                fix_arrays(child);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(fix_arrays),
        _ => {}
    }
}

/// All tools, in catalogue order.
pub struct Registry {
    tools: Vec<Arc<dyn DynTool>>,
}

impl Registry {
    pub fn new() -> Self {
        let tools: Vec<Arc<dyn DynTool>> = vec![
            Arc::new(read::ClusterOverview),
            Arc::new(read::ContextsList),
            Arc::new(read::NamespacesList),
            Arc::new(read::PodsList),
            Arc::new(read::ResourcesList),
            Arc::new(read::ResourcesGet),
            Arc::new(read::EventsList),
            Arc::new(diagnose::Diagnose),
            Arc::new(diagnose::CrashloopsFind),
            Arc::new(logs::LogsGet),
            Arc::new(logs::LogsAnalyze),
            Arc::new(write::ResourcesApply),
            Arc::new(write::ResourcesDelete),
            Arc::new(rollout::WorkloadScale),
            Arc::new(rollout::RolloutStatus),
            Arc::new(rollout::RolloutHistory),
            Arc::new(rollout::RolloutUndo),
            Arc::new(rollout::RolloutRestart),
            Arc::new(rollout::RolloutPause),
            Arc::new(rollout::RolloutResume),
            Arc::new(helm::HelmReleases),
            Arc::new(helm::HelmHistory),
            Arc::new(helm::HelmRollback),
            Arc::new(stack::StackRender),
            Arc::new(stack::StackDeploy),
            Arc::new(stack::StackStatus),
            Arc::new(stack::StackTeardown),
            Arc::new(stack::StackRollback),
        ];
        Registry { tools }
    }

    pub fn all(&self) -> &[Arc<dyn DynTool>] {
        &self.tools
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn DynTool>> {
        self.tools.iter().find(|t| t.meta().name == name)
    }

    /// The tools a policy allows (what `tools/list` shows).
    pub fn visible<'a>(
        &'a self,
        policy: &'a Policy,
    ) -> impl Iterator<Item = &'a Arc<dyn DynTool>> + 'a {
        self.tools
            .iter()
            .filter(move |t| policy.refusal(&t.meta()).is_none())
    }

    /// Calls a tool by name: policy, parse, run, redact, cap. Every adapter goes through here.
    pub async fn call(&self, ctx: &Ctx, name: &str, args: Value) -> Result<ToolOutput, ToolError> {
        let Some(tool) = self.get(name) else {
            let names: Vec<&str> = self.visible(&ctx.policy).map(|t| t.meta().name).collect();
            return Err(ToolError::InvalidInput {
                message: format!("unknown tool '{name}'"),
                hint: format!("available tools: {}", names.join(", ")),
            });
        };
        let meta = tool.meta();
        if let Some(why) = ctx.policy.refusal(&meta) {
            return Err(ToolError::Policy(why));
        }
        let args = if args.is_null() {
            Value::Object(Default::default())
        } else {
            args
        };
        if !args.is_object() {
            return Err(ToolError::InvalidInput {
                message: format!("arguments of {name} must be a JSON object, got {args}"),
                hint: "pass named arguments, e.g. {\"namespace\": \"default\"}".into(),
            });
        }
        ctx.policy.check_args(&args)?;
        let mut out = tool.call_json(ctx, args).await?;
        redact::redact_value(&mut out.structured);
        out.text = redact::redact_text(&out.text).into_owned();
        out.text = ctx.policy.cap_text(out.text);
        Ok(out)
    }

    /// The catalogue as JSON (what `aiops-mcp tools --json` prints and tools/catalog.json holds).
    pub fn catalog(&self) -> Value {
        let tools: Vec<Value> = self
            .tools
            .iter()
            .map(|t| {
                let m = t.meta();
                serde_json::json!({
                    "name": m.name,
                    "title": m.title,
                    "description": m.description,
                    "effect": m.effect,
                    "annotations": annotations_json(&m),
                    "inputSchema": t.input_schema(),
                    "outputSchema": t.output_schema(),
                })
            })
            .collect();
        serde_json::json!({ "server": env!("CARGO_PKG_NAME"), "version": env!("CARGO_PKG_VERSION"), "tools": tools })
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

/// MCP annotations, all set explicitly (clients default destructiveHint and openWorldHint to true).
pub fn annotations_json(m: &ToolMeta) -> Value {
    serde_json::json!({
        "title": m.title,
        "readOnlyHint": m.effect == Effect::Read,
        "destructiveHint": m.effect == Effect::Destructive,
        "idempotentHint": m.idempotent || m.effect == Effect::Read,
        "openWorldHint": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_schemas_lose_description_texts_but_keep_a_property_named_description() {
        let s = serde_json::json!({"type": "object", "description": "a revision",
            "properties": {"description": {"type": "string", "description": "what Helm wrote"},
                           "n": {"type": "integer", "description": "number"}}});
        let c = without_descriptions(s);
        assert_eq!(
            c,
            serde_json::json!({"type": "object", "properties": {"description": {"type": "string"}, "n": {"type": "integer"}}})
        );
    }

    #[test]
    fn optional_parameters_are_plain_types_and_required_ones_keep_their_schema() {
        let s = serde_json::json!({"type": "object", "description": "Parameters every tool accepts.",
            "required": ["namespace"],
            "properties": {
                "namespace": {"type": "string"},
                "tail_lines": {"type": ["integer", "null"], "minimum": 0},
                "mode": {"anyOf": [{"type": "string", "enum": ["a", "b"]}, {"type": "null"}], "description": "how"},
                "both": {"type": ["string", "integer", "null"]}}});
        assert_eq!(
            optional_not_nullable(s),
            serde_json::json!({"type": "object", "required": ["namespace"],
                "properties": {
                    "namespace": {"type": "string"},
                    "tail_lines": {"type": "integer", "minimum": 0},
                    "mode": {"type": "string", "enum": ["a", "b"], "description": "how"},
                    "both": {"type": ["string", "integer"]}}})
        );
    }

    #[test]
    fn generated_titles_null_defaults_and_integer_widths_are_dropped() {
        let mut s = serde_json::json!({"title": "LogsGetParams", "type": "object", "properties": {
            "title": {"type": "string", "default": null},
            "n": {"type": ["integer", "null"], "format": "uint32", "minimum": 0, "default": null},
            "at": {"type": "string", "format": "date-time"},
            "all": {"type": "boolean", "default": false}}});
        compact(&mut s);
        assert_eq!(
            s,
            serde_json::json!({"type": "object", "properties": {
                "title": {"type": "string"},
                "n": {"type": ["integer", "null"], "minimum": 0},
                "at": {"type": "string", "format": "date-time"},
                "all": {"type": "boolean", "default": false}}})
        );
    }

    #[test]
    fn tools_list_fits_in_a_model_context() {
        // Input schemas and descriptions are what a model reads; output schemas go without texts.
        let r = Registry::new();
        let total: usize = r
            .all()
            .iter()
            .map(|t| {
                let m = t.meta();
                m.description.len()
                    + t.input_schema().to_string().len()
                    + without_descriptions(t.output_schema()).to_string().len()
            })
            .sum();
        assert!(total < 60_000, "tools/list grew to {total} bytes");
        eprintln!("tools/list payload: {total} bytes");
    }
}
