//! Service, Ingress and NetworkPolicy rows: no endpoints / selector mismatch (16), targetPort
//! mismatch (17), Ingress broken (18), NetworkPolicy isolating pods (19).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::ctx::{
    fmt_labels, ingress_backends, label_selector_matches, name_of, ns_of, selector_matches,
};
use super::pods::{container_ports, port_text};
use super::{Ctx, Finding, ObjectRef, Row, Severity, Step};

fn selector(s: &Service) -> Option<&BTreeMap<String, String>> {
    let spec = s.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.selector.as_ref().filter(|m| !m.is_empty())
}

fn live(p: &Pod) -> bool {
    !matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    ) && p.metadata.deletion_timestamp.is_none()
}

fn selected<'a>(ctx: &Ctx<'a>, s: &Service, sel: &BTreeMap<String, String>) -> Vec<&'a Pod> {
    ctx.pods_in(ns_of(&s.metadata))
        .iter()
        .copied()
        .filter(|p| live(p))
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .is_some_and(|l| selector_matches(sel, l))
        })
        .collect()
}

fn svc_ref(s: &Service) -> ObjectRef {
    ObjectRef::new("Service", ns_of(&s.metadata), name_of(&s.metadata))
}

// ------------------------------------------------------------------------------ row 16

/// Services whose selector matches no pod (nor any workload template) in their namespace,
/// naming the labels the pods actually carry.
pub(crate) fn service_without_endpoints(ctx: &Ctx) -> Vec<Finding> {
    let mut out = vec![];
    for s in &ctx.snap.services {
        let Some(sel) = selector(s) else { continue };
        if !selected(ctx, s, sel).is_empty() {
            continue;
        }
        let ns = ns_of(&s.metadata);
        let name = name_of(&s.metadata);
        // a workload template that matches: scaled to zero (row 15) or still creating pods (row 13)
        let template_match = ctx
            .snap
            .deployments
            .iter()
            .filter(|d| ns_of(&d.metadata) == ns)
            .filter_map(|d| d.spec.template.metadata.as_ref()?.labels.as_ref())
            .chain(
                ctx.snap
                    .stateful_sets
                    .iter()
                    .filter(|d| ns_of(&d.metadata) == ns)
                    .filter_map(|d| d.spec.template.metadata.as_ref()?.labels.as_ref()),
            )
            .chain(
                ctx.snap
                    .daemon_sets
                    .iter()
                    .filter(|d| ns_of(&d.metadata) == ns)
                    .filter_map(|d| d.spec.template.metadata.as_ref()?.labels.as_ref()),
            )
            .any(|l| selector_matches(sel, l));
        if template_match {
            continue;
        }
        // the closest labelled group of pods: most selector keys present, then most equal values
        let mut best: Option<(usize, usize, ObjectRef, &BTreeMap<String, String>)> = None;
        for p in ctx.pods_in(ns).iter().filter(|p| live(p)) {
            let Some(l) = p.metadata.labels.as_ref() else {
                continue;
            };
            let keys = sel.keys().filter(|k| l.contains_key(*k)).count();
            let equal = sel.iter().filter(|(k, v)| l.get(*k) == Some(v)).count();
            if keys == 0 && equal == 0 {
                continue;
            }
            if best
                .as_ref()
                .is_none_or(|(bk, be, _, _)| (equal, keys) > (*be, *bk))
            {
                best = Some((keys, equal, ctx.owner_of(p), l));
            }
        }
        let obj = svc_ref(s);
        let ingress = !ctx.exposure(&obj).is_empty();
        let mut f = Finding::new(
            Row::NoEndpoints,
            if ingress {
                Severity::Critical
            } else {
                Severity::Warning
            },
            obj,
        )
        .summary(format!(
            "Service {name} selects {} but no pod has these labels: it has no endpoints",
            fmt_labels(sel)
        ))
        .evidence(format!("spec.selector = {}", fmt_labels(sel)));
        if let Some((n, _)) = ctx.endpoint_counts(ns, name) {
            f = f.evidence(format!("Endpoints {name}: {n} ready addresses"));
        }
        match best {
            Some((_, _, owner, labels)) => {
                let differ: Vec<String> = sel
                    .iter()
                    .filter(|(k, v)| labels.get(*k) != Some(v))
                    .map(|(k, v)| {
                        format!(
                            "{k}: selector {v}, pods {}",
                            labels.get(k).map(String::as_str).unwrap_or("(absent)")
                        )
                    })
                    .collect();
                let wanted: BTreeMap<String, String> = sel
                    .keys()
                    .filter_map(|k| labels.get(k).map(|v| (k.clone(), v.clone())))
                    .collect();
                let suggestion = if wanted.len() == sel.len() {
                    fmt_labels(&wanted)
                } else {
                    fmt_labels(labels)
                };
                f = f
                    .cause(format!(
                        "the selector does not match the labels of the pods of {}/{} ({})",
                        owner.kind,
                        owner.name,
                        differ.join("; ")
                    ))
                    .evidence(format!(
                        "closest pods ({}/{}) have labels {}",
                        owner.kind,
                        owner.name,
                        fmt_labels(labels)
                    ))
                    .step(Step::manual(
                        format!("set Service {name} spec.selector to {suggestion} (or relabel the pods of {}/{})", owner.kind, owner.name),
                        "the Service sends traffic only to pods with all selector labels",
                    ));
            }
            None => {
                f = f
                    .cause("no pod in the namespace carries any of the selector's labels")
                    .step(Step::manual(
                        format!("fix Service {name} spec.selector, or deploy the workload it is meant for"),
                        "the Service has nothing to send traffic to",
                    ));
            }
        }
        out.push(f);
    }
    out
}

