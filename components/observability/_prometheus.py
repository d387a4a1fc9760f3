"""Prometheus configuration the program writes: scrape jobs, the agent's config, alert rules.

Everything here must load in Debian's Prometheus 2.42 (whose promtool checks it in the tests)
and in the 3.x the clusters run, so it keeps to what both accept: no 3.x-only keys such as
`fallback_scrape_protocol`, no 2.x-only ones removed in 3.0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from components import _yaml
from components.edge import _haproxy, public_load_balancer
from components.observability import _queries as q

PROMETHEUS_VERSION = "3.14.0"
"""Prometheus release of the agents: the appVersion of the pinned prometheus chart on the hub,
so that hub and agents speak the same remote-write protocol version."""
AGENT_IMAGE = f"quay.io/prometheus/prometheus:v{PROMETHEUS_VERSION}"
KUBE_STATE_METRICS_IMAGE = "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0"
NODE_EXPORTER_IMAGE = "quay.io/prometheus/node-exporter:v1.12.1"
AGENT_IMAGES = (AGENT_IMAGE, KUBE_STATE_METRICS_IMAGE, NODE_EXPORTER_IMAGE)
"""Every image of the agent's ManifestWork (pinned through components/images.yaml)."""

ENTRY_NAMESPACE = public_load_balancer.NAMESPACE
ENTRY_METRICS_SERVICE = public_load_balancer.METRICS_SERVICE
NODE_EXPORTER_SERVICE = "node-exporter"

AGENT_CONFIG_DIR = "/etc/prometheus"
AGENT_CREDENTIALS_DIR = "/etc/ocm-fleet-agent"
"""Where the agent mounts its credentials Secret: `password` and `ca.crt`."""
RECEIVER_SERVER_NAME = "metrics-receiver.ocm-fleet.internal"
"""The name in the receiver's certificate; agents verify it whatever address they dial."""
WRITE_PATH = "/api/v1/write"

SCRAPE_INTERVAL = "30s"
EVALUATION_INTERVAL = "30s"

# What the agents ship: what the dashboard and the alerts read, nothing else (egress is paid
# per GB and the hub's storage is sized for it).
SHIPPED_METRICS = (
    "up",
    "node_cpu_seconds_total",
    "node_memory_MemAvailable_bytes",
    "node_memory_MemTotal_bytes",
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
    "kube_pod_status_ready",
    "kube_pod_container_status_restarts_total",
    "kube_node_status_condition",
    "prometheus_remote_storage_sent_batch_duration_seconds_bucket",
)

FIVE_XX_RATIO = 0.05
"""Share of a cluster's responses that may be 5xx before the alert fires."""


@dataclass(frozen=True, kw_only=True)
class AlertTimings:
    """How long each condition must hold before its alert fires (tests shorten them)."""

    cluster_out: str = "1m"
    five_xx: str = "5m"
    rate_window: str = "5m"
    metrics_missing: str = "5m"
    manifest_work: str = "10m"


def dump(obj: Any) -> str:
    return _yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, width=1000)


# --- main cluster ---------------------------------------------------------------------------


def public_entry_scrape_job() -> dict[str, Any]:
    """The hub's scrape of every public-entry HAProxy pod, on the exporter's own port.

    Targets come from DNS: the headless Service `public-lb-metrics` answers with one address
    per ready pod. DNS rather than Kubernetes discovery, because Debian's Prometheus build (the
    one whose promtool checks this config) has no Kubernetes discovery, and DNS serves both.
    The exporter labels each server (app cluster) `server`; a copy as `cluster` lines its series
    up with those the agents send, so one dashboard variable selects both.
    """
    return {
        "job_name": q.PUBLIC_ENTRY_JOB,
        "scrape_interval": "15s",
        "metrics_path": _haproxy.METRICS_PATH,
        "dns_sd_configs": [
            {
                "names": [f"{ENTRY_METRICS_SERVICE}.{ENTRY_NAMESPACE}.svc.cluster.local"],
                "type": "A",
                "port": _haproxy.METRICS_PORT,
                "refresh_interval": "30s",
            }
        ],
        "metric_relabel_configs": [
            {"source_labels": ["server"], "regex": "(.+)", "target_label": "cluster"},
        ],
    }


def hub_scrape_configs() -> list[dict[str, Any]]:
    """Scrape jobs the program adds to the chart's defaults on the main cluster."""
    return [public_entry_scrape_job()]


# --- alerts ---------------------------------------------------------------------------------


