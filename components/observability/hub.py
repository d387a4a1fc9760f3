"""Prometheus, Grafana and the agents' remote-write receiver on the main cluster."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import pulumi_tls as tls

from components import images
from components._k8s import chart_source
from components.clusters._base import FleetCluster
from components.edge import _haproxy, public_load_balancer
from components.observability import _chart_images, _dashboard, _names, _prometheus, _receiver
from components.ocm import _charts as _ocm
from components.security import network_policies as netpol
from components.security.certificates import signed_server_certificate
from components.security.pod_security import locked_down_container, namespace_metadata

FLEET_MONITORING_TYPE = "ocm-fleet:index:FleetMonitoring"

NAMESPACE = _names.NAMESPACE
HOST_NAMESPACE = _names.HOST_NAMESPACE
MONITORING_LEVEL = (
    "baseline",
    "Prometheus, Alertmanager, kube-state-metrics, Grafana and the receiver need nothing from "
    "the host, but the prometheus chart gives its server container no security context by "
    "default (no seccomp profile, capabilities kept), which restricted requires.",
)
HOST_LEVEL = (
    "privileged",
    "node-exporter alone runs here: it reads the node's /proc, /sys and root filesystem and "
    "shares the node's network and PID namespaces (hostPath, hostNetwork, hostPID), which only "
    "privileged admits. Nothing else is deployed to this namespace.",
)
POD_SECURITY = {NAMESPACE: MONITORING_LEVEL, HOST_NAMESPACE: HOST_LEVEL}

PROMETHEUS_CHART_REPO = "https://prometheus-community.github.io/helm-charts"
PROMETHEUS_CHART_VERSION = "29.27.0"
"""prometheus-community/prometheus; ships Prometheus 3.14.0."""
GRAFANA_CHART_REPO = "https://grafana-community.github.io/helm-charts"
GRAFANA_CHART_VERSION = "12.11.1"
"""grafana-community/grafana (the chart moved there from grafana/helm-charts); Grafana 13.2."""

PROMETHEUS_RELEASE = "prometheus"
PROMETHEUS_SERVICE = f"{PROMETHEUS_RELEASE}-server"
"""The chart's server Service (<release>-server), port 80."""
GRAFANA_RELEASE = "grafana"
GRAFANA_ADMIN_SECRET = "grafana-admin"
GRAFANA_LOCAL_PORT = 3000

RECEIVER_IMAGE = public_load_balancer.HAPROXY_IMAGE
"""The public entry's HAProxy: one image to pin and patch."""
RECEIVER_UID = 99
RECEIVER_LABELS = {
    "app.kubernetes.io/name": "metrics-receiver",
    "app.kubernetes.io/part-of": "ocm-fleet",
}
RECEIVER_PORT = _receiver.LISTEN_PORT
"""The receiver's LoadBalancer port: not 443, which pods may use towards their API server, so
that no API-server rule on an app cluster also reaches the receiver."""
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
KUBE_STATE_METRICS_PORT = 8080
NODE_PORTS = (9100, 10250)
"""node-exporter and the kubelet, on each node's own address."""


@dataclass(frozen=True, kw_only=True)
class FleetMonitoringArgs:
    hub_cluster: FleetCluster
    """The main cluster: Prometheus, Grafana and the receiver run there."""
    app_clusters: Sequence[str]
    """Names of the app clusters whose agents send metrics (each gets its own credentials)."""
    allowed_cidrs: pulumi.Input[Sequence[str]]
    """Who may reach the receiver: the app clusters' egress addresses."""
    timings: _prometheus.AlertTimings = field(default_factory=_prometheus.AlertTimings)
    """How long each alert's condition must hold."""
    retention: str = "15d"
    storage_gb: int = 50
    """Size of the Prometheus server's volume, in GiB."""
    alertmanager_storage_gb: int = 2
    """Size of Alertmanager's volume, in GiB. The chart's default, declared here so that the
    size follows the program rather than a chart upgrade, and the cost estimate can read it.
    Alertmanager is a StatefulSet, whose volume claim templates cannot change: a new size on a
    live stack fails the release's upgrade."""
    chart_paths: Mapping[str, str] = field(default_factory=dict)
    """Chart name (prometheus, grafana) -> a local chart directory or .tgz installed instead of
    the chart repository's."""


