#!/usr/bin/env python3
"""Lint and render charts/litellm-sentinel with the real Helm engine, and
generate deploy/*.yaml from its render.

Helm v4's library comes from PyPI's helm-python-sdk (module helm_python,
`libhelm_c` over Helm's Go SDK: no helm binary, no cluster, no network).
scripts/validate-manifests.sh runs every subcommand; `make manifests-gen`
runs `gen-deploy` after a chart or rule change.

Subcommands:
  lint                 helm lint --strict, every variant; fails on any warning
  render OUT_DIR       render every variant into OUT_DIR/<variant>/NN-<Kind>.yaml,
                       print "<variant>: Kind, Kind, ..." lines
  schema               values.schema.json accepts every variant and rejects
                       known mistakes (listen in config, misspelt keys, …)
  config OUT_FILE      the default render's config.toml (for check-config)
  rules-agree OUT_DIR  the chart's PrometheusRule spec equals scripts/gen-rules.py
                       output for the default and for non-default settings
  gen-deploy [--check] write deploy/*.yaml and the chart's dashboard copy
                       (or diff against them)
"""

from __future__ import annotations

import copy
import difflib
import os
import subprocess
import sys

import helm_python as helm
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHART = os.path.join(REPO, "charts", "litellm-sentinel")
RELEASE = "litellm-sentinel"
NAMESPACE = "litellm-sentinel"

ALL_ON = {
    "podMonitor": {"enabled": True, "additionalLabels": {"release": "kube-prometheus-stack"},
                   "interval": "15s", "scrapeTimeout": "5s",
                   "relabelings": [{"action": "replace", "sourceLabels": ["__meta_kubernetes_pod_node_name"],
                                    "targetLabel": "node"}],
                   "metricRelabelings": [{"action": "drop", "sourceLabels": ["__name__"],
                                          "regex": "litellm_sentinel_probe_duration_seconds_bucket"}]},
    "prometheusRule": {"enabled": True, "additionalLabels": {"release": "kube-prometheus-stack"},
                       "jobSelector": 'job="llm-sentinel", cluster!=""', "clusterLabel": "k8s_cluster",
                       "runbookUrlBase": "https://wiki.example.com/litellm-sentinel/runbooks.md"},
    "dashboards": {"enabled": True, "label": "grafana_dashboard", "labelValue": "1",
                   "annotations": {"grafana_folder": "LiteLLM"}, "namespace": "monitoring"},
    "image": {"repository": "registry.example.com/litellm-sentinel",
              "digest": "sha256:" + "0" * 64, "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "registry"}],
    "priorityClassName": "system-node-critical",
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "node-role.kubernetes.io/llm", "operator": "Exists"}]}]}}},
    "nodeSelector": {"kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "extraArgs": ["--log-format", "json"],
    "extraEnv": [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "https://otlp.example.com:4318"},
                 {"name": "OTEL_EXPORTER_OTLP_COMPRESSION", "value": "gzip"}],
    "extraEnvFrom": [{"secretRef": {"name": "otlp-headers"}}],
    "extraVolumes": [{"name": "docker", "hostPath": {"path": "/var/lib/docker/containers", "type": "Directory"}}],
    "extraVolumeMounts": [{"name": "docker", "mountPath": "/var/lib/docker/containers", "readOnly": True}],
    "podAnnotations": {"example.com/team": "llm-platform"},
    "podLabels": {"team": "llm-platform"},
    "serviceAccount": {"create": True, "name": "sentinel", "annotations": {"example.com/owner": "sre"}},
    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}},
    "config": {"globs": ["/var/log/pods/llm_*/litellm/*.log"], "max_pods": 500, "pod_ttl": "30m",
               "read_from": "beginning", "state_file": "/var/lib/litellm-sentinel/state.json"},
    "metricsPort": 9465,
}

VARIANTS = {
    "defaults": {},
    "podMonitor": {"podMonitor": {"enabled": True}},
    "prometheusRule": {"prometheusRule": {"enabled": True}},
    "dashboards": {"dashboards": {"enabled": True}},
    "no-service-no-sa": {"service": {"enabled": False}, "serviceAccount": {"create": False}},
    "all-on": ALL_ON,
}

