"""The surface every fleet cluster offers, whichever cloud built it."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import _k8s
from components.config import ClusterSpec


class FleetCluster(pulumi.ComponentResource):
    """Base of every cluster component (EKS, AKS, kind, existing): one surface for the program.

    Subclasses build the cloud resources, then call `_finish` with what they made.
    """

    spec: ClusterSpec
    """The validated config this cluster was built from."""
    provider: k8s.Provider
    """The Kubernetes provider for this cluster; every Kubernetes resource on it names it."""
    kubeconfig: pulumi.Output[str]
    """Admin kubeconfig (a Pulumi secret)."""
    api_server_url: pulumi.Output[str]
    """https:// URL of the API server, as other clusters reach it."""
    ca_data: pulumi.Output[str]
    """Base64 PEM of the API server's certificate authority."""
    egress_cidrs: pulumi.Output[list[str]]
    """Public addresses (as /32 CIDRs) that this cluster's outbound traffic leaves from."""
    load_balancers_proxy: bool = False
    """True when the cluster's load balancers open connections of their own to the nodes, as
    cloud-provider-kind's Envoy containers do on kind: pods then see the load balancer's
    address, not the client's, even with `externalTrafficPolicy: Local`, and NetworkPolicies
    that admit clients by address must admit that load balancer's address as well."""
    load_balancer_dependencies: tuple[pulumi.Resource, ...] = ()
    """What the cluster's LoadBalancer Services need besides the cluster, such as a controller
    that runs outside it (kind). Folded into the provider's dependencies, so every Service on
    the cluster is created after it and deleted before it."""
    storage_dependencies: tuple[pulumi.Resource, ...] = ()
    """What a PersistentVolumeClaim on the cluster needs besides the cluster: the volume driver
    where the cloud installs it as an add-on (EKS's EBS CSI driver). A claim depends on it, so
    it is bound after the driver runs and released (its volume deleted) before the driver goes.
    Not folded into the provider: objects that claim no volume need not wait for the driver's
    rollout (on EKS the add-on is deleted with the cluster, after every object on it)."""

    def load_balancer_address(self, service: k8s.core.v1.Service) -> pulumi.Output[str]:
        """The address (IP or DNS name) of a LoadBalancer Service on this cluster. A cloud's
        load balancer keeps its address for its life, so the status recorded when the Service
        was created stays true; kind reads it anew (KindCluster.load_balancer_address)."""
        return service.status.apply(_k8s.load_balancer_address)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def cloud(self) -> str:
        return self.spec.cloud

    @property
    def region(self) -> str:
        return self.spec.region

    def _finish(
        self,
        *,
        kubeconfig: pulumi.Input[str],
        api_server_url: pulumi.Input[str],
        ca_data: pulumi.Input[str],
        egress_cidrs: pulumi.Input[Sequence[str]],
        provider_depends_on: Sequence[pulumi.Resource] = (),
        load_balancer_depends_on: Sequence[pulumi.Resource] = (),
        storage_depends_on: Sequence[pulumi.Resource] = (),
        context: str | None = None,
    ) -> None:
        """Create the cluster's Kubernetes provider and register the common outputs.

        The provider depends on the node pool as well as the control plane: every Kubernetes
        resource then waits for nodes on create and, in reverse, is deleted while nodes still
        run. That is what lets LoadBalancer Services release their cloud load balancers before
        the network under them is removed. `load_balancer_depends_on` is ordered the same way
        for the same reason.
        """
        self.load_balancer_dependencies = tuple(load_balancer_depends_on)
        self.storage_dependencies = tuple(storage_depends_on)
        self.kubeconfig = pulumi.Output.secret(kubeconfig)
        self.api_server_url = pulumi.Output.from_input(api_server_url)
        self.ca_data = pulumi.Output.from_input(ca_data)
        self.egress_cidrs = pulumi.Output.from_input(egress_cidrs).apply(sorted)
        self.provider = k8s.Provider(
            f"{self.name}-k8s",
            kubeconfig=self.kubeconfig,
            context=context,
            # A stable identity: a refreshed kubeconfig (new token, new cert) must not make
            # the provider, and with it every object on the cluster, look replaced.
            cluster_identifier=self.name,
            # Only on the homes of a fleet with a second home, so other fleets' providers keep
            # their inputs. While the API is unreachable, the provider's Check answers with the
            # inputs in state: nothing on this cluster is updated, and the rest of the `up` goes
            # on (pulumi-kubernetes provider/pkg/provider/provider.go (Check)). Not
            # deleteUnreachable: that drops from state every object of an unreachable cluster
            # on refresh and delete, which a cluster that is only down for now must not lose.
            skip_update_unreachable=True if self.spec.skip_unreachable else None,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*provider_depends_on, *self.load_balancer_dependencies],
            ),
        )
        self.register_outputs(
            {
                "apiServerUrl": self.api_server_url,
                "egressCidrs": self.egress_cidrs,
                "kubeconfig": self.kubeconfig,
            }
        )