class FleetMonitoring(pulumi.ComponentResource):
    """Creates, on the main cluster:

    - the `monitoring` namespace (Pod Security `baseline`) and `monitoring-host` (`privileged`,
      node-exporter only; MONITORING_LEVEL and HOST_LEVEL give the reasons);
    - the prometheus chart (pinned): Prometheus 3 with the remote-write receiver on, the public
      entry's HAProxy exporter as a scrape job, the fleet's alert rules, Alertmanager,
      kube-state-metrics (also exporting each ManifestWork's conditions) and node-exporter;
    - the grafana chart (pinned), not exposed outside the cluster: the Prometheus data source
      and the fleet dashboard provisioned, the admin password a generated secret;
    - the receiver: a CA and a server certificate (pulumi-tls, kept in state as secrets), a
      password per app cluster, and HAProxy terminating TLS and checking those passwords in
      front of Prometheus, behind a LoadBalancer that admits only the app clusters' egress IPs.
    """

    receiver_address: pulumi.Output[str]
    """IP or DNS name of the receiver's LoadBalancer (port RECEIVER_PORT)."""
    ca_certificate: pulumi.Output[str]
    """PEM of the CA that signed the receiver's certificate; agents trust only it."""
    agent_passwords: Mapping[str, pulumi.Output[str]]
    """App cluster name -> its agent's remote-write password (secret)."""
    grafana_admin_password: pulumi.Output[str]
    """Grafana's admin password (secret)."""
    grafana_access: str
    """How to open the dashboard."""
    receiver_service: k8s.core.v1.Service
    """The receiver's LoadBalancer; agents depend on it, so they go before it on destroy."""

    def __init__(
        self, name: str, args: FleetMonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(FLEET_MONITORING_TYPE, name, None, opts)
        on_hub = pulumi.ResourceOptions(parent=self, provider=args.hub_cluster.provider)
        clusters = sorted(args.app_clusters)

        namespaces = {
            ns: k8s.core.v1.Namespace(
                f"{name}-namespace" if ns == NAMESPACE else f"{name}-host-namespace",
                metadata=namespace_metadata(ns, POD_SECURITY[ns]),
                opts=on_hub,
            )
            for ns in (NAMESPACE, HOST_NAMESPACE)
        }
        ns = namespaces[NAMESPACE].metadata.name
        # Pods start after their policies: a pod whose flows are not yet allowed would fail.
        policies = netpol.declare(name, monitoring_policies(ns, args.allowed_cidrs), on_hub)
        # node-exporter runs on the host network, outside what NetworkPolicies govern; its
        # namespace still denies by default, like every namespace of the program.
        policies += netpol.declare(
            f"{name}-host", [netpol.default_deny(namespaces[HOST_NAMESPACE].metadata.name)], on_hub
        )

        prometheus = k8s.helm.v3.Release(
            f"{name}-prometheus",
            name=PROMETHEUS_RELEASE,
            **chart_source(
                "prometheus",
                PROMETHEUS_CHART_VERSION,
                PROMETHEUS_CHART_REPO,
                args.chart_paths.get("prometheus"),
            ),
            namespace=ns,
            values=prometheus_values(
                clusters,
                args.timings,
                args.retention,
                args.storage_gb,
                args.alertmanager_storage_gb,
            ),
            atomic=True,
            cleanup_on_fail=True,
            timeout=600,
            opts=pulumi.ResourceOptions.merge(
                on_hub,
                # Its Prometheus and Alertmanager claim volumes.
                pulumi.ResourceOptions(
                    depends_on=[
                        *namespaces.values(),
                        *policies,
                        *args.hub_cluster.storage_dependencies,
                    ]
                ),
            ),
        )

        self.grafana_admin_password = pulumi.Output.secret(
            random.RandomPassword(
                f"{name}-grafana-admin-password",
                length=32,
                special=False,
                opts=pulumi.ResourceOptions(parent=self),
            ).result
        )
        admin = k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata={"name": GRAFANA_ADMIN_SECRET, "namespace": ns},
            type="Opaque",
            string_data={"admin-user": "admin", "admin-password": self.grafana_admin_password},
            opts=on_hub,
        )
        k8s.helm.v3.Release(
            f"{name}-grafana",
            name=GRAFANA_RELEASE,
            **chart_source(
                "grafana",
                GRAFANA_CHART_VERSION,
                GRAFANA_CHART_REPO,
                args.chart_paths.get("grafana"),
            ),
            namespace=ns,
            values=grafana_values(),
            atomic=True,
            cleanup_on_fail=True,
            timeout=600,
            opts=pulumi.ResourceOptions.merge(
                on_hub, pulumi.ResourceOptions(depends_on=[admin, prometheus, *policies])
            ),
        )
        self.grafana_access = (
            f"kubectl -n {NAMESPACE} port-forward svc/{GRAFANA_RELEASE} "
            f"{GRAFANA_LOCAL_PORT}:80, then open http://localhost:{GRAFANA_LOCAL_PORT}"
            f"/d/{_dashboard.UID} as admin (password: pulumi stack output "
            "grafanaAdminPassword --show-secrets)"
        )

        self.ca_certificate, server_pem = self._certificates(name)
        self.agent_passwords = {
            cluster: pulumi.Output.secret(
                random.RandomPassword(
                    f"{name}-agent-password-{cluster}",
                    length=40,
                    special=False,
                    opts=pulumi.ResourceOptions(parent=self),
                ).result
            )
            for cluster in clusters
        }
        self.receiver_service = self._receiver(
            name, ns, clusters, server_pem, args.allowed_cidrs, prometheus, on_hub
        )
        self.receiver_address = args.hub_cluster.load_balancer_address(self.receiver_service)
        if args.hub_cluster.load_balancers_proxy:
            # The receiver sees its load balancer's own address (FleetCluster.load_balancers_proxy).
            netpol.declare(
                name,
                [
                    netpol.policy(
                        "metrics-receiver-from-load-balancer",
                        ns,
                        {"matchLabels": RECEIVER_LABELS},
                        ingress=[
                            {
                                "from": self.receiver_address.apply(netpol.load_balancer_peers),
                                "ports": netpol.tcp(_receiver.LISTEN_PORT),
                            }
                        ],
                    )
                ],
                on_hub,
            )
        self.register_outputs(
            {"receiverAddress": self.receiver_address, "grafanaAccess": self.grafana_access}
        )

    def _certificates(self, name: str) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        """The fleet's metrics CA and the receiver's certificate; returns (CA PEM, server PEM
        with its key, secret).

        The certificate names a fixed DNS name, not the LoadBalancer's address: the address
        exists only after the Service does, and agents check the name (`server_name`).
        The server certificate is renewed by the `pulumi up` that runs in its last 30 days.
        """
        child = pulumi.ResourceOptions(parent=self)
        ca_key = tls.PrivateKey(f"{name}-ca-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        ca = tls.SelfSignedCert(
            f"{name}-ca",
            private_key_pem=ca_key.private_key_pem,
            is_ca_certificate=True,
            subject={"common_name": "ocm-fleet metrics CA", "organization": "ocm-fleet"},
            validity_period_hours=10 * 365 * 24,
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            opts=child,
        )
        cert, key = signed_server_certificate(
            f"{name}-receiver",
            ca_key,
            ca,
            {"common_name": _prometheus.RECEIVER_SERVER_NAME},
            [_prometheus.RECEIVER_SERVER_NAME],
            child,
        )
        server_pem = pulumi.Output.secret(pulumi.Output.concat(cert.cert_pem, key.private_key_pem))
        return ca.cert_pem, server_pem

    def _receiver(
        self,
        name: str,
        ns: pulumi.Output[str],
        clusters: Sequence[str],
        server_pem: pulumi.Output[str],
        allowed_cidrs: pulumi.Input[Sequence[str]],
        prometheus: pulumi.Resource,
        on_hub: pulumi.ResourceOptions,
    ) -> k8s.core.v1.Service:
        users = pulumi.Output.secret(
            pulumi.Output.all(**dict(self.agent_passwords)).apply(_receiver.render_userlist)
        )
        secret = k8s.core.v1.Secret(
            f"{name}-receiver-secret",
            metadata={"name": "metrics-receiver", "namespace": ns, "labels": RECEIVER_LABELS},
            type="Opaque",
            string_data={_receiver.CERT_FILE: server_pem, _receiver.USERS_FILE: users},
            opts=on_hub,
        )
        config = _receiver.render_receiver_config(
            upstream=f"{PROMETHEUS_SERVICE}.{NAMESPACE}.svc.cluster.local:80"
        )
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-receiver-config",
            metadata={"name": "metrics-receiver", "namespace": ns, "labels": RECEIVER_LABELS},
            data={"haproxy.cfg": config},
            opts=on_hub,
        )
        deployment = k8s.apps.v1.Deployment(
            f"{name}-receiver",
            metadata={"name": "metrics-receiver", "namespace": ns, "labels": RECEIVER_LABELS},
            spec=receiver_deployment_spec(
                config_map.metadata.name, secret.metadata.name, clusters, config
            ),
            opts=pulumi.ResourceOptions.merge(
                on_hub, pulumi.ResourceOptions(depends_on=[prometheus])
            ),
        )
        return k8s.core.v1.Service(
            f"{name}-receiver-service",
            metadata={"name": "metrics-receiver", "namespace": ns, "labels": RECEIVER_LABELS},
            spec={
                "type": "LoadBalancer",
                "selector": RECEIVER_LABELS,
                # Client addresses reach the pod, so its NetworkPolicy can match the agents'.
                "externalTrafficPolicy": "Local",
                "ports": [
                    {
                        "name": "https",
                        "port": RECEIVER_PORT,
                        "targetPort": "https",
                        "protocol": "TCP",
                    }
                ],
                "loadBalancerSourceRanges": allowed_cidrs,
            },
            opts=pulumi.ResourceOptions.merge(
                on_hub, pulumi.ResourceOptions(depends_on=[deployment])
            ),
        )


