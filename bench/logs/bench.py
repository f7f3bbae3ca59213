#!/usr/bin/env python3
"""Template mining on loghub-2k: aiops-mcp's miner (through its CLI) next to PyPI drain3.

For each system: Grouping Accuracy (GA) of both on the 2,000 labelled lines, and lines/second of
both on the same larger input (the 2,000 lines repeated). Writes a markdown table to stdout and
to bench/logs/results.md. See bench/logs/README.md.
"""

import argparse
import csv
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SYSTEMS = ["HDFS", "Hadoop", "Spark", "Zookeeper", "BGL", "HPC", "Linux", "Apache"]


def grouping_accuracy(pred, truth):
    """GA (Zhu et al. 2019): a line is correct iff its predicted group equals its true group."""
    assert len(pred) == len(truth)
    truth_size = Counter(truth)
    groups = defaultdict(list)
    for p, t in zip(pred, truth):
        groups[p].append(t)
    correct = 0
    for members in groups.values():
        if len(set(members)) == 1 and truth_size[members[0]] == len(members):
            correct += len(members)
    return correct / len(pred) if pred else 1.0


def format_regex(log_format):
    """The loghub log-format regex: <Field> → lazy named group, spaces → \\s+."""
    parts = re.split(r"(<[^<>]+>)", log_format)
    out = ""
    for i, part in enumerate(parts):
        if i % 2 == 0:
            out += re.sub(" +", r"\\s+", part)
        else:
            out += "(?P<%s>.*?)" % part.strip("<>")
    return re.compile("^" + out + "$")


def contents(lines, log_format):
    rx = format_regex(log_format)
    out = []
    for line in lines:
        m = rx.match(line)
        out.append(m.group("Content") if m else line)
    return out


def read_truth(path):
    with open(path, newline="", encoding="utf-8") as f:
        return [row["EventId"] for row in csv.DictReader(f)]


def make_drain3(masks):
    from drain3 import TemplateMiner
    from drain3.masking import MaskingInstruction
    from drain3.template_miner_config import TemplateMinerConfig

    cfg = TemplateMinerConfig()  # drain3's defaults (sim_th 0.4, depth 4, …)
    cfg.masking_instructions = [MaskingInstruction(m, "*") for m in masks]
    cfg.profiling_enabled = False
    return TemplateMiner(config=cfg)


def run_drain3(content_lines, masks):
    tm = make_drain3(masks)
    ids = []
    c0 = time.process_time()
    t0 = time.perf_counter()
    for c in content_lines:
        ids.append(tm.add_log_message(c)["cluster_id"])
    return ids, time.perf_counter() - t0, time.process_time() - c0


def ours_available(binary):
    if not os.path.exists(binary):
        return f"{binary} not found (build it: cargo build --release)"
    try:
        p = subprocess.run(
            [binary, "logs", "mine"], input=b"hello world 1\n", capture_output=True, timeout=60
        )
    except OSError as e:
        return f"{binary} does not run: {e}"
    if p.returncode != 0 or not p.stdout.startswith(b"LineId,EventId,Template"):
        err = p.stderr.decode(errors="replace").strip().splitlines()
        return "`aiops-mcp logs mine` is not available in this build" + (
            f" ({err[-1]})" if err else ""
        )
    return None


