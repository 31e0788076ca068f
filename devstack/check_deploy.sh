#!/usr/bin/env bash
# Offline checks of the deployment: no cluster, no Prometheus server, no Grafana needed.
#   1. helm (built once from the Go module proxy into the vb2po cache), kubernetes-validate, promtool
#   2. helm lint and helm template of helm/vb2po with the default and with the full values (both
#      checked against values.schema.json, whose settings part is generated from vb2po's model)
#   3. every rendered object against the Kubernetes schemas bundled by kubernetes-validate; the
#      Prometheus Operator objects (no schema bundled) by a structural check, and the
#      PrometheusRule and dashboard ConfigMap compared with their one source file; the rendered
#      settings file, with the Deployments' env and stand-in secrets, loaded by vb2po.settings
#   4. promtool check rules + promtool test rules on the alert rules
#   5. the Grafana dashboard: JSON parses, every panel and variable query is PromQL promtool accepts
#   6. the image (`make image`, reused when nothing changed) and its smoke test: vb2po --version,
#      config check and a short producer + consumer sync, run from inside the image's read-only root
#      filesystem as its non-root user (devstack/image_smoke.py; Kafka at $VB2PO_SMOKE_KAFKA, else its own)
# Invoked by `make check-deploy`; prints one line per step and exits non-zero on the first failure.
# HELM=/path/to/helm uses that helm instead of the pinned build.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION="${HELM_VERSION:-v3.22.0}"          # a version the Go module proxy serves
KUBE_VERSION="${KUBE_VERSION:-1.37.0}"           # the Kubernetes API rendered for and validated against
KUBERNETES_VALIDATE="kubernetes-validate==1.37.0" # bundles the schemas of KUBE_VERSION
CACHE_BIN="${VB2PO_CACHE:-$HOME/.cache/vb2po}/bin"
CHART=helm/vb2po
FULL_VALUES=$CHART/ci/full-values.yaml
RULES=$CHART/files/alerts.rules.yaml
RULE_TESTS=tests/promtool/alerts.test.yaml
DASHBOARD=$CHART/files/dashboard.json
PY=.venv/bin/python

WORK="$(mktemp -d "${TMPDIR:-/tmp}/vb2po-check-deploy.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
START=$SECONDS