def monitoring_policies(
    namespace: pulumi.Input[str], agent_cidrs: pulumi.Input[Sequence[str]]
) -> list[dict[str, Any]]:
    """Who talks to whom in the monitoring namespaces of the main cluster.

    The receiver takes TLS from the app clusters' egress addresses (its Service keeps client
    addresses) and forwards to Prometheus; Grafana queries Prometheus (the port-forward that
    reaches Grafana enters the pod directly, through the kubelet, not the pod network);
    Prometheus scrapes Alertmanager, kube-state-metrics, the public entry's exporter, and the
    nodes' exporters and kubelets (host addresses: any address, on those ports only), and
    reads the API server for discovery.
    """
    server = {"podSelector": {"matchLabels": _names.PROMETHEUS_SERVER_LABELS}}
    api = {"ports": netpol.tcp(*netpol.API_SERVER_PORTS)}
    agents = pulumi.Output.from_input(agent_cidrs).apply(netpol.cidr_peers)
    return [
        netpol.default_deny(namespace),
        netpol.policy(
            "metrics-receiver",
            namespace,
            {"matchLabels": RECEIVER_LABELS},
            ingress=[{"from": agents, "ports": netpol.tcp(_receiver.LISTEN_PORT)}],
            egress=[{"to": [server], "ports": netpol.tcp(PROMETHEUS_PORT)}, netpol.dns_rule()],
        ),
        netpol.policy(
            "prometheus-server",
            namespace,
            {"matchLabels": _names.PROMETHEUS_SERVER_LABELS},
            ingress=[
                {
                    "from": [
                        {"podSelector": {"matchLabels": RECEIVER_LABELS}},
                        {"podSelector": {"matchLabels": _names.GRAFANA_LABELS}},
                    ],
                    "ports": netpol.tcp(PROMETHEUS_PORT),
                }
            ],
            egress=[
                {
                    "to": [{"podSelector": {"matchLabels": _names.ALERTMANAGER_LABELS}}],
                    "ports": netpol.tcp(ALERTMANAGER_PORT),
                },
                {
                    "to": [{"podSelector": {"matchLabels": _names.KUBE_STATE_METRICS_LABELS}}],
                    "ports": netpol.tcp(KUBE_STATE_METRICS_PORT),
                },
                {
                    "to": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {
                                    "kubernetes.io/metadata.name": public_load_balancer.NAMESPACE
                                }
                            },
                            "podSelector": {"matchLabels": public_load_balancer.LABELS},
                        }
                    ],
                    "ports": netpol.tcp(_haproxy.METRICS_PORT),
                },
                # Nodes (node-exporter, kubelet) by port and no peer: Cilium, the AKS
                # dataplane here, does not match node addresses with ipBlock
                # (cilium/cilium#20550), as for the OCM operators (ocm/_charts.py).
                {"ports": netpol.tcp(*NODE_PORTS)},
                api,
                netpol.dns_rule(),
            ],
        ),
        netpol.policy(
            "alertmanager",
            namespace,
            {"matchLabels": _names.ALERTMANAGER_LABELS},
            ingress=[{"from": [server], "ports": netpol.tcp(ALERTMANAGER_PORT)}],
            egress=[],
        ),
        netpol.policy(
            "kube-state-metrics",
            namespace,
            {"matchLabels": _names.KUBE_STATE_METRICS_LABELS},
            ingress=[{"from": [server], "ports": netpol.tcp(KUBE_STATE_METRICS_PORT)}],
            egress=[api],
        ),
        netpol.policy(
            "grafana",
            namespace,
            {"matchLabels": _names.GRAFANA_LABELS},
            ingress=[],
            egress=[{"to": [server], "ports": netpol.tcp(PROMETHEUS_PORT)}, netpol.dns_rule()],
        ),
    ]


