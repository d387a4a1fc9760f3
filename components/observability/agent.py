"""The metrics agent of one app cluster, delivered through OCM, shipping to the main cluster."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.clusters._base import FleetCluster
from components.observability import _prometheus
from components.observability.hub import (
    HOST_LEVEL,
    HOST_NAMESPACE,
    NAMESPACE,
    NODE_PORTS,
    RECEIVER_PORT,
    FleetMonitoring,
)
from components.ocm import _charts as _ocm
from components.ocm.managed_cluster import OcmManagedCluster
from components.security import network_policies as netpol
from components.security.pod_security import namespace_metadata, restricted_container

METRICS_AGENT_TYPE = "ocm-fleet:index:MetricsAgent"

WORK_NAME = "metrics-agent"
CREDENTIALS_SECRET = "metrics-agent-credentials"
AGENT = "metrics-agent"
KUBE_STATE = "kube-state-metrics"
NODE_EXPORTER = "node-exporter"
NOBODY = 65534
KSM_TELEMETRY_PORT = 8081
"""kube-state-metrics' own metrics and /readyz (its default --telemetry-port, stated)."""
AGENT_LABELS = {"app.kubernetes.io/name": AGENT, "app.kubernetes.io/part-of": "ocm-fleet"}
KSM_LABELS = {"app.kubernetes.io/name": KUBE_STATE, "app.kubernetes.io/part-of": "ocm-fleet"}
NODE_LABELS = {"app.kubernetes.io/name": NODE_EXPORTER, "app.kubernetes.io/part-of": "ocm-fleet"}
AGENT_LEVEL = (
    "restricted",
    "The metrics agent and kube-state-metrics run as non-root with no capabilities, a "
    "read-only root filesystem and the runtime's seccomp profile.",
)
# node-exporter needs the host, and only it runs in the privileged namespace.
APP_POD_SECURITY = {NAMESPACE: AGENT_LEVEL, HOST_NAMESPACE: HOST_LEVEL}

# Kinds the ManifestWork carries, with what the work agent must be allowed to do with them.
# RBAC objects are not among them: they are created directly (see MetricsAgent), because an
# agent may only grant what it holds itself.
_WORK_RESOURCES = {
    "": ["configmaps", "serviceaccounts", "services"],
    "apps": ["daemonsets", "deployments"],
}
_WORK_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True, kw_only=True)
class MetricsAgentArgs:
    cluster: FleetCluster
    """The app cluster whose metrics the agent ships."""
    hub_cluster: FleetCluster
    """The main cluster, where the ManifestWork is declared."""
    membership: OcmManagedCluster
    """The cluster's OCM registration; the ManifestWork depends on it."""
    monitoring: FleetMonitoring
    """The main cluster's monitoring: receiver address, CA and this cluster's password."""


