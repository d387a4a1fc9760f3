"""Observability: the configs and rules the program writes, checked by Prometheus's own tools,
the chart values against the charts, and the monitoring part of the recorded graph."""

from __future__ import annotations

import copy
import ipaddress
import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from conftest import FLEETS, REFERENCE_ROOT, entry_services, fleet_graph, require_reference
from harness import contains_plain, is_secret, is_unknown, run_program, wire_get
from schemas import chart_values, kubernetes_errors, unknown_value_keys
from test_ocm import MANIFEST_WORK, RELEASE, app_cluster_names, hub_name, per_cluster

from components import images
from components.edge import _haproxy
from components.observability import _dashboard, _prometheus, _queries, _receiver
from components.observability import agent as agent_module
from components.observability import hub as hub_module

REFERENCE = REFERENCE_ROOT / "observability"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not found: install the Debian package `prometheus` (./scripts/test.sh does)",
)
MODES = [pytest.param(False, id="update"), pytest.param(True, id="preview")]
SERVICE = "kubernetes:core/v1:Service"
SECRET = "kubernetes:core/v1:Secret"
# Files the agent's config names that exist only inside its pod; promtool checks that they
# exist, so the check runs with them at stand-in paths (the only change made to the config).
POD_FILES = (
    f"{_prometheus.AGENT_CREDENTIALS_DIR}/password",
    f"{_prometheus.AGENT_CREDENTIALS_DIR}/ca.crt",
    "/var/run/secrets/kubernetes.io/serviceaccount/token",
)


@pytest.fixture
def observability_reference() -> Path:
    return require_reference(REFERENCE)


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def agent_works(graph) -> dict[str, object]:
    return {
        w.inputs["metadata"]["namespace"]: w
        for w in graph.of_type(MANIFEST_WORK)
        if w.inputs["metadata"]["name"] == agent_module.WORK_NAME
    }


def agent_config_of(work) -> str:
    (config_map,) = [
        m for m in work.inputs["spec"]["workload"]["manifests"] if m["kind"] == "ConfigMap"
    ]
    return config_map["data"]["prometheus.yml"]


def prometheus_release(graph):
    return graph.named("monitoring-prometheus", RELEASE)


def hub_rules(graph) -> dict:
    return prometheus_release(graph).inputs["values"]["serverFiles"]["alerting_rules.yml"]


# --- real tools on what the program renders --------------------------------------------------


@needs_promtool
@pytest.mark.parametrize("fleet", list(FLEETS))
def test_every_agent_config_passes_promtool_in_agent_mode(fleet, tmp_path):
    works = agent_works(fleet_graph(fleet, False))
    assert sorted(works) == sorted(app_cluster_names(fleet))
    for cluster, work in works.items():
        text = agent_config_of(work)
        for i, path in enumerate(POD_FILES):
            stand_in = tmp_path / f"{cluster}-{i}"
            stand_in.write_text("stand-in\n")
            assert path in text, f"the agent config of {cluster} no longer names {path}"
            text = text.replace(path, str(stand_in))
        (tmp_path / f"{cluster}.yml").write_text(text)
        result = promtool("check", "config", "--agent", f"{cluster}.yml", cwd=tmp_path)
        assert result.returncode == 0, f"agent config of {cluster}:\n{result.stdout}{result.stderr}"