def prometheus_values(
    clusters: Sequence[str],
    timings: _prometheus.AlertTimings,
    retention: str,
    storage_gb: int,
    alertmanager_storage_gb: int,
) -> dict[str, Any]:
    """Values of the prometheus chart; every key exists in its values.yaml (tested). Its
    images are pinned from components/images.yaml (_chart_images)."""
    values = {
        "server": {
            # The chart's default (web.enable-lifecycle) is repeated: Helm replaces lists.
            "extraFlags": ["web.enable-lifecycle", "web.enable-remote-write-receiver"],
            "retention": retention,
            "persistentVolume": {"size": f"{storage_gb}Gi"},
            "global": {
                "scrape_interval": "30s",
                "evaluation_interval": _prometheus.EVALUATION_INTERVAL,
            },
        },
        "alertmanager": {"persistence": {"size": f"{alertmanager_storage_gb}Gi"}},
        "serverFiles": dict(_prometheus.hub_server_files(clusters, timings)),
        "extraScrapeConfigs": _prometheus.dump(_prometheus.hub_scrape_configs()),
        "prometheus-pushgateway": {"enabled": False},
        "prometheus-node-exporter": {"namespaceOverride": HOST_NAMESPACE},
        "kube-state-metrics": {
            "customResourceState": {"enabled": True, "config": manifest_work_metrics()},
            # kube-state-metrics serves a custom resource only when its plural is among the
            # resources it exposes (the chart's `collectors`, which this appends to).
            "collectorsExtra": ["manifestworks"],
            "rbac": {
                "extraRules": [
                    {
                        "apiGroups": [_ocm.WORK_API],
                        "resources": ["manifestworks"],
                        "verbs": ["list", "watch"],
                    }
                ]
            },
        },
    }
    return _chart_images.with_images(values, _chart_images.PROMETHEUS_IMAGES)


