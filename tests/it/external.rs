//! aiops-mcp from the outside: the official Python MCP SDK over stdio and streamable HTTP, the
//! HTTP endpoints and their token, and the redaction canary across every read tool.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

use crate::common::TestNs;
use crate::mcp::{call, connect, server, text};

fn venv_python() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: tests/run creates it (python3 -m venv .venv && .venv/bin/pip install mcp)",
        p.display()
    );
    p
}

fn python_client(mode: &str, target: &str, namespace: &str) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/py/mcp_client_check.py");
    let out = Command::new(venv_python())
        .arg(script)
        .args([mode, target, namespace])
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn check_python_answer(v: &Value, ns: &str) {
    assert_eq!(v["server"], "aiops-mcp");
    assert!(v["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "pods_list"));
    assert!(v["namespaces_text"].as_str().unwrap().contains(ns), "{v}");
    assert_eq!(v["namespaces_structured"], true);
    assert_eq!(v["apply_error"], false, "{v}");
    assert!(
        v["apply_text"]
            .as_str()
            .unwrap()
            .contains("would be created"),
        "{v}"
    );
    assert_eq!(v["bad_error"], true);
    assert!(
        v["bad_text"].as_str().unwrap().contains("does not exist"),
        "{v}"
    );
    assert_eq!(
        v["prompts"],
        json!([
            "troubleshoot-workload",
            "deploy-todo-stack",
            "incident-report"
        ])
    );
    assert!(
        v["prompt_text"]
            .as_str()
            .unwrap()
            .contains(&format!("namespace `{ns}`")),
        "{v}"
    );
    assert_eq!(
        v["resource_templates"][0],
        "k8s://{context}/namespaces/{namespace}/health"
    );
    assert!(
        v["health_text"]
            .as_str()
            .unwrap()
            .contains("No problems found"),
        "{v}"
    );
}

#[tokio::test]
async fn python_sdk_client_works_over_stdio() {
    let ns = TestNs::new("pystdio").await;
    let v = tokio::task::spawn_blocking({
        let ns = ns.name.clone();
        move || python_client("stdio", env!("CARGO_BIN_EXE_aiops-mcp"), &ns)
    })
    .await
    .unwrap();
    check_python_answer(&v, &ns.name);
}

async fn spawn_http(token: Option<&str>) -> String {
    let opts = aiops_mcp::mcp::http::HttpOptions {
        addr: None,
        token: token.map(str::to_string),
        ..Default::default()
    };
    let app = aiops_mcp::mcp::http::router(server(Default::default()), &opts);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_client_works_over_streamable_http() {
    let ns = TestNs::new("pyhttp").await;
    let base = spawn_http(None).await;
    let v = tokio::task::spawn_blocking({
        let ns = ns.name.clone();
        move || python_client("http", &format!("{base}/mcp"), &ns)
    })
    .await
    .unwrap();
    check_python_answer(&v, &ns.name);
}

#[tokio::test]
async fn http_endpoints_answer_and_the_token_is_enforced() {
    let base = spawn_http(Some("s3cret-token")).await;
    let http = reqwest::Client::new();
    let r = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 401, "readyz without the token");
    let r = http
        .get(format!("{base}/readyz"))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("v1.20"));
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let post = |tok: Option<&str>| {
        let mut b = http
            .post(format!("{base}/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(init.to_string());
        if let Some(t) = tok {
            b = b.bearer_auth(t);
        }
        b.send()
    };
    assert_eq!(post(None).await.unwrap().status(), 401);
    assert_eq!(post(Some("wrong-token!")).await.unwrap().status(), 401);
    let ok = post(Some("s3cret-token")).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("aiops-mcp"));
}

#[test]
fn serving_beyond_loopback_without_a_token_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_aiops-mcp"))
        .args(["serve", "--http", "0.0.0.0:0"])
        .env_remove("AIOPS_MCP_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("without a bearer token") && err.contains("--token-file"),
        "{err}"
    );
}

#[tokio::test]
async fn canary_secrets_never_leave_the_server() {
    const CANARY: &str = "CANARY-7f3a9c-s3cr3t";
    let ns = TestNs::new("canary").await;
    ns.apply_yaml(&format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: app-secrets}}
stringData:
  DATABASE_URL: "postgresql://todo:{CANARY}@db:5432/todo"
  OPENAI_API_KEY: "sk-{c}AAAAAAAA"
  BETTER_AUTH_SECRET: "{CANARY}"
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: app-config}}
data:
  DB_PASSWORD: "{CANARY}"
  settings.ini: "password={CANARY}\nlog_level=info"
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: backend}}
spec:
  selector: {{matchLabels: {{app: backend}}}}
  template:
    metadata: {{labels: {{app: backend}}}}
    spec:
      containers:
      - name: backend
        image: todo-backend:1.0.0
        env:
        - {{name: DATABASE_URL, value: "postgresql://todo:{CANARY}@db:5432/todo"}}
        - {{name: API_TOKEN, value: "{CANARY}"}}
        - name: BETTER_AUTH_SECRET
          valueFrom: {{secretKeyRef: {{name: app-secrets, key: BETTER_AUTH_SECRET}}}}