say() { printf 'check-deploy: %s\n' "$*"; }
fail() { printf 'check-deploy: FAILED: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# --- 1. tools -------------------------------------------------------------------------------------

install_helm() {
  # No prebuilt binaries can be downloaded here: build the pinned version from the Go module
  # proxy, with the ldflags of helm's own Makefile (version string, Kubernetes version of
  # client-go for .Capabilities and the deprecation lint). Takes minutes once; cached after.
  command -v go >/dev/null || fail "helm is missing and so is go to build it (install Go, or put helm $HELM_VERSION on PATH)"
  local k8s_minor
  k8s_minor="$(printf '%s' "$KUBE_VERSION" | cut -d. -f2)"
  say "building helm $HELM_VERSION with $(go env GOVERSION) into $CACHE_BIN (once; this takes a few minutes)"
  mkdir -p "$CACHE_BIN"
  local began=$SECONDS
  GOBIN="$CACHE_BIN" CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -trimpath" go install \
    -ldflags "-w -s -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
      -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$k8s_minor \
      -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$k8s_minor" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" || fail "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  say "built helm $HELM_VERSION in $((SECONDS - began))s"
}

if [ -n "${HELM:-}" ]; then
  command -v "$HELM" >/dev/null || fail "HELM=$HELM is not an executable"
  say "helm: using HELM=$HELM"
elif HELM="$CACHE_BIN/helm"; [ -x "$HELM" ] && [ "$("$HELM" version --template '{{.Version}}' 2>/dev/null)" = "$HELM_VERSION" ]; then
  say "helm $HELM_VERSION: cached in $CACHE_BIN"
else
  install_helm
fi
# helm keeps its own config and cache under $HOME; keep this run from touching them
export HELM_CACHE_HOME="$WORK/helm/cache" HELM_CONFIG_HOME="$WORK/helm/config" HELM_DATA_HOME="$WORK/helm/data"

if [ ! -x "$PY" ]; then
  say "creating .venv (make deps completes it)"
  "${PYTHON:-python3}" -m venv .venv
fi
if ! "$PY" -c 'import vb2po.settings' 2>/dev/null; then
  say "installing vb2po into .venv (its settings model checks the rendered settings file)"
  "$PY" -m pip install -q --disable-pip-version-check -e . || fail "pip install -e ."
fi
if ! "$PY" -c 'import kubernetes_validate, yaml' 2>/dev/null; then
  say "installing $KUBERNETES_VALIDATE into .venv"
  "$PY" -m pip install -q --disable-pip-version-check "$KUBERNETES_VALIDATE" || fail "pip install $KUBERNETES_VALIDATE"
fi

if ! command -v promtool >/dev/null; then
  say "installing promtool (Debian package prometheus)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
    || fail "apt-get install prometheus"
fi
say "tools: $("$HELM" version --short), kubernetes-validate $("$PY" -c 'import kubernetes_validate as k; print(k.__version__)' 2>/dev/null || echo '?'), $(promtool --version 2>&1 | head -1)"

# --- 2. lint and render ---------------------------------------------------------------------------

for values in default full; do
  args=()
  [ "$values" = full ] && args=(-f "$FULL_VALUES")
  say "helm lint --strict ($values values)"
  "$HELM" lint --strict "$CHART" "${args[@]}" --kube-version "$KUBE_VERSION" >"$WORK/lint-$values.txt" 2>&1 \
    || { cat "$WORK/lint-$values.txt" >&2; fail "helm lint ($values values)"; }
  say "helm template ($values values)"
  "$HELM" template vb2po "$CHART" "${args[@]}" --namespace vb2po --kube-version "$KUBE_VERSION" \
    >"$WORK/rendered-$values.yaml" 2>"$WORK/template-$values.err" \
    || { cat "$WORK/template-$values.err" >&2; fail "helm template ($values values)"; }
done

# --- 3. validate the rendered objects ------------------------------------------------------------

validate_rendered() {  # $1: default|full; $2: the kinds that must be present (comma separated)
  "$PY" - "$WORK/rendered-$1.yaml" "$KUBE_VERSION" "$2" "$RULES" "$DASHBOARD" "$WORK/chart-rules-$1.yaml" <<'PYTHON'
"""Every rendered object: core kinds against the bundled Kubernetes schemas (strict: unknown
fields are errors), Prometheus Operator kinds structurally; the one-source files compared."""
import json
import sys

import kubernetes_validate
import yaml

rendered, kube_version, expected_kinds, rules_file, dashboard_file, rules_out = sys.argv[1:]
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
problems, seen = [], []


def structural(obj, name):
    """The fields the Prometheus Operator needs, checked by hand (its CRD schemas are not bundled)."""
    spec = obj.get("spec") or {}
    if obj["apiVersion"] != "monitoring.coreos.com/v1":
        return [f"{name}: apiVersion {obj['apiVersion']!r}, expected monitoring.coreos.com/v1"]
    if obj["kind"] == "ServiceMonitor":
        errs = []
        if not (spec.get("selector") or {}).get("matchLabels"):
            errs.append(f"{name}: spec.selector.matchLabels is empty")
        endpoints = spec.get("endpoints") or []
        if not endpoints or not all(isinstance(e, dict) and e.get("port") for e in endpoints):
            errs.append(f"{name}: spec.endpoints must name a port each")
        unknown = set(spec) - {"selector", "endpoints", "namespaceSelector", "jobLabel", "targetLabels",
                               "podTargetLabels", "sampleLimit", "attachMetadata"}
        return errs + ([f"{name}: unknown spec fields {sorted(unknown)}"] if unknown else [])
    if obj["kind"] == "PrometheusRule":
        with open(rules_file) as fh:
            text = fh.read()
        # the one change the chart makes: the runbook links point at prometheusRule.runbookBaseUrl
        urls = [r["annotations"]["runbook_url"] for g in spec.get("groups") or [] for r in g["rules"] if "alert" in r]
        base = urls[0].split("#")[0] if urls else ""
        source = yaml.safe_load(text.replace("https://github.com/example/vb2po/blob/main/helm/vb2po/README.md", base))
        with open(rules_out, "w") as fh:  # promtool checks this copy too
            yaml.safe_dump({"groups": spec.get("groups")}, fh)
        if spec != source:
            return [f"{name}: spec differs from {rules_file} (the rules must come from that one file)"]
        return []
    return [f"{name}: no check for kind {obj['kind']}"]


for obj in docs:
    name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    seen.append(obj.get("kind"))
    if obj.get("kind") in ("ServiceMonitor", "PrometheusRule"):
        found = structural(obj, name)
        problems += found
        print(f"  {name}: {'structural check ok' if not found else 'INVALID'} (CRD: no bundled schema)")
        continue
    try:
        kubernetes_validate.validate(obj, kube_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        problems.append(f"{name}: {path}: {exc.message}")
        print(f"  {name}: INVALID")
        continue
    except kubernetes_validate.SchemaNotFoundError as exc:
        problems.append(f"{name}: no schema for {obj.get('apiVersion')} {obj.get('kind')} in Kubernetes {kube_version}: {exc}")
        continue
    print(f"  {name}: valid against Kubernetes {kube_version}")
    labels = obj.get("metadata", {}).get("labels") or {}
    if obj["kind"] == "ConfigMap" and labels.get("grafana_dashboard") == "1":
        with open(dashboard_file) as fh:
            source = json.load(fh)
        if [json.loads(v) for v in obj["data"].values()] != [source]:
            problems.append(f"{name}: dashboard differs from {dashboard_file}")

missing = [k for k in expected_kinds.split(",") if k and k not in seen]
if missing:
    problems.append(f"expected kinds not rendered: {missing}")
for problem in problems:
    print(f"  {problem}", file=sys.stderr)
print(f"  {len(docs)} objects, {len(problems)} problems")
sys.exit(1 if problems else 0)
PYTHON
}

settings_load() {  # $1: default|full
  # The rendered settings file, with the plain env values of the rendered Deployments and stand-in
  # secrets, must load with vb2po's own settings model (unknown or invalid keys fail).
  env -u VB2PO_CONFIG "$PY" - "$WORK/rendered-$1.yaml" <<'PYTHON'
import json
import os
import sys
import tempfile

import yaml

from vb2po import settings as settings_module

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
files = [d["data"]["settings.yaml"] for d in docs if d["kind"] == "ConfigMap" and "settings.yaml" in d.get("data", {})]
deployments = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
if len(files) != 1 or not deployments:
    sys.exit(f"  expected one settings ConfigMap and the Deployments (or StatefulSet), found {len(files)} and {len(deployments)}")
stand_in_secrets = {
    "VB2PO_POWEROFFICE__APPLICATION_KEY": "stand-in", "VB2PO_POWEROFFICE__SUBSCRIPTION_KEY": "stand-in",
    "VB2PO_COMPANIES": json.dumps([{"company_no": 1, "odbc": "Driver=SQLite3;Database=/nonexistent", "dialect": "sqlite"}]),
    "VB2PO_INVOICE_CLIENTS": json.dumps([{"name": "stand-in", "client_key": "stand-in", "company_no": 1}]),
}
with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
    fh.write(files[0])
for deployment in deployments:
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        plain = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
        # from the downward API: what the pod would get (the StatefulSet's pod name)
        plain.update({e["name"]: f"{deployment['metadata']['name']}-0" for e in container.get("env", [])
                      if e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name"})
        for key in [k for k in os.environ if k.startswith("VB2PO_")]:
            del os.environ[key]
        os.environ.update({**stand_in_secrets, **plain, "VB2PO_CONFIG": fh.name})
        try:
            loaded = settings_module.load()
        except Exception as exc:  # noqa: BLE001 - shown to a person
            sys.exit(f"  {deployment['metadata']['name']}/{container['name']}: the rendered settings do not load: {exc}")
        print(f"  {deployment['kind']} {deployment['metadata']['name']}/{container['name']}: settings load "
              f"(metrics_port {loaded.metrics_port}, kafka {loaded.kafka.bootstrap_servers}"
              f"{', instance_id ' + loaded.consumer.instance_id if loaded.consumer.instance_id else ''})")
os.unlink(fh.name)
PYTHON
}

say "validating the objects rendered with the default values"
validate_rendered default "Deployment,StatefulSet,ConfigMap,Service,ServiceAccount,NetworkPolicy" || fail "rendered objects (default values)"
say "validating the objects rendered with the full values"
validate_rendered full "Deployment,StatefulSet,ConfigMap,Service,ServiceAccount,ServiceMonitor,PrometheusRule,PodDisruptionBudget,NetworkPolicy" \
  || fail "rendered objects (full values)"
for values in default full; do
  say "the settings file rendered with the $values values loads with vb2po.settings"
  settings_load "$values" || fail "rendered settings ($values values)"
done

# --- 4. alert rules -------------------------------------------------------------------------------

say "promtool check rules $RULES"
promtool check rules "$RULES" || fail "promtool check rules $RULES"
say "promtool check rules on the PrometheusRule rendered by the chart"
promtool check rules "$WORK/chart-rules-full.yaml" || fail "rules rendered into the PrometheusRule"
say "promtool test rules $RULE_TESTS"
promtool test rules "$RULE_TESTS" || fail "promtool test rules $RULE_TESTS"

# --- 5. dashboard ---------------------------------------------------------------------------------

say "dashboard: JSON parses and every panel, variable and annotation query is PromQL"
"$PY" - "$DASHBOARD" "$WORK/dashboard-exprs.rules.yaml" <<'PYTHON' || fail "dashboard $DASHBOARD"
"""Each panel target's expr, with Grafana's variables replaced by sample values, becomes a
recording rule so that `promtool check rules` parses it (promtool has no "parse this expr")."""
import json
import re
import sys

import yaml

dashboard_file, out = sys.argv[1:]
with open(dashboard_file) as fh:
    dashboard = json.load(fh)  # a JSON error fails here, with its line and column
SAMPLES = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h", "__range_s": "3600"}
variables = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}


def substitute(expr):
    def one(match):
        name = match.group(1) or match.group(2)
        if name in SAMPLES:
            return SAMPLES[name]
        if name in variables:
            return ".*"  # a template variable stands in a label matcher: any regex will do
        raise ValueError(f"unknown variable ${name}")
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", one, expr)


def panels(items):
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


rules, problems = [], []
for var in dashboard.get("templating", {}).get("list", []):
    if var.get("type") != "query":
        continue
    query = var["query"]["query"] if isinstance(var.get("query"), dict) else var.get("query", "")
    match = re.fullmatch(r"\s*label_values\((.+),\s*(\w+)\s*\)\s*", query)
    if not match:
        problems.append(f"variable {var['name']}: expected label_values(<selector>, <label>), got {query!r}")
        continue
    rules.append({"record": f"dashboard:variable_{var['name']}", "expr": substitute(match.group(1))})
for number, annotation in enumerate(dashboard.get("annotations", {}).get("list", [])):
    if annotation.get("expr"):  # a Prometheus annotation query (e.g. "Settings changed")
        rules.append({"record": f"dashboard:annotation_{number}", "expr": substitute(annotation["expr"])})
for panel in panels(dashboard.get("panels", [])):
    for target in panel.get("targets", []):
        expr = target.get("expr")
        if not expr:
            if panel.get("type") != "row":
                problems.append(f"panel {panel.get('title')!r} target {target.get('refId')}: no expr")
            continue
        try:
            rules.append({"record": f"dashboard:panel_{panel['id']}:{target['refId']}", "expr": substitute(expr)})
        except (KeyError, ValueError) as exc:
            problems.append(f"panel {panel.get('title')!r}: {exc}")
for problem in problems:
    print(f"  {problem}", file=sys.stderr)
if not rules:
    problems.append("no panel queries found")
with open(out, "w") as fh:
    yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, fh, sort_keys=False)
print(f"  {len(rules)} queries (panels, variables and annotations)")
sys.exit(1 if problems else 0)
PYTHON
promtool check rules "$WORK/dashboard-exprs.rules.yaml" >"$WORK/dashboard-check.txt" 2>&1 \
  || { cat "$WORK/dashboard-check.txt" >&2; fail "a dashboard query is not valid PromQL (rule names give panel id and refId)"; }

# --- 6. the image --------------------------------------------------------------------------------

say "the image: build (or reuse) and smoke-test it from inside its root filesystem"
"$PY" -m devstack.image smoke || fail "the image's smoke test (devstack/image_smoke.py)"

say "all deployment checks passed in $((SECONDS - START))s"