def run_ours(binary, log_format, path):
    """Runs the CLI on a file; returns (EventId per line, wall and CPU seconds of the process)."""
    import resource

    with open(path, "rb") as inp, tempfile.TemporaryFile() as out:
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        p = subprocess.run(
            [binary, "logs", "mine", "--format", log_format], stdin=inp, stdout=out, stderr=subprocess.PIPE
        )
        dt = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
        if p.returncode != 0:
            raise RuntimeError(p.stderr.decode(errors="replace"))
        out.seek(0)
        rows = list(csv.reader(io.TextIOWrapper(out, encoding="utf-8", newline="")))
    assert rows[0] == ["LineId", "EventId", "Template"], rows[0]
    return [r[1] for r in rows[1:]], dt, cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data", "loghub-2k"))
    ap.add_argument("--bin", default=os.environ.get("AIOPS_MCP_BIN", os.path.join(REPO, "target", "release", "aiops-mcp")))
    ap.add_argument("--lines", type=int, default=200_000, help="lines of the speed input (2k lines repeated)")
    ap.add_argument("--only", default="", help="comma-separated systems")
    ap.add_argument("--runs", type=int, default=3, help="speed runs per tool and system (best is kept)")
    ap.add_argument("--out", default=os.path.join(HERE, "results.md"))
    args = ap.parse_args()

    settings_path = os.path.join(args.data, "drain_benchmark_settings.json")
    if not os.path.exists(settings_path):
        sys.exit(f"loghub-2k data not found at {args.data} (pass --data)")
    with open(settings_path) as f:
        settings = json.load(f)["systems"]
    systems = [s for s in SYSTEMS if not args.only or s in args.only.split(",")]

    skip = ours_available(args.bin)
    if skip:
        print(f"[logs-bench] skipping aiops-mcp: {skip}", file=sys.stderr)

    import drain3  # noqa: F401  (fail early when the venv is missing it)

    rows = []
    tmpdir = tempfile.mkdtemp(prefix="logs-bench-")
    for s in systems:
        st = settings[s]
        raw_path = os.path.join(args.data, s, f"{s}_2k.log")
        with open(raw_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        truth = read_truth(os.path.join(args.data, s, f"{s}_2k.log_structured.csv"))
        content = contents(lines, st["log_format"])

        d_ids = run_drain3(content, st["regex"])[0]
        ga_d = grouping_accuracy(d_ids, truth)

        reps = -(-args.lines // len(lines))
        big_lines = lines * reps
        big_path = os.path.join(tmpdir, f"{s}_big.log")
        with open(big_path, "w", encoding="utf-8") as f:
            f.write("\n".join(big_lines) + "\n")
        t0 = time.perf_counter()
        big_content = contents(big_lines, st["log_format"])
        parse_s = time.perf_counter() - t0
        d_runs = [run_drain3(big_content, st["regex"]) for _ in range(args.runs)]
        d_s = min(r[1] for r in d_runs)
        d_cpu = min(r[2] for r in d_runs)
        n = len(big_lines)
        d_lps = n / d_s
        d_lps_all = n / (d_s + parse_s)

        if skip:
            ga_o = o_lps = o_cpu_lps = None
        else:
            o_ids = run_ours(args.bin, st["log_format"], raw_path)[0]
            ga_o = grouping_accuracy(o_ids, truth)
            o_s = o_cpu = None
            for _ in range(args.runs):
                o_ids_big, t, c = run_ours(args.bin, st["log_format"], big_path)
                assert len(o_ids_big) == n
                o_s = t if o_s is None else min(o_s, t)
                o_cpu = c if o_cpu is None else min(o_cpu, c)
            o_lps = n / o_s
            o_cpu_lps = n / max(o_cpu, 1e-9)
        os.remove(big_path)
        rows.append((s, ga_o, ga_d, o_lps, d_lps, d_lps_all, n, o_cpu_lps, n / max(d_cpu, 1e-9)))
        print(f"[logs-bench] {s}: done", file=sys.stderr)
    os.rmdir(tmpdir)

    def f3(x):
        return "—" if x is None else f"{x:.3f}"

    def fk(x):
        return "—" if x is None else f"{x:,.0f}"

    out = []
    out.append("| system | GA ours | GA drain3 | lines/s ours (CLI, end to end) | lines/s drain3 (in process) | ratio | ratio by CPU time | lines/s drain3 incl. format parsing |")
    out.append("|---|---|---|---|---|---|---|---|")
    for s, ga_o, ga_d, o, d, d_all, n, o_cpu, d_cpu in rows:
        ratio = "—" if o is None else f"{o / d:.1f}×"
        cratio = "—" if o_cpu is None else f"{o_cpu / d_cpu:.1f}×"
        out.append(f"| {s} | {f3(ga_o)} | {f3(ga_d)} | {fk(o)} | {fk(d)} | {ratio} | {cratio} | {fk(d_all)} |")
    k = len(rows)
    avg_o = None if skip else sum(r[1] for r in rows) / k
    avg_d = sum(r[2] for r in rows) / k
    if skip:
        out.append(f"| **average** | — | {avg_d:.3f} | — | — | — | — | — |")
    else:
        ratios = [r[3] / r[4] for r in rows]
        cratios = [r[7] / r[8] for r in rows]
        out.append(
            f"| **average** | {avg_o:.3f} | {avg_d:.3f} | | | min {min(ratios):.1f}× | min {min(cratios):.1f}× | |"
        )
    import platform

    import drain3 as d3mod

    d3ver = getattr(d3mod, "__version__", None)
    if d3ver is None:
        try:
            from importlib.metadata import version

            d3ver = version("drain3")
        except Exception:  # noqa: BLE001
            d3ver = "?"
    meta = (
        f"\nInput for speed: each system's 2,000 lines repeated to {rows[0][6]:,} lines; single thread; "
        f"best of {args.runs} runs for each tool. "
        f"Ours: `aiops-mcp logs mine --format F` as a process (start-up, reading, format parsing, mining, CSV out). "
        f"drain3 {d3ver} (default config + the system's masking regexes from drain_benchmark_settings.json), "
        f"timed in process on the already extracted Content (the last column adds the Python format parsing). "
        f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average before the run {os.getloadavg()[0]:.1f}. Binary: `{os.path.relpath(args.bin, REPO)}`."
    )
    if skip:
        meta += f"\n\naiops-mcp skipped: {skip}."
    table = "\n".join(out) + "\n" + meta + "\n"
    print(table)
    with open(args.out, "w") as f:
        f.write("# Template mining on loghub-2k: aiops-mcp vs drain3\n\n" + table)


if __name__ == "__main__":
    main()
