"""Start→initialize of an MCP stdio server measured with a raw JSON-RPC line (no SDK overhead).

usage: bench/start_raw.py [runs] -- <server command…>   (KUBECONFIG from the environment)
e.g.   bench/start_raw.py 15 -- target/release/aiops-mcp serve
"""
import json
import os
import statistics
import subprocess
import sys
import time

args = sys.argv[1:]
runs = int(args[0]) if args and args[0] != "--" else 15
cmd = args[args.index("--") + 1:] if "--" in args else ["target/release/aiops-mcp", "serve"]
init = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "start-raw", "version": "1"}}}) + "\n"
times = []
for _ in range(runs):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=dict(os.environ))
    p.stdin.write(init.encode())
    p.stdin.flush()
    line = p.stdout.readline()
    times.append((time.perf_counter() - t0) * 1000)
    p.kill()
    p.wait()
    if b'"result"' not in line:
        sys.exit(f"no initialize result from {cmd}: {line[:200]!r}")
print(json.dumps({"command": " ".join(cmd), "runs": runs, "median_ms": round(statistics.median(times), 1), "min_ms": round(min(times), 1)}))
