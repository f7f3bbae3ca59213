//! The model provider: an OpenAI-compatible chat completions API (OpenAI, Ollama, vLLM, gateways)
//! through async-openai. One streamed turn at a time, retried on 429/5xx with bounded back-off,
//! and errors turned into messages that say what to do.

use std::time::Duration;

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionMessageToolCall, ChatCompletionMessageToolCalls, ChatCompletionRequestMessage,
    ChatCompletionStreamOptions, ChatCompletionToolChoiceOption, ChatCompletionTools,
    CompletionUsage, CreateChatCompletionRequestArgs, FinishReason, FunctionCall,
    ToolChoiceOptions,
};
use futures::StreamExt;

use crate::policy::redact::redact_text;

/// Where OpenAI's API lives when OPENAI_BASE_URL is not set.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// Most tool calls one model turn may request.
const MAX_CALLS_PER_TURN: usize = 64;

/// A failure talking to the model provider. Every message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// OPENAI_API_KEY is not set.
    #[error(
        "OPENAI_API_KEY is not set. `ask` needs an OpenAI-compatible chat completions API:\n  \
         export OPENAI_API_KEY=…                      # OpenAI (https://platform.openai.com/api-keys)\n  \
         export OPENAI_BASE_URL=http://127.0.0.1:11434/v1 OPENAI_API_KEY=ollama   # Ollama, vLLM or a gateway (any non-empty key if it needs none)\n\
         and pick the model with --model or AIOPS_MODEL (default gpt-4o-mini)"
    )]
    MissingKey,
    /// 401/403: the key was refused.
    #[error("the model provider at {base_url} refused the API key ({status}): {message}. Check OPENAI_API_KEY, and OPENAI_BASE_URL if you use a gateway")]
    Unauthorized {
        base_url: String,
        status: u16,
        message: String,
    },
    /// 429 insufficient_quota: retrying does not help.
    #[error("the model provider says the quota of this API key is used up (429): {message}. Check the plan and billing of the account, or use another key")]
    Quota { message: String },
    /// 429 on every attempt.
    #[error("the model provider is rate limiting (429) and still was after {attempts} attempts: {message}. Wait a minute and try again, or use another model/key")]
    RateLimited { attempts: u32, message: String },
    /// 5xx on every attempt.
    #[error("the model provider failed with {status} on all {attempts} attempts: {message}. Try again later, or check the server behind OPENAI_BASE_URL")]
    Server {
        status: u16,
        attempts: u32,
        message: String,
    },
    /// Any other 4xx: a bad request, an unknown model.
    #[error("the model provider rejected the request ({status}): {message}. Check the model name (--model / AIOPS_MODEL) and that the server supports chat completions with tools")]
    Rejected { status: u16, message: String },
    /// The connection failed on every attempt.
    #[error("cannot reach the model provider at {base_url} after {attempts} attempts: {message}. Check OPENAI_BASE_URL and the network")]
    Unreachable {
        base_url: String,
        attempts: u32,
        message: String,
    },
    /// The answer was not a chat completion stream.
    #[error("the model provider's answer is not a chat completion: {0}")]
    BadResponse(String),
}

/// How often and how long to retry 429/5xx and connection failures.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts in all (the first one included).
    pub attempts: u32,
    /// Wait before the second attempt; doubled each time, at most 8 s.
    pub base: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 4,
            base: Duration::from_millis(500),
        }
    }
}

/// One requested tool call, assembled from the streamed chunks.
#[derive(Debug, Clone, Default)]
pub struct RequestedCall {
    pub id: String,
    pub name: String,
    /// The raw arguments string: the model's JSON, not always valid.
    pub arguments: String,
}

impl RequestedCall {
    /// The call as it goes back into the conversation (on the assistant message).
    pub fn to_message_call(&self) -> ChatCompletionMessageToolCalls {
        ChatCompletionMessageToolCalls::Function(ChatCompletionMessageToolCall {
            id: self.id.clone(),
            function: FunctionCall {
                name: self.name.clone(),
                arguments: self.arguments.clone(),
            },
        })
    }
}

/// One model turn.
#[derive(Debug, Default)]
pub struct Turn {
    pub content: String,
    pub calls: Vec<RequestedCall>,
    pub finish: Option<FinishReason>,
    pub usage: Option<CompletionUsage>,
}

