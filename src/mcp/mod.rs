//! The MCP adapter: maps the tool registry onto rmcp's `ServerHandler`, over stdio or
//! streamable HTTP (see [`http`]).

pub mod http;
pub mod prompts;
pub mod resources;

use std::borrow::Cow;
use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, GetPromptRequestParams,
    GetPromptResponse, GetPromptResult, Implementation, InitializeResult, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, Prompt, PromptArgument, PromptMessage, ProtocolVersion,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
    ResourceContents, ResourceTemplate, Role, ServerCapabilities, SubscribeRequestParams, Tool,
    ToolAnnotations, UnsubscribeRequestParams,
};
#[allow(deprecated)] // MCP logging: legacy in rmcp, current in MCP 2025-11-25
use rmcp::model::{LoggingLevel, SetLevelRequestParams};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::tools::{Ctx, Effect, Registry, ToolError};
use resources::{McpLog, Subscriptions};

/// Instructions a model reads at initialize.
pub const INSTRUCTIONS: &str = "aiops-mcp operates Kubernetes clusters. Start with diagnose on a namespace (or a workload: namespace + name): \
it returns one finding per broken workload with evidence, the cause and remediation steps as tool calls, or \"No problems found\". \
Confirm a cause with rollout_history (what changed), logs_analyze (first error of the crashed container) and events_list (warnings first); \
cluster_overview shows a health line per namespace when you do not know where to look. Change things with the rollout_* tools \
(rollout_undo, rollout_restart, workload_scale) and, for Helm releases and the todo stack, helm_rollback / stack_rollback; \
every write takes dry_run=true: preview before changing anything, then confirm with rollout_status and diagnose. \
Prompts troubleshoot-workload, deploy-todo-stack and incident-report give step-by-step plans. \
Resources k8s://-/namespaces/{namespace}/health (the diagnose text; subscribe to hear when it changes) and \
k8s://-/namespaces/{namespace}/stack/{release}. Every tool takes an optional `context` (contexts_list shows them).";

/// The MCP server for one session: one registry, one policy, shared cluster clients; the
/// session's resource subscriptions and logging level.
#[derive(Clone)]
pub struct AiopsServer {
    pub registry: Arc<Registry>,
    pub ctx: Ctx,
    subscriptions: Arc<Subscriptions>,
    log: McpLog,
}

/// The confirmation a destructive call asks the user for.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Confirm {
    /// true to go ahead.
    pub confirm: bool,
}
rmcp::elicit_safe!(Confirm);

impl AiopsServer {
    pub fn new(registry: Arc<Registry>, ctx: Ctx) -> Self {
        AiopsServer {
            registry,
            ctx,
            subscriptions: Default::default(),
            log: Default::default(),
        }
    }

    /// The same server for another client session: no subscriptions, logging off.
    pub fn for_new_session(&self) -> Self {
        AiopsServer::new(self.registry.clone(), self.ctx.clone())
    }

    /// Subscriptions this session holds.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }

    fn mcp_tools(&self) -> Vec<Tool> {
        self.registry
            .visible(&self.ctx.policy)
            .map(|t| {
                let m = t.meta();
                let obj = |v: Value| Arc::new(v.as_object().cloned().unwrap_or_default());
                Tool::new(m.name, m.description, obj(t.input_schema()))
                    .with_title(m.title)
                    .with_raw_output_schema(obj(crate::tools::without_descriptions(
                        t.output_schema(),
                    )))
                    .with_annotations(ToolAnnotations::from_raw(
                        Some(m.title.to_string()),
                        Some(m.effect == Effect::Read),
                        Some(m.effect == Effect::Destructive),
                        Some(m.idempotent || m.effect == Effect::Read),
                        Some(false),
                    ))
            })
            .collect()
    }