@needs_promtool
@pytest.mark.parametrize("fleet", list(FLEETS))
def test_hub_scrape_configs_and_rules_pass_promtool(fleet, tmp_path):
    values = prometheus_release(fleet_graph(fleet, False)).inputs["values"]
    (tmp_path / "alerting_rules.yml").write_text(
        yaml.safe_dump(values["serverFiles"]["alerting_rules.yml"])
    )
    # The chart writes prometheus.yml around these; the parts the program writes are checked
    # in a config of their own that loads them the same way.
    config = {
        "global": values["server"]["global"],
        "rule_files": ["alerting_rules.yml"],
        "scrape_configs": yaml.safe_load(values["extraScrapeConfigs"]),
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    checked = promtool(
        "check", "config", "--lint-fatal", "--lint=all", "prometheus.yml", cwd=tmp_path
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = promtool("check", "rules", "--lint-fatal", "alerting_rules.yml", cwd=tmp_path)
    assert rules.returncode == 0, rules.stdout + rules.stderr


@needs_promtool
def test_promtool_catches_a_broken_rule(tmp_path):
    """The promtool checks can fail: a rule with a PromQL syntax error is refused."""
    rules = _prometheus.alert_rules(["app-a"])
    rules["groups"][0]["rules"][0]["expr"] = "max by (cluster) (haproxy_server_status == "
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    assert promtool("check", "rules", "rules.yml", cwd=tmp_path).returncode != 0


def test_agent_flag_follows_the_prometheus_major_version():
    assert "--agent" in _prometheus.agent_flags("3.14.0")
    assert "--enable-feature=agent" not in _prometheus.agent_flags("3.14.0")
    assert "--enable-feature=agent" in _prometheus.agent_flags("2.42.0")
    assert "--agent" not in _prometheus.agent_flags("2.42.0")
    assert _prometheus.AGENT_IMAGE.endswith(f":v{_prometheus.PROMETHEUS_VERSION}")


def test_agents_run_the_hubs_prometheus_release(observability_reference):
    chart = yaml.safe_load((observability_reference / "charts/prometheus/Chart.yaml").read_text())
    assert chart["version"] == hub_module.PROMETHEUS_CHART_VERSION, "reference is another chart"
    assert chart["appVersion"] == f"v{_prometheus.PROMETHEUS_VERSION}"


# --- promtool test rules: queries over cluster metrics on synthetic series -------------------


def _series_test(clusters: list[str]) -> dict:
    """Synthetic input for a healthy cluster `app-a` and a cluster `app-b` that stopped
    reporting, evaluated against every alert and every dashboard query over cluster metrics."""
    interval = "1m"
    series = []
    for cluster, up in (("app-a", "1x30"), ("app-b", "1x5 _x25")):
        labels = f'job="{_queries.AGENT_JOB}",cluster="{cluster}",instance="localhost:9090"'
        series.append({"series": f"up{{{labels}}}", "values": up})
    a = 'cluster="app-a"'
    node = f'job="{_queries.NODE_JOB}",{a},instance="10.0.0.1:9100"'
    cad = f'job="{_queries.CADVISOR_JOB}",{a},instance="10.0.0.1:10250"'
    ksm = f'job="{_queries.KUBE_STATE_JOB}",{a},instance="ksm:8080",namespace="bookstore"'
    container = 'pod="shopapi-1",container="shopapi"'
    shopapi = f'namespace="bookstore",{container}'
    batches = "prometheus_remote_storage_sent_batch_duration_seconds_bucket"
    work = "ocm_manifestwork_condition"
    series += [
        # 4 cores, 1 idle-second per second in total: 75% busy.
        *[
            {
                "series": f'node_cpu_seconds_total{{{node},cpu="{c}",mode="idle"}}',
                "values": "0+15x30",
            }
            for c in range(4)
        ],
        {"series": f"node_memory_MemAvailable_bytes{{{node}}}", "values": "250x30"},
        {"series": f"node_memory_MemTotal_bytes{{{node}}}", "values": "1000x30"},
        {
            "series": f"container_cpu_usage_seconds_total{{{cad},{shopapi}}}",
            "values": "0+30x30",
        },
        {
            "series": f"container_memory_working_set_bytes{{{cad},{shopapi}}}",
            "values": "1048576x30",
        },
        {
            "series": f'kube_pod_status_ready{{{ksm},pod="shopapi-1",condition="true"}}',
            "values": "1x30",
        },
        {
            "series": f'kube_pod_status_ready{{{ksm},pod="shopapi-1",condition="false"}}',
            "values": "0x30",
        },
        {
            "series": f"kube_pod_container_status_restarts_total{{{ksm},{container}}}",
            "values": "0x10 1x10 3x10",
        },
        *[
            {
                "series": f'{batches}{{job="agent",{a},le="{le}"}}',
                "values": f"0+{n}x30",
            }
            # Per-second rates 5, 9, 10, 10: the 95th percentile lies halfway into (0.5, 1].
            for le, n in (("0.1", 300), ("0.5", 540), ("1", 600), ("+Inf", 600))
        ],
        {
            "series": f'{work}{{cluster="app-a",manifestwork="bookstore",type="Available"}}',
            "values": "1x30",
        },
        {
            "series": f'{work}{{cluster="app-b",manifestwork="metrics-agent",type="Available"}}',
            "values": "1x5 0x25",
        },
    ]
    at = "20m"

    def expr(query_title: str) -> str:
        (query,) = [x for x in _queries.all_queries() if x.title == query_title]
        return _queries.concrete(query.expr, cluster="app-a", rate_window="5m")

    expected = {
        "Node CPU busy": [({"cluster": "app-a", "instance": "10.0.0.1:9100"}, 0.75)],
        "Node memory used": [
            ({"cluster": "app-a", "instance": "10.0.0.1:9100", "job": "node-exporter"}, 0.75)
        ],
        "Pod CPU (cores)": [
            ({"cluster": "app-a", "namespace": "bookstore", "pod": "shopapi-1"}, 0.5)
        ],
        "Pod memory (working set)": [
            ({"cluster": "app-a", "namespace": "bookstore", "pod": "shopapi-1"}, 1048576)
        ],
        "App pods ready / not ready": [
            ({"cluster": "app-a", "condition": "false"}, 0),
            ({"cluster": "app-a", "condition": "true"}, 1),
        ],
        "App container restarts": [({"cluster": "app-a", "pod": "shopapi-1"}, 1)],
        "Metrics shipping latency p95 (agent remote write)": [({"cluster": "app-a"}, 0.75)],
        "Clusters reporting metrics (1 = up)": [({"cluster": "app-a"}, 1)],
    }
    cluster_queries = {x.title for x in _queries.all_queries() if x.source == _queries.CLUSTER}
    assert set(expected) == cluster_queries, "every query over cluster metrics needs a test here"

    def labels(d: dict) -> str:
        return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(d.items())) + "}"

    return {
        "rule_files": ["alerting_rules.yml"],
        "evaluation_interval": interval,
        "tests": [
            {
                "interval": interval,
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": expr(title),
                        "eval_time": at,
                        "exp_samples": [{"labels": labels(ls), "value": v} for ls, v in samples],
                    }
                    for title, samples in expected.items()
                ],
                "alert_rule_test": [
                    {
                        "eval_time": at,
                        "alertname": "ClusterMetricsMissing",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "cluster": "app-b",
                                    "job": "agent",
                                },
                                "exp_annotations": alert_annotations(
                                    "ClusterMetricsMissing", "app-b", clusters
                                ),
                            }
                        ],
                    },
                    {
                        "eval_time": at,
                        "alertname": "ManifestWorkNotAvailable",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "cluster": "app-b",
                                    "manifestwork": "metrics-agent",
                                    "type": "Available",
                                },
                                "exp_annotations": {
                                    "summary": "ManifestWork metrics-agent is not Available "
                                    "on app-b",
                                    "description": "The work agent on app-b reports the "
                                    "ManifestWork not Available: an object it carries is not "
                                    "applied or not running.",
                                },
                            }
                        ],
                    },
                    # Before the ManifestWork's 10 minutes are up, nothing fires.
                    {"eval_time": "10m", "alertname": "ManifestWorkNotAvailable", "exp_alerts": []},
                ],
            }
        ],
    }


