"""The bookstore on one app cluster: its ManifestWork, its database credentials and its edge."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components._k8s import load_balancer_address
from components.app._manifests import place, work_agent_rules
from components.app.database import DatabaseEndpoint
from components.clusters._base import FleetCluster
from components.edge import _haproxy
from components.ocm import _charts as _ocm
from components.ocm.managed_cluster import OcmManagedCluster
from components.security import network_policies as netpol
from components.security import pod_security

APP_DELIVERY_TYPE = "ocm-fleet:index:AppDelivery"

APP_NAMESPACE = "bookstore"
DATABASE_CONFIG = "bookstore-database"
"""Name of the app's database ConfigMap (in the ManifestWork) and Secret (created directly)."""
WORK_NAME = "bookstore"
EDGE_CREATE_TIMEOUT = "40m"
"""The ManifestWork's own create timeout (20m), plus the agent's registration and the cloud LB."""
ROUTER_LABELS = {"app.kubernetes.io/name": "router", "app.kubernetes.io/part-of": "bookstore"}


@dataclass(frozen=True, kw_only=True)
class AppDeliveryArgs:
    cluster: FleetCluster
    """The app cluster the bookstore runs on."""
    hub_cluster: FleetCluster
    """The main cluster, where the ManifestWork is declared."""
    membership: OcmManagedCluster
    """The cluster's OCM registration; the ManifestWork depends on it."""
    objects: Sequence[Mapping[str, Any]]
    """The objects of manifests/, without namespace (see _manifests.load_manifests)."""
    database: DatabaseEndpoint
    """Where the app's database is and how to log in (the password is a secret)."""
    edge_allowed_cidrs: pulumi.Input[Sequence[str]]
    """Who may reach the edge: the main cluster's egress addresses, where the public LB runs."""
    ready_after: Sequence[pulumi.Resource] = ()
    """Resources the app needs before it starts (the database schema migration)."""


class AppDelivery(pulumi.ComponentResource):
    """Creates:

    - on the app cluster, through its provider: the app namespace, the database password
      Secret (never inside a ManifestWork: the hub stores those in plain text), and a
      ClusterRole aggregated to the OCM work agent covering every kind in manifests/;
    - on the hub, in the cluster's namespace: the ManifestWork carrying every object of
      manifests/ plus the per-cluster database ConfigMap, waited for until Applied and
      Available;
    - on the app cluster: the edge, a LoadBalancer Service in front of the router that only
      the main cluster's egress addresses may reach. It is created alongside the ManifestWork,
      so the cloud load balancer is provisioned while the agent applies the workload; its
      create still waits until the router's endpoints are ready. Through the cluster's
      provider it depends on the nodes, so destroy removes it while the cluster still runs.
    """

    manifest_work: k8s.apiextensions.CustomResource
    """The ManifestWork on the hub, in the cluster's namespace."""
    edge: k8s.core.v1.Service
    """The LoadBalancer Service in front of the router on the app cluster."""
    edge_address: pulumi.Output[str]
    """The edge's public IP or DNS name, for the main cluster's load balancer."""

    def __init__(
        self, name: str, args: AppDeliveryArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(APP_DELIVERY_TYPE, name, None, opts)
        cluster = args.cluster
        on_app = pulumi.ResourceOptions(parent=self, provider=cluster.provider)

        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=pod_security.namespace_metadata(
                APP_NAMESPACE, pod_security.APP, {"app.kubernetes.io/part-of": "bookstore"}
            ),
            opts=on_app,
        )
        secret = k8s.core.v1.Secret(
            f"{name}-database-secret",
            metadata={"name": DATABASE_CONFIG, "namespace": namespace.metadata.name},
            type="Opaque",
            string_data={"DB_PASSWORD": args.database.password},
            opts=on_app,
        )
        work_role = k8s.rbac.v1.ClusterRole(
            f"{name}-work-agent-role",
            metadata={
                "name": "ocm-fleet:work-agent:bookstore",
                "labels": {"open-cluster-management.io/aggregate-to-work": "true"},
            },
            rules=work_agent_rules(args.objects),
            opts=on_app,
        )

        db = args.database
        manifests = db.host.apply(
            lambda host: workload_manifests(
                args.objects,
                cluster_name=cluster.name,
                database={
                    "DB_HOST": host,
                    "DB_NAME": db.name,
                    "DB_PORT": str(db.port),
                    "DB_USER": db.user,
                },
                password_generation=db.password_generation,
            )
        )
        self.manifest_work = k8s.apiextensions.CustomResource(
            f"{name}-manifest-work",
            api_version=f"{_ocm.WORK_API}/v1",
            kind="ManifestWork",
            metadata={
                "name": WORK_NAME,
                # The cluster namespace, which the hub creates with the ManagedCluster.
                "namespace": cluster.name,
                "annotations": {
                    **_ocm.wait_for("condition=Applied", "condition=Available"),
                    "pulumi.com/deletionPropagationPolicy": "foreground",
                },
            },
            spec={
                "workload": {"manifests": manifests},
                # The work agent deletes what it applied before the ManifestWork goes away.
                "deleteOption": {"propagationPolicy": "Foreground"},
            },
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=args.hub_cluster.provider,
                depends_on=[
                    args.membership.managed_cluster,
                    args.membership.klusterlet,
                    namespace,
                    secret,
                    work_role,
                    *args.ready_after,
                ],
                custom_timeouts=pulumi.CustomTimeouts(
                    create=_ocm.CREATE_TIMEOUT,
                    update=_ocm.CREATE_TIMEOUT,
                    delete=_ocm.DELETE_TIMEOUT,
                ),
            ),
        )

        # The flows that depend on addresses; the rest of the app's policies travel with it in
        # manifests/network-policies.yaml.
        netpol.declare(
            name,
            address_policies(namespace.metadata.name, args.edge_allowed_cidrs, db.host, db.port),
            on_app,
        )
        annotations = {}
        if cluster.cloud == "aws":
            # A Network Load Balancer passes the client address through, so the source ranges
            # below are enforced on the nodes' security group.
            annotations["service.beta.kubernetes.io/aws-load-balancer-type"] = "nlb"
        self.edge = k8s.core.v1.Service(
            f"{name}-edge",
            metadata={
                "name": "bookstore-edge",
                "namespace": namespace.metadata.name,
                "labels": ROUTER_LABELS,
                "annotations": annotations,
            },
            spec={
                "type": "LoadBalancer",
                "selector": ROUTER_LABELS,
                # The router's NetworkPolicy admits the main cluster's egress addresses, so they
                # must reach the pod unchanged (see README, "Network policies").
                "externalTrafficPolicy": "Local",
                "ports": [
                    {
                        "name": "http",
                        "port": _haproxy.EDGE_PORT,
                        "targetPort": "http",
                        "protocol": "TCP",
                    }
                ],
                "loadBalancerSourceRanges": args.edge_allowed_cidrs,
            },
            opts=pulumi.ResourceOptions.merge(
                on_app,
                # pulumi-kubernetes holds a Service's create until its endpoints are ready, so
                # the edge's create spans the ManifestWork's whole wait (Applied, Available)
                # and the agent's registration before it.
                pulumi.ResourceOptions(
                    custom_timeouts=pulumi.CustomTimeouts(create=EDGE_CREATE_TIMEOUT)
                ),
            ),
        )
        self.edge_address = self.edge.status.apply(load_balancer_address)
        if cluster.load_balancers_proxy:
            # The router sees the edge's own address (see FleetCluster.load_balancers_proxy).
            netpol.declare(
                name,
                [
                    netpol.policy(
                        "router-from-edge",
                        namespace.metadata.name,
                        {"matchLabels": ROUTER_LABELS},
                        ingress=[
                            {
                                "from": self.edge_address.apply(netpol.load_balancer_peers),
                                "ports": [{"protocol": "TCP", "port": "http"}],
                            }
                        ],
                    )
                ],
                on_app,
            )
        self.register_outputs({"edgeAddress": self.edge_address})