// ------------------------------------------------------------------------------ row 17

/// Service ports whose targetPort matches no containerPort (number) or port name of the pods.
pub(crate) fn target_port_mismatch(ctx: &Ctx) -> Vec<Finding> {
    let mut out = vec![];
    for s in &ctx.snap.services {
        let Some(sel) = selector(s) else { continue };
        let pods = selected(ctx, s, sel);
        let Some(p) = pods.first() else { continue };
        let containers = p
            .spec
            .as_ref()
            .map(|s| s.containers.as_slice())
            .unwrap_or_default();
        let declared: Vec<(i32, Option<&str>)> = containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .map(|p| (p.container_port, p.name.as_deref()))
            .collect();
        let name = name_of(&s.metadata);
        let owner = ctx.owner_of(p);
        for sp in s.spec.iter().flat_map(|sp| sp.ports.iter().flatten()) {
            let tp = sp.target_port.clone().unwrap_or(IntOrString::Int(sp.port));
            let ok = match &tp {
                // containerPort is informational: without declared ports a number cannot be judged
                IntOrString::Int(n) => declared.is_empty() || declared.iter().any(|(p, _)| p == n),
                IntOrString::String(n) => {
                    declared.iter().any(|(_, name)| *name == Some(n.as_str()))
                }
            };
            if ok {
                continue;
            }
            let ports = containers
                .iter()
                .map(|c| format!("{}: {}", c.name, container_ports(Some(c))))
                .collect::<Vec<_>>()
                .join("; ");
            let fix = match (declared.as_slice(), &tp) {
                ([(n, Some(pn))], IntOrString::String(_)) => format!("{pn} (or {n})"),
                ([(n, _)], _) => n.to_string(),
                _ => "one of the declared container ports".to_string(),
            };
            let port_name = sp.name.clone().unwrap_or_else(|| sp.port.to_string());
            let obj = svc_ref(s);
            let ingress = !ctx.exposure(&obj).is_empty();
            out.push(
                Finding::new(
                    Row::TargetPort,
                    if ingress { Severity::Critical } else { Severity::Warning },
                    obj,
                )
                .summary(format!(
                    "Service {name} port {port_name} targets {} which the pods of {}/{} do not expose",
                    port_text(&tp),
                    owner.kind,
                    owner.name
                ))
                .cause(format!(
                    "targetPort {} matches no containerPort or port name ({ports})",
                    port_text(&tp)
                ))
                .evidence(format!(
                    "spec.ports[{port_name}].targetPort = {}",
                    port_text(&tp)
                ))
                .evidence(format!("pods ({}/{}) declare {ports}", owner.kind, owner.name))
                .step(Step::manual(
                    format!("set Service {name} spec.ports[{port_name}].targetPort to {fix}"),
                    "connections to the wrong port are refused",
                )),
            );
        }
    }
    out
}

// ------------------------------------------------------------------------------ row 18

