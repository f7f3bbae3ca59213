# syntax=docker/dockerfile:1
#
# aiops-mcp container image.
#   docker build -t aiops-mcp:0.1.0 .
#   docker run --rm -p 8080:8080 -e AIOPS_MCP_TOKEN="$(openssl rand -hex 32)" \
#     -v "$HOME/.kube/config:/kubeconfig:ro" -e KUBECONFIG=/kubeconfig aiops-mcp:0.1.0
# Inside a cluster the chart in charts/aiops-mcp runs it with a ServiceAccount.
# The server refuses to listen on 0.0.0.0 without a bearer token
# (AIOPS_MCP_TOKEN or --token-file). Health probes live in the chart, not here.

# ---- build: the release binary, with the toolchain pinned -------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
# The whole workspace (both members' manifests, charts/todo-stack embedded at
# compile time, tests/ named by Cargo.toml); .dockerignore keeps target/ out.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p aiops-mcp \
 && install -D -m 0755 target/release/aiops-mcp /out/aiops-mcp

# ---- runtime: glibc + libgcc only, non-root ---------------------------------
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="aiops-mcp" \
      org.opencontainers.image.description="MCP server for Kubernetes operations" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/aiops-mcp /usr/local/bin/aiops-mcp
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["aiops-mcp"]
CMD ["serve", "--http", "0.0.0.0:8080"]