def manifest_work_metrics() -> dict[str, Any]:
    """kube-state-metrics custom-resource config: each ManifestWork's conditions as
    `ocm_manifestwork_condition{cluster, manifestwork, type}` (1 = True, 0 = False: the gauge
    maps the condition's "True"/"False" strings, kubernetes/kube-state-metrics#1963)."""
    return {
        "kind": "CustomResourceStateMetrics",
        "spec": {
            "resources": [
                {
                    "groupVersionKind": {
                        "group": _ocm.WORK_API,
                        "version": "v1",
                        "kind": "ManifestWork",
                    },
                    "metricNamePrefix": "ocm",
                    # A ManifestWork lives in its cluster's namespace on the hub.
                    "labelsFromPath": {
                        "cluster": ["metadata", "namespace"],
                        "manifestwork": ["metadata", "name"],
                    },
                    "metrics": [
                        {
                            "name": "manifestwork_condition",
                            "help": "Conditions of a ManifestWork (1 = True).",
                            "each": {
                                "type": "Gauge",
                                "gauge": {
                                    "path": ["status", "conditions"],
                                    "labelsFromPath": {"type": ["type"]},
                                    "valueFrom": ["status"],
                                },
                            },
                        }
                    ],
                }
            ]
        },
    }


def grafana_values() -> dict[str, Any]:
    """Values of the grafana chart; every key exists in its values.yaml (tested). Its images
    are pinned from components/images.yaml (_chart_images)."""
    values = {
        "admin": {
            "existingSecret": GRAFANA_ADMIN_SECRET,
            "userKey": "admin-user",
            "passwordKey": "admin-password",
        },
        # Reached by port-forward only: a ClusterIP Service and no Ingress.
        "service": {"type": "ClusterIP"},
        "ingress": {"enabled": False},
        "persistence": {"enabled": False},
        "datasources": {
            "datasources.yaml": {
                "apiVersion": 1,
                "datasources": [
                    {
                        "name": "Prometheus",
                        "type": "prometheus",
                        "uid": _dashboard.DATASOURCE_UID,
                        "access": "proxy",
                        "url": f"http://{PROMETHEUS_SERVICE}.{NAMESPACE}.svc.cluster.local",
                        "isDefault": True,
                    }
                ],
            }
        },
        "dashboardProviders": {
            "dashboardproviders.yaml": {
                "apiVersion": 1,
                "providers": [
                    {
                        "name": "ocm-fleet",
                        "folder": "ocm-fleet",
                        "type": "file",
                        "disableDeletion": True,
                        "editable": False,
                        "options": {"path": "/var/lib/grafana/dashboards/ocm-fleet"},
                    }
                ],
            }
        },
        "dashboards": {"ocm-fleet": {"fleet": {"json": _dashboard.dashboard_json()}}},
        # The `helm test` pod, which nothing runs: its image has no digest value in the chart.
        "testFramework": {"enabled": False},
    }
    return _chart_images.with_images(values, _chart_images.GRAFANA_IMAGES)