SHOPAPI_LABELS = {"app.kubernetes.io/name": "shopapi", "app.kubernetes.io/part-of": "bookstore"}


def address_policies(
    namespace: pulumi.Input[str],
    edge_allowed_cidrs: pulumi.Input[Sequence[str]],
    database_host: pulumi.Input[str],
    database_port: int,
) -> list[dict[str, Any]]:
    """The main cluster's egress addresses may reach the router (through the edge); shopapi may
    reach the database's load balancer, by its address."""
    return [
        netpol.policy(
            "router-from-main-cluster",
            namespace,
            {"matchLabels": ROUTER_LABELS},
            ingress=[
                {
                    "from": pulumi.Output.from_input(edge_allowed_cidrs).apply(netpol.cidr_peers),
                    # The router's container port, by the name the edge targets too.
                    "ports": [{"protocol": "TCP", "port": "http"}],
                }
            ],
        ),
        netpol.policy(
            "shopapi-to-database",
            namespace,
            {"matchLabels": SHOPAPI_LABELS},
            egress=[
                {
                    "to": pulumi.Output.from_input(database_host).apply(netpol.address_peers),
                    "ports": netpol.tcp(database_port),
                }
            ],
        ),
    ]


PASSWORD_GENERATION_ANNOTATION = "ocm-fleet.io/database-password-generation"


def workload_manifests(
    objects: Sequence[Mapping[str, Any]],
    *,
    cluster_name: str,
    database: Mapping[str, str],
    password_generation: int = 0,
) -> list[dict[str, Any]]:
    """Everything the ManifestWork carries: manifests/ plus the per-cluster database ConfigMap.

    The password is not here: it is in the Secret the program creates on the cluster. The pods
    that read that Secret carry its generation as an annotation, so a rotation restarts them
    (the app reads its password once, at start).
    """
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": DATABASE_CONFIG,
            "labels": {
                "app.kubernetes.io/part-of": "bookstore",
                "ocm-fleet.io/cluster": cluster_name,
            },
        },
        "data": dict(sorted(database.items())),
    }
    objects = [
        _annotate_pods(o, {PASSWORD_GENERATION_ANNOTATION: str(password_generation)})
        if _reads_database_secret(o)
        else o
        for o in objects
    ]
    everything = sorted([*objects, config], key=lambda o: (o["kind"], o["metadata"]["name"]))
    return place(everything, APP_NAMESPACE)


def _reads_database_secret(obj: Mapping[str, Any]) -> bool:
    pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    mounted = any(
        (v.get("secret") or {}).get("secretName") == DATABASE_CONFIG for v in pod.get("volumes", [])
    )
    from_env = any(
        ((e.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name") == DATABASE_CONFIG
        for c in pod.get("containers", [])
        for e in c.get("env", [])
    )
    return mounted or from_env


def _annotate_pods(obj: Mapping[str, Any], annotations: Mapping[str, str]) -> dict[str, Any]:
    template = obj["spec"]["template"]
    metadata = template.get("metadata") or {}
    return {
        **obj,
        "spec": {
            **obj["spec"],
            "template": {
                **template,
                "metadata": {
                    **metadata,
                    "annotations": {**(metadata.get("annotations") or {}), **annotations},
                },
            },
        },
    }