class MetricsAgent(pulumi.ComponentResource):
    """Creates:

    - on the app cluster, through its provider: the `monitoring` namespace (Pod Security
      `restricted`) and `monitoring-host` (`privileged`, node-exporter only); the agent's
      credentials Secret (its remote-write password and the receiver's CA: never inside a
      ManifestWork, which the hub keeps in plain text); the RBAC of the agent and of
      kube-state-metrics; a ClusterRole aggregated to the OCM work agent for the kinds below;
    - on the hub, in the cluster's namespace: the ManifestWork `metrics-agent` with Prometheus
      in agent mode (pinned image, config rendered here), kube-state-metrics and node-exporter,
      waited for until Applied and Available.

    The ManifestWork depends on the cluster's ManagedCluster and Klusterlet and on the receiver,
    so destroy removes the agent first, while the work agent, the cluster and the hub still run.
    """

    manifest_work: k8s.apiextensions.CustomResource
    """The agent's ManifestWork on the hub."""
    config: pulumi.Output[str]
    """The agent's rendered prometheus.yml."""

    def __init__(
        self, name: str, args: MetricsAgentArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(METRICS_AGENT_TYPE, name, None, opts)
        cluster = args.cluster
        on_app = pulumi.ResourceOptions(parent=self, provider=cluster.provider)
        monitoring = args.monitoring

        namespaces = [
            k8s.core.v1.Namespace(
                f"{name}-namespace" if ns == NAMESPACE else f"{name}-host-namespace",
                metadata=namespace_metadata(ns, APP_POD_SECURITY[ns]),
                opts=on_app,
            )
            for ns in (NAMESPACE, HOST_NAMESPACE)
        ]
        # Pods start after their policies: a pod whose flows are not yet allowed would fail.
        after_namespaces = pulumi.ResourceOptions.merge(
            on_app, pulumi.ResourceOptions(depends_on=namespaces)
        )
        policies = netpol.declare(
            name, agent_policies(monitoring.receiver_address), after_namespaces
        ) + netpol.declare(f"{name}-host", node_exporter_policies(), after_namespaces)
        credentials = k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata={"name": CREDENTIALS_SECRET, "namespace": NAMESPACE},
            type="Opaque",
            string_data={
                "password": monitoring.agent_passwords[cluster.name],
                "ca.crt": monitoring.ca_certificate,
            },
            opts=pulumi.ResourceOptions.merge(
                on_app, pulumi.ResourceOptions(depends_on=namespaces)
            ),
        )
        rbac = self._rbac(name, on_app)
        work_role = k8s.rbac.v1.ClusterRole(
            f"{name}-work-agent-role",
            metadata={
                "name": "ocm-fleet:work-agent:metrics-agent",
                "labels": {"open-cluster-management.io/aggregate-to-work": "true"},
            },
            rules=[
                {"apiGroups": [group], "resources": resources, "verbs": _WORK_VERBS}
                for group, resources in sorted(_WORK_RESOURCES.items())
            ],
            opts=on_app,
        )

        self.config = monitoring.receiver_address.apply(
            lambda address: _prometheus.dump(
                _prometheus.agent_config(
                    cluster.name,
                    receiver=f"{address}:{RECEIVER_PORT}",
                    namespace=NAMESPACE,
                    host_namespace=HOST_NAMESPACE,
                )
            )
        )
        self.manifest_work = k8s.apiextensions.CustomResource(
            f"{name}-manifest-work",
            api_version=f"{_ocm.WORK_API}/v1",
            kind="ManifestWork",
            metadata={
                "name": WORK_NAME,
                "namespace": cluster.name,
                "annotations": {
                    **_ocm.wait_for("condition=Applied", "condition=Available"),
                    "pulumi.com/deletionPropagationPolicy": "foreground",
                },
            },
            spec={
                "workload": {"manifests": self.config.apply(agent_manifests)},
                "deleteOption": {"propagationPolicy": "Foreground"},
            },
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=args.hub_cluster.provider,
                depends_on=[
                    args.membership.managed_cluster,
                    args.membership.klusterlet,
                    *namespaces,
                    credentials,
                    work_role,
                    *rbac,
                    *policies,
                    # The receiver outlives the agents on destroy: they can flush until the end.
                    monitoring.receiver_service,
                ],
                custom_timeouts=pulumi.CustomTimeouts(
                    create=_ocm.CREATE_TIMEOUT,
                    update=_ocm.CREATE_TIMEOUT,
                    delete=_ocm.DELETE_TIMEOUT,
                ),
            ),
        )
        self.register_outputs({"manifestWork": self.manifest_work.metadata})

    def _rbac(self, name: str, on_app: pulumi.ResourceOptions) -> list[pulumi.Resource]:
        """What the agent and kube-state-metrics may read, bound to their ServiceAccounts."""
        roles = {
            # Targets come from DNS; the kubelet authorizes /metrics/cadvisor as nodes/metrics.
            AGENT: [{"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]}],
            KUBE_STATE: [
                {"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": ["list", "watch"]},
                {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list", "watch"]},
            ],
        }
        made: list[pulumi.Resource] = []
        for who, rules in roles.items():
            role = k8s.rbac.v1.ClusterRole(
                f"{name}-{who}-role",
                metadata={"name": f"ocm-fleet:{who}"},
                rules=rules,
                opts=on_app,
            )
            made.append(role)
            made.append(
                k8s.rbac.v1.ClusterRoleBinding(
                    f"{name}-{who}-binding",
                    metadata={"name": f"ocm-fleet:{who}"},
                    role_ref={
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": role.metadata.name,
                    },
                    subjects=[{"kind": "ServiceAccount", "name": who, "namespace": NAMESPACE}],
                    opts=on_app,
                )
            )
        return made


def agent_policies(receiver_address: pulumi.Input[str]) -> list[dict[str, Any]]:
    """The agent ships to the receiver's address on its port, scrapes kube-state-metrics, and the
    nodes' exporters and kubelets (host addresses: any address, on those ports only);
    kube-state-metrics reads the API server. Nothing comes in from outside the namespace."""
    agent = {"podSelector": {"matchLabels": AGENT_LABELS}}
    receiver = pulumi.Output.from_input(receiver_address).apply(netpol.address_peers)
    return [
        netpol.default_deny(NAMESPACE),
        netpol.policy(
            AGENT,
            NAMESPACE,
            {"matchLabels": AGENT_LABELS},
            ingress=[],
            egress=[
                {"to": receiver, "ports": netpol.tcp(RECEIVER_PORT)},
                {"to": [{"podSelector": {"matchLabels": KSM_LABELS}}], "ports": netpol.tcp(8080)},
                # Nodes (node-exporter, kubelet) by port and no peer: Cilium, the AKS
                # dataplane here, does not match node addresses with ipBlock
                # (cilium/cilium#20550), as for the OCM operators (ocm/_charts.py).
                {"ports": netpol.tcp(*NODE_PORTS)},
                netpol.dns_rule(),
            ],
        ),
        netpol.policy(
            KUBE_STATE,
            NAMESPACE,
            {"matchLabels": KSM_LABELS},
            ingress=[{"from": [agent], "ports": netpol.tcp(8080)}],
            egress=[{"ports": netpol.tcp(*netpol.API_SERVER_PORTS)}],
        ),
    ]


def node_exporter_policies() -> list[dict[str, Any]]:
    """node-exporter uses the host network, which NetworkPolicies do not govern; the rule states
    the one flow it serves."""
    agent = {"podSelector": {"matchLabels": AGENT_LABELS}}
    return [
        netpol.default_deny(HOST_NAMESPACE),
        netpol.policy(
            NODE_EXPORTER,
            HOST_NAMESPACE,
            {"matchLabels": NODE_LABELS},
            ingress=[
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}
                            },
                            **agent,
                        }
                    ],
                    "ports": netpol.tcp(9100),
                }
            ],
            egress=[],
        ),
    ]