def alert_annotations(alert: str, cluster: str, clusters: list[str]) -> dict:
    rules = _prometheus.alert_rules(clusters)
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule["alert"] == alert and rule["labels"].get("cluster", cluster) == cluster:
                return rule["annotations"]
    raise AssertionError(f"no {alert} rule for {cluster}")


@needs_promtool
def test_cluster_metric_queries_and_alerts_on_synthetic_series(tmp_path):
    clusters = ["app-a", "app-b"]
    (tmp_path / "alerting_rules.yml").write_text(yaml.safe_dump(_prometheus.alert_rules(clusters)))
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(_series_test(clusters)))
    result = promtool("test", "rules", "tests.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_rule_tests_can_fail(tmp_path):
    """A wrong expectation fails the run: the synthetic-series test is not vacuous."""
    clusters = ["app-a", "app-b"]
    (tmp_path / "alerting_rules.yml").write_text(yaml.safe_dump(_prometheus.alert_rules(clusters)))
    spec = _series_test(clusters)
    spec["tests"][0]["promql_expr_test"][0]["exp_samples"][0]["value"] = 0.5
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(spec))
    assert promtool("test", "rules", "tests.yml", cwd=tmp_path).returncode != 0


# --- chart values -------------------------------------------------------------------------

# Subcharts take their values under their own name; they are checked against their chart.
SUBCHARTS = ("kube-state-metrics", "prometheus-node-exporter", "prometheus-pushgateway")
ALERTMANAGER_IMAGE_VALUES = {
    "image": {
        "repository": "quay.io/prometheus/alertmanager",
        "pullPolicy": "IfNotPresent",
        "tag": "",
    }
}
"""The alertmanager subchart's image values (only their keys are compared), which the
prometheus chart's own `alertmanager`
block does not list: alertmanager chart 1.42.0's values.yaml (the version in the prometheus
chart's Chart.lock, prometheus-community/helm-charts at the reference data's commit), whose
values.yaml the reference data lacks."""


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_every_helm_value_key_exists_in_its_chart(fleet, observability_reference):
    graph = fleet_graph(fleet, False)
    releases = {r.inputs["chart"]: r for r in graph.of_type(RELEASE)}
    checked = 0
    for chart in ("prometheus", "grafana"):
        res = releases[chart]
        values = dict(res.inputs["values"])
        if chart == "prometheus":
            alertmanager = values.pop("alertmanager")
            known = {
                **chart_values(observability_reference, chart)["alertmanager"],
                **ALERTMANAGER_IMAGE_VALUES,
            }
            unknown = unknown_value_keys(alertmanager, known)
            assert not unknown, f"{res} sets alertmanager keys that chart does not have: {unknown}"
        for sub in SUBCHARTS:
            sub_values = values.pop(sub, None)
            if sub_values is None:
                continue
            own = {k: v for k, v in sub_values.items() if k != "enabled"}
            sub_dir = observability_reference / "charts" / sub
            if sub_dir.is_dir():
                unknown = unknown_value_keys(own, chart_values(observability_reference, sub))
                assert not unknown, f"{res} sets {sub} keys that chart does not have: {unknown}"
                checked += 1
        unknown = unknown_value_keys(values, chart_values(observability_reference, chart))
        assert not unknown, (
            f"{res} sets keys the chart does not have (Helm ignores them): {unknown}"
        )
        checked += 1
    assert checked == 4, "prometheus, grafana, and two subcharts must have been checked"


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_kube_state_metrics_exports_manifest_work_conditions(fleet):
    values = prometheus_release(fleet_graph(fleet, False)).inputs["values"]["kube-state-metrics"]
    (resource,) = values["customResourceState"]["config"]["spec"]["resources"]
    assert resource["groupVersionKind"] == {
        "group": "work.open-cluster-management.io",
        "version": "v1",
        "kind": "ManifestWork",
    }
    assert "manifestworks" in values["collectorsExtra"], "kube-state-metrics must expose it"
    (rule,) = values["rbac"]["extraRules"]
    assert rule["resources"] == ["manifestworks"] and set(rule["verbs"]) == {"list", "watch"}
    rules = [r for g in hub_rules(fleet_graph(fleet, False))["groups"] for r in g["rules"]]
    (alert,) = [r for r in rules if r["alert"] == "ManifestWorkNotAvailable"]
    metric = f"{resource['metricNamePrefix']}_{resource['metrics'][0]['name']}"
    assert alert["expr"].startswith(metric + "{"), "the alert reads the metric exported here"


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_prometheus_values_validate_against_the_charts_schema(fleet, observability_reference):
    """Helm refuses values that break a chart's values.schema.json (the prometheus chart has
    one: a digest or tag that is not a string, say)."""
    schema = json.loads(
        (observability_reference / "charts" / "prometheus" / "values.schema.json").read_text()
    )
    values = prometheus_release(fleet_graph(fleet, False)).inputs["values"]
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(values)]
    assert errors == [], errors
    broken = {**values, "server": {**values["server"], "image": {"digest": 5}}}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken)), "the check can fail"


