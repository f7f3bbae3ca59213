//! Scaling and rollouts on the sandbox: workload_scale (absolute, relative, bounds, HPA,
//! read-only, dry run), rollout_status/history/undo on a broken backend release, the
//! concurrent-change guard, restart/pause/resume, and stack_rollback seen by real Helm.

use std::sync::Arc;
use std::time::Duration;

use aiops_mcp::cluster::Clusters;
use aiops_mcp::policy::Policy;
use aiops_mcp::tools::{Ctx, Registry, ToolOutput};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams};
use serde_json::{json, Value};

use crate::common::{wait_for, TestNs};

fn ctx_with(policy: Policy) -> Ctx {
    Ctx {
        clusters: Clusters::new(None, None),
        policy: Arc::new(policy),
        progress: None,
    }
}

pub(crate) fn ctx() -> Ctx {
    ctx_with(crate::mcp::permissive())
}

async fn call(tool: &str, args: Value) -> ToolOutput {
    Registry::new()
        .call(&ctx(), tool, args.clone())
        .await
        .unwrap_or_else(|e| panic!("{tool} {args}: {e}"))
}

async fn call_err(ctx: &Ctx, tool: &str, args: Value) -> String {
    match Registry::new().call(ctx, tool, args.clone()).await {
        Ok(o) => panic!("{tool} {args} should fail, got: {}", o.text),
        Err(e) => e.to_string(),
    }
}

async fn web(ns: &TestNs, replicas: i32) {
    ns.apply_yaml(&format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: "nginx:1.25", ports: [{{containerPort: 80}}]}}]
"#
    ))
    .await;
}

async fn replicas(ns: &TestNs, name: &str) -> i32 {
    ns.api::<Deployment>()
        .get(name)
        .await
        .unwrap()
        .spec
        .replicas
        .unwrap_or(1)
}

#[tokio::test]
async fn scale_takes_absolute_and_relative_counts_and_waits_for_ready() {
    let ns = TestNs::new("scale").await;
    web(&ns, 2).await;
    let a = |r: Value| json!({"name": "web", "namespace": ns.name, "replicas": r});

    let out = call("workload_scale", {
        let mut v = a(json!("+2"));
        v["wait"] = json!(true);
        v
    })
    .await;
    assert_eq!(
        (
            out.structured["from"].as_i64(),
            out.structured["to"].as_i64()
        ),
        (Some(2), Some(4)),
        "{}",
        out.text
    );
    assert_eq!(
        out.structured["outcome"], "scaled, complete",
        "{}",
        out.text
    );
    assert_eq!(out.structured["status"]["available"], 4, "{}", out.text);
    assert!(out.text.contains("2 → 4"), "{}", out.text);

    let out = call("workload_scale", a(json!("-50%"))).await;
    assert_eq!(out.structured["to"], 2, "{}", out.text);
    let out = call("workload_scale", a(json!("x1.5"))).await;
    assert_eq!(out.structured["to"], 3, "{}", out.text);
    let out = call("workload_scale", a(json!(3))).await;
    assert_eq!(out.structured["outcome"], "unchanged", "{}", out.text);
    assert_eq!(replicas(&ns, "web").await, 3);

    // dry run: reported, not done.
    let mut dry = a(json!(7));
    dry["dry_run"] = json!(true);
    let out = call("workload_scale", dry).await;
    assert_eq!(out.structured["outcome"], "would scale", "{}", out.text);
    assert_eq!(replicas(&ns, "web").await, 3);

    // Bad input: explained, nothing changed.
    let e = call_err(&ctx(), "workload_scale", a(json!("lots"))).await;
    assert!(e.contains("not understood") && e.contains("+2"), "{e}");
    let e = call_err(&ctx(), "workload_scale", a(json!("-9"))).await;
    assert!(e.contains("from 3 gives -6, below 0"), "{e}");
    assert_eq!(replicas(&ns, "web").await, 3);
    // A relative decrease larger than 1 is applied to the live count.
    let out = call("workload_scale", a(json!("-2"))).await;
    assert_eq!(
        (
            out.structured["from"].as_i64(),
            out.structured["to"].as_i64()
        ),
        (Some(3), Some(1)),
        "{}",
        out.text
    );
    assert_eq!(replicas(&ns, "web").await, 1);
    let e = call_err(
        &ctx(),
        "workload_scale",
        json!({"name": "wbe", "namespace": ns.name, "replicas": 1}),
    )
    .await;
    assert!(e.contains("did you mean web"), "{e}");
    assert_eq!(replicas(&ns, "web").await, 1);
}