/// Ingresses with a missing backend Service or port, IngressClass, or TLS Secret.
pub(crate) fn ingress_broken(ctx: &Ctx) -> Vec<Finding> {
    let mut out = vec![];
    let classes_blind = ctx.blind(&["ingressclasses", "ingressclass"]);
    let secrets_blind = ctx.blind(&["secrets", "secret"]);
    let has_default_class = ctx.snap.ingress_classes.iter().any(|c| {
        c.metadata.annotations.as_ref().is_some_and(|a| {
            a.get("ingressclass.kubernetes.io/is-default-class")
                .map(String::as_str)
                == Some("true")
        })
    });
    for ing in &ctx.snap.ingresses {
        let (ns, name) = (ns_of(&ing.metadata), name_of(&ing.metadata));
        let Some(spec) = ing.spec.as_ref() else {
            continue;
        };
        let mut problems: Vec<(bool, String, String)> = vec![]; // (critical, evidence, action)
        let legacy_class = ing
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key("kubernetes.io/ingress.class"));
        if !classes_blind {
            let names: Vec<&str> = ctx
                .snap
                .ingress_classes
                .iter()
                .map(|c| name_of(&c.metadata))
                .collect();
            match &spec.ingress_class_name {
                Some(c) if !names.contains(&c.as_str()) => problems.push((
                    true,
                    format!("spec.ingressClassName = {c}: no such IngressClass (have: {})", if names.is_empty() { "none".to_string() } else { names.join(", ") }),
                    format!("set spec.ingressClassName to an existing class ({}) or install the controller for {c}", if names.is_empty() { "none exist".to_string() } else { names.join(", ") }),
                )),
                None if !has_default_class && !legacy_class => problems.push((
                    true,
                    "spec.ingressClassName is unset and no IngressClass is the default".to_string(),
                    "set spec.ingressClassName (e.g. nginx) or mark an IngressClass as default".to_string(),
                )),
                _ => {}
            }
        }
        for (svc, port) in ingress_backends(ing) {
            let found = ctx
                .services_in(ns)
                .iter()
                .find(|s| name_of(&s.metadata) == svc);
            let Some(found) = found else {
                let close: Vec<&str> = ctx
                    .services_in(ns)
                    .iter()
                    .map(|s| name_of(&s.metadata))
                    .collect();
                problems.push((
                    true,
                    format!(
                        "backend Service {svc} does not exist (services: {})",
                        if close.is_empty() {
                            "none".to_string()
                        } else {
                            close.join(", ")
                        }
                    ),
                    format!("point the backend at an existing Service or create Service {svc}"),
                ));
                continue;
            };
            let sports: Vec<(i32, Option<&str>)> = found
                .spec
                .iter()
                .flat_map(|s| s.ports.iter().flatten())
                .map(|p| (p.port, p.name.as_deref()))
                .collect();
            let Some(bp) = port else { continue };
            let ok = match (&bp.number, &bp.name) {
                (Some(n), _) => sports.iter().any(|(p, _)| p == n),
                (None, Some(n)) => sports.iter().any(|(_, pn)| *pn == Some(n.as_str())),
                _ => true,
            };
            if !ok {
                let want = bp
                    .number
                    .map(|n| n.to_string())
                    .or(bp.name.clone())
                    .unwrap_or_default();
                let have = sports
                    .iter()
                    .map(|(p, n)| {
                        n.map(|n| format!("{p}/{n}"))
                            .unwrap_or_else(|| p.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                problems.push((
                    true,
                    format!("backend port {want} is not a port of Service {svc} (ports: {have})"),
                    format!("set the backend port for Service {svc} to one of: {have}"),
                ));
            }
        }
        if !secrets_blind {
            for tls in spec.tls.iter().flatten() {
                let Some(secret) = &tls.secret_name else {
                    continue;
                };
                if !ctx
                    .snap
                    .secrets
                    .iter()
                    .any(|s| s.namespace == ns && s.name == *secret)
                {
                    problems.push((
                        false,
                        format!("TLS Secret {secret} does not exist"),
                        format!("create TLS Secret {secret} in namespace {ns} (kubectl create secret tls {secret} --cert=… --key=…) or fix spec.tls.secretName"),
                    ));
                }
            }
        }
        if problems.is_empty() {
            continue;
        }
        let critical = problems.iter().any(|p| p.0);
        let mut f = Finding::new(
            Row::Ingress,
            if critical {
                Severity::Critical
            } else {
                Severity::Warning
            },
            ObjectRef::new("Ingress", ns, name),
        )
        .summary(format!("Ingress {name} is broken: {}", problems[0].1))
        .cause(
            problems
                .iter()
                .map(|p| p.1.clone())
                .collect::<Vec<_>>()
                .join("; "),
        );
        for (_, ev, action) in problems {
            f = f
                .evidence(ev)
                .step(Step::manual(action, "requests through the Ingress fail"));
        }
        out.push(f);
    }
    out
}

// ------------------------------------------------------------------------------ row 19

/// Pods behind a Service that NetworkPolicies isolate with no rule admitting the Service's port.
pub(crate) fn network_policy_isolation(ctx: &Ctx) -> Vec<Finding> {
    let mut out = vec![];
    if ctx.snap.network_policies.is_empty() {
        return out;
    }
    for s in &ctx.snap.services {
        let Some(sel) = selector(s) else { continue };
        let pods = selected(ctx, s, sel);
        let Some(p) = pods.first() else { continue };
        let Some(labels) = p.metadata.labels.as_ref() else {
            continue;
        };
        let ns = ns_of(&s.metadata);
        let policies: Vec<_> = ctx
            .snap
            .network_policies
            .iter()
            .filter(|np| ns_of(&np.metadata) == ns)
            .filter_map(|np| np.spec.as_ref().map(|sp| (name_of(&np.metadata), sp)))
            .filter(|(_, sp)| {
                let ingress_type = sp
                    .policy_types
                    .as_ref()
                    .is_none_or(|t| t.iter().any(|t| t == "Ingress"));
                ingress_type
                    && sp
                        .pod_selector
                        .as_ref()
                        .is_none_or(|ps| label_selector_matches(ps, labels))
            })
            .collect();
        if policies.is_empty() {
            continue;
        }
        // the ports the Service expects to reach, as numbers and names
        let containers = p
            .spec
            .as_ref()
            .map(|s| s.containers.as_slice())
            .unwrap_or_default();
        let mut wanted: Vec<(Option<i32>, Option<String>)> = vec![];
        for sp in s.spec.iter().flat_map(|sp| sp.ports.iter().flatten()) {
            match sp.target_port.clone().unwrap_or(IntOrString::Int(sp.port)) {
                IntOrString::Int(n) => {
                    let name = containers
                        .iter()
                        .flat_map(|c| c.ports.iter().flatten())
                        .find(|cp| cp.container_port == n)
                        .and_then(|cp| cp.name.clone());
                    wanted.push((Some(n), name));
                }
                IntOrString::String(n) => {
                    let num = containers
                        .iter()
                        .flat_map(|c| c.ports.iter().flatten())
                        .find(|cp| cp.name.as_deref() == Some(n.as_str()))
                        .map(|cp| cp.container_port);
                    wanted.push((num, Some(n)));
                }
            }
        }
        let admits = |num: Option<i32>, pname: Option<&str>| {
            policies.iter().any(|(_, sp)| {
                sp.ingress.iter().flatten().any(|rule| {
                    let ports = rule.ports.as_deref().unwrap_or_default();
                    ports.is_empty()
                        || ports.iter().any(|pp| match &pp.port {
                            None => true,
                            Some(IntOrString::Int(n)) => num.is_some_and(|x| {
                                x == *n || pp.end_port.is_some_and(|e| x >= *n && x <= e)
                            }),
                            Some(IntOrString::String(n)) => pname == Some(n.as_str()),
                        })
                })
            })
        };
        let blocked: Vec<String> = wanted
            .iter()
            .filter(|(n, name)| !admits(*n, name.as_deref()))
            .map(|(n, name)| match (n, name) {
                (Some(n), Some(name)) => format!("{n}/{name}"),
                (Some(n), None) => n.to_string(),
                (None, Some(name)) => name.clone(),
                (None, None) => "?".into(),
            })
            .collect();
        if blocked.is_empty() {
            continue;
        }
        let owner = ctx.owner_of(p);
        let names: Vec<&str> = policies.iter().map(|(n, _)| *n).collect();
        let svc = name_of(&s.metadata);
        let mut f = Finding::new(Row::NetworkPolicy, Severity::Warning, owner.clone())
            .summary(format!(
                "NetworkPolicy {} isolates the pods behind Service {svc}: no ingress rule admits port {}",
                names.join(", "),
                blocked.join(", ")
            ))
            .cause(format!(
                "the policies select pods {} and none of their ingress rules allows port {}",
                fmt_labels(labels),
                blocked.join(", ")
            ))
            .evidence(format!("NetworkPolicy {} selects pods {}", names.join(", "), fmt_labels(labels)))
            .evidence(format!("Service {svc} targets port {}", blocked.join(", ")))
            .step(Step::manual(
                format!(
                    "add an ingress rule to NetworkPolicy {}: from the namespaces/pods that call Service {svc}, ports [{}] (e.g. ingress: [{{from: [{{namespaceSelector: {{}}}}], ports: [{{port: {}}}]}}])",
                    names[0],
                    blocked.join(", "),
                    blocked[0].split('/').next().unwrap_or("?")
                ),
                "traffic to the Service's pods is dropped",
            ));
        for p in pods.iter().take(20) {
            f = f.pod(name_of(&p.metadata));
        }
        out.push(f);
    }
    out
}
