//! The todo stack end to end on the sandbox: deploy, status, idempotence, bad input, a faulty
//! release, Helm release records, teardown.

use std::time::Duration;

use aiops_mcp::policy::Policy;
use aiops_mcp::tools::Registry;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use serde_json::{json, Value};

use crate::common::TestNs;
use crate::mcp::{call, connect, connect_with, text};

/// Quick probes and a short progress deadline so rollouts settle in seconds.
pub(crate) fn values(extra: Value) -> Value {
    let mut v = json!({
        "progressDeadlineSeconds": 20,
        "frontend": {"replicas": 1},
        "backend": {"replicas": 2},
        "probes": {"readinessInitialDelaySeconds": 0, "readinessPeriodSeconds": 1, "livenessInitialDelaySeconds": 5, "livenessPeriodSeconds": 2},
    });
    aiops_mcp::stack::merge_values(&mut v, &extra);
    v
}

pub(crate) async fn make_secret(ns: &TestNs, keys: &[&str]) {
    let data: serde_json::Map<String, Value> = keys
        .iter()
        .map(|k| (k.to_string(), json!(format!("value-of-{k}"))))
        .collect();
    let s: Secret =
        serde_json::from_value(json!({"metadata": {"name": "todo-secrets"}, "stringData": data}))
            .unwrap();
    ns.api::<Secret>()
        .create(&Default::default(), &s)
        .await
        .unwrap();
}

pub(crate) const ALL_KEYS: [&str; 4] = [
    "DATABASE_URL",
    "BETTER_AUTH_SECRET",
    "BETTER_AUTH_URL",
    "OPENAI_API_KEY",
];

