//! MCP prompts, resources, resource subscriptions and logging, seen from an rmcp client.
#![allow(deprecated)] // logging and resources/subscribe are legacy in rmcp, current in MCP 2025-11-25

use std::time::{Duration, Instant};

use aiops_mcp::mcp::AiopsServer;
use aiops_mcp::policy::Policy;
use aiops_mcp::tools::Registry;
use rmcp::model::{
    ClientCapabilities, ClientConfig, GetPromptRequestParams, Implementation, LoggingLevel,
    LoggingMessageNotificationParam, ReadResourceRequestParams, ResourceUpdatedNotificationParam,
    SetLevelRequestParams, SubscribeRequestParams, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RoleClient, RunningService};
use rmcp::{ClientHandler, ServiceExt};
use serde_json::json;
use tokio::sync::mpsc;

use crate::common::{wait_for, TestNs};
use crate::mcp::{call, server, text};

/// What the server pushed to the client.
#[derive(Debug)]
enum Pushed {
    Updated(String),
    Log(LoggingMessageNotificationParam),
}

/// A client that forwards resource updates and log messages to the test.
#[derive(Clone)]
struct Listener {
    tx: mpsc::UnboundedSender<Pushed>,
}

impl ClientHandler for Listener {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("aiops-it-extras", "0.0.0"),
        )
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self.tx.send(Pushed::Updated(params.uri));
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self.tx.send(Pushed::Log(params));
    }
}

type Client = RunningService<RoleClient, Listener>;

/// A connected client, the server session behind it (to look at its subscriptions) and what the
/// server pushes.
async fn connect(policy: Policy) -> (Client, AiopsServer, mpsc::UnboundedReceiver<Pushed>) {
    let (c, s) = tokio::io::duplex(1 << 20);
    let srv = server(policy);
    let session = srv.clone();
    tokio::spawn(async move {
        if let Ok(running) = srv.serve(s).await {
            let _ = running.waiting().await;
        }
    });
    let (tx, rx) = mpsc::unbounded_channel();
    let client = Listener { tx }.serve(c).await.expect("client connects");
    (client, session, rx)
}

async fn read(client: &Client, uri: &str) -> Result<String, String> {
    client
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
        .map(|r| {
            r.contents
                .into_iter()
                .map(|c| match c {
                    rmcp::model::ResourceContents::TextResourceContents { text, .. } => text,
                    other => panic!("not text: {other:?}"),
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .map_err(|e| e.to_string())
}

fn health(ns: &str) -> String {
    format!("k8s://-/namespaces/{ns}/health")
}

/// The next resource update for `uri` within `within`, skipping log messages.
async fn next_update(
    rx: &mut mpsc::UnboundedReceiver<Pushed>,
    uri: &str,
    within: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Pushed::Updated(u))) if u == uri => return Some(start.elapsed()),
            Ok(Some(_)) => continue,
            _ => return None,
        }
    }
}

#[tokio::test]
async fn prompts_are_listed_and_rendered_with_their_arguments() {
    let (client, _, _) = connect(Policy::default()).await;
    assert!(client.peer_info().unwrap().capabilities.prompts.is_some());
    let prompts = client.list_all_prompts().await.unwrap();
    let names: Vec<&str> = prompts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "troubleshoot-workload",
            "deploy-todo-stack",
            "incident-report"
        ]
    );
    let t = &prompts[0];
    let args = t.arguments.as_ref().unwrap();
    assert_eq!(
        args.iter()
            .map(|a| (a.name.as_str(), a.required))
            .collect::<Vec<_>>(),
        [("namespace", Some(true)), ("name", Some(false))]
    );
    assert!(t.title.is_some() && t.description.is_some());

    let got = client
        .get_prompt(
            GetPromptRequestParams::new("troubleshoot-workload").with_arguments(
                json!({"namespace": "shop", "name": "web"})
                    .as_object()
                    .cloned()
                    .unwrap(),
            ),
        )
        .await
        .unwrap();
    let body = got.messages[0].content.as_text().unwrap().text.clone();
    for needle in [
        "the workload `web` in the Kubernetes namespace `shop`",
        r#"`diagnose` with `{"namespace": "shop", "name": "web"}`"#,
        "rollout_history",
        "logs_analyze",
        "events_list",
        "rollout_undo",
        "dry_run",
        "rollout_status",
    ] {
        assert!(body.contains(needle), "{needle} not in:\n{body}");
    }
    let order: Vec<usize> = [
        "`diagnose`",
        "`rollout_history`",
        "`rollout_undo`",
        "`rollout_status`",
    ]
    .iter()
    .map(|n| body.find(n).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "order {order:?}");

    let got = client
        .get_prompt(
            GetPromptRequestParams::new("deploy-todo-stack").with_arguments(
                json!({"namespace": "todo-demo"})
                    .as_object()
                    .cloned()
                    .unwrap(),
            ),
        )
        .await
        .unwrap();
    let body = got.messages[0].content.as_text().unwrap().text.clone();
    assert!(body.contains("Helm release `todo` in the Kubernetes namespace `todo-demo`"));

    let e = client
        .get_prompt(GetPromptRequestParams::new("incident-report"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs the argument 'namespace'"), "{e}");
    let e = client
        .get_prompt(GetPromptRequestParams::new("fix-everything"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown prompt 'fix-everything'") && e.contains("incident-report"),
        "{e}"
    );
}

#[tokio::test]
async fn resource_templates_and_allowed_health_resources_are_listed() {
    let (client, _, _) = connect(Policy {
        namespaces: Some(vec!["todo-app".into(), "shop".into()]),
        ..Default::default()
    })
    .await;
    let caps = client.peer_info().unwrap().capabilities.clone();
    let res = caps.resources.expect("resources capability");
    assert_eq!(res.subscribe, Some(true));
    assert!(caps.logging.is_some());
    let templates: Vec<String> = client
        .list_all_resource_templates()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.uri_template.clone())
        .collect();
    assert_eq!(
        templates,
        [
            "k8s://{context}/namespaces/{namespace}/health",
            "k8s://{context}/namespaces/{namespace}/stack/{release}"
        ]
    );
    let listed: Vec<String> = client
        .list_all_resources()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.uri.clone())
        .collect();
    assert_eq!(listed, [health("todo-app"), health("shop")]);
}

