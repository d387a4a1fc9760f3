"""Every PromQL query of the fleet dashboard and alerts, with where its series come from."""

from __future__ import annotations

from dataclasses import dataclass

PUBLIC_ENTRY_JOB = "public-entry"
"""Scrape job of the public entry's HAProxy exporter, on the main cluster's Prometheus."""
PUBLIC_BACKEND = "app_clusters"
"""The HAProxy backend whose servers are the app clusters (see components/edge/_haproxy.py)."""
AGENT_JOB = "agent"
"""The agent's scrape of itself on each app cluster; its `up` says the cluster still reports."""
NODE_JOB = "node-exporter"
CADVISOR_JOB = "kubelet-cadvisor"
KUBE_STATE_JOB = "kube-state-metrics"
APP_NAMESPACE = "bookstore"

# Where a query's series come from, which decides how it is tested: series from HAProxy and
# from Prometheus itself exist on loopback (a real run evaluates them); cluster metrics do not
# (promtool test rules proves them on synthetic series).
HAPROXY = "haproxy"
PROMETHEUS = "prometheus"
CLUSTER = "cluster"

RATE = "$__rate_interval"
"""Grafana's rate window; tests substitute a fixed one."""
CLUSTER_VAR = "$cluster"

_ENTRY = f'proxy="{PUBLIC_BACKEND}"'


@dataclass(frozen=True)
class Query:
    title: str
    expr: str
    source: str
    unit: str = "short"
    legend: str = "{{cluster}}"


# The fleet summary: one series per cluster, so a new cluster shows up without an edit.
SUMMARY = (
    Query(
        "In the public entry (1 = up)",
        f'max by (cluster) (haproxy_server_status{{{_ENTRY},state="UP"}})',
        HAPROXY,
    ),
    Query(
        "Requests per second",
        f"sum by (cluster) (rate(haproxy_server_http_responses_total{{{_ENTRY}}}[{RATE}]))",
        HAPROXY,
        "reqps",
    ),
    Query(
        "4xx per second",
        f'sum by (cluster) (rate(haproxy_server_http_responses_total{{{_ENTRY},code="4xx"}}'
        f"[{RATE}]))",
        HAPROXY,
        "reqps",
    ),
    Query(
        "5xx per second",
        f'sum by (cluster) (rate(haproxy_server_http_responses_total{{{_ENTRY},code="5xx"}}'
        f"[{RATE}]))",
        HAPROXY,
        "reqps",
    ),
    Query(
        "Public entry exporter scraped (1 = up)",
        f'up{{job="{PUBLIC_ENTRY_JOB}"}}',
        PROMETHEUS,
        legend="{{instance}}",
    ),
    Query(
        "Clusters reporting metrics (1 = up)",
        f'max by (cluster) (up{{job="{AGENT_JOB}"}})',
        CLUSTER,
    ),
)

# One row per cluster, repeated over the `cluster` variable.
PER_CLUSTER = (
    # HAProxy's exporter has no histograms: averages over its last 1024 requests and maxima.
    Query(
        "Response time, average (HAProxy)",
        f"max by (cluster) (haproxy_server_response_time_average_seconds{{{_ENTRY},"
        f'cluster="{CLUSTER_VAR}"}})',
        HAPROXY,
        "s",
    ),
    Query(
        "Response time, maximum (HAProxy)",
        f"max by (cluster) (haproxy_server_max_response_time_seconds{{{_ENTRY},"
        f'cluster="{CLUSTER_VAR}"}})',
        HAPROXY,
        "s",
    ),
    Query(
        "Health check state",
        f"max by (cluster, state) (haproxy_server_check_status{{{_ENTRY},"
        f'cluster="{CLUSTER_VAR}"}}) == 1',
        HAPROXY,
        legend="{{state}}",
    ),
    Query(
        "Health check UP/DOWN transitions",
        f"sum by (cluster) (increase(haproxy_server_check_up_down_total{{{_ENTRY},"
        f'cluster="{CLUSTER_VAR}"}}[{RATE}]))',
        HAPROXY,
        legend="transitions",
    ),
    Query(
        "Node CPU busy",
        f'1 - avg by (cluster, instance) (rate(node_cpu_seconds_total{{job="{NODE_JOB}",'
        f'cluster="{CLUSTER_VAR}",mode="idle"}}[{RATE}]))',
        CLUSTER,
        "percentunit",
        "{{instance}}",
    ),
    Query(
        "Node memory used",
        f'1 - node_memory_MemAvailable_bytes{{job="{NODE_JOB}",cluster="{CLUSTER_VAR}"}}'
        f' / node_memory_MemTotal_bytes{{job="{NODE_JOB}",cluster="{CLUSTER_VAR}"}}',
        CLUSTER,
        "percentunit",
        "{{instance}}",
    ),
    Query(
        "Pod CPU (cores)",
        f'sum by (cluster, namespace, pod) (rate(container_cpu_usage_seconds_total{{job="'
        f'{CADVISOR_JOB}",cluster="{CLUSTER_VAR}",container!=""}}[{RATE}]))',
        CLUSTER,
        legend="{{namespace}}/{{pod}}",
    ),
    Query(
        "Pod memory (working set)",
        f'sum by (cluster, namespace, pod) (container_memory_working_set_bytes{{job="'
        f'{CADVISOR_JOB}",cluster="{CLUSTER_VAR}",container!=""}})',
        CLUSTER,
        "bytes",
        "{{namespace}}/{{pod}}",
    ),
    Query(
        "App pods ready / not ready",
        f'sum by (cluster, condition) (kube_pod_status_ready{{job="{KUBE_STATE_JOB}",'
        f'cluster="{CLUSTER_VAR}",namespace="{APP_NAMESPACE}"}})',
        CLUSTER,
        legend="ready={{condition}}",
    ),
    Query(
        "App container restarts",
        f'sum by (cluster, pod) (increase(kube_pod_container_status_restarts_total{{job="'
        f'{KUBE_STATE_JOB}",cluster="{CLUSTER_VAR}",namespace="{APP_NAMESPACE}"}}[1h]))',
        CLUSTER,
        legend="{{pod}}",
    ),
    # The one latency percentile on the dashboard: the agent's remote-write batches are a
    # Prometheus histogram, unlike anything the HAProxy exporter offers.
    Query(
        "Metrics shipping latency p95 (agent remote write)",
        f"histogram_quantile(0.95, sum by (cluster, le) (rate("
        f'prometheus_remote_storage_sent_batch_duration_seconds_bucket{{job="{AGENT_JOB}",'
        f'cluster="{CLUSTER_VAR}"}}[{RATE}])))',
        CLUSTER,
        "s",
    ),
)

CLUSTER_VARIABLE_QUERY = (
    f'label_values(haproxy_server_status{{{_ENTRY},job="{PUBLIC_ENTRY_JOB}"}}, cluster)'
)
"""Grafana variable: every cluster behind the public entry, so a new one gets a row."""


def all_queries() -> tuple[Query, ...]:
    return SUMMARY + PER_CLUSTER


def concrete(expr: str, *, cluster: str, rate_window: str = "1m") -> str:
    """A dashboard expression with Grafana's variables filled in, as Grafana sends it."""
    return expr.replace(RATE, rate_window).replace(CLUSTER_VAR, cluster)
