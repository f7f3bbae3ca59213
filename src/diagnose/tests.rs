//! One test per catalogue row, one per healthy control, and the render budget.

use serde_json::json;

use super::fixtures::*;
use super::*;

fn find(r: &Report, row: u8) -> &Finding {
    r.findings
        .iter()
        .find(|f| f.row == row)
        .unwrap_or_else(|| panic!("no finding of row {row}:\n{}", r.render()))
}

fn serious(r: &Report) -> Vec<&Finding> {
    r.findings
        .iter()
        .filter(|f| f.severity <= Severity::Warning)
        .collect()
}

fn has_tool(f: &Finding, tool: &str) -> Option<Value> {
    f.remediation.iter().find_map(|s| match s {
        Step::Tool {
            tool: t, arguments, ..
        } if t == tool => Some(arguments.clone()),
        _ => None,
    })
}

fn text(f: &Finding) -> String {
    serde_json::to_string(f).unwrap()
}

/// Deployment `name` with ReplicaSet `name-abc` and `n` pods built by `mk`.
fn workload(s: &mut Snapshot, name: &str, n: usize, mk: impl Fn(PodB) -> PodB) {
    let rs = format!("{name}-abc");
    s.deployments.push(deployment(name, n as i32).build());
    s.replica_sets.push(replica_set(&rs, name, 1, n as i32));
    for i in 0..n {
        let p = pod(&format!("{rs}-{i}"))
            .owned_by_rs(&rs)
            .labels(&[("app", name)]);
        s.pods.push(mk(p).build());
    }
}

// ------------------------------------------------------------------------------ row 1

#[test]
fn crash_loop_after_new_revision_suggests_undo_to_last_healthy_revision() {
    let mut s = snap();
    workload(&mut s, "backend", 3, |p| {
        p.container("app").crash_looping(1).restarts(7)
    });
    s.deployments[0] = deployment("backend", 3)
        .ready(0)
        .condition("Available", "False", "MinimumReplicasUnavailable")
        // revision 4 never became available
        .condition("Progressing", "True", "ReplicaSetUpdated")
        .build();
    s.histories.push(history(
        "Deployment",
        "backend",
        vec![
            rev(2, Some(true), false, "backend:1.0.0", &[]),
            rev(
                3,
                None,
                false,
                "backend:1.0.1",
                &["image app: backend:1.0.0 → backend:1.0.1"],
            ),
            rev(
                4,
                Some(false),
                true,
                "backend:1.0.2",
                &["image app: backend:1.0.1 → backend:1.0.2"],
            ),
        ],
    ));
    s.previous_logs.push(log(
        "backend-abc-0",
        "app",
        &[
            "INFO: starting",
            "Traceback (most recent call last):",
            "  File \"/app/main.py\", line 3, in <module>",
            "KeyError: 'DATABASE_URL'",
        ],
    ));
    s.events.push(backoff("backend-abc-0", 12));
    let r = diagnose(&s);
    let f = find(&r, 1);
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.object, ObjectRef::new("Deployment", NS, "backend"));
    assert_eq!(f.pod_count, 3, "one finding for the three pods");
    assert_eq!(r.findings.iter().filter(|f| f.row == 1).count(), 1);
    let undo = has_tool(f, "rollout_undo").expect("undo step");
    assert_eq!(undo["to_revision"], 2);
    assert_eq!(undo["kind"], "Deployment");
    let why = text(f);
    assert!(why.contains("backend:1.0.2"), "names what changed: {why}");
    assert!(f.cause.contains("DATABASE_URL"), "{}", f.cause);
    assert!(
        f.evidence
            .iter()
            .any(|e| e.starts_with("event BackOff ×12")),
        "{:?}",
        f.evidence
    );
    assert!(f.evidence.iter().any(|e| e.contains("KeyError")));
    // the stalled rollout is folded into the crash finding
    assert!(r.findings.iter().all(|f| f.row != 13), "{}", r.render());
}

#[test]
fn a_revision_that_ran_for_hours_before_crashing_is_not_rolled_back() {
    // Revision 4 rolled out 20 h ago and completed; the pods began failing 10 min ago (a
    // database went away): going back a revision would not help.
    let mut s = snap();
    workload(&mut s, "backend", 2, |p| {
        p.container("app").crash_looping(3).restarts(6)
    });
    s.deployments[0] = deployment("backend", 2)
        .ready(0)
        .condition("Available", "False", "MinimumReplicasUnavailable")
        .build();
    s.histories.push(history(
        "Deployment",
        "backend",
        vec![
            rev(3, None, false, "backend:1.0.0", &[]),
            rev(
                4,
                Some(false),
                true,
                "backend:1.0.1",
                &["image app: backend:1.0.0 → backend:1.0.1"],
            ),
        ],
    ));
    s.events.push(backoff("backend-abc-0", 9));
    let r = diagnose(&s);
    let f = find(&r, 1);
    assert_eq!(f.severity, Severity::Critical);
    assert!(has_tool(f, "rollout_undo").is_none(), "{}", r.render());
    assert!(
        f.evidence
            .iter()
            .any(|e| e.contains("revision 4 completed its rollout and ran 19h")),
        "{:?}",
        f.evidence
    );

    // The same history with the failures starting right after the rollout blames revision 4.
    let mut s2 = s.clone();
    s2.histories[0].revisions[1].created = Some(ago(700));
    let r2 = diagnose(&s2);
    assert!(
        has_tool(find(&r2, 1), "rollout_undo").is_some(),
        "{}",
        r2.render()
    );
}