def test_chart_value_check_catches_a_typo(observability_reference):
    values = hub_module.grafana_values()
    values["admin"]["existingSecrets"] = "x"
    assert unknown_value_keys(values, chart_values(observability_reference, "grafana")) == [
        "admin.existingSecrets"
    ]


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_charts_are_pinned_from_their_official_repositories(fleet, observability_reference):
    graph = fleet_graph(fleet, False)
    releases = {r.inputs["chart"]: r for r in graph.of_type(RELEASE)}
    for chart, repo in (
        ("prometheus", "https://prometheus-community.github.io/helm-charts"),
        ("grafana", "https://grafana-community.github.io/helm-charts"),
    ):
        res = releases[chart]
        reference = yaml.safe_load(
            (observability_reference / "charts" / chart / "Chart.yaml").read_text()
        )
        assert res.inputs["version"] == reference["version"], f"{res} must pin the chart version"
        assert res.inputs["repositoryOpts"]["repo"] == repo, res
        assert res.provider_urn == graph.kubernetes_provider(hub_name(fleet)).urn, res


# --- the graph ----------------------------------------------------------------------------


@pytest.mark.parametrize("fleet", list(FLEETS))
@pytest.mark.parametrize("preview", MODES)
def test_agent_credentials_are_created_on_each_cluster_directly(fleet, preview):
    graph = fleet_graph(fleet, preview)
    for cluster in app_cluster_names(fleet):
        secret = graph.named(f"{cluster}-metrics-credentials", SECRET)
        assert secret.provider_urn == graph.kubernetes_provider(cluster).urn, (
            f"{secret} must be created through {cluster}'s own provider"
        )
        string_data = wire_get(secret.wire_inputs, "stringData")
        assert is_secret(string_data) or all(
            is_secret(v) for k, v in string_data.items() if k == "password"
        ), f"{secret} password must stay a Pulumi secret"
        work = graph.named(f"{cluster}-metrics-manifest-work", MANIFEST_WORK)
        assert graph.depends_on(work, secret), f"{work} must come after its credentials"
        manifests = work.inputs["spec"]["workload"]["manifests"]
        if preview and is_unknown(manifests):
            continue
        assert not [m for m in manifests if m["kind"] == "Secret"], f"{work} carries a Secret"


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_no_agent_password_travels_in_a_manifest_work_or_an_output(fleet):
    graph = fleet_graph(fleet, False)
    for cluster in app_cluster_names(fleet):
        secret = graph.named(f"{cluster}-metrics-credentials", SECRET)
        password = secret.inputs["stringData"]["password"]
        assert password, f"{secret} has no password"
        for work in graph.of_type(MANIFEST_WORK):
            assert not contains_plain(work.wire_inputs, password), f"{work} carries it"
        assert not contains_plain(graph.stack_wire_outputs, password)
        receiver_config = graph.named("monitoring-receiver-config").inputs["data"]["haproxy.cfg"]
        assert password not in receiver_config, "the receiver's ConfigMap must not hold passwords"
        users = wire_get(graph.named("monitoring-receiver-secret").wire_inputs, "stringData")
        assert is_secret(users) or is_secret(users[_receiver.USERS_FILE]), "userlist is secret"
    admin = graph.named("monitoring-grafana-admin", SECRET).inputs["stringData"]["admin-password"]
    assert is_secret(graph.stack_wire_outputs["grafanaAdminPassword"])
    assert not contains_plain(graph.stack_wire_outputs, admin)


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_receiver_admits_exactly_the_app_clusters_egress_ips(fleet):
    graph = fleet_graph(fleet, False)
    receiver = graph.named("monitoring-receiver-service", SERVICE)
    expected = sorted(
        {ip for c in graph.stack_outputs["clusters"].values() for ip in c["egressIps"]}
    )
    assert expected, "app clusters must have egress IPs"
    assert receiver.inputs["spec"]["type"] == "LoadBalancer"
    assert receiver.inputs["spec"]["loadBalancerSourceRanges"] == expected, receiver
    assert receiver.provider_urn == graph.kubernetes_provider(hub_name(fleet)).urn
    for cidr in expected:
        assert ipaddress.ip_network(cidr).prefixlen == 32, cidr


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_receiver_allowlist_comes_from_the_egress_resources_in_preview(fleet):
    graph = fleet_graph(fleet, True)
    receiver = graph.named("monitoring-receiver-service", SERVICE)
    deps = set(receiver.property_dependencies.get("spec", []))
    for cluster in app_cluster_names(fleet):
        component = graph.cluster_component(cluster)
        if component.type == "ocm-fleet:index:ExistingCluster":
            continue  # its egress IPs are config, known in preview
        egress = graph.egress_resources(cluster)
        assert egress and all(r.urn in deps for r in egress), (
            f"the receiver's allowlist must depend on {cluster}'s egress IP resources"
        )