#[tokio::test]
async fn scale_respects_max_replicas_read_only_and_an_hpa() {
    let ns = TestNs::new("scalepol").await;
    web(&ns, 1).await;
    let args = json!({"name": "web", "namespace": ns.name, "replicas": 6});
    let bounded = ctx_with(Policy {
        max_replicas: Some(5),
        ..Default::default()
    });
    let e = call_err(&bounded, "workload_scale", args.clone()).await;
    assert!(e.contains("--max-replicas=5") && e.contains("has 1"), "{e}");
    let ro = ctx_with(Policy {
        read_only: true,
        ..Default::default()
    });
    let e = call_err(&ro, "workload_scale", args.clone()).await;
    assert!(e.contains("--read-only"), "{e}");
    assert_eq!(replicas(&ns, "web").await, 1);

    ns.apply_yaml(
        r#"
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata: {name: web-hpa}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 4
  targetCPUUtilizationPercentage: 80
"#,
    )
    .await;
    let e = call_err(&ctx(), "workload_scale", args).await;
    assert!(
        e.contains("HorizontalPodAutoscaler web-hpa") && e.contains("max 4"),
        "{e}"
    );
    assert_eq!(replicas(&ns, "web").await, 1);
}

#[tokio::test]
async fn pause_blocks_restart_until_resumed_and_restart_rolls_new_pods() {
    let ns = TestNs::new("restart").await;
    web(&ns, 1).await;
    let w = json!({"name": "web", "namespace": ns.name});
    let out = call("rollout_pause", w.clone()).await;
    assert_eq!(out.structured["outcome"], "paused", "{}", out.text);
    let out = call("rollout_pause", w.clone()).await;
    assert!(out.text.contains("already paused"), "{}", out.text);
    let st = call("rollout_status", w.clone()).await;
    assert_eq!(st.structured["verdict"], "paused", "{}", st.text);
    let e = call_err(&ctx(), "rollout_restart", w.clone()).await;
    assert!(e.contains("paused") && e.contains("rollout_resume"), "{e}");
    let e = call_err(&ctx(), "rollout_undo", w.clone()).await;
    assert!(e.contains("paused"), "{e}");
    let out = call("rollout_resume", w.clone()).await;
    assert_eq!(out.structured["outcome"], "resumed", "{}", out.text);

    let mut r = w.clone();
    r["wait"] = json!(true);
    let out = call("rollout_restart", r).await;
    assert!(
        out.structured["outcome"]
            .as_str()
            .unwrap()
            .ends_with("complete"),
        "{}",
        out.text
    );
    let h = call("rollout_history", w.clone()).await;
    assert_eq!(
        h.structured["revisions"].as_array().unwrap().len(),
        2,
        "{}",
        h.text
    );
    assert!(h.text.contains("restarted at"), "{}", h.text);
    // DaemonSets cannot be scaled: said plainly.
    let e = call_err(
        &ctx(),
        "rollout_pause",
        json!({"name": "web", "namespace": ns.name, "kind": "Service"}),
    )
    .await;
    assert!(e.contains("Deployment"), "{e}");
}

fn stack_values(tag: &str) -> Value {
    json!({"frontend": {"replicas": 1}, "mcp": {"replicas": 1}, "backend": {"replicas": 1, "tag": tag},
           "ingress": {"enabled": false},
           "probes": {"readinessInitialDelaySeconds": 0, "readinessPeriodSeconds": 1}})
}