#[test]
fn crash_loop_without_new_revision_names_the_config_from_the_logs() {
    let mut s = snap();
    workload(&mut s, "api", 1, |p| p.crash_looping(1));
    s.previous_logs.push(log(
        "api-abc-0",
        "app",
        &["Error: connect ECONNREFUSED 10.96.0.12:5432", "exiting"],
    ));
    let r = diagnose(&s);
    let f = find(&r, 1);
    assert!(has_tool(f, "rollout_undo").is_none());
    assert!(f.cause.contains("10.96.0.12:5432"), "{}", f.cause);
    let args = has_tool(f, "logs_analyze").unwrap();
    assert_eq!(args["workload"], "Deployment/api");
    assert_eq!(args["previous"], true);
}

// ------------------------------------------------------------------------------ row 2

#[test]
fn past_oom_on_running_pod_is_reported() {
    let mut s = snap();
    workload(&mut s, "cache", 1, |p| {
        p.oom_killed(900).restarts(1).memory_limit("128Mi")
    });
    let r = diagnose(&s);
    let f = find(&r, 2);
    assert_eq!(f.severity, Severity::Warning);
    let t = text(f);
    assert!(t.contains("from 128Mi to 256Mi"), "{t}");
}

#[test]
fn oom_after_a_revision_lowered_the_limit_suggests_undo() {
    let mut s = snap();
    workload(&mut s, "cache", 1, |p| {
        p.crash_looping(137).memory_limit("64Mi")
    });
    s.histories.push(history(
        "Deployment",
        "cache",
        vec![
            rev(1, Some(true), false, "cache:1", &[]),
            rev(
                2,
                Some(false),
                true,
                "cache:1",
                &["resources app: limits.memory 256Mi → 64Mi"],
            ),
        ],
    ));
    let r = diagnose(&s);
    let f = find(&r, 2);
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(has_tool(f, "rollout_undo").unwrap()["to_revision"], 1);
}

// ------------------------------------------------------------------------------ row 3

#[test]
fn image_pull_failure_names_the_last_working_image() {
    let mut s = snap();
    workload(&mut s, "web", 2, |p| {
        p.image("web:9.9").waiting(
            "ImagePullBackOff",
            "Back-off pulling image \"web:9.9\": not found",
        )
    });
    s.histories.push(history(
        "Deployment",
        "web",
        vec![
            rev(1, Some(true), false, "web:1.2", &[]),
            rev(
                2,
                Some(false),
                true,
                "web:9.9",
                &["image app: web:1.2 → web:9.9"],
            ),
        ],
    ));
    let r = diagnose(&s);
    let f = find(&r, 3);
    assert!(text(f).contains("web:1.2"), "{}", text(f));
    assert!(has_tool(f, "rollout_undo").is_some());
    assert_eq!(f.pod_count, 2);
    assert!(
        r.findings.iter().all(|f| f.row != 5),
        "not also stuck: {}",
        r.render()
    );
}

// ------------------------------------------------------------------------------ row 4

#[test]
fn missing_secret_key_says_the_secret_exists_without_the_key() {
    let mut s = snap();
    workload(&mut s, "api", 1, |p| {
        p.env_secret_key("DB_PASSWORD", "db-creds", "password")
            .waiting(
                "CreateContainerConfigError",
                "couldn't find key password in Secret shop/db-creds",
            )
    });
    s.secrets.push(keys("db-creds", &["username", "pass"]));
    let r = diagnose(&s);
    let f = find(&r, 4);
    assert!(
        f.cause.contains("exists but has no key password"),
        "{}",
        f.cause
    );
    assert!(f.cause.contains("username, pass"));
    assert!(text(f).contains("DB_PASSWORD"));
}

#[test]
fn missing_configmap_is_named() {
    let mut s = snap();
    workload(&mut s, "api", 1, |p| {
        p.waiting(
            "CreateContainerConfigError",
            "configmap \"api-config\" not found",
        )
    });
    let r = diagnose(&s);
    assert!(find(&r, 4)
        .cause
        .contains("ConfigMap api-config does not exist"));
}

// ------------------------------------------------------------------------------ row 5

