//! `aiops-mcp ask`: a chat-completions loop with tool calling over THE registry.
//!
//! Every tool the policy shows becomes a function tool (name, description and input schema
//! straight from the registry). The model's calls run through [`Registry::call`], so policy,
//! parsing, redaction and caps hold exactly as over MCP; the results go back as tool messages
//! (the text rendering, capped). Writes are offered only with `--allow-writes` and each one is
//! shown and must be approved at the terminal (or by `--yes`).

pub mod provider;

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessageArgs, ChatCompletionRequestMessage,
    ChatCompletionRequestSystemMessage, ChatCompletionRequestToolMessage,
    ChatCompletionRequestUserMessage, ChatCompletionTool, ChatCompletionTools, FinishReason,
    FunctionObject,
};
use serde::Serialize;
use serde_json::Value;

use crate::policy::redact::redact_text;
use crate::policy::Policy;
use crate::tools::{Ctx, DynTool, Effect, Registry, ToolError};

pub use provider::{Provider, ProviderError, Retry};

/// The system prompt (prompts/ask-system.md), embedded at build time.
pub const SYSTEM_PROMPT: &str = include_str!("../../prompts/ask-system.md");

/// How a run is bounded and presented.
#[derive(Debug, Clone)]
pub struct AskOptions {
    /// Model rounds that may call tools; one more round without tools forces the answer.
    pub max_steps: usize,
    /// Tokens of the whole run (prompt + completion, as the provider reports them); past it the
    /// model is asked to answer with what it has.
    pub token_budget: u64,
    /// The whole run, model and tools.
    pub timeout: Duration,
    /// Largest tool result sent to the model, in bytes (cut with a note).
    pub max_tool_bytes: usize,
    /// Writes are offered (each one approved).
    pub allow_writes: bool,
    /// Approve every write without asking (scripts).
    pub yes: bool,
    /// Stream the answer to stdout (false for --json).
    pub stream: bool,
}

impl Default for AskOptions {
    fn default() -> Self {
        AskOptions {
            max_steps: 8,
            token_budget: 200_000,
            timeout: Duration::from_secs(300),
            max_tool_bytes: 16 * 1024,
            allow_writes: false,
            yes: false,
            stream: true,
        }
    }
}

/// One tool call of a run, as the transcript shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    pub step: usize,
    pub id: String,
    pub tool: String,
    /// The parsed arguments, or `{"invalid_json": "<raw>"}`.
    pub arguments: Value,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Bytes of the tool message sent back to the model.
    pub result_bytes: usize,
    /// For writes: approved_by_terminal, approved_by_yes, declined, or dry_run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<&'static str>,
    pub duration_ms: u64,
}

/// Token usage over the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

/// What `--json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Transcript {
    pub question: String,
    pub model: String,
    pub base_url: String,
    /// read_only or writes_with_approval.
    pub mode: &'static str,
    /// Model rounds made.
    pub steps: usize,
    pub tool_calls: Vec<CallRecord>,
    pub answer: String,
    /// answered, step_limit, token_budget, length (answer cut at --max-tokens), or error.
    pub finish: &'static str,
    pub usage: Usage,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("no answer within --timeout {0:?}; narrow the question or raise --timeout")]
    Timeout(Duration),
}

impl AskError {
    /// Configuration problems exit with 2, the rest with 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            AskError::Provider(ProviderError::MissingKey) => 2,
            _ => 1,
        }
    }
}

/// The function tools the model is offered: every tool the policy shows, from the registry.
pub fn function_tools(registry: &Registry, policy: &Policy) -> Vec<ChatCompletionTools> {
    registry
        .visible(policy)
        .map(|t| {
            let m = t.meta();
            ChatCompletionTools::Function(ChatCompletionTool {
                function: FunctionObject {
                    name: m.name.to_string(),
                    description: Some(m.description.to_string()),
                    parameters: Some(t.input_schema()),
                    strict: None,
                },
            })
        })
        .collect()
}