async fn secret(ns: &TestNs) {
    let s: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({"metadata": {"name": "todo-secrets"}, "stringData": {
        "DATABASE_URL": "postgresql://todo:pw@db/todo", "BETTER_AUTH_SECRET": "x", "BETTER_AUTH_URL": "http://todo.local", "OPENAI_API_KEY": "sk-test"}})).unwrap();
    ns.api::<k8s_openapi::api::core::v1::Secret>()
        .create(&Default::default(), &s)
        .await
        .unwrap();
}

#[tokio::test]
async fn broken_backend_release_is_seen_stalled_diffed_and_undone() {
    let ns = TestNs::new("undo").await;
    secret(&ns).await;
    let out = call(
        "stack_deploy",
        json!({"namespace": ns.name, "values": stack_values("1.0.0")}),
    )
    .await;
    assert_eq!(out.structured["outcome"], "ready", "{}", out.text);
    let out = call(
        "stack_deploy",
        json!({"namespace": ns.name, "values": stack_values("1.0.1-bad-migration"), "wait": false}),
    )
    .await;
    assert_eq!(out.structured["revision"], 2, "{}", out.text);

    let b = json!({"name": "todo-backend", "namespace": ns.name});
    let mut w = b.clone();
    w["wait"] = json!(true);
    w["timeout_seconds"] = json!(90);
    let st = call("rollout_status", w).await;
    assert_eq!(st.structured["verdict"], "stalled", "{}", st.text);
    assert!(st.text.contains("migrate: Error exit 1"), "{}", st.text);
    assert_eq!(
        st.structured["available"], 1,
        "old pod keeps serving: {}",
        st.text
    );

    let h = call("rollout_history", b.clone()).await;
    let revs = h.structured["revisions"].as_array().unwrap();
    assert_eq!(revs.len(), 2, "{}", h.text);
    assert_eq!(revs[1]["current"], true);
    assert_eq!(revs[0]["healthy"], true, "{}", h.text);
    assert_eq!(revs[1]["healthy"], false, "{}", h.text);
    assert!(
        h.text
            .contains("image backend: todo-backend:1.0.0 → todo-backend:1.0.1-bad-migration"),
        "{}",
        h.text
    );

    // A missing revision: refused with the list.
    let mut bad = b.clone();
    bad["to_revision"] = json!(9);
    let e = call_err(&ctx(), "rollout_undo", bad).await;
    assert!(e.contains("no revision 9") && e.contains("1, 2"), "{e}");

    // A concurrent change between reading and writing: detected, nothing rolled back.
    let rv = h.structured["resource_version"]
        .as_str()
        .unwrap()
        .to_string();
    ns.api::<Deployment>()
        .patch(
            "todo-backend",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"team": "payments"}}})),
        )
        .await
        .unwrap();
    let mut pinned = b.clone();
    pinned["resource_version"] = json!(rv);
    let e = call_err(&ctx(), "rollout_undo", pinned).await;
    assert!(e.contains("conflict") && e.contains(&rv), "{e}");

    // dry run shows the diff and changes nothing.
    let mut dry = b.clone();
    dry["dry_run"] = json!(true);
    let out = call("rollout_undo", dry).await;
    assert_eq!(out.structured["outcome"], "would roll back", "{}", out.text);
    assert!(
        out.text
            .contains("1.0.1-bad-migration → todo-backend:1.0.0"),
        "{}",
        out.text
    );

    let mut undo = b.clone();
    undo["wait"] = json!(true);
    let out = call("rollout_undo", undo).await;
    assert_eq!(
        (
            out.structured["from_revision"].as_i64(),
            out.structured["to_revision"].as_i64()
        ),
        (Some(2), Some(1)),
        "{}",
        out.text
    );
    assert_eq!(
        out.structured["outcome"], "rolled back, complete",
        "{}",
        out.text
    );
    let d = ns.api::<Deployment>().get("todo-backend").await.unwrap();
    let image = d.spec.template.spec.unwrap().containers[0].image.clone();
    assert_eq!(image.as_deref(), Some("todo-backend:1.0.0"));
    let st = call("rollout_status", b).await;
    assert_eq!(st.structured["verdict"], "complete", "{}", st.text);
}