    /// Asks the client to confirm a destructive call. Ok(None) = go ahead, Ok(Some(result)) = stop with that result.
    async fn confirm_destructive(
        &self,
        name: &str,
        args: &Value,
        peer: &rmcp::Peer<RoleServer>,
    ) -> Option<CallToolResult> {
        if args.get("dry_run").and_then(Value::as_bool) == Some(true) {
            return None;
        }
        let can_elicit = peer
            .peer_info()
            .is_some_and(|i| i.capabilities.elicitation.is_some());
        if !can_elicit {
            if self.ctx.policy.allow_destructive_without_confirmation {
                return None;
            }
            return Some(error_result(&format!(
                "refused: {name} is destructive and this client cannot confirm it (no MCP elicitation support). Preview it with dry_run=true; \
                 to allow destructive calls without confirmation, restart the server with --allow-destructive-without-confirmation"
            )));
        }
        let what = serde_json::to_string(args).unwrap_or_default();
        match peer
            .elicit::<Confirm>(format!("Confirm {name} {what}? This cannot be undone."))
            .await
        {
            Ok(Some(Confirm { confirm: true })) => None,
            Ok(_) => Some(error_result(&format!(
                "{name} cancelled: the user did not confirm"
            ))),
            Err(e) => Some(error_result(&format!(
                "{name} cancelled: confirmation failed ({e})"
            ))),
        }
    }
}

/// What a write call aimed at, from its arguments (never a manifest or values: they may hold
/// secrets).
fn target_of(args: &Value) -> Value {
    let mut t = serde_json::Map::new();
    for k in [
        "context",
        "namespace",
        "kind",
        "name",
        "release",
        "to_revision",
        "replicas",
    ] {
        if let Some(v) = args.get(k).filter(|v| !v.is_null()) {
            t.insert(k.to_string(), v.clone());
        }
    }
    Value::Object(t)
}

fn error_result(text: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text.to_string())])
}

/// An in-band error: the model sees what was wrong and what to try.
pub fn tool_error_result(e: &ToolError) -> CallToolResult {
    error_result(&crate::policy::redact::redact_text(&e.to_string()))
}