/// The system prompt plus what this session may do.
pub fn system_prompt(policy: &Policy, opts: &AskOptions) -> String {
    let mut s = SYSTEM_PROMPT.trim_end().to_string();
    s.push_str("\n\n## This session\n\n");
    if policy.read_only {
        s.push_str("Read-only: you cannot change the cluster. End with the remediation the user can apply (or ask you to apply by rerunning with --allow-writes).\n");
    } else {
        s.push_str("Writes allowed: each write or destructive call is shown to the user, who approves or declines it.\n");
    }
    if let Some(ns) = policy.namespace_filter() {
        s.push_str(&format!(
            "Only these namespaces are allowed: {}.\n",
            ns.join(", ")
        ));
    }
    s.push_str(&format!(
        "You have at most {} rounds of tool calls.\n",
        opts.max_steps
    ));
    s
}

/// Runs a question to its answer. The transcript is filled in as the run goes, so it tells what
/// happened even when the run fails.
pub async fn ask(
    registry: &Registry,
    ctx: &Ctx,
    provider: &Provider,
    question: &str,
    opts: &AskOptions,
    transcript: &mut Transcript,
) -> Result<(), AskError> {
    let start = Instant::now();
    let res = match tokio::time::timeout(
        opts.timeout,
        run(registry, ctx, provider, question, opts, transcript),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(AskError::Timeout(opts.timeout)),
    };
    transcript.duration_ms = start.elapsed().as_millis() as u64;
    if let Err(e) = &res {
        transcript.finish = "error";
        transcript.error = Some(e.to_string());
    }
    res
}

/// A fresh transcript for a question.
pub fn new_transcript(question: &str, provider: &Provider, policy: &Policy) -> Transcript {
    Transcript {
        question: question.to_string(),
        model: provider.model.clone(),
        base_url: provider.base_url.clone(),
        mode: if policy.read_only {
            "read_only"
        } else {
            "writes_with_approval"
        },
        steps: 0,
        tool_calls: Vec::new(),
        answer: String::new(),
        finish: "answered",
        usage: Usage::default(),
        error: None,
        duration_ms: 0,
    }
}

async fn run(
    registry: &Registry,
    ctx: &Ctx,
    provider: &Provider,
    question: &str,
    opts: &AskOptions,
    transcript: &mut Transcript,
) -> Result<(), AskError> {
    let tools = function_tools(registry, &ctx.policy);
    let mut messages: Vec<ChatCompletionRequestMessage> = vec![
        ChatCompletionRequestSystemMessage::from(system_prompt(&ctx.policy, opts)).into(),
        ChatCompletionRequestUserMessage::from(question.to_string()).into(),
    ];
    let stream = opts.stream;
    let mut printed = false;
    let mut on_delta = |s: &str| {
        if stream {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(s.as_bytes());
            let _ = out.flush();
        }
    };
    let mut forced: Option<&'static str> = None;
    loop {
        let tools_allowed = forced.is_none();
        if let Some(why) = forced {
            messages.push(
                ChatCompletionRequestUserMessage::from(match why {
                    "token_budget" => "The token budget of this session is used up. Answer now from the evidence above: the problem, the evidence and the fix; say what you could not check.".to_string(),
                    _ => format!("You have used all {} rounds of tool calls. Answer now from the evidence above: the problem, the evidence and the fix; say what you could not check.", opts.max_steps),
                })
                .into(),
            );
        }
        let turn = provider
            .turn(&messages, &tools, tools_allowed, &mut on_delta)
            .await?;
        transcript.steps += 1;
        if let Some(u) = &turn.usage {
            transcript.usage.prompt_tokens += u64::from(u.prompt_tokens);
            transcript.usage.completion_tokens += u64::from(u.completion_tokens);
            transcript.usage.total_tokens += u64::from(u.total_tokens);
        }
        if !turn.content.is_empty() {
            printed = true;
        }
        if turn.calls.is_empty() || !tools_allowed {
            if stream && printed && !turn.content.ends_with('\n') {
                println!();
            }
            transcript.answer = turn.content;
            transcript.finish = match (forced, turn.finish) {
                (Some(why), _) => why,
                (None, Some(FinishReason::Length)) => "length",
                _ => "answered",
            };
            if transcript.finish == "length" {
                eprintln!("(the answer was cut at --max-tokens)");
            }
            return Ok(());
        }
        if stream && !turn.content.is_empty() && !turn.content.ends_with('\n') {
            println!();
        }
        let mut assistant = ChatCompletionRequestAssistantMessageArgs::default();
        assistant.tool_calls(
            turn.calls
                .iter()
                .map(|c| c.to_message_call())
                .collect::<Vec<_>>(),
        );
        if !turn.content.is_empty() {
            assistant.content(turn.content.clone());
        }
        let assistant = assistant
            .build()
            .map_err(|e| ProviderError::BadResponse(e.to_string()))?;
        messages.push(assistant.into());
        for call in &turn.calls {
            let (record, content) = execute_call(registry, ctx, opts, transcript.steps, call).await;
            eprintln!(
                "  {} {} → {}",
                record.tool,
                provider::clip(&record.arguments.to_string(), 160),
                match (&record.error, record.approval) {
                    (_, Some("declined")) => "declined".to_string(),
                    (Some(e), _) => format!("error: {}", provider::clip(e, 160)),
                    (None, _) => format!("ok ({} bytes)", record.result_bytes),
                }
            );
            transcript.tool_calls.push(record);
            messages.push(
                ChatCompletionRequestToolMessage {
                    content: content.into(),
                    tool_call_id: call.id.clone(),
                }
                .into(),
            );
        }
        if transcript.usage.total_tokens >= opts.token_budget {
            forced = Some("token_budget");
        } else if transcript.steps >= opts.max_steps {
            forced = Some("step_limit");
        }
    }
}