@pytest.mark.parametrize("fleet", list(FLEETS))
@pytest.mark.parametrize("preview", MODES)
def test_only_the_entries_are_open_and_no_public_exporter_or_grafana(fleet, preview):
    graph = fleet_graph(fleet, preview)
    # A spec unknown as a whole in preview is an app cluster's Service for a database home,
    # made from that home's address (AppDelivery): an ExternalName or ClusterIP, never one.
    balancers = [
        s
        for s in graph.of_type(SERVICE)
        if not is_unknown(s.inputs["spec"]) and s.inputs["spec"].get("type") == "LoadBalancer"
    ]
    open_ones = [s.name for s in balancers if not s.inputs["spec"].get("loadBalancerSourceRanges")]
    assert sorted(open_ones) == entry_services(fleet), f"open LoadBalancers: {open_ones}"
    for entry in open_ones:
        public_ports = {p["port"] for p in graph.named(entry).inputs["spec"]["ports"]}
        assert public_ports == {80}, f"{entry} publishes port 80 only, not the exporter"
    exporter = graph.named("public-lb-metrics-service", SERVICE).inputs["spec"]
    assert exporter["clusterIP"] == "None" and exporter.get("type", "ClusterIP") == "ClusterIP"
    assert {p["port"] for p in exporter["ports"]} == {_haproxy.METRICS_PORT}
    grafana = graph.named("monitoring-grafana", RELEASE).inputs["values"]
    assert grafana["service"]["type"] == "ClusterIP" and not grafana["ingress"]["enabled"]


