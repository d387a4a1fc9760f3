"""A public entry: HAProxy on a main home, health-checking every app cluster."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import images
from components._k8s import load_balancer_address
from components.edge import _haproxy
from components.observability import _names
from components.security import network_policies as netpol
from components.security import pod_security

PUBLIC_LOAD_BALANCER_TYPE = "ocm-fleet:index:PublicLoadBalancer"

NAMESPACE = "ocm-fleet-ingress"
HAPROXY_IMAGE = "haproxy:3.2-alpine"
HAPROXY_UID = 99  # the official image's haproxy user
SERVICE_CREATE_TIMEOUT = "90m"
"""Covers the slowest app cluster's whole creation, its edge, then the HAProxy rollout."""
PUBLIC_ENTRY_LABEL = "ocm-fleet.io/public-entry"
METRICS_SERVICE = "public-lb-metrics"
"""Headless Service of HAProxy's exporter: the main cluster's Prometheus finds the pods by its
DNS name; nothing outside the cluster can reach it."""
LABELS = {"app.kubernetes.io/name": "public-lb", "app.kubernetes.io/part-of": "ocm-fleet"}
AZURE_DNS_LABEL_ANNOTATION = "service.beta.kubernetes.io/azure-dns-label-name"
"""AKS gives the Service's public IP the name `<label>.<region>.cloudapp.azure.com`
(learn.microsoft.com, azure/aks/static-ip, "Apply a DNS label to the service")."""
AZURE_DNS_LABEL_MAX = 63
DNS_LABEL_SUFFIX_LENGTH = 6
"""Random characters after the label's readable part: a label must be unique in its Azure
region, across every subscription, so project, stack and home are not enough alone."""


def azure_dns_label_prefix(project: str, stack: str, home: str) -> str:
    """The readable part of an AKS entry's DNS label: lowercase letters, digits and '-',
    starting with a letter, short enough that `-` and the random suffix keep the label
    within 63 characters (a DNS label's limit, and the public IP's)."""
    text = re.sub(r"[^a-z0-9]+", "-", f"{project}-{stack}-{home}".lower()).strip("-")
    if not text[:1].isalpha():
        text = f"entry-{text}".rstrip("-")
    return text[: AZURE_DNS_LABEL_MAX - 1 - DNS_LABEL_SUFFIX_LENGTH].rstrip("-")


@dataclass(frozen=True, kw_only=True)
class PublicLoadBalancerArgs:
    hub_provider: k8s.Provider
    """Provider of the main home the entry runs on (the main cluster or the second home)."""
    upstreams: Mapping[str, pulumi.Output[str]]
    """App cluster name -> its edge's address (IP or DNS name), from the graph."""
    cloud: str = "azure"
    """The cloud of the cluster the entry runs on: on `aws` the Service asks for a Network Load
    Balancer, as the app clusters' edges do (components/app/delivery.py)."""
    replicas: int = 2
    """HAProxy pods, spread over zones and nodes; two keep the entry up through a node loss."""
    dns_label_prefix: str | None = None
    """On `azure`: give the Service's public IP a DNS label starting with this
    (`azure_dns_label_prefix`), so a name can point at the entry by a DNS name; None: none."""
    region: str = ""
    """The cluster's region: the `<region>` of the DNS label's name."""