/// The model endpoint.
pub struct Provider {
    client: async_openai::Client<OpenAIConfig>,
    pub base_url: String,
    pub model: String,
    pub max_tokens: u32,
    pub retry: Retry,
}

/// What happened to one attempt.
enum Attempt {
    Done(Turn),
    /// Worth another try (429, 5xx, connection failure before anything was streamed).
    Retryable(ProviderError),
    Fatal(ProviderError),
}

impl Provider {
    /// Reads OPENAI_API_KEY and OPENAI_BASE_URL.
    pub fn from_env(model: String, max_tokens: u32, retry: Retry) -> Result<Self, ProviderError> {
        let key = std::env::var("OPENAI_API_KEY")
            .ok()
            .filter(|k| !k.trim().is_empty())
            .ok_or(ProviderError::MissingKey)?;
        let base_url = std::env::var("OPENAI_BASE_URL")
            .ok()
            .map(|u| u.trim().trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        // reqwest is built without a rustls provider of its own: use the process-wide one (ring).
        crate::cluster::install_crypto_provider();
        let config = OpenAIConfig::new()
            .with_api_key(key.trim())
            .with_api_base(&base_url);
        // The plain transport, without the library's own retry layer: `turn` is the one place that
        // retries, so the attempts are bounded once and each retry is reported.
        let client = async_openai::Client::with_config(config)
            .with_http_service(async_openai::middleware::ReqwestService::default());
        Ok(Provider {
            client,
            base_url: redact_text(&base_url).into_owned(),
            model,
            max_tokens,
            retry,
        })
    }

    /// Runs one turn: streams the answer, handing each content delta to `on_delta`.
    /// `tools_allowed` false asks for a final answer without tool calls.
    pub async fn turn(
        &self,
        messages: &[ChatCompletionRequestMessage],
        tools: &[ChatCompletionTools],
        tools_allowed: bool,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Turn, ProviderError> {
        let mut attempt = 1;
        loop {
            let err = match self.attempt(messages, tools, tools_allowed, on_delta).await {
                Attempt::Done(turn) => return Ok(turn),
                Attempt::Fatal(e) => return Err(e),
                Attempt::Retryable(e) => e,
            };
            if attempt >= self.retry.attempts {
                return Err(with_attempts(err, attempt));
            }
            let wait = self
                .retry
                .base
                .saturating_mul(1 << (attempt - 1).min(5))
                .min(Duration::from_secs(8));
            eprintln!(
                "model provider: {}; retrying in {:.1} s (attempt {} of {})",
                short(&err),
                wait.as_secs_f64(),
                attempt + 1,
                self.retry.attempts
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn attempt(
        &self,
        messages: &[ChatCompletionRequestMessage],
        tools: &[ChatCompletionTools],
        tools_allowed: bool,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Attempt {
        let mut req = CreateChatCompletionRequestArgs::default();
        req.model(self.model.clone())
            .messages(messages.to_vec())
            .max_completion_tokens(self.max_tokens)
            .stream_options(ChatCompletionStreamOptions {
                include_usage: Some(true),
                include_obfuscation: None,
            });
        if !tools.is_empty() {
            req.tools(tools.to_vec());
            req.tool_choice(ChatCompletionToolChoiceOption::Mode(if tools_allowed {
                ToolChoiceOptions::Auto
            } else {
                ToolChoiceOptions::None
            }));
        }
        let req = match req.build() {
            Ok(r) => r,
            Err(e) => return Attempt::Fatal(ProviderError::BadResponse(e.to_string())),
        };
        let mut stream = match self.client.chat().create_stream(req).await {
            Ok(s) => s,
            Err(e) => return self.classify(e, false),
        };
        let mut turn = Turn::default();
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let streamed = !turn.content.is_empty() || !turn.calls.is_empty();
                    return self.classify(e, streamed);
                }
            };
            if let Some(u) = chunk.usage {
                turn.usage = Some(u);
            }
            for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
                let delta = choice.delta;
                for text in [delta.content, delta.refusal].into_iter().flatten() {
                    if !text.is_empty() {
                        on_delta(&text);
                        turn.content.push_str(&text);
                    }
                }
                for tc in delta.tool_calls.unwrap_or_default() {
                    let i = tc.index as usize;
                    // A provider numbers the calls of one turn from 0; an index far beyond
                    // that is a broken stream, not a reason to allocate.
                    if i >= MAX_CALLS_PER_TURN {
                        return Attempt::Fatal(ProviderError::BadResponse(format!(
                            "the provider sent tool call index {i} (at most {MAX_CALLS_PER_TURN} calls per turn are accepted)"
                        )));
                    }
                    if turn.calls.len() <= i {
                        turn.calls.resize_with(i + 1, RequestedCall::default);
                    }
                    let call = &mut turn.calls[i];
                    if let Some(id) = tc.id.filter(|s| !s.is_empty()) {
                        call.id = id;
                    }
                    if let Some(f) = tc.function {
                        if let Some(name) = f.name.filter(|n| !n.is_empty()) {
                            if call.name.is_empty() {
                                call.name = name;
                            }
                        }
                        if let Some(a) = f.arguments {
                            call.arguments.push_str(&a);
                        }
                    }
                }
                if choice.finish_reason.is_some() {
                    turn.finish = choice.finish_reason;
                }
            }
        }
        // A call without a name cannot be answered; one without an id gets one.
        turn.calls.retain(|c| !c.name.is_empty());
        for (i, c) in turn.calls.iter_mut().enumerate() {
            if c.id.is_empty() {
                c.id = format!("call_{i}");
            }
        }
        Attempt::Done(turn)
    }

    /// What a failed request means. Once part of the answer was streamed to the terminal, no
    /// failure is retried (the retry would print the answer again).
    fn classify(&self, e: OpenAIError, streamed: bool) -> Attempt {
        let attempt = match e {
            OpenAIError::ApiError(r) => {
                let status = r.status_code.as_u16();
                let message = clip(&redact_text(&r.api_error.to_string()), 300);
                match status {
                    401 | 403 => Attempt::Fatal(ProviderError::Unauthorized {
                        base_url: self.base_url.clone(),
                        status,
                        message,
                    }),
                    429 if r.api_error.r#type.as_deref() == Some("insufficient_quota")
                        || r.api_error.code.as_deref() == Some("insufficient_quota") =>
                    {
                        Attempt::Fatal(ProviderError::Quota { message })
                    }
                    429 => Attempt::Retryable(ProviderError::RateLimited {
                        attempts: 1,
                        message,
                    }),
                    500..=599 => Attempt::Retryable(ProviderError::Server {
                        status,
                        attempts: 1,
                        message,
                    }),
                    _ => Attempt::Fatal(ProviderError::Rejected { status, message }),
                }
            }
            OpenAIError::Reqwest(re) => Attempt::Retryable(ProviderError::Unreachable {
                base_url: self.base_url.clone(),
                attempts: 1,
                message: clip(&redact_text(&error_chain(&re)), 300),
            }),
            OpenAIError::JSONDeserialize(e, content) => Attempt::Fatal(ProviderError::BadResponse(
                format!("{e} in {}", clip(&redact_text(&content), 300)),
            )),
            OpenAIError::StreamError(e) => Attempt::Retryable(ProviderError::Unreachable {
                base_url: self.base_url.clone(),
                attempts: 1,
                message: clip(&redact_text(&e.to_string()), 300),
            }),
            other => Attempt::Fatal(ProviderError::BadResponse(clip(
                &redact_text(&other.to_string()),
                300,
            ))),
        };
        match attempt {
            Attempt::Retryable(e) if streamed => Attempt::Fatal(e),
            a => a,
        }
    }
}

fn with_attempts(e: ProviderError, n: u32) -> ProviderError {
    match e {
        ProviderError::RateLimited { message, .. } => ProviderError::RateLimited {
            attempts: n,
            message,
        },
        ProviderError::Server {
            status, message, ..
        } => ProviderError::Server {
            status,
            attempts: n,
            message,
        },
        ProviderError::Unreachable {
            base_url, message, ..
        } => ProviderError::Unreachable {
            base_url,
            attempts: n,
            message,
        },
        other => other,
    }
}

/// A one-line reason for the retry notice.
fn short(e: &ProviderError) -> String {
    match e {
        ProviderError::RateLimited { .. } => "429 rate limited".into(),
        ProviderError::Server { status, .. } => format!("{status} server error"),
        ProviderError::Unreachable { message, .. } => format!("connection failed ({message})"),
        other => other.to_string(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// At most `n` bytes of `s`, on a character boundary.
pub fn clip(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.trim().to_string();
    }
    let mut cut = n;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", s[..cut].trim())
}