@pytest.mark.parametrize("fleet", list(FLEETS))
@pytest.mark.parametrize("preview", MODES)
def test_destroy_removes_agents_while_clusters_and_hub_run(fleet, preview):
    graph = fleet_graph(fleet, preview)
    receiver = graph.named("monitoring-receiver-service", SERVICE)
    hub_plane = graph.control_plane(hub_name(fleet))
    for cluster in app_cluster_names(fleet):
        work = graph.named(f"{cluster}-metrics-manifest-work", MANIFEST_WORK)
        r = per_cluster(graph, cluster)
        for key in ("managed_cluster", "klusterlet", "chart", "cluster"):
            assert graph.depends_on(work, r[key]), (
                f"{work} must depend on the {key} of {cluster}, so that destroy deletes it first"
            )
        assert graph.depends_on(work, receiver), f"{work} must go before the receiver"
        assert graph.depends_on(work, hub_plane), f"{work} must go before the hub"
        assert work.provider_urn == graph.kubernetes_provider(hub_name(fleet)).urn
        annotations = work.inputs["metadata"]["annotations"]
        assert annotations["pulumi.com/deletionPropagationPolicy"] == "foreground"
        assert work.inputs["spec"]["deleteOption"]["propagationPolicy"] == "Foreground"
        assert work.options["customTimeouts"]["delete"], f"{work} needs a delete timeout"
        for name in ("credentials", "namespace", "host-namespace", "work-agent-role"):
            res = graph.named(f"{cluster}-metrics-{name}")
            assert graph.depends_on(work, res), f"{res} of {cluster} must outlive {work}"
            assert graph.depends_on(res, r["cluster"]), f"{res} must go before {cluster}"
    # Every LoadBalancer of the monitoring stack goes before its cluster's nodes.
    assert graph.depends_on(receiver, graph.kubernetes_provider(hub_name(fleet)))


@pytest.mark.parametrize("how", ["retire", "removed"])
def test_a_leaving_cluster_loses_its_agent_user_rule_and_allowlist_entry(dev, how):
    """`retire: true` (the cluster still runs) or removal from the config: the agent, its
    receiver user, its metrics-missing rule and its allowlist entry all go."""
    whole = fleet_graph("dev", False)
    clusters = dev["ocm-fleet:clusters"]
    leaving = clusters[-1]["name"]
    staying = sorted(c["name"] for c in clusters[:-1])
    if how == "retire":
        clusters[-1]["retire"] = True
    else:
        dev["ocm-fleet:clusters"] = clusters[:-1]
    graph = run_program(dev)
    assert leaving in agent_works(whole), "the check must see the agent before it leaves"
    assert sorted(agent_works(graph)) == staying
    assert not [r for r in graph.resources if r.name.startswith(f"{leaving}-metrics")], (
        f"nothing of {leaving}'s agent may remain (credentials, namespaces, policies)"
    )
    if how == "retire":
        assert graph.cluster_component(leaving), f"{leaving} itself still runs while retiring"

    def users(g) -> str:
        return g.named("monitoring-receiver-secret").inputs["stringData"][_receiver.USERS_FILE]

    assert f" user {leaving} " in users(whole), "the check must see the user before it leaves"
    assert f" user {leaving} " not in users(graph), f"{leaving} must lose its receiver user"
    ranges = graph.named("monitoring-receiver-service").inputs["spec"]["loadBalancerSourceRanges"]
    leaving_ips = whole.stack_outputs["clusters"][leaving]["egressIps"]
    assert leaving_ips and not set(leaving_ips) & set(ranges), (
        "its egress IPs must leave the receiver's allowlist"
    )
    staying_ips = {ip for c in graph.stack_outputs["clusters"].values() for ip in c["egressIps"]}
    assert ranges == sorted(staying_ips)
    rules = hub_rules(graph)["groups"][1]["rules"]
    assert [r["labels"]["cluster"] for r in rules] == staying


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_agent_objects_are_valid_kubernetes(fleet):
    graph = fleet_graph(fleet, False)
    for cluster, work in agent_works(graph).items():
        for obj in work.inputs["spec"]["workload"]["manifests"]:
            errors = kubernetes_errors(obj, "1.35")
            assert not errors, f"{obj['kind']} {obj['metadata']['name']} for {cluster}: {errors}"


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_agents_ship_to_the_receiver_over_tls_with_their_own_user(fleet):
    graph = fleet_graph(fleet, False)
    address = graph.stack_outputs["metricsReceiver"]
    assert address
    for cluster, work in agent_works(graph).items():
        config = yaml.safe_load(agent_config_of(work))
        assert config["global"]["external_labels"] == {"cluster": cluster}
        (write,) = config["remote_write"]
        assert (
            write["url"] == f"https://{address}:{hub_module.RECEIVER_PORT}{_prometheus.WRITE_PATH}"
        )
        assert write["basic_auth"]["username"] == cluster
        assert "password" not in write["basic_auth"], "the password is a file from the Secret"
        assert write["tls_config"]["server_name"] == _prometheus.RECEIVER_SERVER_NAME
        assert "insecure_skip_verify" not in write["tls_config"]
        deployment = next(
            m for m in work.inputs["spec"]["workload"]["manifests"]
            if m["kind"] == "Deployment" and m["metadata"]["name"] == agent_module.AGENT
        )  # fmt: skip
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == images.pinned(_prometheus.AGENT_IMAGE)
        assert "--agent" in container["args"]


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_pod_security_levels(fleet):
    graph = fleet_graph(fleet, False)
    levels = {}
    for res in graph.of_type("kubernetes:core/v1:Namespace"):
        name = res.inputs["metadata"]["name"]
        labels = res.inputs["metadata"].get("labels") or {}
        if name in (hub_module.NAMESPACE, hub_module.HOST_NAMESPACE):
            levels.setdefault(name, set()).add(labels["pod-security.kubernetes.io/enforce"])
    assert levels[hub_module.HOST_NAMESPACE] == {"privileged"}, "node-exporter needs the host"
    assert levels[hub_module.NAMESPACE] <= {"baseline", "restricted"}
    # Only node-exporter runs where the host is reachable, on app clusters as on the hub.
    for work in agent_works(graph).values():
        for obj in work.inputs["spec"]["workload"]["manifests"]:
            pod = obj.get("spec", {}).get("template", {}).get("spec", {})
            uses_host = (
                pod.get("hostNetwork")
                or pod.get("hostPID")
                or any("hostPath" in v for v in pod.get("volumes", []))
            )
            if uses_host:
                assert obj["metadata"]["namespace"] == hub_module.HOST_NAMESPACE, obj["metadata"]
    values = prometheus_release(graph).inputs["values"]
    assert values["prometheus-node-exporter"]["namespaceOverride"] == hub_module.HOST_NAMESPACE