/// Runs one requested call; returns its record and the tool message for the model.
async fn execute_call(
    registry: &Registry,
    ctx: &Ctx,
    opts: &AskOptions,
    step: usize,
    call: &provider::RequestedCall,
) -> (CallRecord, String) {
    let started = Instant::now();
    let mut record = CallRecord {
        step,
        id: call.id.clone(),
        tool: call.name.clone(),
        arguments: Value::Null,
        ok: false,
        error: None,
        result_bytes: 0,
        approval: None,
        duration_ms: 0,
    };
    let finish = |mut record: CallRecord, content: String, err: Option<String>| {
        record.ok = err.is_none();
        record.error = err;
        record.result_bytes = content.len();
        record.duration_ms = started.elapsed().as_millis() as u64;
        (record, content)
    };
    let raw = call.arguments.trim();
    let args: Value = if raw.is_empty() {
        Value::Object(Default::default())
    } else {
        match serde_json::from_str(raw) {
            Ok(v) => v,
            Err(e) => {
                record.arguments = serde_json::json!({ "invalid_json": provider::clip(raw, 2000) });
                let msg = format!(
                    "error: the arguments of {} are not valid JSON ({e}). Send one JSON object with the tool's parameters, e.g. {{\"namespace\": \"default\"}}.",
                    call.name
                );
                return finish(record, msg.clone(), Some(msg));
            }
        }
    };
    record.arguments = args.clone();

    if let Some(tool) = registry.get(&call.name) {
        let meta = tool.meta();
        let needs_approval = meta.effect != Effect::Read
            && ctx.policy.refusal(&meta).is_none()
            && args.get("dry_run").and_then(Value::as_bool) != Some(true);
        if meta.effect != Effect::Read && args.get("dry_run").and_then(Value::as_bool) == Some(true)
        {
            record.approval = Some("dry_run");
        }
        if needs_approval {
            let approval = approve(registry, ctx, tool.as_ref(), &args, opts).await;
            record.approval = Some(approval);
            if approval == "declined" {
                let msg = format!(
                    "declined: the user did not approve this {} call, so nothing was changed. Do not retry it or work around it; tell the user what you would change and why.",
                    call.name
                );
                return finish(record, msg.clone(), Some("declined by the user".into()));
            }
        }
    }

    match registry.call(ctx, &call.name, args).await {
        Ok(out) => {
            let capped = Policy {
                max_output_bytes: opts.max_tool_bytes.min(ctx.policy.max_output_bytes),
                ..(*ctx.policy).clone()
            }
            .cap_text(out.text);
            finish(record, capped, None)
        }
        Err(e) => {
            let mut msg = format!("error: {}", redact_text(&e.to_string()));
            if matches!(e, ToolError::Policy(_)) && !opts.allow_writes {
                msg.push_str(" (aiops-mcp ask runs read-only unless the user passes --allow-writes; do not retry — say what you would change)");
            }
            finish(record, msg.clone(), Some(msg))
        }
    }
}