def receiver_deployment_spec(
    config_map: pulumi.Input[str],
    secret: pulumi.Input[str],
    clusters: Sequence[str],
    config: str,
    replicas: int = 2,
) -> dict[str, Any]:
    # HAProxy reads its files at start: a new config or a new cluster (a new user) rolls it.
    checksum = hashlib.sha256("\n".join([config, *sorted(clusters)]).encode()).hexdigest()
    return {
        "replicas": replicas,
        "selector": {"matchLabels": RECEIVER_LABELS},
        "template": {
            "metadata": {
                "labels": RECEIVER_LABELS,
                "annotations": {"ocm-fleet.io/config-sha256": checksum},
            },
            "spec": {
                "automountServiceAccountToken": False,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": RECEIVER_UID,
                    "runAsGroup": RECEIVER_UID,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": "haproxy",
                        "image": images.pinned(RECEIVER_IMAGE),
                        "imagePullPolicy": "IfNotPresent",
                        "args": [
                            "-f",
                            f"{_receiver.CONFIG_DIR}/haproxy.cfg",
                            "-f",
                            f"{_receiver.SECRET_DIR}/{_receiver.USERS_FILE}",
                        ],
                        "ports": [{"name": "https", "containerPort": _receiver.LISTEN_PORT}],
                        # The frontend's monitor-uri: HAProxy answers it itself while the
                        # frontend listens, whatever Prometheus behind it is doing.
                        "livenessProbe": {
                            "httpGet": {
                                "path": _receiver.HEALTHZ_PATH,
                                "port": "https",
                                "scheme": "HTTPS",
                            },
                            "periodSeconds": 10,
                            "failureThreshold": 6,
                        },
                        "readinessProbe": {
                            "httpGet": {
                                "path": _receiver.HEALTHZ_PATH,
                                "port": "https",
                                "scheme": "HTTPS",
                            },
                            "periodSeconds": 10,
                        },
                        "resources": {
                            "requests": {"cpu": "50m", "memory": "64Mi"},
                            "limits": {"memory": "256Mi"},
                        },
                        "securityContext": locked_down_container(),
                        "volumeMounts": [
                            {"name": "config", "mountPath": _receiver.CONFIG_DIR, "readOnly": True},
                            {"name": "secret", "mountPath": _receiver.SECRET_DIR, "readOnly": True},
                        ],
                    }
                ],
                "volumes": [
                    {"name": "config", "configMap": {"name": config_map}},
                    {"name": "secret", "secret": {"secretName": secret}},
                ],
            },
        },
    }