def alert_rules(clusters: Iterable[str], timings: AlertTimings = AlertTimings()) -> dict[str, Any]:
    """The fleet's alerting rules, for the app clusters of this fleet.

    The metrics-missing rule is one per cluster: `absent_over_time` only sees a cluster that is
    named, and a cluster that never reported at all must alert too.
    """
    entry = f'proxy="{q.PUBLIC_BACKEND}"'
    w = timings.rate_window
    responses = f"haproxy_server_http_responses_total{{{entry}}}"
    errors = f'haproxy_server_http_responses_total{{{entry},code="5xx"}}'
    fleet = [
        {
            "alert": "ClusterOutOfPublicEntry",
            # Both HAProxy replicas must see the cluster down: max over the replicas.
            "expr": f'max by (cluster) (haproxy_server_status{{{entry},state="UP"}}) == 0',
            "for": timings.cluster_out,
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "App cluster {{ $labels.cluster }} is out of the public entry",
                "description": "HAProxy's health checks (GET /api/books) fail on "
                "{{ $labels.cluster }}: it receives no user traffic.",
            },
        },
        {
            "alert": "ClusterHigh5xxRate",
            "expr": f"sum by (cluster) (rate({errors}[{w}])) / "
            f"sum by (cluster) (rate({responses}[{w}])) > {FIVE_XX_RATIO}",
            "for": timings.five_xx,
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "More than 5% of responses from {{ $labels.cluster }} are 5xx",
                "description": "5xx share over the last "
                + w
                + ": {{ $value | humanizePercentage }}.",
            },
        },
        {
            "alert": "ManifestWorkNotAvailable",
            "expr": 'ocm_manifestwork_condition{type="Available"} == 0',
            "for": timings.manifest_work,
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "ManifestWork {{ $labels.manifestwork }} is not Available on "
                "{{ $labels.cluster }}",
                "description": "The work agent on {{ $labels.cluster }} reports the ManifestWork "
                "not Available: an object it carries is not applied or not running.",
            },
        },
    ]
    missing = [
        {
            "alert": "ClusterMetricsMissing",
            "expr": f'absent_over_time(up{{job="{q.AGENT_JOB}",cluster="{name}"}}'
            f"[{timings.metrics_missing}])",
            "labels": {"severity": "warning", "cluster": name},
            "annotations": {
                "summary": f"No metrics from {name} for {timings.metrics_missing}",
                "description": f"The agent on {name} has sent nothing: it is not running, or "
                "cannot reach the receiver (TLS, credentials, allowlist).",
            },
        }
        for name in sorted(clusters)
    ]
    return {
        "groups": [
            {"name": "ocm-fleet", "rules": fleet},
            {"name": "ocm-fleet-agents", "rules": missing},
        ]
    }


# --- app clusters ---------------------------------------------------------------------------


def agent_flags(version: str = PROMETHEUS_VERSION) -> list[str]:
    """Command-line flags of Prometheus in agent mode: `--agent` from 3.0, before it
    `--enable-feature=agent` (the feature flag was removed in 3.0)."""
    major = int(version.lstrip("v").split(".")[0])
    mode = ["--agent"] if major >= 3 else ["--enable-feature=agent"]
    return [
        f"--config.file={AGENT_CONFIG_DIR}/prometheus.yml",
        *mode,
        "--storage.agent.path=/prometheus",
        "--web.listen-address=:9090",
    ]


def agent_config(
    cluster: str,
    *,
    receiver: str,
    namespace: str,
    host_namespace: str,
    scrape_interval: str = SCRAPE_INTERVAL,
) -> dict[str, Any]:
    """prometheus.yml of the agent on one app cluster.

    `receiver` is host[:port] of the hub's remote-write endpoint. Every series leaves with the
    label cluster=<name> (external label), which is how the hub tells clusters apart.
    """
    keep = "|".join(SHIPPED_METRICS)
    # Kubernetes discovery would do too, but Debian's Prometheus build (whose promtool checks
    # this config) lacks it; DNS of headless Services serves both.
    node_dns = f"{NODE_EXPORTER_SERVICE}.{host_namespace}.svc.cluster.local"
    return {
        "global": {
            "scrape_interval": scrape_interval,
            "external_labels": {"cluster": cluster},
        },
        "scrape_configs": [
            {
                "job_name": q.AGENT_JOB,
                "static_configs": [{"targets": ["localhost:9090"]}],
            },
            {
                "job_name": q.KUBE_STATE_JOB,
                "static_configs": [
                    {"targets": [f"kube-state-metrics.{namespace}.svc.cluster.local:8080"]}
                ],
                # kube-state-metrics reports other objects' namespace and pod: keep them.
                "honor_labels": True,
            },
            {
                "job_name": q.NODE_JOB,
                "dns_sd_configs": [{"names": [node_dns], "type": "A", "port": 9100}],
            },
            {
                # Pod CPU and memory from each kubelet's cAdvisor. node-exporter runs on every
                # node with the node's own address, so its Service's DNS lists the kubelets too.
                # Kubelet serving certificates are self-signed on EKS and AKS (no cluster CA
                # signs them), so the identity is checked the other way round: the kubelet
                # authorizes the agent's token (nodes/metrics).
                "job_name": q.CADVISOR_JOB,
                "scheme": "https",
                "metrics_path": "/metrics/cadvisor",
                "dns_sd_configs": [{"names": [node_dns], "type": "A", "port": 10250}],
                "authorization": {
                    "credentials_file": "/var/run/secrets/kubernetes.io/serviceaccount/token"
                },
                "tls_config": {"insecure_skip_verify": True},
            },
        ],
        "remote_write": [
            {
                "url": f"https://{receiver}{WRITE_PATH}",
                "basic_auth": {
                    "username": cluster,
                    "password_file": f"{AGENT_CREDENTIALS_DIR}/password",
                },
                "tls_config": {
                    "ca_file": f"{AGENT_CREDENTIALS_DIR}/ca.crt",
                    "server_name": RECEIVER_SERVER_NAME,
                },
                "write_relabel_configs": [
                    {"source_labels": ["__name__"], "regex": f"({keep})", "action": "keep"}
                ],
            }
        ],
    }


def hub_server_files(clusters: Iterable[str], timings: AlertTimings) -> Mapping[str, Any]:
    """The chart's `serverFiles` the program owns: the alerting rules."""
    return {"alerting_rules.yml": alert_rules(clusters, timings)}