def _pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": NOBODY,
        "runAsGroup": NOBODY,
        "fsGroup": NOBODY,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


API_TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def _api_token_volume() -> dict[str, Any]:
    """The ServiceAccount token, CA and namespace at the usual path, as an explicit projected
    volume: only the pods that call an API get one (automounting is off everywhere)."""
    return {
        "name": "api-token",
        "projected": {
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                        ]
                    }
                },
            ]
        },
    }


_API_TOKEN_MOUNT = {"name": "api-token", "mountPath": API_TOKEN_DIR, "readOnly": True}


def _account(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace},
    }


def agent_manifests(config: str) -> list[dict[str, Any]]:
    """Everything the agent's ManifestWork carries; no credentials (they are on the cluster)."""
    checksum = hashlib.sha256(config.encode()).hexdigest()
    agent = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": AGENT, "namespace": NAMESPACE, "labels": AGENT_LABELS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": AGENT_LABELS},
            "template": {
                "metadata": {
                    "labels": AGENT_LABELS,
                    # Prometheus reads its config at start: a new config rolls the pod.
                    "annotations": {"ocm-fleet.io/config-sha256": checksum},
                },
                "spec": {
                    "serviceAccountName": AGENT,
                    "automountServiceAccountToken": False,
                    "securityContext": _pod_security(),
                    "containers": [
                        {
                            "name": "prometheus",
                            "image": _prometheus.AGENT_IMAGE,
                            "imagePullPolicy": "IfNotPresent",
                            "args": _prometheus.agent_flags(),
                            "ports": [{"name": "http", "containerPort": 9090}],
                            # prometheus web/web.go (New): /-/healthy answers while the
                            # process serves, /-/ready once it has started.
                            "livenessProbe": {
                                "httpGet": {"path": "/-/healthy", "port": "http"},
                                "periodSeconds": 10,
                                "failureThreshold": 6,
                            },
                            "readinessProbe": {
                                "httpGet": {"path": "/-/ready", "port": "http"},
                                "periodSeconds": 10,
                            },
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "256Mi"},
                                "limits": {"memory": "1Gi"},
                            },
                            "securityContext": restricted_container(NOBODY),
                            "volumeMounts": [
                                {
                                    "name": "config",
                                    "mountPath": _prometheus.AGENT_CONFIG_DIR,
                                    "readOnly": True,
                                },
                                {
                                    "name": "credentials",
                                    "mountPath": _prometheus.AGENT_CREDENTIALS_DIR,
                                    "readOnly": True,
                                },
                                {"name": "wal", "mountPath": "/prometheus"},
                                # The kubelet authenticates the cAdvisor scrape with this token.
                                _API_TOKEN_MOUNT,
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "config", "configMap": {"name": AGENT}},
                        {"name": "credentials", "secret": {"secretName": CREDENTIALS_SECRET}},
                        # The write-ahead log only buffers what is not yet shipped.
                        {"name": "wal", "emptyDir": {"sizeLimit": "2Gi"}},
                        _api_token_volume(),
                    ],
                },
            },
        },
    }
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": AGENT, "namespace": NAMESPACE, "labels": AGENT_LABELS},
        "data": {"prometheus.yml": config},
    }
    ksm = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": KUBE_STATE, "namespace": NAMESPACE, "labels": KSM_LABELS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": KSM_LABELS},
            "template": {
                "metadata": {"labels": KSM_LABELS},
                "spec": {
                    "serviceAccountName": KUBE_STATE,
                    "automountServiceAccountToken": False,
                    "securityContext": _pod_security(),
                    "volumes": [_api_token_volume()],
                    "containers": [
                        {
                            "name": KUBE_STATE,
                            "image": _prometheus.KUBE_STATE_METRICS_IMAGE,
                            "imagePullPolicy": "IfNotPresent",
                            "args": [
                                "--port=8080",
                                f"--telemetry-port={KSM_TELEMETRY_PORT}",
                                "--resources=deployments,nodes,pods",
                            ],
                            "ports": [
                                {"name": "http", "containerPort": 8080},
                                {"name": "telemetry", "containerPort": KSM_TELEMETRY_PORT},
                            ],
                            # kube-state-metrics pkg/app/server.go: /healthz on the metrics port
                            # answers while that server runs (buildMetricsServer); /readyz on the
                            # telemetry port once its registry gathers (buildTelemetryServer).
                            # Not /livez, which asks the API server: an API outage would restart
                            # a healthy exporter into a crash-loop back-off.
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http"},
                                "periodSeconds": 10,
                                "failureThreshold": 6,
                            },
                            "readinessProbe": {
                                "httpGet": {"path": "/readyz", "port": "telemetry"},
                                "periodSeconds": 10,
                            },
                            "resources": {
                                "requests": {"cpu": "50m", "memory": "64Mi"},
                                "limits": {"memory": "256Mi"},
                            },
                            "securityContext": restricted_container(NOBODY),
                            "volumeMounts": [_API_TOKEN_MOUNT],
                        }
                    ],
                },
            },
        },
    }
    ksm_service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": KUBE_STATE, "namespace": NAMESPACE, "labels": KSM_LABELS},
        "spec": {
            "selector": KSM_LABELS,
            "ports": [{"name": "http", "port": 8080, "targetPort": "http"}],
        },
    }
    node_exporter = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": NODE_EXPORTER, "namespace": HOST_NAMESPACE, "labels": NODE_LABELS},
        "spec": {
            "selector": {"matchLabels": NODE_LABELS},
            "template": {
                "metadata": {"labels": NODE_LABELS},
                "spec": {
                    "serviceAccountName": NODE_EXPORTER,
                    "automountServiceAccountToken": False,
                    # The node's own network, processes and filesystems: what it measures.
                    "hostNetwork": True,
                    "hostPID": True,
                    "securityContext": _pod_security(),
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [
                        {
                            "name": NODE_EXPORTER,
                            "image": _prometheus.NODE_EXPORTER_IMAGE,
                            "imagePullPolicy": "IfNotPresent",
                            "args": [
                                "--path.procfs=/host/proc",
                                "--path.sysfs=/host/sys",
                                "--path.rootfs=/host/root",
                                "--web.listen-address=:9100",
                            ],
                            "ports": [{"name": "metrics", "containerPort": 9100}],
                            # The landing page, as the prometheus-node-exporter chart probes it
                            # (templates/daemonset.yaml); on the host network the kubelet asks
                            # the node's own address.
                            "livenessProbe": {
                                "httpGet": {"path": "/", "port": "metrics"},
                                "periodSeconds": 10,
                                "failureThreshold": 6,
                            },
                            "readinessProbe": {
                                "httpGet": {"path": "/", "port": "metrics"},
                                "periodSeconds": 10,
                            },
                            "resources": {
                                "requests": {"cpu": "20m", "memory": "32Mi"},
                                "limits": {"memory": "128Mi"},
                            },
                            "securityContext": restricted_container(NOBODY),
                            "volumeMounts": [
                                {"name": "proc", "mountPath": "/host/proc", "readOnly": True},
                                {"name": "sys", "mountPath": "/host/sys", "readOnly": True},
                                {
                                    "name": "root",
                                    "mountPath": "/host/root",
                                    "readOnly": True,
                                    "mountPropagation": "HostToContainer",
                                },
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "proc", "hostPath": {"path": "/proc"}},
                        {"name": "sys", "hostPath": {"path": "/sys"}},
                        {"name": "root", "hostPath": {"path": "/"}},
                    ],
                },
            },
        },
    }
    # Headless: its DNS name answers with every node-exporter pod, that is every node's address.
    node_service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": _prometheus.NODE_EXPORTER_SERVICE,
            "namespace": HOST_NAMESPACE,
            "labels": NODE_LABELS,
        },
        "spec": {
            "clusterIP": "None",
            "selector": NODE_LABELS,
            "ports": [{"name": "metrics", "port": 9100, "targetPort": "metrics"}],
        },
    }
    objects = [
        node_service,
        _account(AGENT, NAMESPACE),
        _account(KUBE_STATE, NAMESPACE),
        _account(NODE_EXPORTER, HOST_NAMESPACE),
        config_map,
        agent,
        ksm,
        ksm_service,
        node_exporter,
    ]
    return sorted(
        objects, key=lambda o: (o["kind"], o["metadata"]["namespace"], o["metadata"]["name"])
    )