class PublicLoadBalancer(pulumi.ComponentResource):
    """One per main home: the main cluster's entry, and the second home's when `hub.standby` is
    set, each with the same upstreams. Creates, on its cluster:

    - a namespace and a ConfigMap with the HAProxy config rendered from the app clusters'
      edge addresses (one health-checked server each, `GET /api/books` every 2 s);
    - an HAProxy Deployment (rolled whenever the config changes) and its PodDisruptionBudget;
    - the cluster's one LoadBalancer Service without source ranges, labelled as the public entry,
      created with the namespace and complete once the HAProxy pods serve; it publishes port 80
      only;
    - with `dns_label_prefix`, a random suffix kept in state and the Service's DNS label
      annotation, so its public IP also answers at `dns_name`;
    - a headless Service over the exporter's port, for in-cluster scraping. Only the main
      cluster's Prometheus scrapes it (components/observability/_prometheus.py,
      `public_entry_scrape_job`); the second home runs no Prometheus and its exporter is not
      reachable from the main cluster, so the second entry's metrics are read on that cluster
      (docs/public-entry.md).
    """

    url: pulumi.Output[str]
    """http:// address of the bookstore."""
    config: pulumi.Output[str]
    """The rendered haproxy.cfg."""
    dns_name: pulumi.Output[str] | None
    """`<label>.<region>.cloudapp.azure.com` with `dns_label_prefix`, else None."""

    def __init__(
        self, name: str, args: PublicLoadBalancerArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(PUBLIC_LOAD_BALANCER_TYPE, name, None, opts)
        on_hub = pulumi.ResourceOptions(parent=self, provider=args.hub_provider)

        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=pod_security.namespace_metadata(NAMESPACE, pod_security.PUBLIC_ENTRY, LABELS),
            opts=on_hub,
        )
        self.config = pulumi.Output.all(**dict(args.upstreams)).apply(
            lambda upstreams: _haproxy.render_public_lb_config(upstreams)
        )
        config_map = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={"name": "public-lb", "namespace": namespace.metadata.name, "labels": LABELS},
            data={"haproxy.cfg": self.config},
            opts=on_hub,
        )
        checksum = self.config.apply(lambda text: hashlib.sha256(text.encode()).hexdigest())
        edges = pulumi.Output.all(*args.upstreams.values())
        policies = netpol.declare(
            name, public_entry_policies(namespace.metadata.name, edges), on_hub
        )
        k8s.apps.v1.Deployment(
            f"{name}-haproxy",
            metadata={"name": "public-lb", "namespace": namespace.metadata.name, "labels": LABELS},
            spec=haproxy_deployment_spec(config_map.metadata.name, checksum, args.replicas),
            opts=pulumi.ResourceOptions.merge(on_hub, pulumi.ResourceOptions(depends_on=policies)),
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata={"name": "public-lb", "namespace": namespace.metadata.name, "labels": LABELS},
            spec={"minAvailable": 1, "selector": {"matchLabels": LABELS}},
            opts=on_hub,
        )
        annotations: dict[str, pulumi.Input[str]] = {}
        if args.cloud == "aws":
            # EKS's built-in controller makes a Classic Load Balancer unless asked for an
            # NLB, which passes the client's address through and costs less
            # (kubernetes/cloud-provider-aws pkg/providers/v1/aws_loadbalancer.go, isNLB).
            annotations["service.beta.kubernetes.io/aws-load-balancer-type"] = "nlb"
        self.dns_name = None
        if args.dns_label_prefix is not None and args.cloud == "azure":
            suffix = random.RandomString(
                f"{name}-dns-label",
                length=DNS_LABEL_SUFFIX_LENGTH,
                upper=False,
                special=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            label = suffix.result.apply(lambda s: f"{args.dns_label_prefix}-{s}")
            annotations[AZURE_DNS_LABEL_ANNOTATION] = label
            self.dns_name = label.apply(lambda text: f"{text}.{args.region}.cloudapp.azure.com")
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata={
                "name": "public-lb",
                "namespace": namespace.metadata.name,
                "labels": {**LABELS, PUBLIC_ENTRY_LABEL: "true"},
                **({"annotations": annotations} if annotations else {}),
            },
            spec={
                "type": "LoadBalancer",
                "selector": LABELS,
                # Keep the client's address visible to HAProxy and to the NetworkPolicy, and
                # avoid a second hop (see docs/security.md, "Network policies").
                "externalTrafficPolicy": "Local",
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            },
            opts=pulumi.ResourceOptions.merge(
                on_hub,
                # Started with the namespace, the cloud load balancer is provisioned while the
                # app clusters come up; pulumi-kubernetes still holds the create until the
                # HAProxy pods are ready endpoints, which is after every app cluster's edge.
                pulumi.ResourceOptions(
                    custom_timeouts=pulumi.CustomTimeouts(create=SERVICE_CREATE_TIMEOUT)
                ),
            ),
        )
        k8s.core.v1.Service(
            f"{name}-metrics-service",
            metadata={
                "name": METRICS_SERVICE,
                "namespace": namespace.metadata.name,
                "labels": LABELS,
            },
            spec={
                "clusterIP": "None",
                "selector": LABELS,
                "ports": [
                    {"name": "metrics", "port": _haproxy.METRICS_PORT, "targetPort": "metrics"}
                ],
            },
            opts=on_hub,
        )
        self.url = service.status.apply(lambda status: f"http://{load_balancer_address(status)}")
        self.register_outputs({"url": self.url})


