#!/usr/bin/env python3
"""A small CLI around real Helm (the Go engine bundled by PyPI `helm-sdkpy`).

Every subcommand prints exactly ONE JSON object on stdout; on failure that object
is {"error": "...", "type": "..."} and the exit code is 1. `lint` also exits 1
when it answers "ok": false (like `helm lint`). The cluster comes from
the KUBECONFIG environment variable.

    helm_driver.py lint <chart_dir> [--values FILE]
    helm_driver.py template <chart_dir> --release R --namespace N [--values FILE]
    helm_driver.py install <chart_dir> --release R --namespace N [--values FILE] [--create-namespace] [--wait] [--timeout S]
    helm_driver.py upgrade <chart_dir> --release R --namespace N [--values FILE] [--wait] [--timeout S]
    helm_driver.py list [--namespace N | --all]
    helm_driver.py history R --namespace N
    helm_driver.py rollback R <revision> --namespace N
    helm_driver.py uninstall R --namespace N [--wait] [--timeout S]

What helm-sdkpy 0.1.32 offers and what this driver does about its gaps:

* No YAML parser ships in this venv and helm-sdkpy takes values as a dict, so a
  values file is parsed by Helm itself: a scratch chart carries it as a plain
  file and its only template `fail`s with `.Files.Get … | fromYaml | toJson`; in
  lint mode Helm logs a failing `fail` on stderr instead of erroring, and the
  driver reads it there. `key: null` survives, so it deletes a chart default
  as with `helm -f`.
* There is no `template`/dry-run action. `template` renders client side with
  Helm's engine through `Lint`: a scratch copy of the chart gets one extra
  template that `include`s every template file with a release context of the
  requested name/namespace and `fail`s with the base64 of each result, which
  Helm's lint mode logs to stderr. Output mode is reported as "lint-render".
  Lint-mode differences from `helm template`: Capabilities are Helm's defaults
  (not the cluster's), `lookup` returns nothing; `required`/`fail` in the chart
  itself are turned back into errors by the driver. Subcharts are refused.
* `Lint` takes no values: with --values the driver lints a scratch copy whose
  values.yaml is the chart's values with the file coalesced over them (as Helm
  does: maps merge, null deletes a key), written as JSON.
* Lint messages arrive as JSON of Go error values, which mostly serialise as
  `{}`: the text is given where Helm exposes it, else null. Helm's own stderr
  log lines during lint are added as severity "LOG"; when Helm flags
  values.yaml, the driver explains with jsonschema (severity "DETAIL").
* `list` in helm-sdkpy covers one namespace; `--all` asks kubectl for the
  namespaces and lists each.
* `Rollback` in helm-sdkpy 0.1.32 never sets Helm v4's wait strategy: Helm
  applies the target revision's objects, then fails with "unable to get waiter:
  wait strategy not set", leaving the new revision `pending-rollback`. In that
  exact case (and only for releases without hooks) the driver finishes what
  Helm's rollback does after waiting: the new revision becomes `deployed`, the
  previously deployed ones `superseded` (Secrets rewritten with kubectl, in
  Helm's encoding). The output then says "finalized_by_driver": true.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import copy
import gzip
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

# Keep stdout for the one JSON answer: anything the Go library or Python prints
# while working goes to stderr.
_OUT = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)

import helm_sdkpy as helm  # noqa: E402  (after the stdout guard on purpose)

SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")

# Helm's install order (releaseutil.InstallOrder), used to sort `template` output
# the way `helm template` prints it.
INSTALL_ORDER = [
    "PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
    "PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
    "ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
    "CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
    "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList",
    "Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
    "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
    "APIService", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
]


class DriverError(Exception):
    pass


class ArgParser(argparse.ArgumentParser):
    """Usage errors are failures like any other: one JSON object, exit code 1."""

    def error(self, message: str):
        raise DriverError(f"usage: {message}")


# ------------------------------------------------------------------ helpers


def run(coro):
    return asyncio.run(coro)


def config(namespace: str) -> helm.Configuration:
    # kubeconfig=None: Helm reads $KUBECONFIG (or ~/.kube/config) itself.
    return helm.Configuration(namespace=namespace)


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Capture fd 2 (where the Go library logs) into a list of lines."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode("utf-8", "replace").splitlines())


def lint_raw(chart_dir: str) -> tuple[dict[str, Any], list[str]]:
    with captured_stderr() as log:
        result = run(helm.Lint(config("default")).run(chart_dir))
    return result, log


def chart_name(chart_dir: str) -> str:
    text = run(helm.Show(config("default")).chart(chart_dir))
    m = re.search(r"^name:\s*(.+?)\s*$", text, re.M)
    if not m:
        raise DriverError(f"no name in {chart_dir}/Chart.yaml")
    return m.group(1).strip("'\"")


def load_yaml_with_helm(path: str) -> Any:
    """Parse a YAML (or JSON) values file into Python objects, using Helm's parser."""
    text = Path(path).read_text()
    try:
        return json.loads(text)
    except ValueError:
        pass
    marker = "HELMDRV" + secrets.token_hex(6)
    with tempfile.TemporaryDirectory(prefix="helm-driver-yaml-") as tmp:
        c = Path(tmp) / "helm-driver-yaml"
        (c / "templates").mkdir(parents=True)
        (c / "Chart.yaml").write_text("apiVersion: v2\nname: helm-driver-yaml\nversion: 0.0.0\n")
        # Read as a plain file with fromYaml (not as values.yaml: Helm's values
        # loading would drop `key: null` entries, which -f uses to delete defaults).
        (c / "data.yaml").write_text(text)
        (c / "templates" / "dump.yaml").write_text(
            '{{- $d := .Files.Get "data.yaml" | fromYaml -}}\n'
            '{{- fail (printf "%s:%s" "' + marker + '" (toJson $d | b64enc)) -}}\n'
        )
        _, log = lint_raw(str(c))
    m = re.search(marker + r":([A-Za-z0-9+/=]*)", "\n".join(log))
    if not m:
        raise DriverError(f"{path}: Helm could not read it")
    data = json.loads(base64.b64decode(m.group(1)) or b"null")
    # fromYaml reports a parse error as {"Error": "..."}.
    if isinstance(data, dict) and list(data) == ["Error"] and "yaml" in str(data["Error"]).lower():
        raise DriverError(f"{path}: not valid YAML: {data['Error']}")
    return data