# Values the schema must refuse (a typo would otherwise be ignored silently).
BAD_VALUES = {
    "config.listen (set from metricsPort)": {"config": {"listen": "0.0.0.0:1"}},
    "misspelt podMonitor key": {"podMonitor": {"enabeld": True}},
    "unknown top-level key": {"tolerationz": []},
    "clusterLabel not a label name": {"prometheusRule": {"clusterLabel": "k8s-cluster"}},
    "runbookUrlBase not a URL": {"prometheusRule": {"runbookUrlBase": "wiki/runbooks"}},
    "max_pods as a string": {"config": {"max_pods": "500"}},
    "image digest not sha256": {"image": {"digest": "latest"}},
}


def chart() -> helm.Chart:
    return helm.Chart.load(CHART)


def render(values: dict) -> list[tuple[str, str, dict]]:
    """[(template path, document text, parsed document)] of one render, notes excluded."""
    out = []
    for path, text in sorted(chart().render(values, name=RELEASE, namespace=NAMESPACE, is_install=True).items()):
        if path.endswith("NOTES.txt"):
            continue
        for piece in text.split("\n---\n"):
            doc = yaml.safe_load(piece)
            if doc is not None:
                out.append((path, piece.strip("\n") + "\n", doc))
    return out


def cmd_lint() -> int:
    bad = 0
    for variant, values in VARIANTS.items():
        report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
        problems = list(report.get("errors") or [])
        problems += [f"{m['path']}: {m['error']}" for m in report.get("messages", []) if m.get("severity", 0) >= 2]
        for p in problems:
            print(f"lint {variant}: {p}")
        bad += bool(problems)
        if report.get("total_charts_linted") != 1:
            print(f"lint {variant}: linted {report.get('total_charts_linted')} charts, want 1")
            bad += 1
    return 1 if bad else 0


def cmd_render(out_dir: str) -> int:
    for variant, values in VARIANTS.items():
        d = os.path.join(out_dir, variant)
        os.makedirs(d, exist_ok=True)
        kinds = []
        for i, (_, text, doc) in enumerate(render(values)):
            with open(os.path.join(d, f"{i:02d}-{doc['kind']}.yaml"), "w", encoding="utf-8") as f:
                f.write(text)
            kinds.append(doc["kind"])
        print(f"{variant}: {', '.join(kinds)}")
    return 0


def cmd_schema() -> int:
    c, bad = chart(), 0
    for variant, values in VARIANTS.items():
        try:
            c.validate_schema(values)
        except helm.HelmError as err:
            print(f"schema rejects variant {variant}: {err}")
            bad += 1
    for what, values in BAD_VALUES.items():
        try:
            c.validate_schema(values)
        except helm.HelmValuesError:
            continue
        print(f"schema accepts a mistake: {what}: {values}")
        bad += 1
    return 1 if bad else 0


def cmd_config(out_file: str, variant: str = "defaults") -> int:
    for path, _, doc in render(VARIANTS[variant]):
        if doc["kind"] == "ConfigMap" and "config.toml" in doc.get("data", {}):
            with open(out_file, "w", encoding="utf-8") as f:
                f.write(doc["data"]["config.toml"])
            return 0
    print("no ConfigMap with config.toml in the render")
    return 1


def gen_rules(*args: str) -> dict:
    out = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "gen-rules.py"), "--no-header", *args],
                         check=True, capture_output=True, text=True).stdout
    return yaml.safe_load(out)


def cmd_rules_agree() -> int:
    bad = 0
    cases = [
        ({"prometheusRule": {"enabled": True}}, []),
        ({"prometheusRule": ALL_ON["prometheusRule"]},
         ["--job-selector", ALL_ON["prometheusRule"]["jobSelector"],
          "--cluster-label", ALL_ON["prometheusRule"]["clusterLabel"],
          "--runbook-url-base", ALL_ON["prometheusRule"]["runbookUrlBase"]]),
        ({"prometheusRule": {"enabled": True, "clusterLabel": ""}}, ["--cluster-label", ""]),
    ]
    for values, args in cases:
        rule = [doc for _, _, doc in render(values) if doc["kind"] == "PrometheusRule"]
        if len(rule) != 1:
            print(f"{values}: {len(rule)} PrometheusRule objects, want 1")
            bad += 1
            continue
        if rule[0]["spec"] != gen_rules(*args):
            print(f"chart PrometheusRule with {values} differs from scripts/gen-rules.py {' '.join(args)}")
            bad += 1
    with open(os.path.join(REPO, "alerts", "litellm-sentinel.rules.yaml"), encoding="utf-8") as f:
        if yaml.safe_load(f) != gen_rules():
            print("alerts/litellm-sentinel.rules.yaml is not scripts/gen-rules.py's default output")
            bad += 1
    return 1 if bad else 0