#[test]
fn stuck_container_creating_names_the_missing_configmap_volume() {
    let mut s = snap();
    workload(&mut s, "web", 1, |p| {
        p.creating(900)
            .volume(json!({"name": "cfg", "configMap": {"name": "web-config"}}))
    });
    s.events.push(
        event(
            "Pod",
            "web-abc-0",
            "FailedMount",
            "MountVolume.SetUp failed for volume \"cfg\" : configmap \"web-config\" not found",
        )
        .count(9)
        .build(),
    );
    let r = diagnose(&s);
    let f = find(&r, 5);
    assert!(f.summary.contains("ConfigMap web-config"), "{}", f.summary);
    assert!(f.evidence.iter().any(|e| e.contains("FailedMount ×9")));
}

// ------------------------------------------------------------------------------ row 6

#[test]
fn bad_command_reports_executable_not_found() {
    let mut s = snap();
    workload(&mut s, "worker", 1, |p| {
        p.command(&["/bin/wrker"]).waiting(
            "RunContainerError",
            "exec: \"/bin/wrker\": executable file not found in $PATH",
        )
    });
    let r = diagnose(&s);
    let f = find(&r, 6);
    assert!(f.cause.contains("/bin/wrker"), "{}", f.cause);
}

// ------------------------------------------------------------------------------ row 7

#[test]
fn failing_init_container_reports_the_migration_error_from_its_logs() {
    let mut s = snap();
    workload(&mut s, "api", 1, |p| p.init_crash_looping("migrate", 1));
    s.previous_logs.push(log(
        "api-abc-0",
        "migrate",
        &[
            "INFO  [alembic.runtime.migration] Running upgrade 1a -> 2b",
            "sqlalchemy.exc.OperationalError: could not translate host name \"db\" to address",
            "ERROR alembic migration failed",
        ],
    ));
    let r = diagnose(&s);
    let f = find(&r, 7);
    assert_eq!(f.severity, Severity::Critical);
    assert!(
        f.evidence.iter().any(|e| e.starts_with("log|")),
        "{:?}",
        f.evidence
    );
    assert!(text(f).contains("DATABASE_URL"));
    assert!(
        r.findings.iter().all(|f| f.row != 1),
        "the app container only waits"
    );
}

// ------------------------------------------------------------------------------ row 8

#[test]
fn readiness_probe_404_names_probe_path_and_container_ports_even_behind_a_newer_normal_event() {
    let mut s = snap();
    workload(&mut s, "web", 2, |p| {
        p.readiness_http("/healthz", 8000)
            .port(8000, "http")
            .unready(900)
    });
    s.events.push(
        event(
            "Pod",
            "web-abc-0",
            "Unhealthy",
            "Readiness probe failed: HTTP probe failed with statuscode: 404",
        )
        .count(80)
        .last(20)
        .build(),
    );
    s.events.push(
        event(
            "Pod",
            "web-abc-0",
            "Pulled",
            "Container image already present",
        )
        .normal()
        .last(5)
        .build(),
    );
    let r = diagnose(&s);
    let f = find(&r, 8);
    assert_eq!(
        f.severity,
        Severity::Critical,
        "no pod of the workload is ready"
    );
    assert!(
        f.cause.contains("/healthz") && f.cause.contains("404"),
        "{}",
        f.cause
    );
    assert!(
        f.evidence.iter().any(|e| e.contains("8000/http")),
        "{:?}",
        f.evidence
    );
}

// ------------------------------------------------------------------------------ row 9

#[test]
fn liveness_probe_killing_the_container_suggests_raising_its_delay() {
    let mut s = snap();
    workload(&mut s, "slow", 1, |p| {
        p.liveness_http("/live", 8080)
            .port(8080, "")
            .restarts(4)
            .last_exit("Error", 137, 120)
    });
    s.events.push(
        event(
            "Pod",
            "slow-abc-0",
            "Unhealthy",
            "Liveness probe failed: Get \"http://10.0.0.5:8080/live\": context deadline exceeded",
        )
        .count(12)
        .build(),
    );
    s.events.push(
        event(
            "Pod",
            "slow-abc-0",
            "Killing",
            "Container app failed liveness probe, will be restarted",
        )
        .normal()
        .count(4)
        .build(),
    );
    let r = diagnose(&s);
    let f = find(&r, 9);
    assert!(text(f).contains("initialDelaySeconds 0→30"), "{}", text(f));
}

// ------------------------------------------------------------------------------ row 10

#[test]
fn unschedulable_pod_reports_insufficient_cpu_with_its_requests() {
    let mut s = snap();
    workload(&mut s, "big", 1, |p| {
        p.cpu_request("64")
            .unschedulable("0/3 nodes are available: 3 Insufficient cpu.")
    });
    let r = diagnose(&s);
    let f = find(&r, 10);
    assert!(f.cause.contains("cpu"), "{}", f.cause);
    assert!(f.evidence.iter().any(|e| e.contains("cpu 64")));
}

// ------------------------------------------------------------------------------ row 11

