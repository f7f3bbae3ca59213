//! Container logs: a bounded store of current and previous instance lines per container, and
//! the kubelet's HTTPS endpoint `/containerLogs/{ns}/{pod}/{container}` that the API server
//! proxies `pods/log` to.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

/// Lines kept per container instance; older lines are dropped (like log rotation).
const MAX_LINES: usize = 250_000;

#[derive(Default, Debug)]
struct Instances {
    current: VecDeque<(Timestamp, String)>,
    previous: Option<VecDeque<(Timestamp, String)>>,
}

/// (namespace, pod, container).
type ContainerKey = (String, String, String);

/// (namespace, pod, container) → its instances' lines.
#[derive(Clone, Default)]
pub struct LogStore {
    inner: Arc<Mutex<HashMap<ContainerKey, Instances>>>,
}

impl LogStore {
    pub fn new_instance(&self, ns: &str, pod: &str, container: &str) {
        let mut m = self.inner.lock().unwrap();
        let e = m
            .entry((ns.into(), pod.into(), container.into()))
            .or_default();
        if !e.current.is_empty() || e.previous.is_some() {
            e.previous = Some(std::mem::take(&mut e.current));
        }
    }

    pub fn append(&self, ns: &str, pod: &str, container: &str, at: Timestamp, line: String) {
        let mut m = self.inner.lock().unwrap();
        let e = m
            .entry((ns.into(), pod.into(), container.into()))
            .or_default();
        if e.current.len() >= MAX_LINES {
            e.current.pop_front();
        }
        e.current.push_back((at, line));
    }

    pub fn remove_pod(&self, ns: &str, pod: &str) {
        self.inner
            .lock()
            .unwrap()
            .retain(|k, _| !(k.0 == ns && k.1 == pod));
    }

    /// Renders the log the way the kubelet answers, or None when the container is unknown.
    pub fn read(
        &self,
        ns: &str,
        pod: &str,
        container: &str,
        q: &LogQuery,
    ) -> Result<String, String> {
        let m = self.inner.lock().unwrap();
        let Some(e) = m.get(&(ns.into(), pod.into(), container.into())) else {
            return Err(format!(
                "container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
            ));
        };
        let lines = if q.previous.unwrap_or(false) {
            match &e.previous {
                Some(p) => p,
                None => {
                    return Err(format!(
                        "previous terminated container \"{container}\" in pod \"{pod}\" not found"
                    ))
                }
            }
        } else {
            &e.current
        };
        let since = match (&q.since_time, q.since_seconds) {
            (Some(t), _) => t.parse::<Timestamp>().ok(),
            (None, Some(s)) => Some(Timestamp::now() - SignedDuration::from_secs(s)),
            _ => None,
        };
        let selected: Vec<&(Timestamp, String)> = lines
            .iter()
            .filter(|(t, _)| since.is_none_or(|s| *t >= s))
            .collect();
        let skip = match q.tail_lines {
            Some(n) if n >= 0 => selected.len().saturating_sub(n as usize),
            _ => 0,
        };
        let mut out = String::new();
        for (t, l) in &selected[skip..] {
            if q.timestamps.unwrap_or(false) {
                out.push_str(&format!("{t} "));
            }
            out.push_str(l);
            out.push('\n');
        }
        if let Some(limit) = q.limit_bytes.filter(|l| *l >= 0) {
            let mut cut = (limit as usize).min(out.len());
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
        }
        Ok(out)
    }
}

/// Query parameters the API server forwards from `pods/log`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogQuery {
    pub tail_lines: Option<i64>,
    pub since_seconds: Option<i64>,
    pub since_time: Option<String>,
    pub timestamps: Option<bool>,
    pub previous: Option<bool>,
    pub limit_bytes: Option<i64>,
}

async fn container_logs(
    State(store): State<LogStore>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    Query(q): Query<LogQuery>,
) -> Response {
    match store.read(&ns, &pod, &container, &q) {
        Ok(body) => ([("content-type", "text/plain")], body).into_response(),
        Err(msg) => (StatusCode::BAD_REQUEST, msg).into_response(),
    }
}

/// Serves the kubelet API subset on `addr` with a self-signed certificate.
pub async fn serve(listener: tokio::net::TcpListener, store: LogStore, node: String) -> Result<()> {
    let key = rcgen::generate_simple_self_signed(vec![
        "127.0.0.1".into(),
        "localhost".into(),
        node.clone(),
    ])
    .context("generating the kubelet serving certificate")?;
    let cert_der = key.cert.der().clone();
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der], key_der)
        .context("building the TLS config")?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let app = Router::new()
        .route("/containerLogs/{ns}/{pod}/{container}", get(container_logs))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(store);
    tracing::info!(addr = ?listener.local_addr().ok(), %node, "kubelet API listening");
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(x) => x,
            Err(err) => {
                tracing::warn!(%err, "accept failed");
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let io = hyper_util::rt::TokioIo::new(tls);
            let svc = hyper_util::service::TowerToHyperService::new(app);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(io, svc)
                    .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> LogStore {
        let s = LogStore::default();
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        s.new_instance("ns", "p", "c");
        for i in 0..5 {
            s.append(
                "ns",
                "p",
                "c",
                t0 + SignedDuration::from_secs(i),
                format!("first {i}"),
            );
        }
        s.new_instance("ns", "p", "c");
        s.append(
            "ns",
            "p",
            "c",
            t0 + SignedDuration::from_secs(10),
            "second".into(),
        );
        s
    }

    #[test]
    fn previous_returns_the_last_instance_and_tail_limits_lines() {
        let s = store();
        let q = LogQuery {
            previous: Some(true),
            tail_lines: Some(2),
            ..Default::default()
        };
        assert_eq!(s.read("ns", "p", "c", &q).unwrap(), "first 3\nfirst 4\n");
        assert_eq!(
            s.read("ns", "p", "c", &LogQuery::default()).unwrap(),
            "second\n"
        );
    }

    #[test]
    fn timestamps_and_limit_bytes_are_honoured() {
        let s = store();
        let q = LogQuery {
            timestamps: Some(true),
            ..Default::default()
        };
        assert_eq!(
            s.read("ns", "p", "c", &q).unwrap(),
            "2026-01-01T00:00:10Z second\n"
        );
        let q = LogQuery {
            limit_bytes: Some(3),
            ..Default::default()
        };
        assert_eq!(s.read("ns", "p", "c", &q).unwrap(), "sec");
    }

    #[test]
    fn unknown_container_and_missing_previous_are_errors() {
        let s = LogStore::default();
        assert!(s.read("ns", "p", "c", &LogQuery::default()).is_err());
        s.new_instance("ns", "p", "c");
        let q = LogQuery {
            previous: Some(true),
            ..Default::default()
        };
        assert!(s
            .read("ns", "p", "c", &q)
            .unwrap_err()
            .contains("previous terminated container"));
    }
}