NAMESPACE_DOC = f"""\
apiVersion: v1
kind: Namespace
metadata:
  name: {NAMESPACE}
  labels:
    app.kubernetes.io/name: litellm-sentinel
    # hostPath volumes (the node's /var/log/pods) are only admitted by the
    # "privileged" Pod Security level. The container itself is locked down
    # (every capability dropped, read-only root file system).
    pod-security.kubernetes.io/enforce: privileged
    pod-security.kubernetes.io/warn: privileged
    pod-security.kubernetes.io/audit: privileged
"""


def header(what: str, values: dict) -> str:
    how = "helm template litellm-sentinel charts/litellm-sentinel -n litellm-sentinel"
    for key, val in flatten(values):
        how += f" --set {key}={val}"
    return (f"# GENERATED by scripts/chart.py gen-deploy ({what}) from the chart's render:\n"
            f"#   {how}\n"
            "# Do not edit: change charts/litellm-sentinel and run `make manifests-gen`.\n")


def flatten(values: dict, prefix: str = ""):
    for k, v in values.items():
        if isinstance(v, dict):
            yield from flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", "true" if v is True else v


def deploy_files() -> dict[str, str]:
    files: dict[str, str] = {}
    core = render({})
    by_kind = {doc["kind"]: text for _, text, doc in core}
    usage = ("#   kubectl apply -f deploy/daemonset.yaml -f deploy/service.yaml \\\n"
             "#                 -f deploy/podmonitor.yaml -f deploy/prometheusrule.yaml\n")
    files["daemonset.yaml"] = (header("defaults", {}) + usage + "---\n" + NAMESPACE_DOC + "---\n"
                               + "---\n".join(by_kind[k] for k in ("ServiceAccount", "ConfigMap", "DaemonSet")))
    files["service.yaml"] = header("defaults", {}) + by_kind["Service"]
    kps = {"release": "kube-prometheus-stack"}
    for kind, key, name in (("PodMonitor", "podMonitor", "podmonitor.yaml"),
                            ("PrometheusRule", "prometheusRule", "prometheusrule.yaml")):
        values = {key: {"enabled": True, "additionalLabels": kps}}
        docs = [text for _, text, doc in render(values) if doc["kind"] == kind]
        files[name] = (header(f"{key}.enabled", values)
                       + "# release: kube-prometheus-stack is what kube-prometheus-stack's default\n"
                       + "# selectors want; adapt it to your Prometheus' selector.\n" + docs[0])
    return files


def cmd_gen_deploy(check: bool) -> int:
    bad = 0
    outputs = {os.path.join("deploy", name): text for name, text in deploy_files().items()}
    # The chart carries its own copy of the dashboard (a packaged chart holds
    # only its directory); dashboards/litellm-sentinel.json is the source.
    with open(os.path.join(REPO, "dashboards", "litellm-sentinel.json"), encoding="utf-8") as f:
        outputs[os.path.join("charts", "litellm-sentinel", "files", "litellm-sentinel.json")] = f.read()
    for name, text in outputs.items():
        path = os.path.join(REPO, name)
        if check:
            try:
                with open(path, encoding="utf-8") as f:
                    current = f.read()
            except OSError:
                current = ""
            if current != text:
                sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                                           name, "generated"))
                bad += 1
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    return 1 if bad else 0


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "lint":
        return cmd_lint()
    if cmd == "render" and len(args) == 1:
        return cmd_render(args[0])
    if cmd == "schema":
        return cmd_schema()
    if cmd == "config" and len(args) in (1, 2):
        return cmd_config(*args)
    if cmd == "rules-agree":
        return cmd_rules_agree()
    if cmd == "gen-deploy":
        return cmd_gen_deploy("--check" in args)
    print(__doc__)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except helm.HelmError as err:
        print(f"chart.py: helm: {err}", file=sys.stderr)
        sys.exit(1)
