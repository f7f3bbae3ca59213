#!/usr/bin/env python3
"""Side-by-side benchmark of MCP servers for Kubernetes, driven by one MCP stdio client.

Servers (each skipped with a clear message when it is not installed):
  aiops-mcp              ours:  target/release/aiops-mcp serve
  kubernetes-mcp-server  npm kubernetes-mcp-server (Go binary from the platform package)
  mcp-server-kubernetes  npm mcp-server-kubernetes (Node; shells out to kubectl)

For each server it measures
  start_to_init_ms   spawn -> initialize result, fresh process each time, median of --runs
  list_ms            one tools/call listing the pods of --namespace, median of --runs after 1 warm-up
  output_bytes       UTF-8 bytes of the text content items of that call (what a model reads)
  crash_named        how many crash-looping pod names (from kubectl) appear in that text
  rss_idle_kib       VmRSS of the server process ~1 s after initialize
  rss_after_kib      VmRSS after the list calls (and VmHWM, the peak)

The client is the official Python MCP SDK's ClientSession over our own stdio transport:
we spawn the server ourselves (anyio.open_process) so we know its pid and can read /proc.

Usage: bench/.venv/bin/python bench/bench.py [--kubeconfig PATH] [--only a,b] [--runs 5]
Normally run through bench/run, which prepares the cluster and the peers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp import ClientSession
from mcp.shared.message import SessionMessage

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEERS = HERE / ".peers" / "node_modules"
RESULTS = HERE / "results"

CALL_TIMEOUT_S = 180.0
INIT_TIMEOUT_S = 60.0
IDLE_SETTLE_S = 1.0


# --------------------------------------------------------------------------- servers


# The crash-looping Deployments of bench/workload.yaml.
CRASH_WORKLOADS = ["checkout", "payments", "search"]


def server_specs(kubeconfig: str, namespace: str) -> list[dict[str, Any]]:
    """The servers under test. `tool` lists acceptable tool names in order of preference;
    the first one the server offers in tools/list is used."""
    ours = Path(os.environ.get("AIOPS_MCP_BIN", REPO / "target" / "release" / "aiops-mcp"))
    kms = PEERS / "kubernetes-mcp-server-linux-amd64" / "bin" / "kubernetes-mcp-server-linux-amd64"
    msk = PEERS / "mcp-server-kubernetes" / "dist" / "index.js"
    return [
        {
            "id": "aiops-mcp",
            "label": "aiops-mcp (ours)",
            "argv": [str(ours), "serve"],
            "needs": [ours],
            "missing_hint": "build it with `cargo build --release` in the repo root, then rerun bench/run",
            "env": {},
            "tool": ["pods_list"],
            "args": {"namespace": namespace},
            "rss_comm": None,
            # Measured for ours only: the peers have no diagnosis tool.
            "extra": [("diagnose", {"namespace": namespace}), ("crashloops_find", {"namespace": namespace})],
        },
        {
            "id": "kubernetes-mcp-server",
            "label": "kubernetes-mcp-server",
            "argv": [str(kms), "--kubeconfig", kubeconfig],
            "needs": [kms],
            "missing_hint": "bench/run installs it (npm install --prefix bench/.peers kubernetes-mcp-server)",
            "env": {},
            "tool": ["pods_list_in_namespace", "pods_list"],
            "args": {"namespace": namespace},
            "rss_comm": None,
        },
        {
            "id": "mcp-server-kubernetes",
            "label": "mcp-server-kubernetes",
            "argv": ["node", str(msk)],
            "needs": [msk],
            "missing_hint": "bench/run installs it (npm install --prefix bench/.peers mcp-server-kubernetes)",
            # kubectl's JSON for 1,000 pods is several MB; the default 1 MiB spawn buffer fails.
            "env": {"SPAWN_MAX_BUFFER": "104857600"},
            "tool": ["kubectl_get"],
            "args": {"resourceType": "pods", "namespace": namespace},
            "rss_comm": "node",
        },
    ]


# --------------------------------------------------------------------------- /proc helpers


def proc_status(pid: int) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.strip()
    except OSError:
        pass
    return out


def kib(status: dict[str, str], key: str) -> int | None:
    v = status.get(key)
    return int(v.split()[0]) if v else None


def children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    kids += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return kids


def server_pid(root: int, comm: str | None) -> int:
    """The process whose memory we report: the spawned process itself, or (when `comm` is
    given and the spawned process is a wrapper) the first descendant with that name."""
    if comm is None or proc_status(root).get("Name") == comm:
        return root
    todo = children(root)
    while todo:
        p = todo.pop(0)
        if proc_status(p).get("Name") == comm:
            return p
        todo += children(p)
    return root


def rss_now(pid: int) -> dict[str, int | None]:
    st = proc_status(pid)
    return {"rss_kib": kib(st, "VmRSS"), "hwm_kib": kib(st, "VmHWM")}


# --------------------------------------------------------------------------- stdio transport


class Spawned:
    def __init__(self, proc: anyio.abc.Process, t_spawn: float):
        self.proc = proc
        self.pid = proc.pid
        self.t_spawn = t_spawn


@asynccontextmanager
async def stdio_server(argv: list[str], env: dict[str, str], stderr_path: Path):
    """Spawns `argv` in its own process group and yields (read_stream, write_stream, Spawned)
    for mcp.ClientSession. Newline-delimited JSON-RPC, as the MCP stdio transport defines."""
    errf = open(stderr_path, "ab")
    t_spawn = time.perf_counter()
    proc = await anyio.open_process(argv, env=env, stderr=errf, start_new_session=True)
    r_send, r_recv = anyio.create_memory_object_stream[SessionMessage | Exception](16)
    w_send, w_recv = anyio.create_memory_object_stream[SessionMessage](16)

    async def pump_out() -> None:
        parts: list[bytes] = []
        async with r_send:
            try:
                async for chunk in proc.stdout:
                    while chunk:
                        nl = chunk.find(b"\n")
                        if nl < 0:
                            parts.append(chunk)
                            break
                        parts.append(chunk[:nl])
                        chunk = chunk[nl + 1 :]
                        line = b"".join(parts)
                        parts = []
                        if not line.strip():
                            continue
                        try:
                            msg: SessionMessage | Exception = SessionMessage(
                                types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                            )
                        except ValueError as exc:
                            msg = exc
                        await r_send.send(msg)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, OSError):
                pass

    async def pump_in() -> None:
        async with w_recv:
            try:
                async for sm in w_recv:
                    data = sm.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                    await proc.stdin.send(data.encode())
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                pass

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump_out)
            tg.start_soon(pump_in)
            try:
                yield r_recv, w_send, Spawned(proc, t_spawn)
            finally:
                with anyio.CancelScope(shield=True):
                    await stop_process(proc)
                tg.cancel_scope.cancel()
    finally:
        errf.close()


async def stop_process(proc: anyio.abc.Process) -> None:
    """Close stdin, give the server 2 s to exit, then SIGTERM / SIGKILL its process group."""
    try:
        await proc.stdin.aclose()
    except Exception:
        pass
    for sig, grace in ((None, 2.0), (signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
        if sig is not None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
        with anyio.move_on_after(grace):
            while proc.returncode is None:
                await anyio.sleep(0.01)
        if proc.returncode is not None:
            break
    # stray children (e.g. a kubectl spawned by the Node server) share the group
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------- measurements


def text_of(result: types.CallToolResult) -> tuple[str, int, int]:
    """(concatenated text, bytes of text items, number of non-text items)."""
    texts: list[str] = []
    other = 0
    for item in result.content:
        if isinstance(item, types.TextContent):
            texts.append(item.text)
        else:
            other += 1
    joined = "\n".join(texts)
    return joined, sum(len(t.encode()) for t in texts), other


def pick_tool(offered: list[str], wanted: list[str]) -> str | None:
    for w in wanted:
        if w in offered:
            return w
    return None


def med(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 1) if xs else None


async def measure_start(spec: dict[str, Any], env: dict[str, str], logdir: Path) -> float:
    async with stdio_server(spec["argv"], env | spec["env"], logdir / f"{spec['id']}.stderr.log") as (r, w, sp):
        async with ClientSession(r, w, read_timeout_seconds=INIT_TIMEOUT_S) as s:
            await s.initialize()
            return (time.perf_counter() - sp.t_spawn) * 1000.0


async def measure_session(
    spec: dict[str, Any], env: dict[str, str], logdir: Path, runs: int, crash_names: list[str], all_names: list[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with stdio_server(spec["argv"], env | spec["env"], logdir / f"{spec['id']}.stderr.log") as (r, w, sp):
        async with ClientSession(r, w, read_timeout_seconds=CALL_TIMEOUT_S) as s:
            init = await s.initialize()
            out["server_info"] = {"name": init.server_info.name, "version": init.server_info.version}
            out["protocol_version"] = init.protocol_version
            await anyio.sleep(IDLE_SETTLE_S)
            pid = server_pid(sp.pid, spec["rss_comm"])
            out["rss_pid_comm"] = proc_status(pid).get("Name")
            idle = rss_now(pid)
            out["rss_idle_kib"] = idle["rss_kib"]

            tools = await s.list_tools()
            offered = [t.name for t in tools.tools]
            out["tools_offered"] = len(offered)
            out["tools_list_bytes"] = len(
                json.dumps([t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in tools.tools]).encode()
            )
            # What a client passes on to the model (Anthropic/OpenAI tool definitions carry only
            # name, description and input schema; outputSchema and annotations stay in the client).
            out["tools_model_bytes"] = len(
                json.dumps(
                    [{"name": t.name, "description": t.description or "", "input_schema": t.input_schema} for t in tools.tools]
                ).encode()
            )
            tool = pick_tool(offered, spec["tool"])
            if tool is None:
                raise RuntimeError(f"none of the tools {spec['tool']} is offered; tools/list: {sorted(offered)}")
            out["tool"] = tool
            out["arguments"] = spec["args"]

            async def call() -> tuple[float, types.CallToolResult]:
                # tools/call through the session, without the SDK's output-schema check (done once
                # below and reported as `schema_ok`), so that a non-conforming result is still measured.
                req = types.CallToolRequest(params=types.CallToolRequestParams(name=tool, arguments=spec["args"]))
                t0 = time.perf_counter()
                res = await s.send_request(req, types.CallToolResult)
                return (time.perf_counter() - t0) * 1000.0, res

            warm_ms, res = await call()
            out["warmup_ms"] = round(warm_ms, 1)
            lat: list[float] = []
            sizes: list[int] = []
            for _ in range(runs):
                ms, res = await call()
                lat.append(ms)
                sizes.append(text_of(res)[1])
            after = rss_now(pid)
            text, nbytes, other = text_of(res)
            out["has_output_schema"] = any(t.name == tool and t.output_schema for t in tools.tools)
            try:
                await s.validate_tool_result(tool, res)  # what mcp.ClientSession.call_tool enforces
                out["schema_ok"] = True
            except RuntimeError as exc:
                out["schema_ok"] = False
                out["schema_error"] = str(exc)[:2000]
            out["list_ms_all"] = [round(x, 1) for x in lat]
            out["list_ms"] = med(lat)
            out["list_is_error"] = bool(res.is_error)
            out["output_bytes"] = nbytes
            out["output_bytes_all"] = sizes
            out["output_non_text_items"] = other
            out["structured_content_bytes"] = (
                len(json.dumps(res.structured_content).encode()) if res.structured_content is not None else 0
            )
            out["output_lines"] = text.count("\n") + (1 if text else 0)
            out["crash_named"] = sum(1 for n in crash_names if n in text)
            out["crash_total"] = len(crash_names)
            out["pods_named"] = sum(1 for n in all_names if n in text)
            out["pods_total"] = len(all_names)
            out["rss_after_kib"] = after["rss_kib"]
            out["rss_peak_kib"] = after["hwm_kib"]
            out["output_head"] = text[:600]
            (logdir / f"{spec['id']}.output.txt").write_text(text)
            out["extra"] = []
            for name, arguments in spec.get("extra", []):
                req = types.CallToolRequest(params=types.CallToolRequestParams(name=name, arguments=arguments))
                await s.send_request(req, types.CallToolResult)  # warm-up
                xs: list[float] = []
                for _ in range(runs):
                    t0 = time.perf_counter()
                    res = await s.send_request(req, types.CallToolResult)
                    xs.append((time.perf_counter() - t0) * 1000.0)
                xtext, xbytes, _ = text_of(res)
                (logdir / f"{spec['id']}.{name}.txt").write_text(xtext)
                out["extra"].append({
                    "tool": name,
                    "arguments": arguments,
                    "ms": med(xs),
                    "bytes": xbytes,
                    "is_error": bool(res.is_error),
                    "workloads_named": sorted(w for w in CRASH_WORKLOADS if w in xtext),
                    "crash_named": sum(1 for n in crash_names if n in xtext),
                    "text": xtext,
                })
    return out


# --------------------------------------------------------------------------- cluster facts


def kubectl_json(kubeconfig: str, *args: str) -> Any:
    p = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, *args, "-o", "json"], capture_output=True, text=True, timeout=120
    )
    if p.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {p.stderr.strip()}")
    return json.loads(p.stdout)


def cluster_facts(kubeconfig: str, namespace: str) -> dict[str, Any]:
    pods = kubectl_json(kubeconfig, "-n", namespace, "get", "pods")["items"]
    crash: list[str] = []
    crash_restarting = 0
    phases: dict[str, int] = {}
    for p in pods:
        phases[p["status"].get("phase", "?")] = phases.get(p["status"].get("phase", "?"), 0) + 1
        if p["metadata"].get("labels", {}).get("app") == "crash":
            crash.append(p["metadata"]["name"])
            if any(c.get("restartCount", 0) > 0 for c in p["status"].get("containerStatuses") or []):
                crash_restarting += 1
    ver = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, "version", "-o", "json"], capture_output=True, text=True, timeout=60
    )
    try:
        server_version = json.loads(ver.stdout)["serverVersion"]["gitVersion"]
    except (ValueError, KeyError):
        server_version = "?"
    nodes = kubectl_json(kubeconfig, "get", "nodes")["items"]
    return {
        "namespace": namespace,
        "pods": len(pods),
        "pod_names": sorted(p["metadata"]["name"] for p in pods),
        "phases": phases,
        "crash_pods": sorted(crash),
        "crash_pods_restarting": crash_restarting,
        "nodes": len(nodes),
        "kubernetes": server_version,
    }


# --------------------------------------------------------------------------- report


def mib(k: int | None) -> str:
    return "–" if k is None else f"{k / 1024:.1f}"


def fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.1f}{unit}"
    if isinstance(v, int):
        return f"{v:,}{unit}"
    return str(v)


def markdown(report: dict[str, Any]) -> str:
    c = report["cluster"]
    lines = [
        f"### MCP servers on {c['pods']:,} pods ({len(c['crash_pods'])} crash-looping), "
        f"Kubernetes {c['kubernetes']} sandbox, {c['nodes']} simulated nodes — {report['started_at']}",
        "",
        "| server | version | tool | start→initialized ms | list pods ms | output bytes | crash pods named | "
        "pods named | RSS idle MiB | RSS after MiB | peak RSS MiB | output schema | tools (defs bytes) |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|:-:|--:|",
    ]
    notes: list[str] = []
    for s in report["servers"]:
        if s["status"] != "ok":
            lines.append(f"| {s['label']} | – | – | {s['status']} (see below) | – | – | – | – | – | – | – | – | – |")
            notes.append(f"- {s['label']} {s['status']}: {s.get('reason', '')}")
            continue
        lines.append(
            "| {label} | {ver} | `{tool}` | {st} | {lm} | {ob} | {cn}/{ct} | {pn}/{pt} | {ri} | {ra} | {rp} | {sc} | {nt} ({tb}; {tm} to the model) |".format(
                label=s["label"],
                ver=s["server_info"]["version"],
                tool=s["tool"],
                st=fmt(s["start_to_init_ms"]),
                lm=fmt(s["list_ms"]) + (" (error)" if s.get("list_is_error") else ""),
                ob=fmt(s["output_bytes"]),
                cn=s["crash_named"],
                ct=s["crash_total"],
                pn=s["pods_named"],
                pt=s["pods_total"],
                ri=mib(s["rss_idle_kib"]),
                ra=mib(s["rss_after_kib"]),
                rp=mib(s["rss_peak_kib"]),
                nt=s["tools_offered"],
                tb=fmt(s["tools_list_bytes"]),
                tm=fmt(s.get("tools_model_bytes")),
                sc=("valid" if s["schema_ok"] else "INVALID (see below)") if s["has_output_schema"] else "none",
            )
        )
        if s.get("schema_ok") is False:
            notes.append(f"- {s['label']}: structuredContent does not match the tool's outputSchema, so "
                         f"mcp.ClientSession.call_tool raises: {s['schema_error'].splitlines()[0]}")
    if notes:
        lines += [""] + notes
    for s in report["servers"]:
        if s["status"] == "ok" and s.get("extra"):
            lines += [
                "",
                f"Diagnosis of the same namespace by {s['label']} (the peers have no such tool; their closest "
                "answer is the pod listing above):",
                "",
                "| tool | ms | output bytes | crash-looping workloads named | crash pods named |",
                "|---|--:|--:|--:|--:|",
            ]
            for x in s["extra"]:
                lines.append(
                    f"| `{x['tool']}` | {fmt(x['ms'])} | {fmt(x['bytes'])}{' (error)' if x['is_error'] else ''} | "
                    f"{len(x['workloads_named'])}/{len(CRASH_WORKLOADS)} | {x['crash_named']}/{len(c['crash_pods'])} |"
                )
            diag = next((x for x in s["extra"] if x["tool"] == "diagnose"), None)
            if diag:
                lines += ["", "The diagnose text as the model reads it:", "", "```", diag["text"].rstrip(), "```"]
    ok = [s for s in report["servers"] if s["status"] == "ok"]
    base = next((s for s in ok if s["id"] == "aiops-mcp"), None)
    if base and len(ok) > 1:
        lines += [
            "",
            "Ratios to aiops-mcp within this run (peer ÷ ours; > 1 means ours is smaller/faster):",
            "",
            "| server | start | list latency | output bytes | RSS after |",
            "|---|--:|--:|--:|--:|",
        ]

        def ratio(a: Any, b: Any) -> str:
            return f"{a / b:.2f}×" if a and b else "–"

        for s in ok:
            if s is base:
                continue
            lines.append(
                f"| {s['label']} | {ratio(s['start_to_init_ms'], base['start_to_init_ms'])} | "
                f"{ratio(s['list_ms'], base['list_ms'])} | {ratio(s['output_bytes'], base['output_bytes'])} | "
                f"{ratio(s['rss_after_kib'], base['rss_after_kib'])} |"
            )
    lines += [
        "",
        f"Medians of {report['runs']} runs (list: after 1 warm-up call). Output bytes = text content the model reads; "
        "tools (defs bytes) = tools offered and the JSON size of their definitions from tools/list; 'to the model' = "
        "the part clients pass to a model with every prompt (name, description, inputSchema). "
        "RSS = VmRSS of the server process (the node process for mcp-server-kubernetes; its kubectl children are "
        "not counted). Shared 2-core machine: compare ratios within one run, not absolute numbers across runs.",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


async def run(args: argparse.Namespace) -> int:
    kubeconfig = args.kubeconfig or os.environ.get("KUBECONFIG")
    if not kubeconfig or not Path(kubeconfig).is_file():
        print(f"bench.py: no kubeconfig (got {kubeconfig!r}); run bench/run or pass --kubeconfig", file=sys.stderr)
        return 2
    kubeconfig = str(Path(kubeconfig).resolve())
    env = dict(os.environ)
    env["KUBECONFIG"] = kubeconfig

    facts = cluster_facts(kubeconfig, args.namespace)
    print(
        f"[bench] cluster: {facts['pods']} pods in {args.namespace} {facts['phases']}, "
        f"{len(facts['crash_pods'])} crash pods ({facts['crash_pods_restarting']} restarting), "
        f"{facts['nodes']} nodes, {facts['kubernetes']}",
        file=sys.stderr,
    )
    logdir = RESULTS / "logs"
    logdir.mkdir(parents=True, exist_ok=True)

    specs = server_specs(kubeconfig, args.namespace)
    if args.only:
        keep = set(args.only.split(","))
        specs = [s for s in specs if s["id"] in keep]
    results: list[dict[str, Any]] = []
    live: list[dict[str, Any]] = []
    for spec in specs:
        r: dict[str, Any] = {"id": spec["id"], "label": spec["label"], "argv": spec["argv"]}
        missing = [str(p) for p in spec["needs"] if not Path(p).exists()]
        if missing:
            r["status"] = "skipped"
            r["reason"] = f"not installed ({', '.join(missing)} missing); {spec['missing_hint']}"
            print(f"[bench] SKIP {spec['label']}: {r['reason']}", file=sys.stderr)
        else:
            r["status"] = "ok"
            live.append(spec)
            (logdir / f"{spec['id']}.stderr.log").write_bytes(b"")
        results.append(r)
    by_id = {r["id"]: r for r in results}

    def fail(spec: dict[str, Any], what: str, exc: BaseException) -> None:
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]  # anyio task groups wrap the real error
        r = by_id[spec["id"]]
        r["status"] = "failed"
        r["reason"] = f"{what}: {type(exc).__name__}: {exc}".replace("\n", " ").replace("|", "/")[:400]
        print(f"[bench] FAIL {spec['label']}: {r['reason']} (stderr: {logdir / (spec['id'] + '.stderr.log')})",
              file=sys.stderr)

    # (a) cold start, interleaved round-robin so that machine noise spreads over all servers
    starts: dict[str, list[float]] = {s["id"]: [] for s in live}
    for i in range(args.runs):
        for spec in live:
            if by_id[spec["id"]]["status"] != "ok":
                continue
            try:
                ms = await measure_start(spec, env, logdir)
                starts[spec["id"]].append(ms)
                print(f"[bench] start {i + 1}/{args.runs} {spec['id']}: {ms:.1f} ms", file=sys.stderr)
            except Exception as exc:  # noqa: BLE001
                fail(spec, "initialize", exc)
    for spec in live:
        by_id[spec["id"]]["start_to_init_ms_all"] = [round(x, 1) for x in starts[spec["id"]]]
        by_id[spec["id"]]["start_to_init_ms"] = med(starts[spec["id"]])

    # (b)-(e) one session per server, one server at a time
    for spec in live:
        if by_id[spec["id"]]["status"] != "ok":
            continue
        print(f"[bench] listing pods with {spec['id']} ...", file=sys.stderr)
        try:
            by_id[spec["id"]].update(
                await measure_session(spec, env, logdir, args.runs, facts["crash_pods"], facts["pod_names"])
            )
            s = by_id[spec["id"]]
            print(
                f"[bench]   {s['tool']}: {s['list_ms']} ms, {s['output_bytes']} B, "
                f"crash named {s['crash_named']}/{s['crash_total']}",
                file=sys.stderr,
            )
        except Exception as exc:  # noqa: BLE001
            fail(spec, "list pods", exc)

    report = {
        "started_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "runs": args.runs,
        "host": {"nproc": os.cpu_count(), "machine": platform.machine(), "loadavg": os.getloadavg()},
        "git": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip(),
        "cluster": {k: v for k, v in facts.items() if k != "pod_names"},
        "servers": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    out.write_text(json.dumps(report, indent=2) + "\n")
    md = markdown(report)
    (out.with_suffix(".md")).write_text(md + "\n")
    print(md)
    print(f"\n[bench] wrote {out} and {out.with_suffix('.md')}", file=sys.stderr)
    return 0 if any(s["status"] == "ok" for s in results) else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kubeconfig", help="default: $KUBECONFIG")
    ap.add_argument("--namespace", default="bench")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", help="comma-separated server ids (aiops-mcp,kubernetes-mcp-server,mcp-server-kubernetes)")
    ap.add_argument("--out", default=str(RESULTS / "latest.json"))
    args = ap.parse_args()
    return anyio.run(run, args)


if __name__ == "__main__":
    sys.exit(main())