"#,
        c = CANARY.replace('-', "")
    ))
    .await;
    let client = connect().await;
    let n = ns.name.as_str();
    let calls = [
        (
            "resources_get",
            json!({"kind": "Secret", "name": "app-secrets", "namespace": n, "events": true}),
        ),
        ("resources_list", json!({"kind": "secrets", "namespace": n})),
        (
            "resources_get",
            json!({"kind": "ConfigMap", "name": "app-config", "namespace": n}),
        ),
        (
            "resources_get",
            json!({"kind": "Deployment", "name": "backend", "namespace": n}),
        ),
        ("resources_list", json!({"kind": "pods", "namespace": n})),
        ("pods_list", json!({"namespace": n, "show_healthy": true})),
        ("events_list", json!({"namespace": n})),
        ("cluster_overview", json!({})),
        ("contexts_list", json!({})),
        (
            "resources_apply",
            json!({"manifest": format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: new-secret, namespace: {n}}}\nstringData: {{token: \"{CANARY}\"}}\n"), "dry_run": true}),
        ),
        (
            "resources_apply",
            json!({"manifest": format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: app-config, namespace: {n}}}\ndata: {{DB_PASSWORD: \"{CANARY}2\"}}\n"), "dry_run": true}),
        ),
    ];
    for (tool, args) in calls {
        let r = call(&client, tool, args.clone()).await;
        let all = format!(
            "{}\n{}",
            text(&r),
            r.structured_content.clone().unwrap_or_default()
        );
        assert!(
            !all.contains("CANARY") && !all.contains(&CANARY.replace('-', "")),
            "{tool} {args} leaked:\n{all}"
        );
    }
    // Keys stay visible, values do not.
    let r = call(
        &client,
        "resources_get",
        json!({"kind": "Secret", "name": "app-secrets", "namespace": n}),
    )
    .await;
    let t = text(&r);
    assert!(
        t.contains("DATABASE_URL") && t.contains("<redacted:"),
        "{t}"
    );
}

/// (config file, stdio command, its args, HTTP url and Authorization header template).
type ClientEntry = (String, String, Vec<String>, Option<(String, String)>);

/// The stdio and HTTP entries of every client config in tools/ (Claude Desktop, Cursor, VS Code,
/// kubectl-ai).
fn client_entries() -> Vec<ClientEntry> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools");
    let json_of = |p: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(p)).unwrap())
            .unwrap_or_else(|e| panic!("{p}: {e}"))
    };
    let args = |v: &Value| -> Vec<String> {
        v["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    };
    let mut out = vec![];
    for (file, key) in [
        ("clients/claude_desktop_config.json", "mcpServers"),
        ("clients/cursor-mcp.json", "mcpServers"),
        ("clients/vscode-mcp.json", "servers"),
    ] {
        let v = json_of(file);
        let stdio = &v[key]["aiops"];
        let http = v[key].get("aiops-http").map(|h| {
            (
                h["url"].as_str().unwrap().to_string(),
                h["headers"]["Authorization"].as_str().unwrap().to_string(),
            )
        });
        out.push((
            file.to_string(),
            stdio["command"].as_str().unwrap().to_string(),
            args(stdio),
            http,
        ));
    }
    let k: Value =
        serde_norway::from_str(&std::fs::read_to_string(dir.join("kubectl-ai/mcp.yaml")).unwrap())
            .unwrap();
    let servers = k["servers"].as_array().unwrap();
    let stdio = servers.iter().find(|s| s["name"] == "aiops").unwrap();
    let http = servers.iter().find(|s| s["name"] == "aiopshttp").unwrap();
    assert_eq!(http["auth"]["type"], "bearer");
    out.push((
        "kubectl-ai/mcp.yaml".into(),
        stdio["command"].as_str().unwrap().to_string(),
        args(stdio),
        Some((
            http["url"].as_str().unwrap().to_string(),
            "Bearer <token>".into(),
        )),
    ));
    out
}

#[tokio::test]
async fn every_shipped_client_config_starts_a_working_server() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let base = spawn_http(Some("cfg-token-123")).await;
    let http = reqwest::Client::new();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "cfg", "version": "1"}}});
    let placeholder = regex::Regex::new(r"\$\{[^}]+\}|<token>").unwrap();
    for (file, command, args, http_entry) in client_entries() {
        // stdio: the command as written (the binary on PATH is this build).
        assert_eq!(command, "aiops-mcp", "{file}");
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_aiops-mcp"))
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        stdin
            .write_all(format!("{init}\n{initialized}\n{list}\n").as_bytes())
            .await
            .unwrap();
        let mut tools = 0;
        while let Ok(Ok(Some(line))) =
            tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line()).await
        {
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["id"] == 2 {
                tools = v["result"]["tools"].as_array().map_or(0, Vec::len);
                break;
            }
        }
        assert!(
            tools >= 20,
            "{file}: `aiops-mcp {args:?}` listed {tools} tools"
        );
        let _ = child.kill().await;

        // HTTP: the path and the Authorization header as the config writes them.
        if let Some((url, header)) = http_entry {
            let path = url.split_once("127.0.0.1:8080").map(|x| x.1).unwrap();
            assert_eq!(path, "/mcp", "{file}: {url}");
            let header = placeholder.replace(&header, "cfg-token-123").into_owned();
            assert_eq!(header, "Bearer cfg-token-123", "{file}");
            let r = http
                .post(format!("{base}{path}"))
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("authorization", header)
                .body(init.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{file}");
        }
    }
}