#[tokio::test]
async fn health_resource_reads_diagnose_and_the_allow_list_applies() {
    let ns = TestNs::new("health").await;
    let (client, _, _) = connect(Policy {
        namespaces: Some(vec![ns.name.clone()]),
        ..Default::default()
    })
    .await;
    let t = read(&client, &health(&ns.name)).await.unwrap();
    assert!(t.contains("No problems found"), "{t}");
    // The default context by name is the same resource.
    let t = read(
        &client,
        &format!("k8s://sandbox/namespaces/{}/health", ns.name),
    )
    .await
    .unwrap();
    assert!(t.contains("No problems found"), "{t}");
    let t = read(
        &client,
        &format!("k8s://-/namespaces/{}/stack/todo", ns.name),
    )
    .await
    .unwrap();
    assert!(t.contains("not deployed"), "{t}");

    let e = read(&client, &health("kube-system")).await.unwrap_err();
    assert!(
        e.contains("--namespaces") && e.contains("kube-system"),
        "{e}"
    );
    let e = client
        .subscribe(SubscribeRequestParams::new(health("kube-system")))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("--namespaces"), "{e}");
    let e = read(&client, "k8s://-/pods").await.unwrap_err();
    assert!(
        e.contains("k8s://{context}/namespaces/{namespace}/health"),
        "{e}"
    );
}