/// Shows a write call (and its dry run when the tool has one) on stderr and asks for approval.
async fn approve(
    registry: &Registry,
    ctx: &Ctx,
    tool: &dyn DynTool,
    args: &Value,
    opts: &AskOptions,
) -> &'static str {
    let meta = tool.meta();
    let kind = if meta.effect == Effect::Destructive {
        "a destructive call"
    } else {
        "a change"
    };
    let shown = serde_json::to_string_pretty(args).unwrap_or_default();
    eprintln!(
        "\nThe model asks for {kind}: {}\n{}",
        meta.name,
        indent(&redact_text(&shown))
    );
    let has_dry_run = tool
        .input_schema()
        .get("properties")
        .and_then(|p| p.get("dry_run"))
        .is_some();
    if has_dry_run {
        let mut preview_args = args.clone();
        if let Some(o) = preview_args.as_object_mut() {
            o.insert("dry_run".into(), Value::Bool(true));
        }
        match registry.call(ctx, meta.name, preview_args).await {
            Ok(out) => eprintln!("Dry run:\n{}", indent(&provider::clip(&out.text, 4096))),
            Err(e) => eprintln!("Dry run failed: {}", redact_text(&e.to_string())),
        }
    }
    if opts.yes {
        eprintln!("Approved by --yes.");
        return "approved_by_yes";
    }
    if !std::io::stdin().is_terminal() {
        eprintln!("Declined: stdin is not a terminal, so nobody can approve it (pass --yes to approve writes in scripts).");
        return "declined";
    }
    let name = meta.name;
    let answer = tokio::task::spawn_blocking(move || {
        eprint!("Run {name}? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await;
    match answer {
        Ok(Ok(line)) if is_yes(&line) => "approved_by_terminal",
        _ => {
            eprintln!("Declined.");
            "declined"
        }
    }
}

/// Whether a terminal answer approves: y or yes, any case.
pub fn is_yes(line: &str) -> bool {
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_visible_tool_becomes_a_function_with_the_registry_schema() {
        let registry = Registry::new();
        let policy = Policy {
            read_only: true,
            ..Default::default()
        };
        let tools = function_tools(&registry, &policy);
        let visible: Vec<_> = registry.visible(&policy).collect();
        assert_eq!(tools.len(), visible.len());
        for (f, t) in tools.iter().zip(visible) {
            let ChatCompletionTools::Function(f) = f else {
                panic!("not a function tool")
            };
            assert_eq!(f.function.name, t.meta().name);
            assert_eq!(f.function.parameters.as_ref(), Some(&t.input_schema()));
            assert_eq!(
                f.function.description.as_deref(),
                Some(t.meta().description)
            );
            assert_eq!(t.meta().effect, Effect::Read);
        }
    }

    #[test]
    fn writes_are_offered_only_without_read_only() {
        let registry = Registry::new();
        let names = |p: &Policy| -> Vec<String> {
            function_tools(&registry, p)
                .into_iter()
                .filter_map(|t| match t {
                    ChatCompletionTools::Function(f) => Some(f.function.name),
                    _ => None,
                })
                .collect()
        };
        let ro = names(&Policy {
            read_only: true,
            ..Default::default()
        });
        let rw = names(&Policy::default());
        assert!(!ro.contains(&"resources_apply".to_string()));
        assert!(rw.contains(&"resources_apply".to_string()));
    }

    #[test]
    fn the_prompt_names_the_session_mode() {
        let p = Policy {
            read_only: true,
            namespaces: Some(vec!["todo-app".into()]),
            ..Default::default()
        };
        let s = system_prompt(&p, &AskOptions::default());
        assert!(s.contains("Read-only"));
        assert!(s.contains("todo-app"));
        assert!(s.contains("diagnose"));
    }

    #[test]
    fn only_y_or_yes_approves() {
        assert!(is_yes("y\n"));
        assert!(is_yes(" YES "));
        assert!(!is_yes("n"));
        assert!(!is_yes(""));
        assert!(!is_yes("yep"));
    }
}