#[tokio::test]
async fn stack_rollback_restores_the_release_and_helm_agrees() {
    let ns = TestNs::new("stackrb").await;
    secret(&ns).await;
    call(
        "stack_deploy",
        json!({"namespace": ns.name, "values": stack_values("1.0.0")}),
    )
    .await;
    let mut broken = stack_values("1.0.3-health500");
    broken["ingress"]["enabled"] = json!(true);
    call(
        "stack_deploy",
        json!({"namespace": ns.name, "values": broken, "wait": false}),
    )
    .await;
    // Missing revision: refused, listing what exists.
    let e = call_err(
        &ctx(),
        "stack_rollback",
        json!({"namespace": ns.name, "to_revision": 7}),
    )
    .await;
    assert!(
        e.contains("no revision 7") && e.contains("1 (superseded), 2 (deployed)"),
        "{e}"
    );

    let out = call(
        "stack_rollback",
        json!({"namespace": ns.name, "timeout_seconds": 90}),
    )
    .await;
    let rb = &out.structured["rollback"];
    assert_eq!(rb["new_revision"], 3, "{}", out.text);
    assert_eq!(out.structured["verdict"], "healthy", "{}", out.text);
    assert!(out.text.contains("Ingress/todo deleted"), "{}", out.text);
    assert!(
        out.text.contains("backend.tag: 1.0.3-health500 → 1.0.0"),
        "{}",
        out.text
    );

    let (rows, h) = crate::helm::history_rows("todo", &ns.name).await;
    assert_eq!(rows.len(), 3, "{h}");
    assert_eq!(
        (rows[2].0, rows[2].1.as_str(), rows[2].2.as_str()),
        (3, "deployed", "Rollback to 1"),
        "{h}"
    );
    assert_eq!(rows[1].1, "superseded", "{h}");
    let hh = call(
        "helm_history",
        json!({"release": "todo", "namespace": ns.name}),
    )
    .await;
    assert!(hh.text.contains("Rollback to 1"), "{}", hh.text);
    let rels = call("helm_releases", json!({"namespace": ns.name})).await;
    assert!(
        rels.text.contains("todo rev 3 deployed chart todo-stack-"),
        "{}",
        rels.text
    );
    // The objects are revision 1's again.
    wait_for("ingress gone", Duration::from_secs(20), || async {
        ns.api::<k8s_openapi::api::networking::v1::Ingress>()
            .get_opt("todo")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn statefulset_history_and_undo_use_controller_revisions() {
    let ns = TestNs::new("stsundo").await;
    let sts = |image: &str| {
        format!(
            r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db}}
spec:
  serviceName: db
  replicas: 1
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec:
      containers: [{{name: db, image: "{image}"}}]
"#
        )
    };
    ns.apply_yaml(&sts("nginx:1.25")).await;
    let w = json!({"name": "db", "namespace": ns.name, "kind": "sts"});
    let mut wait = w.clone();
    wait["wait"] = json!(true);
    wait["timeout_seconds"] = json!(60);
    let st = call("rollout_status", wait.clone()).await;
    assert_eq!(st.structured["verdict"], "complete", "{}", st.text);
    ns.api::<k8s_openapi::api::apps::v1::StatefulSet>()
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "db", "image": "busybox:1.36"}]}}}})),
        )
        .await
        .unwrap();
    let h = wait_for("two revisions", Duration::from_secs(30), || async {
        let h = call("rollout_history", w.clone()).await;
        (h.structured["revisions"].as_array().map_or(0, Vec::len) == 2).then_some(h)
    })
    .await;
    assert!(
        h.text.contains("image db: nginx:1.25 → busybox:1.36"),
        "{}",
        h.text
    );
    let mut undo = w.clone();
    undo["to_revision"] = json!(1);
    let out = call("rollout_undo", undo).await;
    assert_eq!(out.structured["outcome"], "rolled back", "{}", out.text);
    let s = ns
        .api::<k8s_openapi::api::apps::v1::StatefulSet>()
        .get("db")
        .await
        .unwrap();
    assert_eq!(
        s.spec.template.spec.unwrap().containers[0].image.as_deref(),
        Some("nginx:1.25")
    );
    let st = call("rollout_status", wait).await;
    assert_eq!(st.structured["verdict"], "complete", "{}", st.text);
    // The revision it runs again, all replicas ready: marked healthy.
    let h = call("rollout_history", w.clone()).await;
    let current: Vec<&Value> = h.structured["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["current"] == true)
        .collect();
    assert_eq!(current.len(), 1, "{}", h.text);
    assert_eq!(current[0]["healthy"], true, "{}", h.text);
}

