//! `aiops-mcp ask` end to end: the real binary against a scripted OpenAI-compatible server
//! (axum, on 127.0.0.1:0) and the sandbox cluster. The fake records every request, so the tests
//! check what the model was offered and which tool messages it got back.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use aiops_mcp::policy::Policy;
use aiops_mcp::tools::Registry;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{json, Value};

use crate::common::TestNs;

/// The API key the binary gets; no output may ever contain it.
const KEY: &str = "sk-aiops-test-0123456789abcdefSECRET";

/// One scripted answer of the fake model.
#[derive(Clone, Debug)]
enum Reply {
    /// Asks for tool calls: (id, name, raw arguments string).
    Calls(Vec<(&'static str, &'static str, String)>),
    /// Answers in text.
    Answer(&'static str),
    /// An HTTP error with a body.
    Status(u16, &'static str),
}

#[derive(Default)]
struct Script {
    replies: VecDeque<Reply>,
    requests: Vec<Value>,
}

struct Fake {
    base_url: String,
    state: Arc<Mutex<Script>>,
}

impl Fake {
    async fn start(replies: Vec<Reply>) -> Fake {
        let state = Arc::new(Mutex::new(Script {
            replies: replies.into(),
            requests: Vec::new(),
        }));
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Fake {
            base_url: format!("http://{addr}/v1"),
            state,
        }
    }

    fn requests(&self) -> Vec<Value> {
        self.state.lock().unwrap().requests.clone()
    }

    fn left(&self) -> usize {
        self.state.lock().unwrap().replies.len()
    }
}

async fn completions(State(state): State<Arc<Mutex<Script>>>, Json(body): Json<Value>) -> Response {
    let reply = {
        let mut s = state.lock().unwrap();
        s.requests.push(body);
        s.replies.pop_front()
    };
    let Some(reply) = reply else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "fake model: script exhausted",
        )
            .into_response();
    };
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000,
               "model": "fake-model", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut events: Vec<Value> = Vec::new();
    match reply {
        Reply::Status(code, body) => {
            return (
                StatusCode::from_u16(code).unwrap(),
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response();
        }
        Reply::Calls(calls) => {
            for (i, (id, name, args)) in calls.iter().enumerate() {
                // Arguments arrive in pieces, as real providers stream them.
                let (a, b) = args.split_at(args.len() / 2);
                events.push(chunk(
                    json!({"role": "assistant", "content": null, "tool_calls": [
                        {"index": i, "id": id, "type": "function", "function": {"name": name, "arguments": a}}]}),
                    Value::Null,
                ));
                events.push(chunk(
                    json!({"tool_calls": [{"index": i, "function": {"arguments": b}}]}),
                    Value::Null,
                ));
            }
            events.push(chunk(json!({}), json!("tool_calls")));
        }
        Reply::Answer(text) => {
            for word in text.split_inclusive(' ') {
                events.push(chunk(json!({"content": word}), Value::Null));
            }
            events.push(chunk(json!({}), json!("stop")));
        }
    }
    events.push(
        json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000,
        "model": "fake-model", "choices": [],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}}),
    );
    let mut body = String::new();
    for e in events {
        body.push_str(&format!("data: {e}\n\n"));
    }
    body.push_str("data: [DONE]\n\n");
    ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn transcript(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("--json output is not JSON ({e}):\n{}", self.stdout))
    }
}

/// Runs `aiops-mcp ask <args>` (stdin not a terminal) against the fake.
async fn ask(fake: Option<&Fake>, args: &[&str]) -> Run {
    run_program(env!("CARGO_BIN_EXE_aiops-mcp"), &["ask"], fake, args).await
}