#[test]
fn pending_pvc_with_a_missing_storage_class_is_reported() {
    let mut s = snap();
    s.pvcs.push(from_json(json!({
        "metadata": {"name": "data", "namespace": NS, "creationTimestamp": ago(600).to_string()},
        "spec": {"storageClassName": "fast-ssd"},
        "status": {"phase": "Pending"}
    })));
    s.storage_classes.push(from_json(
        json!({"metadata": {"name": "standard"}, "provisioner": "x"}),
    ));
    let r = diagnose(&s);
    let f = find(&r, 11);
    assert!(f.cause.contains("StorageClass fast-ssd does not exist"));
    assert!(text(f).contains("standard"));
}

#[test]
fn pvc_waiting_for_its_first_consumer_is_not_reported() {
    let mut s = snap();
    s.pvcs.push(from_json(json!({
        "metadata": {"name": "data", "namespace": NS, "creationTimestamp": ago(600).to_string()},
        "spec": {"storageClassName": "local"},
        "status": {"phase": "Pending"}
    })));
    s.storage_classes.push(from_json(json!({"metadata": {"name": "local"}, "provisioner": "x", "volumeBindingMode": "WaitForFirstConsumer"})));
    assert!(diagnose(&s).findings.is_empty());
}

// ------------------------------------------------------------------------------ row 12