def values_arg(path: str | None) -> dict[str, Any] | None:
    if not path:
        return None
    vals = load_yaml_with_helm(path)
    if vals is None:
        return {}
    if not isinstance(vals, dict):
        raise DriverError(f"{path}: values must be a map")
    return vals


def coalesce(base: Any, over: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge of user values over chart defaults: maps merge, null deletes."""
    out = copy.deepcopy(base) if isinstance(base, dict) else {}
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = coalesce(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


@contextlib.contextmanager
def scratch_chart(chart_dir: str, values_file: str | None) -> Iterator[Path]:
    """A copy of the chart, with --values coalesced into its values.yaml."""
    src = Path(chart_dir)
    if not (src / "Chart.yaml").is_file():
        raise DriverError(f"{chart_dir}: no Chart.yaml")
    with tempfile.TemporaryDirectory(prefix="helm-driver-chart-") as tmp:
        dst = Path(tmp) / src.resolve().name
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".git"))
        if values_file:
            over = values_arg(values_file) or {}
            defaults = {}
            if (dst / "values.yaml").is_file():
                defaults = load_yaml_with_helm(str(dst / "values.yaml")) or {}
            (dst / "values.yaml").write_text(json.dumps(coalesce(defaults, over), indent=1) + "\n")
        yield dst


def lint_messages(result: dict[str, Any], log: list[str]) -> list[dict[str, Any]]:
    msgs = []
    for m in result.get("Messages") or []:
        err = m.get("Err")
        msgs.append({
            "severity": SEVERITY.get(m.get("Severity"), str(m.get("Severity"))),
            "path": m.get("Path"),
            # Go error values mostly serialise as {}: Helm's text is not exposed.
            "message": err if isinstance(err, str) else None,
        })
    for line in log:
        if line.strip():
            msgs.append({"severity": "LOG", "path": None, "message": line})
    return msgs


def release_row(r: dict[str, Any]) -> dict[str, Any]:
    meta = (r.get("chart") or {}).get("metadata") or {}
    info = r.get("info") or {}
    return {
        "name": r.get("name"),
        "namespace": r.get("namespace"),
        "revision": r.get("version"),
        "status": info.get("status"),
        "chart": f"{meta.get('name')}-{meta.get('version')}",
        "app_version": meta.get("appVersion", ""),
        "updated": info.get("last_deployed"),
        "description": info.get("description"),
    }


def kubectl(*args: str, stdin: str | None = None) -> str:
    exe = os.environ.get("KUBECTL", "kubectl")
    p = subprocess.run([exe, *args], input=stdin, capture_output=True, text=True)
    if p.returncode != 0:
        raise DriverError(f"kubectl {' '.join(args)}: {p.stderr.strip()}")
    return p.stdout


def check_name(kind: str, value: str) -> str:
    if not NAME_RE.match(value):
        raise DriverError(f"invalid {kind} {value!r}")
    return value


# ------------------------------------------------------------------ subcommands


def schema_messages(chart: Path) -> list[dict[str, Any]]:
    """Helm's schema errors arrive without text: say what is wrong with jsonschema
    (present in this venv as a dependency of `mcp`). Helm's verdict stays the one
    that counts; these only explain it."""
    schema_file = chart / "values.schema.json"
    if not schema_file.is_file():
        return []
    try:
        import jsonschema
    except ImportError:
        return []
    values = {}
    if (chart / "values.yaml").is_file():
        values = load_yaml_with_helm(str(chart / "values.yaml")) or {}
    validator = jsonschema.validators.validator_for(json.loads(schema_file.read_text()))
    out = []
    for err in validator(json.loads(schema_file.read_text())).iter_errors(values):
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        out.append({"severity": "DETAIL", "path": "values.yaml",
                    "message": f"values.schema.json (checked by the driver): {where}: {err.message}"})
    return out


def cmd_lint(a) -> dict[str, Any]:
    with scratch_chart(a.chart_dir, a.values) as c:
        result, log = lint_raw(str(c))
        msgs = lint_messages(result, log)
        if any(m["severity"] == "ERROR" and m["path"] == "values.yaml" for m in msgs):
            msgs += schema_messages(c)
    ok = not any(m["severity"] == "ERROR" for m in msgs)
    return {"ok": ok, "messages": msgs}


def kind_of(doc: str) -> str:
    m = re.search(r"^kind:\s*[\"']?([A-Za-z0-9]+)", doc, re.M)
    return m.group(1) if m else ""


def cmd_template(a) -> dict[str, Any]:
    release = check_name("release name", a.release)
    namespace = check_name("namespace", a.namespace)
    marker = "HELMDRV" + secrets.token_hex(6)
    with scratch_chart(a.chart_dir, a.values) as c:
        subcharts = [p.name for p in (c / "charts").iterdir()] if (c / "charts").is_dir() else []
        if subcharts:
            raise DriverError(f"lint-render does not render subcharts ({', '.join(subcharts)})")
        name = chart_name(str(c))
        tdir = c / "templates"
        files = sorted(
            p.relative_to(tdir).as_posix()
            for p in tdir.rglob("*")
            if p.is_file() and not p.name.startswith("_") and p.name != "NOTES.txt"
        )
        render_file = f"zz-{marker}.yaml"
        ctx = (
            '{{- $rel := dict "Name" ' + json.dumps(release) + ' "Namespace" ' + json.dumps(namespace)
            + ' "IsInstall" true "IsUpgrade" false "Revision" 1 "Service" "Helm" -}}\n'
            '{{- $ctx := merge (dict "Release" $rel) . -}}\n'
        )
        body = []
        for i, f in enumerate(files):
            tname = f"{name}/templates/{f}"
            body.append(
                '{{- $_ := set $ctx "Template" (dict "Name" ' + json.dumps(tname)
                + ' "BasePath" ' + json.dumps(f"{name}/templates") + ") -}}\n"
                '{{- fail (printf "%s:%d:%s" "' + marker + '" ' + str(i)
                + " (include " + json.dumps(tname) + " $ctx | b64enc)) -}}\n"
            )
        (tdir / render_file).write_text(ctx + "".join(body))
        result, log = lint_raw(str(c))

    rendered: dict[int, str] = {}
    problems = []
    pat = re.compile(marker + r":(\d+):([A-Za-z0-9+/=]*)")
    for line in log:
        m = pat.search(line)
        if m:
            rendered.setdefault(int(m.group(1)), base64.b64decode(m.group(2)).decode("utf-8"))
        elif "missing required value" in line or "funcMap fail" in line:
            # `helm template` errors on these; lint mode only logs them.
            text = re.sub(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ", "", line)
            if text not in problems:
                problems.append(text)
    if problems:
        raise DriverError("template failed: " + " | ".join(problems))
    if len(rendered) != len(files):
        msgs = [m for m in lint_messages(result, []) if m["severity"] == "ERROR"]
        raise DriverError(
            "template failed: Helm's render stopped before all templates were rendered "
            f"(lint errors: {json.dumps(msgs)}; helm-sdkpy does not expose their text)"
        )

    docs = []
    for i, f in enumerate(files):
        source = f"{name}/templates/{f}"
        for part in re.split(r"(?m)^---[ \t]*$", rendered[i]):
            if part.strip():
                docs.append((kind_of(part), source, part.strip()))
    order = {k: n for n, k in enumerate(INSTALL_ORDER)}
    docs.sort(key=lambda d: (order.get(d[0], len(order)), d[1]))
    # Byte for byte what Helm stores as a release's manifest (checked against one).
    manifest = "".join(f"---\n# Source: {src}\n{text}\n\n" for _, src, text in docs)
    return {"mode": "lint-render", "manifest": manifest}


def cmd_install(a) -> dict[str, Any]:
    r = run(helm.Install(config(a.namespace)).run(
        a.release, a.chart_dir, values=values_arg(a.values),
        create_namespace=a.create_namespace, wait=a.wait, timeout=a.timeout,
    ))
    return {"name": r["name"], "namespace": r["namespace"], "version": r["version"],
            "status": r["info"]["status"], "description": r["info"].get("description")}


def cmd_upgrade(a) -> dict[str, Any]:
    # Like `helm upgrade` without --reuse/--reset-values: with no --values, Helm
    # reuses the previous revision's values.
    r = run(helm.Upgrade(config(a.namespace)).run(
        a.release, a.chart_dir, values=values_arg(a.values), wait=a.wait, timeout=a.timeout,
    ))
    return {"name": r["name"], "namespace": r["namespace"], "version": r["version"],
            "status": r["info"]["status"], "description": r["info"].get("description")}


def cmd_list(a) -> dict[str, Any]:
    if a.all:
        out = kubectl("get", "namespaces", "-o", "jsonpath={.items[*].metadata.name}")
        namespaces = out.split()
    else:
        namespaces = [a.namespace or ""]
    rows = []
    for ns in namespaces:
        # all=True: every status (like `helm list --all`), latest revision per release.
        rows += [release_row(r) for r in run(helm.List(config(ns)).run(all=True)) or []]
    rows.sort(key=lambda r: (r["namespace"] or "", r["name"] or ""))
    return {"releases": rows}


def cmd_history(a) -> dict[str, Any]:
    revs = run(helm.History(config(a.namespace)).run(a.release))
    rows = []
    for r in sorted(revs, key=lambda r: r.get("version", 0)):
        row = release_row(r)
        rows.append({k: row[k] for k in ("revision", "status", "chart", "app_version", "description", "updated")})
    return {"history": rows}


# -- rollback and its finishing step -------------------------------------


def decode_release(secret: dict[str, Any]) -> dict[str, Any]:
    raw = base64.b64decode(base64.b64decode(secret["data"]["release"]))
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return json.loads(raw)


def encode_release(rel: dict[str, Any]) -> str:
    inner = base64.b64encode(gzip.compress(json.dumps(rel, separators=(",", ":")).encode()))
    return base64.b64encode(inner).decode()


def write_release(secret: dict[str, Any], rel: dict[str, Any]) -> None:
    """Store `rel` in its Secret the way Helm's Secrets driver updates a record."""
    s = copy.deepcopy(secret)
    s["data"]["release"] = encode_release(rel)
    labels = {k: v for k, v in (s["metadata"].get("labels") or {}).items() if k != "createdAt"}
    labels.update({"status": rel["info"]["status"], "modifiedAt": str(int(time.time()))})
    s["metadata"]["labels"] = labels
    kubectl("replace", "-f", "-", stdin=json.dumps(s))


def finalize_rollback(namespace: str, release: str, revision: int) -> int:
    out = kubectl("get", "secrets", "-n", namespace, "-l", f"owner=helm,name={release}", "-o", "json")
    records = []
    for s in json.loads(out)["items"]:
        records.append((decode_release(s), s))
    if not records:
        raise DriverError("no release records found")
    records.sort(key=lambda x: x[0]["version"])
    target, target_secret = records[-1]
    info = target["info"]
    if info.get("status") != "pending-rollback" or info.get("description") != f"Rollback to {revision}":
        raise DriverError(f"latest revision is {info.get('status')!r} ({info.get('description')!r}), not a pending rollback to {revision}")
    if target.get("hooks"):
        raise DriverError("release has hooks; not finishing the rollback by hand")
    for rel, s in records[:-1]:
        if rel["info"].get("status") == "deployed":
            rel["info"]["status"] = "superseded"
            write_release(s, rel)
    info["status"] = "deployed"
    write_release(target_secret, target)
    return target["version"]


def cmd_rollback(a) -> dict[str, Any]:
    try:
        run(helm.Rollback(config(a.namespace)).run(a.release, a.revision))
        return {"ok": True}
    except helm.RollbackError as e:
        if "wait strategy not set" not in str(e):
            raise
        version = finalize_rollback(a.namespace, a.release, a.revision)
        return {"ok": True, "version": version, "finalized_by_driver": True,
                "helm_error": str(e)}


def cmd_uninstall(a) -> dict[str, Any]:
    run(helm.Uninstall(config(a.namespace)).run(a.release, wait=a.wait, timeout=a.timeout))
    return {"ok": True}


# ------------------------------------------------------------------ CLI


def parser() -> argparse.ArgumentParser:
    p = ArgParser(prog="helm_driver.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("lint")
    s.add_argument("chart_dir")
    s.add_argument("--values", "-f")
    s.set_defaults(fn=cmd_lint)

    s = sub.add_parser("template")
    s.add_argument("chart_dir")
    s.add_argument("--release", required=True)
    s.add_argument("--namespace", "-n", required=True)
    s.add_argument("--values", "-f")
    s.set_defaults(fn=cmd_template)

    for name, fn in (("install", cmd_install), ("upgrade", cmd_upgrade)):
        s = sub.add_parser(name)
        s.add_argument("chart_dir")
        s.add_argument("--release", required=True)
        s.add_argument("--namespace", "-n", required=True)
        s.add_argument("--values", "-f")
        if name == "install":
            s.add_argument("--create-namespace", action="store_true")
        s.add_argument("--wait", action="store_true", help="wait for resources to be ready")
        s.add_argument("--timeout", type=int, default=300, help="seconds (default 300)")
        s.set_defaults(fn=fn)

    s = sub.add_parser("list")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--namespace", "-n")
    g.add_argument("--all", "-A", action="store_true", help="all namespaces (asks kubectl for them)")
    s.set_defaults(fn=cmd_list)

    s = sub.add_parser("history")
    s.add_argument("release")
    s.add_argument("--namespace", "-n", required=True)
    s.set_defaults(fn=cmd_history)

    s = sub.add_parser("rollback")
    s.add_argument("release")
    s.add_argument("revision", type=int)
    s.add_argument("--namespace", "-n", required=True)
    s.set_defaults(fn=cmd_rollback)

    s = sub.add_parser("uninstall")
    s.add_argument("release")
    s.add_argument("--namespace", "-n", required=True)
    s.add_argument("--wait", action="store_true")
    s.add_argument("--timeout", type=int, default=300)
    s.set_defaults(fn=cmd_uninstall)
    return p


def emit(obj: dict[str, Any]) -> None:
    _OUT.write(json.dumps(obj) + "\n")
    _OUT.flush()


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
        result = args.fn(args)
        emit(result)
        # Like `helm lint`: a chart with errors fails the command.
        return 1 if result.get("ok") is False else 0
    except Exception as e:  # every failure is one JSON object
        emit({"error": str(e), "type": type(e).__name__})
        return 1


if __name__ == "__main__":
    sys.exit(main())