async fn run_program(program: &str, pre: &[&str], fake: Option<&Fake>, args: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(pre)
        .args(args)
        .env_remove("AIOPS_MODEL")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(f) = fake {
        cmd.env("OPENAI_BASE_URL", &f.base_url)
            .env("OPENAI_API_KEY", KEY);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("ask finishes within 120 s")
        .expect("binary runs");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !run.stdout.contains(KEY) && !run.stderr.contains(KEY),
        "the API key leaked:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    run
}

/// The tool messages of a request, by tool_call_id.
fn tool_messages(req: &Value) -> Vec<(String, String)> {
    req["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| {
            (
                m["tool_call_id"].as_str().unwrap_or_default().to_string(),
                m["content"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn offered_tools(req: &Value) -> Vec<String> {
    req["tools"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| t["function"]["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn config_map(ns: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-ask\n  namespace: {ns}\ndata:\n  greeting: hello\n")
}

fn apply_args(ns: &str) -> String {
    json!({"manifest": config_map(ns), "namespace": ns}).to_string()
}

#[tokio::test]
async fn ask_runs_the_model_tool_calls_through_the_registry_and_streams_the_answer() {
    let ns = TestNs::new("ask").await;
    let fake = Fake::start(vec![
        Reply::Calls(vec![
            ("call_ns", "namespaces_list", "{}".into()),
            (
                "call_pods",
                "pods_list",
                json!({"namespace": ns.name}).to_string(),
            ),
        ]),
        Reply::Answer("Nothing runs in the namespace yet: no pods, no warnings."),
    ])
    .await;
    let r = ask(Some(&fake), &["is", "my", "namespace", "healthy?"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("Nothing runs in the namespace yet: no pods, no warnings."),
        "{}",
        r.stdout
    );
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    // What the model is offered is the registry, read-only by default.
    let first = &reqs[0];
    assert_eq!(first["model"], "gpt-4o-mini");
    assert_eq!(first["stream"], true);
    assert_eq!(first["messages"][0]["role"], "system");
    assert!(first["messages"][0]["content"]
        .as_str()
        .unwrap()
        .contains("Read-only"));
    assert_eq!(first["messages"][1]["content"], "is my namespace healthy?");
    let registry = Registry::new();
    let read_only = Policy {
        read_only: true,
        ..Default::default()
    };
    let expected: Vec<String> = registry
        .visible(&read_only)
        .map(|t| t.meta().name.to_string())
        .collect();
    assert_eq!(offered_tools(first), expected);
    let pods = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["function"]["name"] == "pods_list")
        .unwrap();
    assert_eq!(
        pods["function"]["parameters"],
        registry.get("pods_list").unwrap().input_schema()
    );
    // The results came back as tool messages, rendered as text.
    let msgs = tool_messages(&reqs[1]);
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert_eq!(msgs[0].0, "call_ns");
    assert!(msgs[0].1.contains(&ns.name), "{}", msgs[0].1);
    assert_eq!(msgs[1].0, "call_pods");
    assert!(!msgs[1].1.starts_with("error"), "{}", msgs[1].1);
    let assistant = &reqs[1]["messages"][2];
    assert_eq!(assistant["role"], "assistant");
    assert_eq!(assistant["tool_calls"][1]["function"]["name"], "pods_list");
    assert_eq!(
        assistant["tool_calls"][1]["function"]["arguments"],
        json!({"namespace": ns.name}).to_string()
    );
}

#[tokio::test]
async fn ask_is_read_only_by_default_and_a_write_call_gets_the_policy_error() {
    let ns = TestNs::new("askro").await;
    let fake = Fake::start(vec![
        Reply::Calls(vec![("call_w", "resources_apply", apply_args(&ns.name))]),
        Reply::Answer("I cannot change the cluster in this mode."),
    ])
    .await;
    let r = ask(Some(&fake), &["--json", "create the config map"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let reqs = fake.requests();
    assert!(!offered_tools(&reqs[0]).contains(&"resources_apply".to_string()));
    let msgs = tool_messages(&reqs[1]);
    assert!(msgs[0].1.contains("refused by policy"), "{}", msgs[0].1);
    assert!(msgs[0].1.contains("--allow-writes"), "{}", msgs[0].1);
    assert!(ns
        .api::<ConfigMap>()
        .get_opt("from-ask")
        .await
        .unwrap()
        .is_none());
    let t = r.transcript();
    assert_eq!(t["mode"], "read_only");
    assert_eq!(t["steps"], 2);
    assert_eq!(t["finish"], "answered");
    assert_eq!(t["answer"], "I cannot change the cluster in this mode.");
    let call = &t["tool_calls"][0];
    assert_eq!(call["tool"], "resources_apply");
    assert_eq!(call["ok"], false);
    assert_eq!(call["arguments"]["namespace"], ns.name);
    assert!(call["result_bytes"].as_u64().unwrap() > 0);
    assert_eq!(t["usage"]["total_tokens"], 240);
}

#[tokio::test]
async fn ask_with_allow_writes_and_yes_shows_a_dry_run_then_applies() {
    let ns = TestNs::new("askyes").await;
    let fake = Fake::start(vec![
        Reply::Calls(vec![("call_w", "resources_apply", apply_args(&ns.name))]),
        Reply::Answer("Created the config map."),
    ])
    .await;
    let r = ask(
        Some(&fake),
        &["--allow-writes", "--yes", "--json", "create the config map"],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("Dry run:"), "{}", r.stderr);
    assert!(r.stderr.contains("Approved by --yes"), "{}", r.stderr);
    let reqs = fake.requests();
    assert!(offered_tools(&reqs[0]).contains(&"resources_apply".to_string()));
    let msgs = tool_messages(&reqs[1]);
    assert!(!msgs[0].1.starts_with("error"), "{}", msgs[0].1);
    let cm = ns
        .api::<ConfigMap>()
        .get("from-ask")
        .await
        .expect("created");
    assert_eq!(cm.data.unwrap()["greeting"], "hello");
    let t = r.transcript();
    assert_eq!(t["mode"], "writes_with_approval");
    assert_eq!(t["tool_calls"][0]["approval"], "approved_by_yes");
    assert_eq!(t["tool_calls"][0]["ok"], true);
}

#[tokio::test]
async fn ask_declines_a_write_when_nobody_at_a_terminal_can_approve_it() {
    let ns = TestNs::new("askno").await;
    let fake = Fake::start(vec![
        Reply::Calls(vec![("call_w", "resources_apply", apply_args(&ns.name))]),
        Reply::Answer("The user declined; here is what I would apply."),
    ])
    .await;
    let r = ask(Some(&fake), &["--allow-writes", "create the config map"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("stdin is not a terminal"), "{}", r.stderr);
    let msgs = tool_messages(&fake.requests()[1]);
    assert!(msgs[0].1.starts_with("declined"), "{}", msgs[0].1);
    assert!(ns
        .api::<ConfigMap>()
        .get_opt("from-ask")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn ask_sends_malformed_tool_arguments_back_as_a_tool_error_and_continues() {
    let fake = Fake::start(vec![
        Reply::Calls(vec![(
            "call_bad",
            "namespaces_list",
            "{\"context\": ".into(),
        )]),
        Reply::Calls(vec![("call_good", "namespaces_list", "{}".into())]),
        Reply::Answer("Fixed my arguments."),
    ])
    .await;
    let r = ask(Some(&fake), &["--json", "list namespaces"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3);
    let bad = tool_messages(&reqs[1]);
    assert_eq!(bad[0].0, "call_bad");
    assert!(bad[0].1.contains("not valid JSON"), "{}", bad[0].1);
    let good = tool_messages(&reqs[2]);
    assert!(good[1].1.contains("default"), "{}", good[1].1);
    let t = r.transcript();
    assert_eq!(t["tool_calls"][0]["ok"], false);
    assert_eq!(
        t["tool_calls"][0]["arguments"]["invalid_json"],
        "{\"context\":"
    );
    assert_eq!(t["tool_calls"][1]["ok"], true);
    assert_eq!(t["answer"], "Fixed my arguments.");
}

#[tokio::test]
async fn ask_retries_a_429_and_then_answers() {
    let fake = Fake::start(vec![
        Reply::Status(
            429,
            r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
        ),
        Reply::Answer("All good."),
    ])
    .await;
    let r = ask(Some(&fake), &["hello"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("429 rate limited; retrying"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("All good."));
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn ask_gives_up_on_a_persistent_500_with_a_clear_error() {
    let boom = r#"{"error":{"message":"upstream exploded","type":"server_error","param":null,"code":null}}"#;
    let fake = Fake::start(vec![Reply::Status(500, boom); 6]).await;
    let r = ask(Some(&fake), &["hello"]).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("the model provider failed with 500 on all 4 attempts"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("upstream exploded"), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert_eq!(fake.requests().len(), 4);
    assert_eq!(fake.left(), 2);
}

#[tokio::test]
async fn ask_reports_a_refused_key_without_printing_it() {
    let fake = Fake::start(vec![Reply::Status(
        401,
        r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
    )])
    .await;
    let r = ask(Some(&fake), &["--json", "hello"]).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("refused the API key (401)"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("OPENAI_API_KEY"), "{}", r.stderr);
    let t = r.transcript();
    assert_eq!(t["finish"], "error");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn ask_without_an_api_key_says_how_to_configure_one() {
    let r = ask(None, &["hello"]).await;
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("OPENAI_API_KEY is not set"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("OPENAI_BASE_URL"), "{}", r.stderr);
    assert!(r.stderr.contains("AIOPS_MODEL"), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

#[tokio::test]
async fn ask_forces_an_answer_after_max_steps() {
    let fake = Fake::start(vec![
        Reply::Calls(vec![("call_1", "namespaces_list", "{}".into())]),
        Reply::Answer("Answer from what I have."),
    ])
    .await;
    let r = ask(
        Some(&fake),
        &[
            "--max-steps",
            "1",
            "--model",
            "local-llama",
            "--json",
            "hello",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let reqs = fake.requests();
    assert_eq!(reqs[0]["tool_choice"], "auto");
    assert_eq!(reqs[1]["tool_choice"], "none");
    assert_eq!(reqs[1]["model"], "local-llama");
    let last = reqs[1]["messages"].as_array().unwrap().last().unwrap();
    assert!(last["content"]
        .as_str()
        .unwrap()
        .contains("used all 1 rounds"));
    let t = r.transcript();
    assert_eq!(t["finish"], "step_limit");
    assert_eq!(t["model"], "local-llama");
}

#[tokio::test]
async fn kubectl_aiops_plugin_asks_and_keeps_subcommands() {
    let dir = std::env::temp_dir().join(format!("aiops-kubectl-plugin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("kubectl-aiops");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_aiops-mcp"), &link).unwrap();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    // Through kubectl's plugin lookup: `kubectl aiops "…"` is `ask`.
    let fake = Fake::start(vec![Reply::Answer("The backend is fine.")]).await;
    let mut cmd = tokio::process::Command::new("kubectl");
    cmd.args(["aiops", "why is the backend crashing?"])
        .env("PATH", &path)
        .env("OPENAI_BASE_URL", &fake.base_url)
        .env("OPENAI_API_KEY", KEY)
        .env_remove("AIOPS_MODEL")
        .stdin(Stdio::null());
    let out = cmd.output().await.expect("kubectl runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("The backend is fine."), "{stdout}");
    assert_eq!(
        fake.requests()[0]["messages"][1]["content"],
        "why is the backend crashing?"
    );

    // A subcommand keeps its meaning.
    let r = run_program(link.to_str().unwrap(), &[], None, &["tools"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("pods_list"), "{}", r.stdout);
    let r = run_program(link.to_str().unwrap(), &[], None, &["--read-only", "tools"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("pods_list") && !r.stdout.contains("rollout_undo"),
        "{}",
        r.stdout
    );
    let r = run_program(link.to_str().unwrap(), &[], None, &["--help"]).await;
    assert!(r.stdout.contains("kubectl aiops"), "{}", r.stdout);
    // Words that start like a subcommand but are not a valid one are a question.
    let fake = Fake::start(vec![Reply::Answer("Two pods are pending.")]).await;
    let r = run_program(
        link.to_str().unwrap(),
        &[],
        Some(&fake),
        &["check", "the", "pods", "in", "todo-app"],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        fake.requests()[0]["messages"][1]["content"],
        "check the pods in todo-app"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn ask_stops_at_once_when_the_quota_is_used_up() {
    let fake = Fake::start(vec![Reply::Status(
        429,
        r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
    )])
    .await;
    let r = ask(Some(&fake), &["hello"]).await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("quota of this API key is used up"),
        "{}",
        r.stderr
    );
    assert_eq!(fake.requests().len(), 1);
}

/// Runs `ask` under a pseudo-terminal (util-linux `script`), typing `answer` at the prompt.
async fn ask_at_terminal(fake: &Fake, question: &str, answer: &str) -> String {
    use tokio::io::AsyncWriteExt;
    let cmd = format!(
        "{} ask --allow-writes '{question}'",
        env!("CARGO_BIN_EXE_aiops-mcp")
    );
    let mut child = tokio::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("OPENAI_BASE_URL", &fake.base_url)
        .env("OPENAI_API_KEY", KEY)
        .env_remove("AIOPS_MODEL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{answer}\n").as_bytes())
        .await
        .unwrap();
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), async {
        // Keep the terminal open until the run ends.
        let out = child.wait_with_output().await;
        drop(stdin);
        out
    })
    .await
    .expect("ask finishes")
    .expect("script runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(!text.contains(KEY), "the API key leaked: {text}");
    text
}

#[tokio::test]
async fn ask_asks_at_the_terminal_and_only_y_applies() {
    let ns = TestNs::new("asktty").await;
    let cms = ns.api::<ConfigMap>();
    let script = || {
        vec![
            Reply::Calls(vec![("call_w", "resources_apply", apply_args(&ns.name))]),
            Reply::Answer("Done."),
        ]
    };
    let fake = Fake::start(script()).await;
    let text = ask_at_terminal(&fake, "create the config map", "n").await;
    assert!(text.contains("Run resources_apply? [y/N]"), "{text}");
    assert!(text.contains("Dry run:"), "{text}");
    assert!(tool_messages(&fake.requests()[1])[0]
        .1
        .starts_with("declined"));
    assert!(cms.get_opt("from-ask").await.unwrap().is_none());

    let fake = Fake::start(script()).await;
    let text = ask_at_terminal(&fake, "create the config map", "y").await;
    assert!(text.contains("Run resources_apply? [y/N]"), "{text}");
    assert!(!tool_messages(&fake.requests()[1])[0]
        .1
        .starts_with("declined"));
    assert!(cms.get_opt("from-ask").await.unwrap().is_some());
}

#[tokio::test]
async fn ask_diagnoses_a_crash_loop_and_rolls_back_only_when_writes_are_allowed() {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::api::{Patch, PatchParams};
    let ns = TestNs::new("askundo").await;
    ns.apply_yaml(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "nginx:1.25"}]
"#,
    )
    .await;
    crate::common::wait_for(
        "web rev 1 available",
        std::time::Duration::from_secs(60),
        || async {
            let d = ns.api::<Deployment>().get("web").await.ok()?;
            (d.status?.available_replicas == Some(1)).then_some(())
        },
    )
    .await;
    ns.api::<Deployment>()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "crasher:1.0"}]}}}})),
        )
        .await
        .unwrap();
    crate::common::wait_for(
        "web diagnosed as crash-looping",
        std::time::Duration::from_secs(60),
        || async {
            let out = Registry::new()
                .call(
                    &crate::rollout::ctx(),
                    "diagnose",
                    json!({"namespace": ns.name}),
                )
                .await
                .ok()?;
            // Two restarts: from then on diagnose sees the loop between crashes too.
            let pods = ns
                .api::<k8s_openapi::api::core::v1::Pod>()
                .list(&Default::default())
                .await
                .ok()?;
            let restarted = pods.items.iter().any(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.restart_count >= 2))
            });
            (restarted && out.structured["findings"][0]["category"] == "CrashLoopBackOff")
                .then_some(())
        },
    )
    .await;
    let script = || {
        vec![
            Reply::Calls(vec![(
                "call_d",
                "diagnose",
                json!({"namespace": ns.name}).to_string(),
            )]),
            Reply::Calls(vec![(
                "call_u",
                "rollout_undo",
                json!({"namespace": ns.name, "name": "web", "to_revision": 1}).to_string(),
            )]),
            Reply::Answer("web crashed since revision 2 (crasher:1.0); rolled back to revision 1."),
        ]
    };
    let image = || async {
        ns.api::<Deployment>()
            .get("web")
            .await
            .unwrap()
            .spec
            .template
            .spec
            .unwrap()
            .containers[0]
            .image
            .clone()
            .unwrap()
    };

    // Read-only (the default): the diagnosis arrives, the undo is refused by policy.
    let fake = Fake::start(script()).await;
    let r = ask(Some(&fake), &["why is web crashing? fix it"]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let reqs = fake.requests();
    let diag = &tool_messages(&reqs[1])[0].1;
    assert!(
        diag.contains("CrashLoopBackOff") && diag.contains("rollout_undo"),
        "{diag}"
    );
    let undo = &tool_messages(&reqs[2])[1].1;
    assert!(undo.contains("--read-only"), "{undo}");
    assert_eq!(image().await, "crasher:1.0");

    // With writes allowed and approved: the suggested undo runs through the registry.
    let fake = Fake::start(script()).await;
    let r = ask(
        Some(&fake),
        &[
            "--allow-writes",
            "--yes",
            "--json",
            "why is web crashing? fix it",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let t = r.transcript();
    assert_eq!(t["tool_calls"][1]["tool"], "rollout_undo", "{t}");
    assert_eq!(t["tool_calls"][1]["ok"], true, "{t}");
    assert_eq!(image().await, "nginx:1.25");
}

#[tokio::test]
async fn ask_applies_the_namespace_allow_list_like_serve() {
    let ns = TestNs::new("askns").await;
    let fake = Fake::start(vec![
        Reply::Calls(vec![
            (
                "call_out",
                "pods_list",
                json!({"namespace": "kube-system"}).to_string(),
            ),
            (
                "call_in",
                "pods_list",
                json!({"namespace": ns.name}).to_string(),
            ),
        ]),
        Reply::Answer("Only my namespace is visible."),
    ])
    .await;
    let r = ask(
        Some(&fake),
        &["--namespaces", &ns.name, "--json", "list the pods"],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let msgs: std::collections::HashMap<String, String> =
        tool_messages(&fake.requests()[1]).into_iter().collect();
    assert!(
        msgs["call_out"].contains("outside the server's --namespaces allow-list"),
        "{}",
        msgs["call_out"]
    );
    assert!(!msgs["call_in"].contains("refused"), "{}", msgs["call_in"]);
    let t = r.transcript();
    assert_eq!(t["tool_calls"][0]["ok"], false, "{t}");
    assert_eq!(t["tool_calls"][1]["ok"], true, "{t}");
}

#[tokio::test]
async fn ask_refuses_yes_without_allow_writes() {
    let r = ask(None, &["--yes", "scale the frontend"]).await;
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("--allow-writes"), "{}", r.stderr);
}