#[tokio::test]
async fn subscribed_health_is_updated_when_a_workload_starts_crash_looping() {
    let ns = TestNs::new("sub").await;
    let (client, session, mut rx) = connect(Policy::default()).await;
    let uri = health(&ns.name);
    assert!(read(&client, &uri)
        .await
        .unwrap()
        .contains("No problems found"));
    client
        .subscribe(SubscribeRequestParams::new(&uri))
        .await
        .unwrap();
    assert_eq!(session.subscription_count(), 1);
    // Nothing changed: no update (the first render after the watch starts matches).
    assert_eq!(
        next_update(&mut rx, &uri, Duration::from_secs(4)).await,
        None
    );

    ns.apply_yaml("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: crashy}\nspec:\n  selector: {matchLabels: {app: crashy}}\n  template:\n    metadata: {labels: {app: crashy}}\n    spec:\n      containers: [{name: c, image: 'crasher:1.0'}]\n").await;
    // Updates come as the pod is created, starts and crashes; the client re-reads each time
    // until the crash loop shows.
    let start = Instant::now();
    let text = loop {
        let left = Duration::from_secs(60).saturating_sub(start.elapsed());
        let after = next_update(&mut rx, &uri, left).await;
        assert!(
            after.is_some(),
            "no update within 60 s showing the crash loop; last read:\n{}",
            read(&client, &uri).await.unwrap_or_default()
        );
        let t = read(&client, &uri).await.unwrap();
        if t.contains("CrashLoopBackOff") {
            break t;
        }
    };
    eprintln!("crash loop notified after {:?}", start.elapsed());
    assert!(text.contains("crashy"), "{text}");

    client
        .unsubscribe(UnsubscribeRequestParams::new(&uri))
        .await
        .unwrap();
    assert_eq!(session.subscription_count(), 0);
    // A notification already on its way when the unsubscribe was sent may still arrive.
    tokio::time::sleep(Duration::from_secs(1)).await;
    while rx.try_recv().is_ok() {}
    // The crash loop goes on (restarts, events) and the workload changes: no more updates.
    ns.apply_yaml("apiVersion: v1\nkind: Pod\nmetadata: {name: extra}\nspec:\n  containers: [{name: c, image: 'crasher:1.0'}]\n").await;
    assert_eq!(
        next_update(&mut rx, &uri, Duration::from_secs(8)).await,
        None
    );

    // A client that goes away ends its watches.
    client
        .subscribe(SubscribeRequestParams::new(&uri))
        .await
        .unwrap();
    assert_eq!(session.subscription_count(), 1);
    client.cancel().await.unwrap();
    wait_for(
        "watch stopped after disconnect",
        Duration::from_secs(15),
        || async { (session.subscription_count() == 0).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn logging_reports_cluster_changes_at_the_level_the_client_set() {
    let ns = TestNs::new("mcplog").await;
    let (client, _, mut rx) = connect(Policy::default()).await;
    let cm = |v: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: logged, namespace: {}}}\ndata: {{v: '{v}'}}\n",
            ns.name
        )
    };
    let logs = |rx: &mut mpsc::UnboundedReceiver<Pushed>| {
        let mut out = vec![];
        while let Ok(p) = rx.try_recv() {
            if let Pushed::Log(l) = p {
                out.push(l);
            }
        }
        out
    };
    // No level set: silent.
    let r = call(&client, "resources_apply", json!({"manifest": cm("1")})).await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(logs(&mut rx).is_empty());

    client
        .set_level(SetLevelRequestParams::new(LoggingLevel::Info))
        .await
        .unwrap();
    // A preview and a read change nothing: silent.
    call(
        &client,
        "resources_apply",
        json!({"manifest": cm("2"), "dry_run": true}),
    )
    .await;
    call(&client, "pods_list", json!({"namespace": ns.name})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(logs(&mut rx).is_empty());

    let r = call(&client, "resources_apply", json!({"manifest": cm("2")})).await;
    assert!(text(&r).contains("configured"), "{}", text(&r));
    let msg = wait_for("notifications/message", Duration::from_secs(5), || {
        let got = logs(&mut rx);
        async move { got.into_iter().next() }
    })
    .await;
    assert_eq!(msg.level, LoggingLevel::Notice);
    assert_eq!(msg.logger.as_deref(), Some("aiops-mcp.changes"));
    assert_eq!(msg.data["tool"], "resources_apply");
    assert!(
        msg.data["summary"].as_str().unwrap().contains("logged"),
        "{}",
        msg.data
    );
    assert!(!msg.data.to_string().contains("manifest"), "{}", msg.data);

    // Above the level: silent again.
    client
        .set_level(SetLevelRequestParams::new(LoggingLevel::Error))
        .await
        .unwrap();
    call(&client, "resources_apply", json!({"manifest": cm("3")})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(logs(&mut rx).is_empty());
}

#[tokio::test]
async fn subscribed_stack_status_is_updated_when_a_component_scales() {
    let ns = TestNs::new("substack").await;
    crate::stack::make_secret(&ns, &crate::stack::ALL_KEYS).await;
    let r = Registry::new()
        .call(
            &crate::rollout::ctx(),
            "stack_deploy",
            json!({"namespace": ns.name, "values": crate::stack::values(json!({}))}),
        )
        .await
        .unwrap();
    assert_eq!(r.structured["outcome"], "ready", "{}", r.text);
    let (client, _session, mut rx) = connect(Policy::default()).await;
    let uri = format!("k8s://-/namespaces/{}/stack/todo", ns.name);
    let before = read(&client, &uri).await.unwrap();
    assert!(before.contains("frontend healthy: 1/1"), "{before}");
    client
        .subscribe(SubscribeRequestParams::new(&uri))
        .await
        .unwrap();
    assert_eq!(
        next_update(&mut rx, &uri, Duration::from_secs(4)).await,
        None,
        "updated without a change"
    );
    Registry::new()
        .call(
            &crate::rollout::ctx(),
            "workload_scale",
            json!({"namespace": ns.name, "name": "todo-frontend", "replicas": 2}),
        )
        .await
        .unwrap();
    let start = Instant::now();
    let text = loop {
        let left = Duration::from_secs(60).saturating_sub(start.elapsed());
        assert!(
            next_update(&mut rx, &uri, left).await.is_some(),
            "no update within 60 s after the scale; last read:\n{}",
            read(&client, &uri).await.unwrap_or_default()
        );
        let t = read(&client, &uri).await.unwrap();
        if t.contains("frontend healthy: 2/2") {
            break t;
        }
    };
    assert!(text.contains("backend healthy"), "{text}");
}