#[test]
fn evicted_pods_are_grouped_per_workload_with_node_pressure() {
    let mut s = snap();
    workload(&mut s, "batch", 3, |p| {
        p.evicted("The node was low on resource: memory.")
    });
    s.nodes.push(from_json(
        json!({"metadata": {"name": "node-1"}, "status": {"conditions": [
        {"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "True"}]}}),
    ));
    let r = diagnose(&s);
    let f = find(&r, 12);
    assert_eq!(f.pod_count, 3);
    assert!(f.cause.contains("MemoryPressure"), "{}", f.cause);
}

// ------------------------------------------------------------------------------ row 13

#[test]
fn rollout_past_its_deadline_is_critical_and_suggests_undo() {
    let mut s = snap();
    s.deployments.push(
        deployment("web", 3)
            .ready(1)
            .condition("Progressing", "False", "ProgressDeadlineExceeded")
            .build(),
    );
    s.histories.push(history(
        "Deployment",
        "web",
        vec![
            rev(5, Some(true), false, "web:1", &[]),
            rev(6, Some(false), true, "web:2", &["image app: web:1 → web:2"]),
        ],
    ));
    let r = diagnose(&s);
    let f = find(&r, 13);
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(has_tool(f, "rollout_undo").unwrap()["to_revision"], 5);
    assert!(f
        .evidence
        .iter()
        .any(|e| e.contains("ProgressDeadlineExceeded")));
}

// ------------------------------------------------------------------------------ row 14

#[test]
fn replicaset_over_quota_names_the_quota_and_its_usage() {
    let mut s = snap();
    s.deployments.push(deployment("api", 2).ready(0).build());
    let mut rs = replica_set("api-abc", "api", 1, 2);
    rs.status = Some(from_json(
        json!({"replicas": 0, "conditions": [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
        "message": "pods \"api-abc-x\" is forbidden: exceeded quota: compute, requested: cpu=2, used: cpu=3, limited: cpu=4"}]}),
    ));
    s.replica_sets.push(rs);
    s.resource_quotas.push(from_json(
        json!({"metadata": {"name": "compute", "namespace": NS},
        "status": {"hard": {"cpu": "4"}, "used": {"cpu": "3"}}}),
    ));
    let r = diagnose(&s);
    let f = find(&r, 14);
    assert_eq!(f.object, ObjectRef::new("Deployment", NS, "api"));
    assert!(f.cause.contains("ResourceQuota compute"));
    assert!(
        f.evidence.iter().any(|e| e.contains("cpu 3/4")),
        "{:?}",
        f.evidence
    );
}

#[test]
fn failed_create_for_a_missing_service_account_says_to_create_it() {
    let mut s = snap();
    s.stateful_sets.push(from_json(json!({"metadata": {"name": "db", "namespace": NS},
        "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}}, "template": {"metadata": {"labels": {"app": "db"}}}},
        "status": {"replicas": 0}})));
    s.events.push(event("StatefulSet", "db", "FailedCreate", "create Pod db-0 in StatefulSet db failed error: pods \"db-0\" is forbidden: error looking up service account shop/db-sa: serviceaccount \"db-sa\" not found").count(20).build());
    let r = diagnose(&s);
    let f = find(&r, 14);
    assert!(
        text(f).contains("kubectl create serviceaccount db-sa"),
        "{}",
        text(f)
    );
}

// ------------------------------------------------------------------------------ row 15

#[test]
fn deployment_scaled_to_zero_behind_a_service_is_scaled_back_to_its_last_count() {
    let mut s = snap();
    s.deployments
        .push(deployment("frontend", 0).ready(0).build());
    s.replica_sets
        .push(replica_set("frontend-old", "frontend", 3, 4));
    s.services
        .push(service("frontend", &[("app", "frontend")], json!(3000)));
    let r = diagnose(&s);
    let f = find(&r, 15);
    let args = has_tool(f, "workload_scale").unwrap();
    assert_eq!(args["replicas"], "4");
    assert_eq!(args["kind"], "Deployment");
    assert!(
        r.findings.iter().all(|f| f.row != 16),
        "no duplicate no-endpoints finding"
    );
}

// ------------------------------------------------------------------------------ row 16

#[test]
fn service_selector_mismatch_shows_the_labels_the_pods_have() {
    let mut s = snap();
    workload(&mut s, "backend", 2, |p| p.labels(&[("tier", "api")]));
    s.services
        .push(service("backend", &[("app", "todo-backend")], json!(8000)));
    let r = diagnose(&s);
    let f = find(&r, 16);
    assert!(
        f.cause.contains("app: selector todo-backend, pods backend"),
        "{}",
        f.cause
    );
    assert!(
        text(f).contains("spec.selector to app=backend"),
        "{}",
        text(f)
    );
}

// ------------------------------------------------------------------------------ row 17

#[test]
fn target_port_mismatch_names_the_container_ports() {
    let mut s = snap();
    workload(&mut s, "backend", 1, |p| p.port(8000, "http"));
    s.services
        .push(service("backend", &[("app", "backend")], json!(8080)));
    let r = diagnose(&s);
    let f = find(&r, 17);
    assert!(f.cause.contains("8000/http"), "{}", f.cause);
    assert!(text(f).contains("targetPort to 8000"));
}

// ------------------------------------------------------------------------------ row 18

#[test]
fn ingress_with_a_missing_backend_service_and_class_is_broken() {
    let mut s = snap();
    s.ingresses.push(from_json(json!({"metadata": {"name": "web", "namespace": NS},
        "spec": {"ingressClassName": "nginx", "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "frontend", "port": {"number": 80}}}}]}}],
            "tls": [{"secretName": "web-tls"}]}})));
    s.ingress_classes
        .push(from_json(json!({"metadata": {"name": "traefik"}})));
    let r = diagnose(&s);
    let f = find(&r, 18);
    assert_eq!(f.severity, Severity::Critical);
    let t = text(f);
    assert!(t.contains("Service frontend does not exist"), "{t}");
    assert!(t.contains("no such IngressClass"), "{t}");
    assert!(t.contains("TLS Secret web-tls"), "{t}");
}

// ------------------------------------------------------------------------------ row 19

#[test]
fn network_policy_without_a_rule_for_the_service_port_isolates_the_pods() {
    let mut s = snap();
    workload(&mut s, "backend", 2, |p| p.port(8000, "http"));
    s.services
        .push(service("backend", &[("app", "backend")], json!("http")));
    s.network_policies.push(from_json(
        json!({"metadata": {"name": "only-metrics", "namespace": NS},
        "spec": {"podSelector": {"matchLabels": {"app": "backend"}}, "policyTypes": ["Ingress"],
                 "ingress": [{"ports": [{"port": 9090}]}]}}),
    ));
    let r = diagnose(&s);
    let f = find(&r, 19);
    assert!(f.summary.contains("8000/http"), "{}", f.summary);
    assert_eq!(f.pod_count, 2);
}

// ------------------------------------------------------------------------------ row 20

#[test]
fn rbac_denial_in_logs_names_the_verb_and_resource() {
    let mut s = snap();
    workload(&mut s, "operator", 1, |p| p.unready(900));
    s.current_logs.push(log("operator-abc-0", "app", &[
        "E0601 11:59:00.000000 1 reflector.go:1] pods is forbidden: User \"system:serviceaccount:shop:operator\" cannot list resource \"pods\" in API group \"\" in the namespace \"shop\"",
    ]));
    let r = diagnose(&s);
    let f = find(&r, 20);
    assert!(
        f.summary.contains("forbidden to list pods"),
        "{}",
        f.summary
    );
    assert!(text(f).contains("--verb=list --resource=pods"));
}

// ------------------------------------------------------------------------------ row 21

#[test]
fn hpa_without_cpu_requests_is_reported_with_the_containers_to_fix() {
    let mut s = snap();
    s.deployments.push(deployment("web", 2).build());
    s.hpas.push(from_json(json!({"metadata": {"name": "web", "namespace": NS},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"}, "minReplicas": 2, "maxReplicas": 10},
        "status": {"desiredReplicas": 2, "currentReplicas": 2, "conditions": [
            {"type": "AbleToScale", "status": "True", "reason": "SucceededGetScale"},
            {"type": "ScalingActive", "status": "False", "reason": "FailedGetResourceMetric",
             "message": "the HPA was unable to compute the replica count: failed to get cpu utilization: missing request for cpu in container app"}]}})));
    let r = diagnose(&s);
    let f = find(&r, 21);
    assert_eq!(f.object, ObjectRef::new("Deployment", NS, "web"));
    assert!(
        text(f).contains("resources.requests.cpu to container(s) app"),
        "{}",
        text(f)
    );
}

// ------------------------------------------------------------------------------ row 22

#[test]
fn not_ready_node_lists_its_pods() {
    let mut s = snap();
    workload(&mut s, "web", 2, |p| p.node("node-2"));
    s.nodes.push(from_json(json!({"metadata": {"name": "node-2"}, "status": {"conditions": [
        {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status."}]}})));
    let r = diagnose(&s);
    let f = find(&r, 22);
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.pod_count, 2);
    assert!(text(f).contains("kubectl cordon node-2"));
}

// ------------------------------------------------------------------------------ row 23

#[test]
fn failed_job_is_reported_with_the_cause_from_its_logs() {
    let mut s = snap();
    s.jobs.push(from_json(json!({"metadata": {"name": "import", "namespace": NS},
        "spec": {"backoffLimit": 2, "template": {"spec": {"containers": []}}},
        "status": {"failed": 3, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}})));
    let mut p = pod("import-x1").owned_by("Job", "import").build();
    if let Some(cs) = p
        .status
        .as_mut()
        .and_then(|s| s.container_statuses.as_mut())
    {
        cs[0].state = Some(from_json(
            json!({"terminated": {"exitCode": 1, "reason": "Error"}}),
        ));
        cs[0].ready = false;
    }
    p.status.as_mut().unwrap().phase = Some("Failed".into());
    s.pods.push(p);
    s.current_logs.push(log(
        "import-x1",
        "app",
        &["Error: Missing required environment variable: API_TOKEN"],
    ));
    let r = diagnose(&s);
    let f = find(&r, 23);
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.cause.contains("API_TOKEN"), "{}", f.cause);
    assert_eq!(r.findings.len(), 1, "{}", r.render());
}

// ------------------------------------------------------------------------------ row 24

#[test]
fn unready_pod_whose_logs_show_connection_refused_is_an_app_fault_naming_the_dependency() {
    let mut s = snap();
    workload(&mut s, "web", 1, |p| {
        p.readiness_http("/ready", 3000)
            .port(3000, "http")
            .unready(900)
    });
    s.current_logs.push(log(
        "web-abc-0",
        "app",
        &[
            " ⨯ TypeError: fetch failed",
            "  [cause]: Error: connect ECONNREFUSED 10.96.3.4:8000",
        ],
    ));
    s.events.push(
        event(
            "Pod",
            "web-abc-0",
            "Unhealthy",
            "Readiness probe failed: HTTP probe failed with statuscode: 500",
        )
        .build(),
    );
    let r = diagnose(&s);
    let f = find(&r, 24);
    assert!(f.cause.contains("10.96.3.4:8000"), "{}", f.cause);
}

// ------------------------------------------------------------------------------ healthy controls

#[test]
fn healthy_namespace_has_no_findings() {
    let mut s = snap();
    workload(&mut s, "web", 3, |p| p.port(8000, "http"));
    s.services
        .push(service("web", &[("app", "web")], json!("http")));
    s.events.push(
        event("Pod", "web-abc-0", "Pulled", "pulled")
            .normal()
            .build(),
    );
    let r = diagnose(&s);
    assert!(r.findings.is_empty(), "{}", r.render());
    assert_eq!(r.render(), "No problems found in 1 workload (3 pods).\n");
}

#[test]
fn rollout_in_progress_within_its_deadline_is_not_a_warning() {
    let mut s = snap();
    workload(&mut s, "web", 2, |p| {
        p.readiness_http("/ready", 8000).unready(20).created_ago(25)
    });
    s.deployments[0] = deployment("web", 3)
        .ready(1)
        .condition("Progressing", "True", "ReplicaSetUpdated")
        .build();
    let r = diagnose(&s);
    assert!(serious(&r).is_empty(), "{}", r.render());
}

#[test]
fn completed_job_is_not_reported() {
    let mut s = snap();
    s.jobs.push(from_json(json!({"metadata": {"name": "seed", "namespace": NS},
        "status": {"succeeded": 1, "failed": 1, "conditions": [{"type": "Complete", "status": "True"}]}})));
    let mut p = pod("seed-1").owned_by("Job", "seed").build();
    p.status.as_mut().unwrap().phase = Some("Succeeded".into());
    s.pods.push(p);
    assert!(diagnose(&s).findings.is_empty());
}

#[test]
fn pod_restarted_once_hours_ago_is_healthy() {
    let mut s = snap();
    workload(&mut s, "web", 1, |p| {
        p.restarts(1).last_exit("Error", 1, 4 * 3600)
    });
    let r = diagnose(&s);
    assert!(serious(&r).is_empty(), "{}", r.render());
    assert!(crashloops(&s).is_empty());
}

#[test]
fn deployment_scaled_to_zero_that_no_service_selects_is_not_reported() {
    let mut s = snap();
    s.deployments.push(deployment("old", 0).ready(0).build());
    s.services
        .push(service("other", &[("app", "other")], json!(80)));
    workload(&mut s, "other", 1, |p| p);
    let r = diagnose(&s);
    assert!(serious(&r).is_empty(), "{}", r.render());
}

// ------------------------------------------------------------------------------ across rows

#[test]
fn a_blind_spot_is_reported_not_an_error_and_stops_missing_claims() {
    let mut s = snap();
    // The form the snapshot writes (tools/diagnose.rs `tolerant`).
    s.blind_spots.push("Secret (forbidden)".into());
    workload(&mut s, "api", 1, |p| {
        p.waiting(
            "CreateContainerConfigError",
            "couldn't find key password in Secret shop/db",
        )
    });
    let r = diagnose(&s);
    assert_eq!(r.blind_spots, vec!["Secret (forbidden)"]);
    assert!(
        find(&r, 4).cause.contains("could not be checked"),
        "{}",
        find(&r, 4).cause
    );
    assert!(r
        .render()
        .contains("Not visible (could not read): Secret (forbidden)"));
}

#[test]
fn a_pvc_that_could_not_be_listed_is_not_claimed_missing() {
    let with_blind = |blind: Option<&str>| {
        let mut s = snap();
        if let Some(b) = blind {
            s.blind_spots.push(b.into());
        }
        workload(&mut s, "db", 1, |p| {
            p.creating(900)
                .volume(json!({"name": "data", "persistentVolumeClaim": {"claimName": "db-data"}}))
        });
        diagnose(&s).render()
    };
    let seen = with_blind(None);
    assert!(
        seen.contains("PersistentVolumeClaim db-data"),
        "a PVC absent from a full list is missing:\n{seen}"
    );
    for blind in [
        "PersistentVolumeClaim (forbidden)",
        "PersistentVolumeClaim (not served)",
    ] {
        let r = with_blind(Some(blind));
        assert!(
            !r.contains("PersistentVolumeClaim db-data (volume"),
            "{blind}: claimed missing although it could not be read:\n{r}"
        );
    }
}

#[test]
fn events_with_event_time_and_series_are_counted() {
    let mut s = snap();
    workload(&mut s, "api", 1, |p| p.crash_looping(2));
    s.events.push(
        event(
            "Pod",
            "api-abc-0",
            "BackOff",
            "Back-off restarting failed container",
        )
        .series(33, 1200, 45)
        .build(),
    );
    let r = diagnose(&s);
    let f = find(&r, 1);
    assert!(
        f.evidence
            .iter()
            .any(|e| e.contains("BackOff ×33 (last 45s ago)")),
        "{:?}",
        f.evidence
    );
    assert_eq!(f.since, Some(ago(1200)));
}

#[test]
fn findings_rank_by_severity_then_blast_radius() {
    let mut s = snap();
    workload(&mut s, "small", 1, |p| p.crash_looping(1));
    workload(&mut s, "wide", 4, |p| p.crash_looping(1));
    workload(&mut s, "oom", 1, |p| p.oom_killed(100).memory_limit("1Gi"));
    let r = diagnose(&s);
    let order: Vec<&str> = r.findings.iter().map(|f| f.object.name.as_str()).collect();
    assert_eq!(order, vec!["wide", "small", "oom"], "{}", r.render());
}

#[test]
fn crashloops_lists_every_crash_looping_container_with_back_off_and_revision() {
    let mut s = snap();
    workload(&mut s, "api", 2, |p| p.crash_looping(1));
    workload(&mut s, "web", 1, |p| p);
    s.pods
        .push(pod("job-pod").init_crash_looping("migrate", 3).build());
    s.histories.push(history(
        "Deployment",
        "api",
        vec![
            rev(1, Some(true), false, "api:1", &[]),
            rev(2, Some(false), true, "api:2", &[]),
        ],
    ));
    s.previous_logs.push(log(
        "api-abc-0",
        "app",
        &["a", "", "b", "c", "d", "e", "panic: boom"],
    ));
    let c = crashloops(&s);
    assert_eq!(c.len(), 3);
    let first = c.iter().find(|c| c.pod == "api-abc-0").unwrap();
    assert_eq!(first.workload, "Deployment/api");
    assert_eq!(first.back_off.as_deref(), Some("5m0s"));
    assert_eq!(first.exit_code, Some(1));
    assert_eq!(first.started_with_current_revision, Some(true));
    assert_eq!(
        first.last_log_lines,
        vec!["b", "c", "d", "e", "panic: boom"]
    );
    let init = c.iter().find(|c| c.container == "migrate").unwrap();
    assert!(init.init);
    assert_eq!(init.workload, "Pod/job-pod");
    assert_eq!(init.started_with_current_revision, None);
}

#[test]
fn report_and_crashloop_schemas_are_objects() {
    let r = crate::tools::schema_for::<Report>();
    assert_eq!(r["type"], "object");
    assert!(r["properties"]["findings"].is_object());
    let c = crate::tools::schema_for::<CrashLoop>();
    assert!(c["properties"]["started_with_current_revision"].is_object());
}

#[test]
fn render_of_1000_pods_with_30_crash_loops_in_3_workloads_fits_3_kb() {
    let mut s = snap();
    for w in 0..97 {
        workload(&mut s, &format!("svc-{w:02}"), 10, |p| p);
    }
    for name in ["checkout", "payments", "search"] {
        workload(&mut s, name, 10, |p| p.crash_looping(1).restarts(9));
        for i in 0..10 {
            s.previous_logs.push(log(
                &format!("{name}-abc-{i}"),
                "app",
                &[
                    "Traceback (most recent call last):",
                    "  File \"/app/main.py\", line 9",
                    "KeyError: 'DATABASE_URL'",
                ],
            ));
            s.events.push(backoff(&format!("{name}-abc-{i}"), 20 + i));
        }
        s.services.push(service(name, &[("app", name)], json!(80)));
    }
    assert_eq!(s.pods.len(), 1000);
    let r = diagnose(&s);
    let out = r.render();
    assert!(out.len() <= 3 * 1024, "{} bytes:\n{out}", out.len());
    for name in ["checkout", "payments", "search"] {
        assert!(out.contains(&format!("Deployment shop/{name}")), "{out}");
    }
    assert_eq!(r.findings.len(), 3, "{out}");
    assert!(r.findings.iter().all(|f| f.pod_count == 10));
    assert_eq!(r.pods_checked, 1000);
    eprintln!("render of 1000 pods: {} bytes\n{out}", out.len());
}

#[test]
fn crashloops_is_linear_on_ten_thousand_pods() {
    let mut s = snap();
    for w in 0..100 {
        workload(&mut s, &format!("w{w}"), 100, |p| {
            if w % 10 == 0 {
                p.crash_looping(1)
            } else {
                p
            }
        });
    }
    let t0 = std::time::Instant::now();
    let c = crashloops(&s);
    assert_eq!(c.len(), 1000);
    let d = diagnose(&s);
    assert_eq!(d.findings.len(), 10);
    assert!(t0.elapsed().as_secs() < 20, "{:?}", t0.elapsed());
}

// ------------------------------------------------------------------------------ scopes

#[test]
fn a_pod_scope_finds_its_workload_even_past_the_listed_pod_names() {
    let mut s = snap();
    workload(&mut s, "backend", 8, |p| p.crash_looping(1).restarts(4));
    let mut r = diagnose(&s);
    let f = find(&r, 1);
    assert!(
        !f.pods.iter().any(|p| p == "backend-abc-7"),
        "the fixture needs a pod beyond the listed names: {:?}",
        f.pods
    );
    retain_concerning(&s, &mut r, "Pod", NS, "backend-abc-7");
    assert_eq!(r.findings.len(), 1, "{}", r.render());
    assert_eq!(
        r.findings[0].object,
        ObjectRef::new("Deployment", NS, "backend")
    );
}

#[test]
fn a_workload_scope_keeps_the_service_that_routes_to_it_wrongly() {
    let mut s = snap();
    workload(&mut s, "backend", 1, |p| p.port(8000, "http"));
    workload(&mut s, "other", 1, |p| p.crash_looping(1).restarts(4));
    s.services
        .push(service("backend", &[("app", "backend")], json!(8080)));
    let mut r = diagnose(&s);
    assert!(r.findings.len() >= 2, "{}", r.render());
    retain_concerning(&s, &mut r, "Deployment", NS, "backend");
    let rows: Vec<u8> = r.findings.iter().map(|f| f.row).collect();
    assert_eq!(rows, vec![17], "{}", r.render());
}

#[test]
fn a_namespace_scope_ignores_a_broken_node_its_pods_do_not_use() {
    let mut s = snap();
    workload(&mut s, "web", 1, |p| p.node("node-1"));
    s.nodes.push(from_json(json!({"metadata": {"name": "node-9"}, "status": {"conditions": [
        {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status."}]}})));
    let mut r = diagnose(&s);
    assert!(
        r.findings.iter().any(|f| f.row == 22),
        "cluster scope sees it"
    );
    retain_nodes_in_use(&mut r);
    assert!(r.findings.is_empty(), "{}", r.render());
}

#[test]
fn a_failing_workload_that_leaves_its_service_without_ready_endpoints_says_the_service_is_down() {
    let mut s = snap();
    workload(&mut s, "web", 2, |p| {
        p.readiness_http("/healthz", 8000)
            .port(8000, "http")
            .unready(900)
    });
    s.services
        .push(service("web", &[("app", "web")], json!("http")));
    s.endpoints.push(from_json(json!({"metadata": {"name": "web", "namespace": NS},
        "subsets": [{"notReadyAddresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 8000}]}]})));
    let r = diagnose(&s);
    let f = find(&r, 8);
    assert_eq!(
        f.evidence[0], "Service web has no ready endpoint (2 not ready): it is down",
        "{:?}",
        f.evidence
    );
    // With one ready address the Service still serves: no such line.
    s.endpoints[0] = from_json(json!({"metadata": {"name": "web", "namespace": NS},
        "subsets": [{"addresses": [{"ip": "10.0.0.3"}], "notReadyAddresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 8000}]}]}));
    let r = diagnose(&s);
    assert!(
        !find(&r, 8).evidence.iter().any(|e| e.contains("is down")),
        "{:?}",
        find(&r, 8).evidence
    );
}
