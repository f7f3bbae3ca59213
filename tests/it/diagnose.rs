//! Diagnosis on the sandbox: every catalogue row the sandbox can produce is detected on the
//! right workload; healthy controls give no warning; a bad release's suggested remediation,
//! executed, brings the workload back; crashloops_find and the CLI.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use aiops_mcp::cluster::Clusters;
use aiops_mcp::tools::{Ctx, Registry, ToolOutput};
use serde_json::{json, Value};

use crate::common::{wait_for, TestNs};

fn ctx() -> Ctx {
    Ctx {
        clusters: Clusters::new(None, None),
        policy: Arc::new(crate::mcp::permissive()),
        progress: None,
    }
}

async fn diagnose(ns: &str) -> ToolOutput {
    Registry::new()
        .call(
            &ctx(),
            "diagnose",
            json!({"namespace": ns, "max_findings": 50}),
        )
        .await
        .unwrap_or_else(|e| panic!("diagnose {ns}: {e}"))
}

/// (category, object name) of every finding.
fn found(out: &ToolOutput) -> BTreeSet<(String, String)> {
    out.structured["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["category"].as_str().unwrap().to_string(),
                f["object"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn warnings(out: &ToolOutput) -> Vec<String> {
    out.structured["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] != "info")
        .map(|f| {
            format!(
                "{} {} {}",
                f["severity"], f["category"], f["object"]["name"]
            )
        })
        .collect()
}

#[tokio::test]
async fn every_failure_the_sandbox_can_produce_is_found_on_its_workload() {
    let ns = TestNs::new("zoo").await;
    ns.apply_yaml(include_str!("fixtures/zoo.yaml")).await;
    let want: BTreeSet<(String, String)> = [
        ("CrashLoopBackOff", "panicky"),
        ("OOMKilled", "oom"),
        ("ImagePullFailure", "pull"),
        ("ConfigReferenceMissing", "cfgref"),
        ("StuckContainerCreating", "mount"),
        ("BadCommand", "badcmd"),
        ("InitContainerFailing", "initfail"),
        ("ReadinessProbeFailing", "unready"),
        ("LivenessProbeKilling", "liveness"),
        ("Unschedulable", "huge"),
        ("PVCNotBound", "stateful"),
        ("ScaledToZeroWhileSelected", "asleep"),
        ("ServiceWithoutEndpoints", "orphan"),
        ("TargetPortMismatch", "web"),
        ("IngressBroken", "shop"),
        ("RBACDenied", "scheduler"),
        ("HPANotScaling", "web"),
        ("JobFailed", "report"),
        ("NetworkPolicyIsolation", "fenced"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let needles = [
        "api-credentials",
        "app-settings",
        "nginx:9.99",
        "256Mi",
        "/ready",
        "fast-ssd",
        "8080",
        "panic: assignment to entry in nil map",
    ];
    // Severities (and so which findings are detailed) move with the back-off timing: the
    // needles are part of what is waited for.
    let out = wait_for(
        "every zoo failure diagnosed",
        Duration::from_secs(120),
        || async {
            let out = diagnose(&ns.name).await;
            (want.is_subset(&found(&out)) && needles.iter().all(|n| out.text.contains(n)))
                .then_some(out)
        },
    )
    .await;
    let f = found(&out);
    let missing: Vec<_> = want.difference(&f).collect();
    assert!(missing.is_empty(), "missing {missing:?} in\n{}", out.text);
    // No false alarms on the one healthy Deployment (web runs fine; only its Service and HPA are wrong).
    assert!(
        !f.iter()
            .any(|(c, n)| n == "web"
                && !["TargetPortMismatch", "HPANotScaling"].contains(&c.as_str())),
        "{}",
        out.text
    );
    // Causes name the specifics.
    for needle in needles {
        assert!(out.text.contains(needle), "{needle} not in\n{}", out.text);
    }
    // No secret value leaves the server.
    assert!(!out.text.contains("postgresql://db/todo"), "{}", out.text);

    let workloads_of = |cl: &ToolOutput| -> BTreeSet<String> {
        cl.structured["crashloops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["workload"].as_str().unwrap().to_string())
            .collect()
    };
    // Each crash-looping container counts once it is in back-off or has failed twice.
    let cl = wait_for(
        "crashloops_find lists panicky and initfail",
        Duration::from_secs(60),
        || async {
            let cl = Registry::new()
                .call(&ctx(), "crashloops_find", json!({"namespace": ns.name}))
                .await
                .unwrap();
            let w = workloads_of(&cl);
            (w.contains("Deployment/panicky")
                && w.contains("Deployment/initfail")
                && cl.text.contains("panic: assignment"))
            .then_some(cl)
        },
    )
    .await;
    let workloads = workloads_of(&cl);
    assert!(
        !workloads.contains("Deployment/web") && !workloads.contains("Deployment/unready"),
        "{}",
        cl.text
    );
}

#[tokio::test]
async fn a_quota_that_blocks_pod_creation_is_reported_on_the_deployment() {
    let ns = TestNs::new("quota").await;
    ns.apply_yaml(
        r#"
apiVersion: v1
kind: ResourceQuota
metadata: {name: tiny}
spec: {hard: {pods: "1"}}
"#,
    )
    .await;
    // Until the quota controller has computed usage, admission refuses pods with "status
    // unknown for quota" — and the ReplicaSet keeps the first such message.
    let quotas = ns.api::<k8s_openapi::api::core::v1::ResourceQuota>();
    wait_for("quota usage computed", Duration::from_secs(60), || async {
        let q = quotas.get("tiny").await.ok()?;
        q.status?.used?.contains_key("pods").then_some(())
    })
    .await;
    ns.apply_yaml(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 3
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers: [{name: api, image: "nginx:1.25"}]
"#,
    )
    .await;
    let out = wait_for("FailedCreate found", Duration::from_secs(60), || async {
        let out = diagnose(&ns.name).await;
        found(&out)
            .contains(&("FailedCreate".to_string(), "api".to_string()))
            .then_some(out)
    })
    .await;
    assert!(out.text.contains("exceeded quota"), "{}", out.text);
}

fn stack_values(tag: &str) -> Value {
    json!({"frontend": {"replicas": 1}, "mcp": {"replicas": 1}, "backend": {"replicas": 2, "tag": tag},
           "probes": {"readinessInitialDelaySeconds": 0, "readinessPeriodSeconds": 1}})
}

async fn stack_secret(ns: &TestNs) {
    let s: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({"metadata": {"name": "todo-secrets"}, "stringData": {
        "DATABASE_URL": "postgresql://todo:hunter2@db/todo", "BETTER_AUTH_SECRET": "x", "BETTER_AUTH_URL": "http://todo.local", "OPENAI_API_KEY": "sk-test"}})).unwrap();
    ns.api::<k8s_openapi::api::core::v1::Secret>()
        .create(&Default::default(), &s)
        .await
        .unwrap();
}

/// The sandbox has no ingress controller; a cluster running ingress-nginx has this class.
async fn nginx_ingress_class(ns: &TestNs) {
    let api: kube::Api<k8s_openapi::api::networking::v1::IngressClass> =
        kube::Api::all(ns.client.clone());
    let ic = serde_json::from_value(
        json!({"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}}),
    )
    .unwrap();
    let _ = api.create(&Default::default(), &ic).await;
}

#[tokio::test]
async fn a_bad_release_is_diagnosed_and_the_suggested_call_brings_it_back() {
    let ns = TestNs::new("e2e").await;
    stack_secret(&ns).await;
    nginx_ingress_class(&ns).await;
    let r = Registry::new();
    let out = r
        .call(
            &ctx(),
            "stack_deploy",
            json!({"namespace": ns.name, "values": stack_values("1.0.0")}),
        )
        .await
        .unwrap();
    assert_eq!(out.structured["outcome"], "ready", "{}", out.text);
    let healthy = diagnose(&ns.name).await;
    assert!(
        warnings(&healthy).is_empty(),
        "healthy stack: {}",
        healthy.text
    );
    assert!(
        healthy.text.contains("No problems found"),
        "{}",
        healthy.text
    );

    r.call(
        &ctx(),
        "stack_deploy",
        json!({"namespace": ns.name, "values": stack_values("1.0.4-db-down"), "wait": false}),
    )
    .await
    .unwrap();
    // The text's size moves with how many surge pods are crashing at the moment: a compact
    // report (< 3 KB) is part of what is waited for.
    let out = wait_for("crash loop diagnosed", Duration::from_secs(90), || async {
        let out = diagnose(&ns.name).await;
        (out.structured["findings"][0]["category"] == "CrashLoopBackOff"
            && out.text.contains("5432")
            && out.text.len() < 3000)
            .then_some(out)
    })
    .await;
    // For CI: --fail-on critical turns the crash loop into exit code 3.
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_aiops-mcp"))
        .args([
            "diagnose",
            "-n",
            &ns.name,
            "--fail-on",
            "critical",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        cli.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&cli.stdout)
    );
    let f = &out.structured["findings"][0];
    assert_eq!(f["object"]["name"], "todo-backend", "{}", out.text);
    assert_eq!(f["severity"], "critical", "{}", out.text);
    assert!(
        out.text.contains("5432") && out.text.contains("1.0.4-db-down"),
        "cause and change named: {}",
        out.text
    );
    assert!(
        out.text.len() < 3000,
        "{} bytes:\n{}",
        out.text.len(),
        out.text
    );
    assert!(!out.text.contains("hunter2"));
    let step = f["remediation"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["tool"] == "rollout_undo")
        .unwrap_or_else(|| panic!("no rollout_undo step: {}", out.text))
        .clone();
    assert_eq!(step["arguments"]["to_revision"], 1, "{}", out.text);

    // Run exactly the suggested call (plus wait), then diagnose again.
    let mut args = step["arguments"].clone();
    args["wait"] = json!(true);
    args["timeout_seconds"] = json!(90);
    let undo = r
        .call(&ctx(), step["tool"].as_str().unwrap(), args)
        .await
        .unwrap();
    assert_eq!(
        undo.structured["outcome"], "rolled back, complete",
        "{}",
        undo.text
    );
    let clean = wait_for("diagnosis clean", Duration::from_secs(60), || async {
        let out = diagnose(&ns.name).await;
        warnings(&out).is_empty().then_some(out)
    })
    .await;
    assert!(clean.text.contains("No problems found"), "{}", clean.text);
}

#[tokio::test]
async fn healthy_controls_raise_no_warning() {
    let ns = TestNs::new("controls").await;
    ns.apply_yaml(
        r#"
apiVersion: batch/v1
kind: Job
metadata: {name: nightly}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: job, image: "batch-job:1.0", command: ["python"]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: parked}
spec:
  replicas: 0
  selector: {matchLabels: {app: parked}}
  template:
    metadata: {labels: {app: parked}}
    spec:
      containers: [{name: web, image: "nginx:1.25"}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  progressDeadlineSeconds: 600
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "nginx:1.25", ports: [{containerPort: 80, name: http}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
"#,
    )
    .await;
    wait_for(
        "job complete and web ready",
        Duration::from_secs(60),
        || async {
            let out = diagnose(&ns.name).await;
            let j = ns
                .api::<k8s_openapi::api::batch::v1::Job>()
                .get("nightly")
                .await
                .ok()?;
            let d = ns
                .api::<k8s_openapi::api::apps::v1::Deployment>()
                .get("web")
                .await
                .ok()?;
            (j.status?.succeeded == Some(1) && d.status?.available_replicas == Some(2))
                .then_some(out)
        },
    )
    .await;
    let out = diagnose(&ns.name).await;
    assert!(warnings(&out).is_empty(), "{}", out.text);

    // A rollout in progress within its deadline: a new image whose pods start slowly.
    use kube::api::{Patch, PatchParams};
    ns.api::<k8s_openapi::api::apps::v1::Deployment>()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80, "name": "http"}],
                "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "initialDelaySeconds": 20}}]}}}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let out = diagnose(&ns.name).await;
    assert!(
        warnings(&out).is_empty(),
        "rollout in progress: {}",
        out.text
    );

    // The CLI prints the same report.
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_aiops-mcp"))
        .args(["diagnose", "-n", &ns.name, "--fail-on", "warning"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&cli.stdout);
    assert!(
        cli.status.success(),
        "healthy, so --fail-on passes: {stdout}"
    );
    assert!(
        stdout.starts_with(&format!("Diagnosis of namespace {}", ns.name)),
        "{stdout}"
    );
    // Scoped to one workload; a missing one is named.
    let e = Registry::new()
        .call(
            &ctx(),
            "diagnose",
            json!({"namespace": ns.name, "name": "wbe"}),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("'wbe' not found"), "{e}");
}

/// A Deployment `api` (nginx, port 80 named http) behind a Service `api` whose targetPort is
/// 8080, and a Service `nobody` that selects no pod.
const WRONG_PORT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  replicas: 1
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers: [{name: web, image: "nginx:1.25", ports: [{containerPort: 80, name: http}]}]
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: nobody}
spec:
  selector: {app: nobody}
  ports: [{port: 80}]
"#;

#[tokio::test]
async fn a_workload_scope_keeps_its_service_and_the_cluster_scope_keeps_to_the_allow_list() {
    let inside = TestNs::new("dgscope").await;
    let outside = TestNs::new("dgscope-out").await;
    inside.apply_yaml(WRONG_PORT).await;
    outside.apply_yaml(WRONG_PORT).await;
    // Workload scope: "why is api down?" is answered by its Service's wrong targetPort.
    let out = wait_for(
        "api's Service diagnosed",
        Duration::from_secs(60),
        || async {
            let out = Registry::new()
                .call(
                    &ctx(),
                    "diagnose",
                    json!({"namespace": inside.name, "name": "api"}),
                )
                .await
                .ok()?;
            found(&out)
                .contains(&("TargetPortMismatch".to_string(), "api".to_string()))
                .then_some(out)
        },
    )
    .await;
    assert!(
        !found(&out).iter().any(|(_, name)| name == "nobody"),
        "another Service's finding in the workload scope: {}",
        out.text
    );

    // Cluster scope under --namespaces: nothing from a namespace outside the list.
    let only_inside = Ctx {
        clusters: Clusters::new(None, None),
        policy: Arc::new(aiops_mcp::policy::Policy {
            namespaces: Some(vec![inside.name.clone()]),
            ..crate::mcp::permissive()
        }),
        progress: None,
    };
    let out = Registry::new()
        .call(&only_inside, "diagnose", json!({"max_findings": 200}))
        .await
        .unwrap();
    let namespaces: BTreeSet<&str> = out.structured["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["object"]["namespace"].as_str())
        .filter(|n| !n.is_empty())
        .collect();
    assert!(
        namespaces.iter().all(|n| *n == inside.name),
        "findings outside the allow-list: {namespaces:?}\n{}",
        out.text
    );
    assert!(namespaces.contains(inside.name.as_str()), "{}", out.text);
    assert!(!out.text.contains(&outside.name), "{}", out.text);
}
