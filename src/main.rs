//! The `aiops-mcp` command line: a thin adapter over the tool registry.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use aiops_mcp::cluster::Clusters;
use aiops_mcp::mcp::{http, AiopsServer};
use aiops_mcp::policy::{Policy, PolicyArgs};
use aiops_mcp::tools::{Ctx, Effect, Registry};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "aiops-mcp",
    version,
    about = "MCP server for Kubernetes operations: deploy, scale, diagnose, analyse logs, roll back"
)]
struct Cli {
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use by default (tools may pass another `context`).
    #[arg(long, global = true)]
    context: Option<String>,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve MCP: over stdio (default; logs go to stderr), or streamable HTTP with --http.
    Serve {
        /// Serve streamable HTTP on this address (e.g. 127.0.0.1:8080) at /mcp, with /healthz and /readyz.
        #[arg(long)]
        http: Option<SocketAddr>,
        /// File holding the bearer token HTTP clients must send (required for non-loopback addresses).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Extra accepted Host header values (e.g. the in-cluster Service name).
        #[arg(long, value_delimiter = ',')]
        allowed_hosts: Vec<String>,
        /// Accepted browser Origins (e.g. https://ide.example.com).
        #[arg(long, value_delimiter = ',')]
        allowed_origins: Vec<String>,
    },
    /// Call one tool: `aiops-mcp call pods_list --args '{"namespace":"todo-app"}'`.
    Call {
        /// Tool name (see `aiops-mcp tools`).
        tool: String,
        /// Arguments as a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
        /// Print the structured result as JSON instead of the text rendering.
        #[arg(long)]
        json: bool,
        /// Confirm a destructive call (the terminal asks otherwise).
        #[arg(long)]
        yes: bool,
    },
    /// List the tools; --json prints the catalogue (tools/catalog.json).
    Tools {
        #[arg(long)]
        json: bool,
    },
    /// Check that the cluster answers: server version and node readiness.
    Check,
    /// Deploy the todo stack (stack_deploy) with a progress bar.
    Deploy {
        #[command(flatten)]
        target: StackTarget,
        /// Values file (YAML or JSON, the chart's values.yaml shape).
        #[arg(long, short = 'f')]
        values: Option<PathBuf>,
        /// Where the Secret comes from: existing (default) or server-env.
        #[arg(long)]
        secrets_from: Option<String>,
        /// Show what would change without changing anything.
        #[arg(long)]
        dry_run: bool,
        /// Do not wait for the rollouts.
        #[arg(long)]
        no_wait: bool,
        /// Longest wait in seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Log tools that need no cluster.
    #[command(subcommand)]
    Logs(LogsCommand),
    /// Status of the todo stack (stack_status).
    Status {
        #[command(flatten)]
        target: StackTarget,
    },
    /// Diagnose a namespace, a workload or the cluster: `aiops-mcp diagnose -n todo-app`.
    Diagnose {
        /// Namespace (omit for the whole cluster).
        #[arg(long, short = 'n')]
        namespace: Option<String>,
        /// Only this workload (needs --namespace).
        name: Option<String>,
        /// Kind of the workload (default Deployment).
        #[arg(long)]
        kind: Option<String>,
        /// Do not read container logs.
        #[arg(long)]
        no_logs: bool,
        /// Most findings to show.
        #[arg(long, default_value_t = 10)]
        max: usize,
        /// Print the structured report as JSON.
        #[arg(long)]
        json: bool,
        /// Exit with code 3 when a finding of this severity or worse is reported (for CI and
        /// scripts): critical or warning. Without it the exit code is 0 whenever the diagnosis ran.
        #[arg(long, value_parser = ["critical", "warning"])]
        fail_on: Option<String>,
    },
    /// Ask in plain language: a model (OpenAI-compatible API) answers with the tools. Read-only
    /// unless --allow-writes; every write is shown and needs approval.
    Ask(AskArgs),
}

#[derive(clap::Args, Debug)]
struct AskArgs {
    /// The question, e.g. "why is the backend crashing?" (several words are joined).
    #[arg(required = true, num_args = 1..)]
    question: Vec<String>,
    /// Model name (OPENAI_BASE_URL picks the provider: OpenAI, Ollama, vLLM, a gateway).
    #[arg(long, env = "AIOPS_MODEL", default_value = "gpt-4o-mini")]
    model: String,
    /// Offer write and destructive tools; each call is shown (with a dry run) and needs `y`.
    #[arg(long)]
    allow_writes: bool,
    /// Approve every write without asking (for scripts; needs --allow-writes).
    #[arg(long, requires = "allow_writes")]
    yes: bool,
    /// Print a JSON transcript (question, model, tool calls, answer, steps) instead of streaming.
    #[arg(long)]
    json: bool,
    /// Model rounds that may call tools; then the model must answer.
    #[arg(long, default_value_t = 8)]
    max_steps: usize,
    /// Longest model response, in tokens.
    #[arg(long, default_value_t = 4096)]
    max_tokens: u32,
    /// Tokens of the whole run; past it the model must answer with what it has.
    #[arg(long, default_value_t = 200_000)]
    max_total_tokens: u64,
    /// Largest tool result sent to the model, in bytes.
    #[arg(long, default_value_t = 16 * 1024)]
    max_tool_bytes: usize,
    /// Time limit of the whole run, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

#[derive(Subcommand, Debug)]
enum LogsCommand {
    /// Mine templates from log lines on stdin; prints CSV `LineId,EventId,Template`.
    Mine {
        /// Log format naming the fields, e.g. '<Date> <Time> <Level>: <Content>' (only Content is mined).
        #[arg(long)]
        format: Option<String>,
    },
}

#[derive(clap::Args, Debug)]
struct StackTarget {
    /// Release name of the stack.
    #[arg(long, default_value = "todo")]
    release: String,
    /// Namespace of the stack.
    #[arg(long, short = 'n', default_value = "todo-app")]
    namespace: String,
}

/// The command line, with argv[0] dispatch: invoked as `kubectl-aiops` (kubectl's plugin name),
/// `kubectl aiops "why is the backend crashing?"` means `aiops-mcp ask "…"`, while a command
/// line that is already valid (`kubectl aiops serve`, `kubectl aiops --read-only tools`) keeps
/// its meaning; one that starts like a subcommand but is not one (`kubectl aiops check pods
/// please`) is a question.
fn parse_cli() -> Cli {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let plugin = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("kubectl-aiops"));
    if !plugin {
        return Cli::parse();
    }
    let cmd = Cli::command()
        .name("kubectl-aiops")
        .bin_name("kubectl aiops");
    if args.len() > 1 {
        match cmd.clone().try_get_matches_from(&args) {
            Ok(m) => return Cli::from_arg_matches(&m).unwrap_or_else(|e| e.exit()),
            Err(e)
                if matches!(
                    e.kind(),
                    clap::error::ErrorKind::DisplayHelp
                        | clap::error::ErrorKind::DisplayVersion
                        | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                ) =>
            {
                e.exit()
            }
            Err(_) => {
                // Not a valid command line: the words are a question (global flags such as
                // `--context prod` are global, so they may follow `ask`).
                args.insert(1, "ask".into());
            }
        }
    }
    let matches = cmd.get_matches_from(args);
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

fn main() -> std::process::ExitCode {
    let cli = parse_cli();
    if let Command::Logs(LogsCommand::Mine { format }) = &cli.command {
        // pure text in, text out: no logging set-up, no runtime, no cluster context
        return logs_mine(format.as_deref());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AIOPS_LOG")
                .unwrap_or_else(|_| "warn,kube_client::client::tls=error,async_openai=off".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    limit_malloc_arenas();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let res = rt.block_on(run(cli));
    // A y/N prompt still reading stdin (ask ran out of --timeout meanwhile) must not keep the
    // process alive until someone presses Enter.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// glibc gives each thread that allocates its own malloc arena (up to 8 per core), and memory
/// freed into one is not reused by the others: after a large list is decoded on one runtime
/// worker and the next on another, each arena keeps its peak. One arena keeps the RSS after
/// listing 1,000 pods at that of one list (bench/run: 57–58 → 41 MiB, same latency); the
/// server's work is mostly waiting on the API server, so allocator contention does not show.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable of the allocator; it is called before any thread
    // other than main exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// `aiops-mcp logs mine`: stdin to stdout (both unbuffered here: the miner reads and writes in
/// large blocks itself).
fn logs_mine(format: Option<&str>) -> std::process::ExitCode {
    match aiops_mcp::logs::mine_csv(format, std::io::stdin().lock(), std::io::stdout().lock()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: logs mine: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let registry = Arc::new(Registry::new());
    let mut policy = Policy::from(&cli.policy);
    if let Command::Ask(a) = &cli.command {
        // `ask` is read-only unless writes are asked for.
        policy.read_only = policy.read_only || !a.allow_writes;
    }
    let policy = Arc::new(policy);
    let ctx = Ctx {
        clusters: Clusters::new(cli.kubeconfig.clone(), cli.context.clone()),
        policy: policy.clone(),
        progress: None,
    };
    match cli.command {
        Command::Serve {
            http,
            token_file,
            allowed_hosts,
            allowed_origins,
        } => {
            let server = AiopsServer::new(registry, ctx);
            match http {
                None => aiops_mcp::mcp::serve_stdio(server).await?,
                Some(addr) => {
                    let token = match token_file {
                        Some(f) => Some(
                            std::fs::read_to_string(&f)
                                .map_err(|e| {
                                    anyhow::anyhow!("cannot read --token-file {}: {e}", f.display())
                                })?
                                .trim()
                                .to_string(),
                        ),
                        None => std::env::var("AIOPS_MCP_TOKEN")
                            .ok()
                            .filter(|t| !t.is_empty()),
                    };
                    http::serve(
                        server,
                        http::HttpOptions {
                            addr: Some(addr),
                            token,
                            allowed_hosts,
                            allowed_origins,
                        },
                    )
                    .await?;
                }
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Tools { json } => {
            if json {
                println!("{}", serde_json::to_string_pretty(&registry.catalog())?);
            } else {
                for t in registry.visible(&policy) {
                    let m = t.meta();
                    let effect = match m.effect {
                        Effect::Read => "read",
                        Effect::Write => "write",
                        Effect::Destructive => "destructive",
                    };
                    println!("{:<20} {:<11} {}", m.name, effect, m.title);
                }
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Call {
            tool,
            args,
            json,
            yes,
        } => {
            let args: serde_json::Value = serde_json::from_str(&args).map_err(|e| {
                anyhow::anyhow!(
                    "--args is not JSON: {e}; pass an object like '{{\"namespace\":\"default\"}}'"
                )
            })?;
            let destructive = registry.get(&tool).is_some_and(|t| {
                t.meta().effect == Effect::Destructive && policy.refusal(&t.meta()).is_none()
            });
            let dry = args.get("dry_run").and_then(|v| v.as_bool()) == Some(true);
            if destructive && !dry && !yes && !confirm_at_terminal(&tool, &args)? {
                eprintln!("{tool} not run: not confirmed (pass --yes to confirm non-interactively, or dry_run=true to preview)");
                return Ok(std::process::ExitCode::from(3));
            }
            match registry.call(&ctx, &tool, args).await {
                Ok(out) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&out.structured)?);
                    } else {
                        print!("{}", out.text);
                    }
                    Ok(std::process::ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!(
                        "{tool} failed: {}",
                        aiops_mcp::policy::redact::redact_text(&e.to_string())
                    );
                    Ok(std::process::ExitCode::from(2))
                }
            }
        }
        Command::Deploy {
            target,
            values,
            secrets_from,
            dry_run,
            no_wait,
            timeout,
        } => {
            let values: serde_json::Value = match values {
                Some(f) => {
                    let text = std::fs::read_to_string(&f).map_err(|e| {
                        anyhow::anyhow!("cannot read values file {}: {e}", f.display())
                    })?;
                    serde_norway::from_str(&text).map_err(|e| {
                        anyhow::anyhow!("values file {} is not YAML/JSON: {e}", f.display())
                    })?
                }
                None => serde_json::json!({}),
            };
            let args = serde_json::json!({
                "release": target.release, "namespace": target.namespace, "values": values,
                "secrets_from": secrets_from, "dry_run": dry_run, "wait": !no_wait, "timeout_seconds": timeout,
            });
            let bar = indicatif::ProgressBar::new(1);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{bar:30}] {pos}/{len} available  {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let b = bar.clone();
            let mut ctx = ctx;
            ctx.progress = Some(Arc::new(
                move |done: f64, total: Option<f64>, msg: String| {
                    if let Some(t) = total {
                        b.set_length(t as u64);
                    }
                    b.set_position(done as u64);
                    b.set_message(msg);
                },
            ));
            let res = registry.call(&ctx, "stack_deploy", args).await;
            bar.finish_and_clear();
            print_result(res)
        }
        Command::Logs(LogsCommand::Mine { format }) => Ok(logs_mine(format.as_deref())),
        Command::Status { target } => print_result(
            registry
                .call(
                    &ctx,
                    "stack_status",
                    serde_json::json!({"release": target.release, "namespace": target.namespace}),
                )
                .await,
        ),
        Command::Diagnose {
            namespace,
            name,
            kind,
            no_logs,
            max,
            json,
            fail_on,
        } => {
            let args = serde_json::json!({"namespace": namespace, "name": name, "kind": kind,
                "include_logs": !no_logs, "max_findings": max});
            let args = strip_nulls(args);
            let out = match registry.call(&ctx, "diagnose", args).await {
                Ok(out) => out,
                Err(e) => return print_result(Err(e)),
            };
            // Findings are ranked worst first.
            let worst = out.structured["findings"][0]["severity"].as_str();
            let failed = matches!(
                (fail_on.as_deref(), worst),
                (Some("critical"), Some("critical"))
                    | (Some("warning"), Some("critical" | "warning"))
            );
            let code = if failed {
                std::process::ExitCode::from(3)
            } else {
                std::process::ExitCode::SUCCESS
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&out.structured)?);
                Ok(code)
            } else {
                let colour =
                    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
                print!(
                    "{}",
                    if colour {
                        colourise(&out.text)
                    } else {
                        out.text
                    }
                );
                Ok(code)
            }
        }
        Command::Ask(a) => ask(&registry, &ctx, a).await,
        Command::Check => {
            let client = ctx.clusters.client(None).await?;
            let v = client.apiserver_version().await?;
            let out = registry
                .call(&ctx, "cluster_overview", serde_json::json!({}))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("server {} ({})", v.git_version, v.platform);
            print!("{}", out.text);
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

/// Drops null members of an object (unset CLI options).
fn strip_nulls(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, x| !x.is_null());
    }
    v
}

/// Colours the severity words of a diagnosis for a terminal.
fn colourise(text: &str) -> String {
    text.replace("CRITICAL", "\x1b[1;31mCRITICAL\x1b[0m")
        .replace("WARNING", "\x1b[33mWARNING\x1b[0m")
        .replace("INFO", "\x1b[36mINFO\x1b[0m")
}

fn print_result(
    res: Result<aiops_mcp::tools::ToolOutput, aiops_mcp::tools::ToolError>,
) -> anyhow::Result<std::process::ExitCode> {
    match res {
        Ok(out) => {
            print!("{}", out.text);
            Ok(std::process::ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!(
                "error: {}",
                aiops_mcp::policy::redact::redact_text(&e.to_string())
            );
            Ok(std::process::ExitCode::from(2))
        }
    }
}

async fn ask(registry: &Registry, ctx: &Ctx, a: AskArgs) -> anyhow::Result<std::process::ExitCode> {
    use aiops_mcp::agent;
    let question = a.question.join(" ");
    let provider =
        match agent::Provider::from_env(a.model.clone(), a.max_tokens, agent::Retry::default()) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(std::process::ExitCode::from(
                    agent::AskError::Provider(e).exit_code(),
                ));
            }
        };
    let opts = agent::AskOptions {
        max_steps: a.max_steps.max(1),
        token_budget: a.max_total_tokens,
        timeout: std::time::Duration::from_secs(a.timeout.max(1)),
        max_tool_bytes: a.max_tool_bytes.max(1024),
        allow_writes: !ctx.policy.read_only,
        yes: a.yes,
        stream: !a.json,
    };
    let mut transcript = agent::new_transcript(&question, &provider, &ctx.policy);
    let res = agent::ask(registry, ctx, &provider, &question, &opts, &mut transcript).await;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&transcript)?);
    }
    match res {
        Ok(()) => Ok(std::process::ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(std::process::ExitCode::from(e.exit_code()))
        }
    }
}

fn confirm_at_terminal(tool: &str, args: &serde_json::Value) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    eprint!("{tool} {args} is destructive. Go ahead? [y/N] ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}