#[tokio::test]
async fn daemonset_history_status_and_undo_use_controller_revisions() {
    let ns = TestNs::new("dsundo").await;
    ns.apply_yaml(
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: "nginx:1.25"}]
"#,
    )
    .await;
    let w = json!({"name": "agent", "namespace": ns.name, "kind": "ds"});
    let mut wait = w.clone();
    wait["wait"] = json!(true);
    wait["timeout_seconds"] = json!(60);
    let st = call("rollout_status", wait.clone()).await;
    assert_eq!(st.structured["verdict"], "complete", "{}", st.text);
    assert!(
        st.structured["desired"].as_i64().unwrap() >= 1,
        "{}",
        st.text
    );
    ns.api::<k8s_openapi::api::apps::v1::DaemonSet>()
        .patch(
            "agent",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}}})),
        )
        .await
        .unwrap();
    let h = wait_for("two revisions", Duration::from_secs(30), || async {
        let h = call("rollout_history", w.clone()).await;
        (h.structured["revisions"].as_array().map_or(0, Vec::len) == 2).then_some(h)
    })
    .await;
    assert!(
        h.text.contains("image agent: nginx:1.25 → busybox:1.36"),
        "{}",
        h.text
    );
    assert_eq!(h.structured["current_revision"], 2, "{}", h.text);
    let out = call("rollout_undo", w.clone()).await;
    assert_eq!(out.structured["to_revision"], 1, "{}", out.text);
    let d = ns
        .api::<k8s_openapi::api::apps::v1::DaemonSet>()
        .get("agent")
        .await
        .unwrap();
    let c = &d.spec.template.spec.unwrap().containers[0];
    assert_eq!(c.image.as_deref(), Some("nginx:1.25"));
    assert!(
        c.command.is_none(),
        "the command added in revision 2 is gone"
    );
    let st = call("rollout_status", wait).await;
    assert_eq!(st.structured["verdict"], "complete", "{}", st.text);
    // DaemonSets have no replica count.
    let e = call_err(
        &ctx(),
        "workload_scale",
        json!({"name": "agent", "namespace": ns.name, "kind": "ds", "replicas": 3}),
    )
    .await;
    assert!(e.contains("DaemonSet") && e.contains("node"), "{e}");
}

#[tokio::test]
async fn scale_and_wait_reports_increasing_progress_to_the_client() {
    let ns = TestNs::new("scaleprogress").await;
    web(&ns, 1).await;
    wait_for("web available", Duration::from_secs(60), || async {
        let d = ns.api::<Deployment>().get("web").await.ok()?;
        (d.status?.available_replicas == Some(1)).then_some(())
    })
    .await;
    let args = json!({"name": "web", "namespace": ns.name, "replicas": "x4", "wait": true});
    let (r, seen) =
        crate::stack::call_with_progress(crate::mcp::permissive(), "workload_scale", args).await;
    let out = r.structured_content.clone().unwrap();
    assert_eq!(out["outcome"], "scaled, complete", "{out}");
    assert!(seen.iter().all(|(_, t, _)| *t == Some(4.0)), "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "progress did not increase with each notification: {seen:?}"
    );
    let (last, _, msg) = seen.last().unwrap();
    assert_eq!(*last, 4.0, "{seen:?}");
    assert!(msg.contains("Deployment web: 4/4 updated"), "{msg}");
}