def public_entry_policies(
    namespace: pulumi.Input[str], edges: pulumi.Input[list[str]]
) -> list[dict]:
    """HAProxy takes connections from anyone and reaches the app clusters' edges and DNS (to
    re-resolve the edges' DNS names); the main cluster's Prometheus scrapes its exporter;
    nothing else moves in the namespace."""
    edge_peers = pulumi.Output.from_input(edges).apply(
        lambda addresses: sorted(
            {
                peer["ipBlock"]["cidr"]
                for address in addresses
                for peer in netpol.address_peers(address)
            }
        )
    )
    return [
        netpol.default_deny(namespace),
        netpol.policy(
            "public-lb",
            namespace,
            {"matchLabels": LABELS},
            ingress=[
                {
                    "from": netpol.cidr_peers(netpol.ANYWHERE),
                    "ports": netpol.tcp(_haproxy.LISTEN_PORT),
                },
                {
                    "from": [_names.PROMETHEUS_SERVER_PEER],
                    "ports": netpol.tcp(_haproxy.METRICS_PORT),
                },
            ],
            egress=[
                {
                    "to": edge_peers.apply(netpol.cidr_peers),
                    "ports": netpol.tcp(_haproxy.EDGE_PORT),
                },
                netpol.dns_rule(),
            ],
        ),
    ]


def haproxy_deployment_spec(
    config_map: pulumi.Input[str], checksum: pulumi.Input[str], replicas: int
) -> dict:
    return {
        "replicas": replicas,
        "selector": {"matchLabels": LABELS},
        "template": {
            "metadata": {
                "labels": LABELS,
                "annotations": {"ocm-fleet.io/config-sha256": checksum},
            },
            "spec": {
                "automountServiceAccountToken": False,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": HAPROXY_UID,
                    "runAsGroup": HAPROXY_UID,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": key,
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": LABELS},
                    }
                    for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
                ],
                "containers": [
                    {
                        "name": "haproxy",
                        "image": images.pinned(HAPROXY_IMAGE),
                        "imagePullPolicy": "IfNotPresent",
                        "args": ["-f", "/usr/local/etc/haproxy/haproxy.cfg"],
                        "ports": [
                            {"name": "http", "containerPort": _haproxy.LISTEN_PORT},
                            # Scraped in-cluster by pod address; the Service leaves it out.
                            {"name": "metrics", "containerPort": _haproxy.METRICS_PORT},
                        ],
                        "readinessProbe": {
                            "httpGet": {"path": _haproxy.HEALTHZ_PATH, "port": "http"},
                            "periodSeconds": 5,
                        },
                        "livenessProbe": {
                            "httpGet": {"path": _haproxy.HEALTHZ_PATH, "port": "http"},
                            "periodSeconds": 10,
                            "failureThreshold": 3,
                        },
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "64Mi"},
                            "limits": {"memory": "256Mi"},
                        },
                        "securityContext": pod_security.locked_down_container(),
                        "volumeMounts": [
                            {
                                "name": "config",
                                "mountPath": "/usr/local/etc/haproxy",
                                "readOnly": True,
                            }
                        ],
                    }
                ],
                "volumes": [{"name": "config", "configMap": {"name": config_map}}],
            },
        },
    }
