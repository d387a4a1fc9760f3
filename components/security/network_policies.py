"""NetworkPolicies the program declares: deny everything by default, then allow each flow.

Every namespace the program creates denies all ingress and all egress; each pod then gets the
flows the data path needs and nothing else. The policies here are plain objects: components
create them through their cluster's provider (`declare`), and the app's cluster-independent
ones live in manifests/network-policies.yaml.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

DEFAULT_DENY = "default-deny"
DNS_PORT = 53
API_SERVER_PORTS = (443, 6443)
"""Where pods reach the Kubernetes API: 443 on EKS and AKS endpoints, 6443 on kind and kubeadm."""

DNS_PEER = {
    # CoreDNS carries k8s-app=kube-dns on EKS (coredns add-on), AKS and kind alike.
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
ANYWHERE = ["0.0.0.0/0", "::/0"]


def policy(
    name: str,
    namespace: pulumi.Input[str] | None,
    pod_selector: Mapping[str, Any],
    *,
    ingress: Sequence[Mapping[str, Any]] | None = None,
    egress: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A NetworkPolicy for the pods `pod_selector` (a label selector) selects; only the
    directions given are restricted."""
    types = [t for t, rules in (("Ingress", ingress), ("Egress", egress)) if rules is not None]
    spec: dict[str, Any] = {"podSelector": dict(pod_selector)}
    spec["policyTypes"] = types
    if ingress is not None:
        spec["ingress"] = list(ingress)
    if egress is not None:
        spec["egress"] = list(egress)
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata,
        "spec": spec,
    }


def default_deny(namespace: pulumi.Input[str] | None) -> dict[str, Any]:
    """Selects every pod of the namespace for both directions and allows nothing."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": DEFAULT_DENY, **({"namespace": namespace} if namespace else {})},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }


def tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def dns_rule() -> dict[str, Any]:
    return {
        "to": [DNS_PEER],
        "ports": [{"protocol": p, "port": DNS_PORT} for p in ("UDP", "TCP")],
    }


def cidr_peers(cidrs: Sequence[str]) -> list[dict[str, Any]]:
    return [{"ipBlock": {"cidr": cidr}} for cidr in sorted(cidrs)]


def address_peers(address: str) -> list[dict[str, Any]]:
    """Peers for one load balancer address: the /32 (or /128) of an IP. A DNS name (an AWS load
    balancer's) has no fixed address, so it can only be matched as "anywhere"; the rule's port
    still limits it."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return cidr_peers(ANYWHERE)
    return cidr_peers([f"{ip}/{ip.max_prefixlen}"])


def load_balancer_peers(address: str) -> list[dict[str, Any]]:
    """The one address of a load balancer that proxies connections (kind); anything else is an
    error rather than a rule that admits more than that load balancer."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError as err:
        raise pulumi.RunError(
            f"load balancer address {address!r} is not an IP; a proxying load balancer's "
            "connections can only be admitted by its IP"
        ) from err
    return cidr_peers([f"{ip}/{ip.max_prefixlen}"])


def declare(
    name: str, policies: Sequence[Mapping[str, Any]], opts: pulumi.ResourceOptions
) -> list[k8s.networking.v1.NetworkPolicy]:
    """The policies as resources named `{name}-network-policy-{policy name}`."""
    return [
        k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy-{p['metadata']['name']}",
            metadata=p["metadata"],
            spec=p["spec"],
            opts=opts,
        )
        for p in policies
    ]
