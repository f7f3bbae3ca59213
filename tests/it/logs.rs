//! Log tools on the sandbox: a workload of three pods (one crash-looping, one logging errors,
//! one healthy), time-ordered merging, masking, and a pod with 200k lines.

use std::time::Duration;

use serde_json::json;

use crate::common::{wait_for, TestNs};
use crate::mcp::{call, connect, text};

fn deployment(name: &str, image: &str, extra: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}, tier: logs-demo}}}}\n    spec:\n      containers:\n      - name: main\n        image: '{image}'\n{extra}"
    )
}

#[tokio::test]
async fn logs_analyze_names_the_exception_first_error_and_causes_across_a_workload() {
    let ns = TestNs::new("logs").await;
    ns.apply_yaml(&deployment("crashy", "crasher:1.0", ""))
        .await;
    ns.apply_yaml(&deployment(
        "noisy",
        "todo-backend:1.0.5-forbidden",
        "        env: [{name: DATABASE_URL, value: x}, {name: BETTER_AUTH_SECRET, value: y}]\n",
    ))
    .await;
    ns.apply_yaml(&deployment("calm", "nginx:1.25", "")).await;
    let pods = ns.api::<k8s_openapi::api::core::v1::Pod>();
    wait_for(
        "crasher restarted and noisy logging errors",
        Duration::from_secs(60),
        || async {
            let list = pods
                .list(&kube::api::ListParams::default().labels("tier=logs-demo"))
                .await
                .ok()?;
            let restarted = list.items.iter().any(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.restart_count >= 1))
            });
            if !restarted || list.items.len() != 3 {
                return None;
            }
            // noisy's error lines are drawn at random (3 in 8 per 1.5 s tick): wait for one
            // instead of assuming a fixed sleep produced it.
            let noisy = list.items.iter().find_map(|p| {
                p.metadata
                    .name
                    .as_deref()
                    .filter(|n| n.starts_with("noisy-"))
            })?;
            let log = pods
                .logs(noisy, &kube::api::LogParams::default())
                .await
                .ok()?;
            log.contains("is forbidden").then_some(())
        },
    )
    .await;
    let c = connect().await;
    let r = call(
        &c,
        "logs_analyze",
        json!({"namespace": ns.name, "label_selector": "tier=logs-demo"}),
    )
    .await;
    let t = text(&r);
    assert_eq!(r.is_error, Some(false), "{t}");
    assert!(t.contains("panic: assignment to entry in nil map"), "{t}");
    assert!(t.contains("first error"), "{t}");
    assert!(t.to_lowercase().contains("forbidden"), "{t}");
    let s = r.structured_content.unwrap();
    let read: Vec<String> = s["read"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["source"].as_str().unwrap().to_string())
        .collect();
    assert!(
        read.iter().any(|x| x.contains("(previous)")),
        "previous logs of the crash loop were not read: {read:?}"
    );
    assert!(
        read.iter().filter(|x| !x.contains("(previous)")).count() >= 3,
        "{read:?}"
    );
    assert!(s["analysis"]["exceptions"][0]["count"].as_u64().unwrap() >= 1);
    // The Go panic of the crashed instance is grouped as one, with its language and type.
    let panic = s["analysis"]["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["language"] == "go")
        .unwrap_or_else(|| panic!("no Go exception: {t}"));
    assert_eq!(panic["exception_type"], "panic", "{t}");
    assert!(
        panic["sources"][0].as_str().unwrap().starts_with("crashy-"),
        "{t}"
    );
    // The first error is timed, comes from a source that was read, and nothing in the merged
    // logs that the analysis counts as an error is older.
    let fe = &s["analysis"]["first_error"];
    let fe_ts: jiff::Timestamp = fe["ts"].as_str().unwrap().parse().unwrap();
    assert!(
        read.contains(&fe["source"].as_str().unwrap().to_string()),
        "{fe}"
    );
    for b in s["analysis"]["error_rate"].as_array().unwrap() {
        if b["errors"].as_u64().unwrap() > 0 {
            let end: jiff::Timestamp = b["end"].as_str().unwrap().parse().unwrap();
            assert!(
                end >= fe_ts,
                "an error bucket ends before the first error: {b} vs {fe}"
            );
        }
    }
    assert!(
        t.len() < 6000,
        "analysis should be compact, got {} bytes",
        t.len()
    );

    // logs_get merges the workload's pods in time order (polled: right after the first restart
    // the three pods may hold fewer than 11 lines between them).
    let (lines, stamps) = wait_for(
        "11 or more merged log lines",
        Duration::from_secs(60),
        || async {
            let r = call(&c, "logs_get", json!({"namespace": ns.name, "label_selector": "tier=logs-demo", "timestamps": true, "tail_lines": 20})).await;
            let lines: Vec<String> = r.structured_content?["lines"]
                .as_array()?
                .iter()
                .filter_map(|l| l.as_str().map(String::from))
                .collect();
            let stamps: Vec<jiff::Timestamp> = lines
                .iter()
                .filter_map(|l| l.split(' ').next()?.parse().ok())
                .collect();
            (stamps.len() > 10).then_some((lines, stamps))
        },
    )
    .await;
    assert!(
        stamps.len() > 10 && stamps.windows(2).all(|w| w[0] <= w[1]),
        "not in time order: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("[noisy-")) && lines.iter().any(|l| l.contains("[calm-")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn secrets_in_log_lines_come_out_masked() {
    let ns = TestNs::new("logmask").await;
    ns.apply_yaml("apiVersion: v1\nkind: Pod\nmetadata: {name: leaky}\nspec:\n  containers:\n  - name: c\n    image: 'busybox:1.36'\n    command: [sh, -c, 'echo connecting to postgresql://app:S3cretPw99@db:5432/x; echo OPENAI_API_KEY=sk-live1234567890abcdefXYZ; sleep infinity']\n").await;
    let c = connect().await;
    let t = wait_for("leaky logs", Duration::from_secs(60), || async {
        let t = text(
            &call(
                &c,
                "logs_get",
                json!({"namespace": ns.name, "pod": "leaky"}),
            )
            .await,
        );
        t.contains("connecting to").then_some(t)
    })
    .await;
    assert!(
        !t.contains("S3cretPw99") && !t.contains("sk-live1234567890"),
        "{t}"
    );
    assert!(t.contains("postgresql://app:<redacted>@db:5432/x"), "{t}");
}

#[tokio::test]
async fn a_pod_with_200k_lines_is_analysed_within_the_caps_with_a_note() {
    let ns = TestNs::new("logbig").await;
    ns.apply_yaml("apiVersion: v1\nkind: Pod\nmetadata: {name: chatty}\nspec:\n  containers:\n  - {name: worker, image: 'chatty:1.0'}\n").await;
    let pods = ns.api::<k8s_openapi::api::core::v1::Pod>();
    wait_for("chatty running", Duration::from_secs(60), || async {
        (pods.get("chatty").await.ok()?.status?.phase? == "Running").then_some(())
    })
    .await;
    let c = connect().await;
    let started = std::time::Instant::now();
    let r = call(
        &c,
        "logs_analyze",
        json!({"namespace": ns.name, "pod": "chatty"}),
    )
    .await;
    let t = text(&r);
    assert_eq!(r.is_error, Some(false), "{t}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert!(t.contains("older lines were not read"), "{t}");
    let total = r.structured_content.unwrap()["analysis"]["total_lines"]
        .as_u64()
        .unwrap();
    assert!(total <= 5_000 && total > 1_000, "{total}");
    assert!(t.contains("processed job <*>"), "{t}");
    let r = call(
        &c,
        "logs_get",
        json!({"namespace": ns.name, "pod": "chatty", "tail_lines": 5000}),
    )
    .await;
    let t = text(&r);
    assert!(
        t.len() <= 17_000 && t.contains("older lines not shown (byte cap)"),
        "{} bytes",
        t.len()
    );
}

#[tokio::test]
async fn bad_log_selections_get_specific_errors() {
    let ns = TestNs::new("logbad").await;
    let c = connect().await;
    for (args, want) in [
        (
            json!({"namespace": ns.name}),
            "exactly one of pod, workload or label_selector",
        ),
        (
            json!({"namespace": ns.name, "workload": "backend"}),
            "is not Kind/name",
        ),
        (
            json!({"namespace": ns.name, "workload": "Deployment/none"}),
            "not found",
        ),
        (
            json!({"namespace": ns.name, "label_selector": "app=none"}),
            "no pods match",
        ),
        (
            json!({"namespace": ns.name, "pod": "x", "grep": "("}),
            "not a valid regular expression",
        ),
        (
            json!({"namespace": ns.name, "pod": "x", "since": "3 weeks"}),
            "unknown unit",
        ),
    ] {
        let r = call(&c, "logs_get", args.clone()).await;
        assert!(
            r.is_error == Some(true) && text(&r).contains(want),
            "{args}: {}",
            text(&r)
        );
    }
}