# --- dashboard ----------------------------------------------------------------------------


def test_dashboard_has_a_summary_and_a_row_repeated_per_cluster():
    model = _dashboard.build_dashboard()
    (variable,) = model["templating"]["list"]
    assert variable["name"] == "cluster" and variable["query"] == _queries.CLUSTER_VARIABLE_QUERY
    rows = [p for p in model["panels"] if p["type"] == "row"]
    assert [r["title"] for r in rows] == ["Fleet summary", "Cluster $cluster"]
    assert rows[1]["repeat"] == "cluster"
    assert sorted(_dashboard.panel_queries(model)) == sorted(q.expr for q in _queries.all_queries())
    for query in _queries.PER_CLUSTER:
        assert _queries.CLUSTER_VAR in query.expr, f"{query.title} must follow the row's cluster"


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_dashboard_and_data_source_are_provisioned(fleet):
    values = fleet_graph(fleet, False).named("monitoring-grafana", RELEASE).inputs["values"]
    (source,) = values["datasources"]["datasources.yaml"]["datasources"]
    assert source["uid"] == _dashboard.DATASOURCE_UID and source["type"] == "prometheus"
    assert hub_module.PROMETHEUS_SERVICE in source["url"]
    board = values["dashboards"]["ocm-fleet"]["fleet"]["json"]
    assert yaml.safe_load(board)["uid"] == _dashboard.UID
    assert values["admin"]["existingSecret"] == hub_module.GRAFANA_ADMIN_SECRET


