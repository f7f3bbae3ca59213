//! The MCP adapter: maps the tool registry onto rmcp's `ServerHandler`, over stdio or
//! streamable HTTP (see [`http`]).

pub mod http;

use std::borrow::Cow;
use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    InitializeResult, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam,
    ProtocolVersion, ServerCapabilities, Tool, ToolAnnotations,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::tools::{Ctx, Effect, Registry, ToolError};

/// Instructions a model reads at initialize.
pub const INSTRUCTIONS: &str = "aiops-mcp operates Kubernetes clusters. Start with cluster_overview to see nodes and a health line per namespace, \
then pods_list (unhealthy pods first) and events_list (warnings first) on the namespaces that are not ok; resources_get shows one object \
with its events. Writes (resources_apply, resources_delete) take dry_run=true to preview; preview before changing anything. \
Every tool takes an optional `context` (contexts_list shows them).";

/// The MCP server: one registry, one policy, shared cluster clients.
#[derive(Clone)]
pub struct AiopsServer {
    pub registry: Arc<Registry>,
    pub ctx: Ctx,
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
        AiopsServer { registry, ctx }
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

fn error_result(text: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text.to_string())])
}

/// An in-band error: the model sees what was wrong and what to try.
pub fn tool_error_result(e: &ToolError) -> CallToolResult {
    error_result(&crate::policy::redact::redact_text(&e.to_string()))
}

impl ServerHandler for AiopsServer {
    fn get_info(&self) -> InitializeResult {
        let mut info = InitializeResult::new(ServerCapabilities::builder().enable_tools().build());
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
        if let Some(token) = context.meta.get_progress_token() {
            // One forwarding task per call keeps the notifications in order.
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ProgressNotificationParam>();
            let peer = context.peer.clone();
            tokio::spawn(async move {
                while let Some(param) = rx.recv().await {
                    let _ = peer.notify_progress(param).await;
                }
            });
            ctx.progress = Some(Arc::new(move |progress, total, message| {
                let mut param = ProgressNotificationParam::new(token.clone(), progress);
                param.total = total;
                param.message = Some(message);
                let _ = tx.send(param);
            }));
        }
        let result = match self.registry.call(&ctx, &name, args).await {
            Ok(out) => {
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