#[tokio::test]
async fn stack_deploys_reports_status_is_idempotent_and_tears_down_cleanly() {
    let ns = TestNs::new("stack").await;
    make_secret(&ns, &ALL_KEYS).await;
    let c = connect_with(crate::mcp::permissive(), None).await;
    let args = json!({"namespace": ns.name, "values": values(json!({}))});

    let r = call(&c, "stack_deploy", args.clone()).await;
    let t = text(&r);
    assert_eq!(r.is_error, Some(false), "{t}");
    let s = r.structured_content.unwrap();
    assert_eq!(s["outcome"], "ready", "{t}");
    assert_eq!(s["revision"], 1);
    assert_eq!(s["secret_keys"].as_array().unwrap().len(), 4);
    assert!(!t.contains("value-of-"), "secret values leaked: {t}");

    let st = call(&c, "stack_status", json!({"namespace": ns.name})).await;
    let t = text(&st);
    assert!(
        t.contains(": healthy")
            && t.contains("release revision 1 (deployed)")
            && t.contains("ingress host todo.local"),
        "{t}"
    );
    assert!(t.contains("backend healthy: 2/2 ready"), "{t}");

    // The same spec again changes nothing and writes no revision.
    let again = call(&c, "stack_deploy", args.clone()).await;
    let s = again.structured_content.clone().unwrap();
    assert_eq!(s["outcome"], "unchanged", "{}", text(&again));
    assert!(s.get("revision").is_none());

    // Helm's view: one deployed revision in Helm's storage format.
    let records = ns
        .api::<Secret>()
        .list(&ListParams::default().labels("owner=helm,name=todo"))
        .await
        .unwrap()
        .items;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].type_.as_deref(), Some("helm.sh/release.v1"));

    let r = call(&c, "stack_teardown", json!({"namespace": ns.name})).await;
    let t = text(&r);
    assert!(
        t.contains("Deployment/todo-backend") && t.contains("sh.helm.release.v1.todo.v1"),
        "{t}"
    );
    assert!(
        !t.contains("Secret/todo-secrets"),
        "teardown removed the user's Secret: {t}"
    );
    crate::common::wait_for("stack objects gone", Duration::from_secs(60), || async {
        let deps = ns
            .api::<k8s_openapi::api::apps::v1::Deployment>()
            .list(&ListParams::default())
            .await
            .ok()?;
        let svcs = ns
            .api::<k8s_openapi::api::core::v1::Service>()
            .list(&ListParams::default())
            .await
            .ok()?;
        (deps.items.is_empty() && svcs.items.is_empty()).then_some(())
    })
    .await;
    assert!(ns
        .api::<Secret>()
        .get_opt("todo-secrets")
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn missing_secret_key_is_named_and_nothing_is_applied() {
    let ns = TestNs::new("stacksecret").await;
    make_secret(
        &ns,
        &["DATABASE_URL", "BETTER_AUTH_SECRET", "BETTER_AUTH_URL"],
    )
    .await;
    let c = connect().await;
    let r = call(
        &c,
        "stack_deploy",
        json!({"namespace": ns.name, "values": values(json!({}))}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    let t = text(&r);
    assert!(
        t.contains("lacks key OPENAI_API_KEY") && t.contains("nothing was applied"),
        "{t}"
    );
    let deps = ns
        .api::<k8s_openapi::api::apps::v1::Deployment>()
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(deps.items.is_empty());
    let cms = ns
        .api::<k8s_openapi::api::core::v1::ConfigMap>()
        .list(&ListParams::default().labels("app.kubernetes.io/name=todo"))
        .await
        .unwrap();
    assert!(cms.items.is_empty());
}

#[tokio::test]
async fn invalid_values_are_refused_before_touching_the_cluster() {
    let c = connect().await;
    for (values, want) in [
        (json!({"backend": {"tag": "latest"}}), "Pin a version"),
        (json!({"backnd": {}}), "backnd"),
        (
            json!({"imagePullPolicy": "Sometimes"}),
            "IfNotPresent, Always or Never",
        ),
        (
            json!({"frontend": {"serviceType": "LoadBalancer"}}),
            "ClusterIP or NodePort",
        ),
    ] {
        let r = call(&c, "stack_render", json!({"values": values})).await;
        assert!(
            r.is_error == Some(true) && text(&r).contains(want),
            "{values}: {}",
            text(&r)
        );
    }
    let r = call(&c, "stack_deploy", json!({"namespace": "Bad_NS"})).await;
    assert!(
        text(&r).contains("not a valid namespace name"),
        "{}",
        text(&r)
    );
}

#[tokio::test]
async fn faulty_backend_release_stalls_with_a_pointer_to_the_cause_while_old_pods_serve() {
    let ns = TestNs::new("stackfault").await;
    make_secret(&ns, &ALL_KEYS).await;
    let c = connect().await;
    let r = call(
        &c,
        "stack_deploy",
        json!({"namespace": ns.name, "values": values(json!({}))}),
    )
    .await;
    assert_eq!(
        r.structured_content.clone().unwrap()["outcome"],
        "ready",
        "{}",
        text(&r)
    );
    // Its migration fails, so the new pods never get ready and the rollout cannot finish.
    let bad = values(json!({"backend": {"tag": "1.0.1-bad-migration"}}));
    let r = call(
        &c,
        "stack_deploy",
        json!({"namespace": ns.name, "values": bad, "timeout_seconds": 90}),
    )
    .await;
    let t = text(&r);
    let s = r.structured_content.unwrap();
    assert!(
        s["outcome"] == "stalled" || s["outcome"] == "timed out",
        "{t}"
    );
    assert_eq!(s["revision"], 2);
    let next = s["next_step"].as_str().unwrap_or_default();
    assert!(
        next.contains("backend")
            && next.contains("Init:")
            && next.contains("migrate: Error exit 1"),
        "{t}"
    );
    let backend = s["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["component"] == "backend")
        .unwrap()
        .clone();
    assert_eq!(backend["available"], 2, "old pods must keep serving: {t}");

    // Both revisions are in Helm's history: the first superseded, the second deployed.
    let records = ns
        .api::<Secret>()
        .list(&ListParams::default().labels("owner=helm,name=todo"))
        .await
        .unwrap()
        .items;
    let mut statuses: Vec<(String, String)> = records
        .iter()
        .map(|s| {
            let l = s.metadata.labels.clone().unwrap();
            (l["version"].clone(), l["status"].clone())
        })
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        vec![
            ("1".to_string(), "superseded".to_string()),
            ("2".to_string(), "deployed".to_string())
        ]
    );
}

#[tokio::test]
async fn rendered_stack_is_what_the_registry_catalogue_describes() {
    // stack_render needs no cluster and renders the chart's object set.
    let ctx = aiops_mcp::tools::Ctx {
        clusters: aiops_mcp::cluster::Clusters::new(None, None),
        policy: Default::default(),
        progress: None,
    };
    let out = Registry::new()
        .call(
            &ctx,
            "stack_render",
            json!({"release": "demo", "namespace": "shop"}),
        )
        .await
        .unwrap();
    let objs: Vec<String> = serde_json::from_value(out.structured["objects"].clone()).unwrap();
    assert_eq!(
        objs,
        [
            "ConfigMap/demo-config",
            "Deployment/demo-backend",
            "Deployment/demo-mcp",
            "Deployment/demo-frontend",
            "Service/demo-backend",
            "Service/demo-mcp",
            "Service/demo-frontend",
            "Ingress/demo"
        ]
    );
    assert!(out.text.contains("namespace: shop"));
}

/// (progress, total, message) of one notification.
pub(crate) type Progress = (f64, Option<f64>, String);

/// A client that records `notifications/progress`.
#[derive(Clone, Default)]
struct ProgressClient {
    seen: std::sync::Arc<std::sync::Mutex<Vec<Progress>>>,
}

impl rmcp::ClientHandler for ProgressClient {
    async fn on_progress(
        &self,
        p: rmcp::model::ProgressNotificationParam,
        _c: rmcp::service::NotificationContext<rmcp::service::RoleClient>,
    ) {
        self.seen
            .lock()
            .unwrap()
            .push((p.progress, p.total, p.message.unwrap_or_default()));
    }
}

/// Calls `tool` over MCP with a progress token and returns its result and every
/// `notifications/progress` received (waiting until one reports progress == total).
pub(crate) async fn call_with_progress(
    policy: Policy,
    tool: &'static str,
    args: serde_json::Value,
) -> (rmcp::model::CallToolResult, Vec<Progress>) {
    use rmcp::ServiceExt;
    let (c, s) = tokio::io::duplex(1 << 20);
    let srv = crate::mcp::server(policy);
    tokio::spawn(async move {
        if let Ok(r) = srv.serve(s).await {
            let _ = r.waiting().await;
        }
    });
    let handler = ProgressClient::default();
    let client = handler.clone().serve(c).await.unwrap();
    let mut params = rmcp::model::CallToolRequestParams::new(tool)
        .with_arguments(args.as_object().cloned().unwrap());
    let mut meta = rmcp::model::RequestMetaObject(Default::default());
    meta.set_progress_token(rmcp::model::ProgressToken(
        rmcp::model::NumberOrString::Number(7),
    ));
    params.meta = Some(meta);
    let r = client.call_tool(params).await.unwrap();
    let seen =
        crate::common::wait_for("progress notifications", Duration::from_secs(5), || async {
            let s = handler.seen.lock().unwrap().clone();
            s.iter().any(|(p, t, _)| Some(*p) == *t).then_some(s)
        })
        .await;
    let _ = client.cancel().await;
    (r, seen)
}

#[tokio::test]
async fn deploy_reports_rollout_progress_per_component_to_the_client() {
    let ns = TestNs::new("stackprogress").await;
    make_secret(&ns, &ALL_KEYS).await;
    let args = json!({"namespace": ns.name, "values": values(json!({}))});
    let (r, seen) = call_with_progress(Policy::default(), "stack_deploy", args).await;
    assert_eq!(
        r.structured_content.as_ref().unwrap()["outcome"],
        "ready",
        "{}",
        text(&r)
    );
    // 1 frontend + 2 backend + 1 mcp replicas; progress counts available replicas.
    assert!(seen.iter().all(|(_, t, _)| *t == Some(4.0)), "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "progress did not increase with each notification: {seen:?}"
    );
    let last = &seen.last().unwrap().2;
    assert!(
        last.contains("backend 2/2 updated") && last.contains("frontend") && last.contains("mcp"),
        "{last}"
    );
}

#[tokio::test]
async fn server_env_secrets_are_created_from_the_server_environment_and_torn_down_with_the_stack() {
    let ns = TestNs::new("stackenv").await;
    let run = |tool: &str, args: Value, env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_aiops-mcp"));
        cmd.args([
            "--allow-destructive-without-confirmation",
            "call",
            tool,
            "--yes",
            "--args",
            &args.to_string(),
        ]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let args = json!({"namespace": ns.name, "values": values(json!({})), "secrets_from": "server-env", "wait": false});
    // Missing variables are named, and nothing is applied.
    let (ok, out) = run(
        "stack_deploy",
        args.clone(),
        &[("DATABASE_URL", "postgresql://u:pw-env-1@db/x")],
    );
    assert!(
        !ok && out
            .contains("environment lacks BETTER_AUTH_SECRET, BETTER_AUTH_URL, OPENAI_API_KEY"),
        "{out}"
    );
    assert!(ns
        .api::<Secret>()
        .get_opt("todo-secrets")
        .await
        .unwrap()
        .is_none());
    let env = [
        ("DATABASE_URL", "postgresql://u:pw-env-1@db/x"),
        ("BETTER_AUTH_SECRET", "auth-env-2"),
        ("BETTER_AUTH_URL", "http://todo.local"),
        ("OPENAI_API_KEY", "sk-envkey3333333333333333"),
    ];
    let (ok, out) = run("stack_deploy", args, &env);
    assert!(
        ok && out.contains(
            "secret keys set: BETTER_AUTH_SECRET, BETTER_AUTH_URL, DATABASE_URL, OPENAI_API_KEY"
        ),
        "{out}"
    );
    assert!(
        !out.contains("pw-env-1") && !out.contains("auth-env-2") && !out.contains("sk-envkey"),
        "{out}"
    );
    let s = ns.api::<Secret>().get("todo-secrets").await.unwrap();
    assert_eq!(
        s.metadata.labels.unwrap()["app.kubernetes.io/managed-by"],
        "aiops-mcp"
    );
    assert_eq!(
        s.data.unwrap()["DATABASE_URL"].0,
        b"postgresql://u:pw-env-1@db/x"
    );
    let (ok, out) = run("stack_teardown", json!({"namespace": ns.name}), &[]);
    assert!(ok && out.contains("Secret/todo-secrets"), "{out}");
}