def test_receiver_config_passes_haproxy_check(tmp_path):
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed (Debian package: haproxy)")
    graph = fleet_graph("large", False)
    config = graph.named("monitoring-receiver-config").inputs["data"]["haproxy.cfg"]
    secret = graph.named("monitoring-receiver-secret", SECRET).inputs["stringData"]
    users = secret[_receiver.USERS_FILE]
    assert {line.split()[1] for line in users.splitlines()[1:]} == set(app_cluster_names("large"))
    # The certificate exists only in the pod; a throwaway one stands in at a local path.
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", "k.pem", "-out", "c.pem", "-days", "1", "-subj", "/CN=x"],
        cwd=tmp_path, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    (tmp_path / _receiver.CERT_FILE).write_text(
        (tmp_path / "c.pem").read_text() + (tmp_path / "k.pem").read_text()
    )
    (tmp_path / _receiver.USERS_FILE).write_text(users)
    path = tmp_path / "haproxy.cfg"
    path.write_text(config.replace(_receiver.SECRET_DIR, str(tmp_path)))
    result = subprocess.run(
        ["haproxy", "-c", "-f", str(path), "-f", str(tmp_path / _receiver.USERS_FILE)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_node_scrapes_are_allowed_by_port_because_cilium_ipblocks_miss_nodes(fleet):
    """Prometheus on the hub and every agent reach node-exporter and the kubelet on the nodes.
    On AKS the dataplane is Cilium, whose ipBlock rules do not match node addresses
    (cilium/cilium#20550): such egress must name the ports and no peer."""
    graph = fleet_graph(fleet, False)
    node_ports = {9100, 10250}
    scrapers = set()
    for policy in graph.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy"):
        for rule in policy.inputs["spec"].get("egress") or []:
            ports = {p.get("port") for p in rule.get("ports") or []}
            if ports & node_ports:
                assert "to" not in rule, f"{policy}: egress to {sorted(ports)} names peers {rule}"
                if ports >= node_ports:
                    scrapers.add(policy.provider_urn)
    expected = {graph.kubernetes_provider(hub_name(fleet)).urn} | {
        graph.kubernetes_provider(c).urn for c in app_cluster_names(fleet)
    }
    assert scrapers == expected, "every cluster's scraper must be allowed to reach its nodes"


# --- probes -----------------------------------------------------------------------------------

# What each image serves, and so what its probes may ask for (path, port name):
# - Prometheus (agent mode too): /-/healthy and /-/ready on its web port (prometheus
#   web/web.go, New: the router's "/-/healthy" and "/-/ready" handlers).
# - kube-state-metrics: /healthz (always 200) and /livez on the metrics port, /readyz (once its
#   own registry gathers) on the telemetry port, 8081 unless --telemetry-port says otherwise
#   (kube-state-metrics pkg/app/server.go, buildMetricsServer and buildTelemetryServer).
# - node-exporter: its landing page `/` on the metrics port, as the prometheus-node-exporter
#   chart's probes use (templates/daemonset.yaml).
# - the receiver's HAProxy: its frontend's monitor-uri, over TLS (_receiver.HEALTHZ_PATH).
SERVED = {
    "prometheus": {("/-/healthy", "http"), ("/-/ready", "http")},
    agent_module.KUBE_STATE: {("/healthz", "http"), ("/livez", "http"), ("/readyz", "telemetry")},
    agent_module.NODE_EXPORTER: {("/", "metrics")},
    "haproxy": {(_receiver.HEALTHZ_PATH, "https")},
}


def assert_probed(owner: str, container: dict) -> None:
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    for kind in ("livenessProbe", "readinessProbe"):
        probe = container.get(kind)
        assert probe, f"{owner}: container {container['name']} has no {kind}"
        http = probe.get("httpGet") or {}
        asked = (http.get("path"), http.get("port"))
        assert asked in SERVED[container["name"]], (
            f"{owner}: {kind} of {container['name']} asks for {asked}, which the image does not "
            f"serve (it serves {sorted(SERVED[container['name']])})"
        )
        assert http["port"] in ports, f"{owner}: {kind} names port {http['port']}, not declared"
    if container["name"] == agent_module.KUBE_STATE:
        args = container.get("args", [])
        telemetry = next(
            (a.split("=", 1)[1] for a in args if a.startswith("--telemetry-port=")), "8081"
        )
        assert ports.get("telemetry") == int(telemetry), (
            f"{owner}: the telemetry port must be where kube-state-metrics listens ({telemetry})"
        )


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_every_monitoring_agent_has_liveness_and_readiness_probes(fleet):
    graph = fleet_graph(fleet, False)
    works = agent_works(graph)
    assert works
    for cluster, work in works.items():
        pods = [
            m
            for m in work.inputs["spec"]["workload"]["manifests"]
            if m["kind"] in ("Deployment", "DaemonSet")
        ]
        assert {p["metadata"]["name"] for p in pods} == {
            agent_module.AGENT,
            agent_module.KUBE_STATE,
            agent_module.NODE_EXPORTER,
        }
        for pod in pods:
            for container in pod["spec"]["template"]["spec"]["containers"]:
                assert_probed(f"{cluster}/{pod['metadata']['name']}", container)
    receiver = graph.named("monitoring-receiver", "kubernetes:apps/v1:Deployment")
    for container in receiver.inputs["spec"]["template"]["spec"]["containers"]:
        assert_probed(str(receiver), container)


def test_the_probe_check_catches_a_missing_or_unserved_probe():
    (ksm,) = [
        m
        for m in agent_module.agent_manifests("global: {}\n")
        if m["kind"] == "Deployment" and m["metadata"]["name"] == agent_module.KUBE_STATE
    ]
    container = copy.deepcopy(ksm["spec"]["template"]["spec"]["containers"][0])
    container["livenessProbe"]["httpGet"]["path"] = "/-/healthy"
    with pytest.raises(AssertionError, match="does not serve"):
        assert_probed("ksm", container)
    del container["livenessProbe"]
    with pytest.raises(AssertionError, match="has no livenessProbe"):
        assert_probed("ksm", container)


@pytest.mark.parametrize("sub", ["kube-state-metrics", "prometheus-node-exporter"])
def test_the_hub_charts_keep_their_exporters_probes(sub, observability_reference):
    """On the main cluster node-exporter and kube-state-metrics come from the prometheus chart's
    subcharts, whose templates always render both probes from these values: the program's
    values must leave them on an HTTP check (values.yaml of each chart)."""
    defaults = chart_values(observability_reference, sub)
    ours = prometheus_release(fleet_graph("dev", False)).inputs["values"].get(sub, {})
    for kind in ("livenessProbe", "readinessProbe"):
        merged = {**defaults[kind], **(ours.get(kind) or {})}
        assert "httpGet" in merged and merged.get("failureThreshold", 0) >= 1, (
            f"{sub}: {kind} must stay an HTTP check, as the chart renders it"
        )