#[allow(deprecated)] // logging and resources/subscribe: legacy in rmcp, current in MCP 2025-11-25
impl ServerHandler for AiopsServer {
    fn get_info(&self) -> InitializeResult {
        let mut info = InitializeResult::new(
            ServerCapabilities::builder()
                .enable_logging()
                .enable_prompts()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_tools()
                .build(),
        );
        // The answer for a client that sends an empty or unknown version (kubectl-ai does).
        info.protocol_version = ProtocolVersion::V_2025_06_18;
        info.server_info = Implementation::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
        info.instructions = Some(INSTRUCTIONS.to_string());
        info
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(ProtocolVersion::KNOWN_VERSIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.mcp_tools()))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let list = prompts::all()
            .iter()
            .map(|p| {
                let args = p
                    .arguments
                    .iter()
                    .map(|a| {
                        PromptArgument::new(&a.name)
                            .with_description(&a.description)
                            .with_required(a.required)
                    })
                    .collect();
                Prompt::new(&p.name, Some(&p.description), Some(args)).with_title(&p.title)
            })
            .collect();
        Ok(ListPromptsResult::with_all_items(list))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let invalid = |e: prompts::PromptError| McpError::invalid_params(e.to_string(), None);
        let p = prompts::get(&request.name).map_err(invalid)?;
        let text = p
            .render(&request.arguments.unwrap_or_default())
            .map_err(invalid)?;
        Ok(
            GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
                .with_description(&p.description)
                .into(),
        )
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            ResourceTemplate::new(resources::HEALTH_TEMPLATE, "namespace-health")
                .with_title("Namespace health")
                .with_description(
                    "What is wrong in a namespace and why: the `diagnose` tool's findings (cause, evidence, remediation as tool calls), or \"No problems found\". \
                     context `-` is the server's default context. Subscribe to hear when it changes.",
                )
                .with_mime_type("text/plain"),
            ResourceTemplate::new(resources::STACK_TEMPLATE, "todo-stack-status")
                .with_title("Todo stack status")
                .with_description(
                    "Health of a deployed todo stack release (the `stack_status` tool): per component replicas, image, revision and a verdict. \
                     context `-` is the server's default context. Subscribe to hear when it changes.",
                )
                .with_mime_type("text/plain"),
        ]))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let list = resources::listed_namespaces(&self.registry, &self.ctx)
            .await
            .into_iter()
            .map(|ns| {
                Resource::new(resources::health_uri(&ns), format!("{ns} health"))
                    .with_title(format!("Health of namespace {ns}"))
                    .with_mime_type("text/plain")
            })
            .collect();
        Ok(ListResourcesResult::with_all_items(list))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let uri = resources::parse(&request.uri).map_err(|e| McpError::invalid_params(e, None))?;
        let text = resources::render(&self.registry, &self.ctx, &uri)
            .await
            .map_err(|e| resources::to_mcp_error(&e))?;
        Ok(ReadResourceResult::new(vec![ResourceContents::text(text, request.uri)]).into())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let parsed =
            resources::parse(&request.uri).map_err(|e| McpError::invalid_params(e, None))?;
        // The first read checks the policy and is what the client is assumed to have seen.
        let text = resources::render(&self.registry, &self.ctx, &parsed)
            .await
            .map_err(|e| resources::to_mcp_error(&e))?;
        self.subscriptions
            .start(resources::Watch {
                registry: self.registry.clone(),
                ctx: self.ctx.clone(),
                uri: request.uri,
                parsed,
                peer: context.peer,
                log: self.log.clone(),
                baseline: resources::hash_text(&text),
            })
            .map_err(|e| McpError::invalid_params(e, None))
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.subscriptions.stop(&request.uri);
        Ok(())
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.log.set_level(request.level);
        Ok(())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let name = request.name.to_string();
        let args = Value::Object(request.arguments.unwrap_or_default());
        if let Some(tool) = self.registry.get(&name) {
            if tool.meta().effect == Effect::Destructive
                && self.ctx.policy.refusal(&tool.meta()).is_none()
            {
                if let Some(stop) = self.confirm_destructive(&name, &args, &context.peer).await {
                    return Ok(stop.into());
                }
            }
        }
        let mut ctx = self.ctx.clone();
        let mut forwarder = None;
        if let Some(token) = context.meta.get_progress_token() {
            // One forwarding task per call keeps the notifications in order. MCP wants the
            // progress value to increase with each notification: a value that does not (a
            // rollout's available count dips, a poll repeats itself, parallel reads finish out
            // of order) is not sent.
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ProgressNotificationParam>();
            let peer = context.peer.clone();
            forwarder = Some(tokio::spawn(async move {
                let mut last: Option<f64> = None;
                while let Some(param) = rx.recv().await {
                    if last.is_some_and(|l| param.progress <= l) {
                        continue;
                    }
                    last = Some(param.progress);
                    let _ = peer.notify_progress(param).await;
                }
            }));
            ctx.progress = Some(Arc::new(move |progress, total, message| {
                let mut param = ProgressNotificationParam::new(token.clone(), progress);
                param.total = total;
                param.message = Some(message);
                let _ = tx.send(param);
            }));
        }
        let changes = self
            .registry
            .get(&name)
            .map(|t| t.meta().effect)
            .filter(|e| {
                *e != Effect::Read && args.get("dry_run").and_then(Value::as_bool) != Some(true)
            });
        let target = target_of(&args);
        let called = self.registry.call(&ctx, &name, args).await;
        // Progress goes out before the result: close the channel and let the forwarder drain.
        drop(ctx);
        if let Some(f) = forwarder {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), f).await;
        }
        let result = match called {
            Ok(out) => {
                if let Some(effect) = changes {
                    let level = if effect == Effect::Destructive {
                        LoggingLevel::Warning
                    } else {
                        LoggingLevel::Notice
                    };
                    let summary = out.text.lines().next().unwrap_or_default().to_string();
                    self.log
                        .send(
                            &context.peer,
                            level,
                            "aiops-mcp.changes",
                            serde_json::json!({"event": "cluster changed", "tool": name, "target": target, "summary": summary}),
                        )
                        .await;
                }
                let mut r = CallToolResult::success(vec![ContentBlock::text(out.text)]);
                r.structured_content = Some(out.structured);
                r
            }
            Err(e) => tool_error_result(&e),
        };
        Ok(result.into())
    }
}

/// Serves MCP over stdin/stdout until the client closes it.
pub async fn serve_stdio(server: AiopsServer) -> anyhow::Result<()> {
    use rmcp::ServiceExt;
    let running = server.serve(rmcp::transport::stdio()).await?;
    running.waiting().await?;
    Ok(())
}
