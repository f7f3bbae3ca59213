//! Streamable HTTP: `/mcp` (MCP), `/healthz` (process up), `/readyz` (cluster reachable), with a
//! bearer token required whenever the server listens beyond loopback.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use super::AiopsServer;

/// How the HTTP endpoint is exposed.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    pub addr: Option<SocketAddr>,
    /// Bearer token clients must send (`Authorization: Bearer …`).
    pub token: Option<String>,
    /// Extra accepted `Host` values (loopback names are always accepted).
    pub allowed_hosts: Vec<String>,
    /// Accepted browser `Origin`s (empty = any request without a foreign Origin check).
    pub allowed_origins: Vec<String>,
}

/// Refuses a non-loopback bind without a token: the tools can change the cluster.
pub fn check_exposure(addr: &SocketAddr, token: Option<&str>) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() && token.is_none_or(str::is_empty) {
        anyhow::bail!(
            "refusing to serve on {addr} without a bearer token: anyone who can reach it could operate the cluster. \
             Pass --token-file FILE (or set AIOPS_MCP_TOKEN), or bind 127.0.0.1"
        );
    }
    Ok(())
}

async fn require_token(
    State(token): State<Arc<Option<String>>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(t) = token.as_ref() {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // Constant-time comparison: a token must not leak through timing.
        let ok = given.is_some_and(|g| {
            g.len() == t.len()
                && g.bytes()
                    .zip(t.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        });
        if !ok {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "missing or wrong bearer token\n",
            )
                .into_response();
        }
    }
    next.run(req).await
}

/// The router: `/mcp`, `/healthz`, `/readyz`.
pub fn router(server: AiopsServer, opts: &HttpOptions) -> Router {
    let mut hosts: Vec<String> = vec![
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
        "[::1]".into(),
    ];
    hosts.extend(opts.allowed_hosts.iter().cloned());
    if let Some(addr) = opts.addr {
        hosts.push(addr.ip().to_string());
    }
    let mut config = StreamableHttpServerConfig::default().with_allowed_hosts(hosts);
    if !opts.allowed_origins.is_empty() {
        config = config.with_allowed_origins(opts.allowed_origins.clone());
    }
    let factory_server = server.clone();
    let mcp = StreamableHttpService::new(
        move || Ok(factory_server.for_new_session()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let token = Arc::new(opts.token.clone());
    let ready_server = server.clone();
    Router::new()
        .nest_service("/mcp", mcp)
        .route(
            "/readyz",
            get(move || {
                let s = ready_server.clone();
                async move {
                    match s.ctx.clusters.client(None).await {
                        Ok(c) => match c.apiserver_version().await {
                            Ok(v) => (
                                StatusCode::OK,
                                format!("ok: cluster {} reachable\n", v.git_version),
                            ),
                            Err(e) => (
                                StatusCode::SERVICE_UNAVAILABLE,
                                format!("cluster unreachable: {e}\n"),
                            ),
                        },
                        Err(e) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("no cluster: {e}\n"),
                        ),
                    }
                }
            }),
        )
        .layer(middleware::from_fn_with_state(token, require_token))
        .route("/healthz", get(|| async { "ok\n" }))
}

/// Serves until the process is stopped.
pub async fn serve(server: AiopsServer, opts: HttpOptions) -> anyhow::Result<()> {
    let addr = opts
        .addr
        .ok_or_else(|| anyhow::anyhow!("no --http address"))?;
    check_exposure(&addr, opts.token.as_deref())?;
    let app = router(server, &opts);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    tracing::info!(%addr, "serving MCP over streamable HTTP at /mcp");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_bind_needs_a_token() {
        let public: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert!(check_exposure(&public, None)
            .unwrap_err()
            .to_string()
            .contains("--token-file"));
        assert!(check_exposure(&public, Some("t")).is_ok());
        assert!(check_exposure(&local, None).is_ok());
    }
}
