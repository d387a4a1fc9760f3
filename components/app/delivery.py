"""The bookstore's per-cluster part: what differs between clusters, created on each directly."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.app._manifests import place, set_image_tags, work_agent_rules
from components.app.database import DatabaseEndpoint
from components.clusters._base import FleetCluster
from components.edge import _haproxy
from components.ocm import _charts as _ocm
from components.security import network_policies as netpol
from components.security import pod_security

APP_DELIVERY_TYPE = "ocm-fleet:index:AppDelivery"

APP_NAMESPACE = "bookstore"
DATABASE_SECRET = "bookstore-database"
"""Name of the app's database Secret, created on each cluster directly."""
DATABASE_CONFIG = "bookstore-database-endpoint"
"""Name of the app's database ConfigMap, created on each cluster directly.

Not `bookstore-database`: stacks made before the replica set carried a ConfigMap of that name in
each cluster's own ManifestWork, and the first `up` after the upgrade deletes that work at the
end (pulumi/pulumi#9979) with `deleteOption: Foreground`, so the work agent deletes what it
applied. An object Pulumi declared under the same name would go with it, while the state still
says it exists."""
EDGE_CREATE_TIMEOUT = "40m"
"""Cloud load balancers can take many minutes to get an address (NLBs on AWS especially)."""
ROUTER_LABELS = {"app.kubernetes.io/name": "router", "app.kubernetes.io/part-of": "bookstore"}


@dataclass(frozen=True, kw_only=True)
class AppDeliveryArgs:
    cluster: FleetCluster
    """The app cluster (serving or standby) this part is for."""
    objects: Sequence[Mapping[str, Any]]
    """The objects of manifests/, for the work agent's permissions."""
    database: DatabaseEndpoint
    """Where the app's database is and how to log in (the password is a secret)."""
    edge_allowed_cidrs: pulumi.Input[Sequence[str]]
    """Who may reach the edge: the main cluster's egress addresses, where the public LB runs."""
    ready_after: Sequence[pulumi.Resource] = ()
    """Resources the credentials need first: the schema, and the password set on the database."""


class AppDelivery(pulumi.ComponentResource):
    """Creates, on one app cluster through its own provider, everything of the bookstore that is
    not the same on every cluster, so that one ManifestWork template (components/app/rollout.py)
    serves the whole fleet:

    - the app namespace, and a ClusterRole aggregated to the OCM work agent covering every kind
      in manifests/;
    - the database credentials: the Secret with the password (never inside a ManifestWork: the
      hub stores those in plain text) and the ConfigMap with host, port, name and user. Both
      change together, outside the progressive rollout, so that a pod started anywhere at any
      moment finds a user and password the database accepts (see database.py, two users);
    - the edge, a LoadBalancer Service in front of the router that only the main cluster's
      egress addresses may reach. It exists on standbys too, with no pods behind it: the public
      load balancer lists it and its health checks start passing once the app arrives.

    A standby gets all of it ahead of time, so taking over needs only the ManifestWork.

    `work_needs` is what the ManifestWork needs on the cluster before it applies: everything
    above but the edge (and the policy that admits the edge's own address), whose load balancer
    may take minutes and is needed only by the public entry. The works are deleted before what
    they need; the edge, which holds nothing the work agent removes, in any order.
    """

    namespace: k8s.core.v1.Namespace
    """The app namespace on the cluster."""
    edge: k8s.core.v1.Service
    """The LoadBalancer Service in front of the router on the app cluster."""
    edge_address: pulumi.Output[str]
    """The edge's public IP or DNS name, for the main cluster's load balancer."""
    work_needs: list[pulumi.Resource]
    """The namespace, credentials, work agent permissions and address policies: what the app's
    ManifestWork depends on (not the edge)."""

    def __init__(
        self, name: str, args: AppDeliveryArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(APP_DELIVERY_TYPE, name, None, opts)
        cluster = args.cluster
        on_app = pulumi.ResourceOptions(parent=self, provider=cluster.provider)
        after_database = pulumi.ResourceOptions.merge(
            on_app, pulumi.ResourceOptions(depends_on=list(args.ready_after))
        )

        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=pod_security.namespace_metadata(
                APP_NAMESPACE, pod_security.APP, {"app.kubernetes.io/part-of": "bookstore"}
            ),
            opts=on_app,
        )
        namespace = self.namespace.metadata.name
        secret = k8s.core.v1.Secret(
            f"{name}-database-secret",
            metadata={"name": DATABASE_SECRET, "namespace": namespace},
            type="Opaque",
            string_data={"DB_PASSWORD": args.database.password},
            opts=after_database,
        )
        config = k8s.core.v1.ConfigMap(
            f"{name}-database-config",
            metadata={
                "name": DATABASE_CONFIG,
                "namespace": namespace,
                "labels": {
                    "app.kubernetes.io/part-of": "bookstore",
                    f"{_ocm.LABEL_PREFIX}/cluster": cluster.name,
                },
            },
            data=database_config(args.database),
            opts=after_database,
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

        # The flows that depend on addresses; the rest of the app's policies travel with it in
        # the ManifestWork template (manifests/network-policies.yaml).
        policies = netpol.declare(
            name,
            address_policies(
                namespace, args.edge_allowed_cidrs, args.database.host, args.database.port
            ),
            on_app,
        )
        self.work_needs = [self.namespace, secret, config, work_role, *policies]
        annotations = {
            # The router pods arrive later through OCM, and never on a standby until it takes
            # over: wait for the cloud load balancer's address only, not for ready endpoints.
            "pulumi.com/waitFor": "jsonpath={.status.loadBalancer.ingress[0]}",
        }
        if cluster.cloud == "aws":
            # A Network Load Balancer passes the client address through, so the source ranges
            # below are enforced on the nodes' security group.
            annotations["service.beta.kubernetes.io/aws-load-balancer-type"] = "nlb"
        self.edge = k8s.core.v1.Service(
            f"{name}-edge",
            metadata={
                "name": "bookstore-edge",
                "namespace": namespace,
                "labels": ROUTER_LABELS,
                "annotations": annotations,
            },
            spec={
                "type": "LoadBalancer",
                "selector": ROUTER_LABELS,
                # The router's NetworkPolicy admits the main cluster's egress addresses, so they
                # must reach the pod unchanged (see docs/security.md, "Network policies").
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
                pulumi.ResourceOptions(
                    custom_timeouts=pulumi.CustomTimeouts(create=EDGE_CREATE_TIMEOUT)
                ),
            ),
        )
        self.edge_address = cluster.load_balancer_address(self.edge)
        if cluster.load_balancers_proxy:
            # The router sees the edge's own address (see FleetCluster.load_balancers_proxy).
            netpol.declare(
                name,
                [
                    netpol.policy(
                        "router-from-edge",
                        namespace,
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


def database_config(database: DatabaseEndpoint) -> dict[str, pulumi.Input[str]]:
    """The database ConfigMap's data: where the database is and which user to log in as."""
    return {
        "DB_HOST": database.host,
        "DB_NAME": database.name,
        "DB_PORT": str(database.port),
        "DB_USER": database.user,
    }


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
    image_tags: Mapping[str, str] | None = None,
    password_generation: int = 0,
) -> list[dict[str, Any]]:
    """What the ManifestWork template carries to every cluster: manifests/ with the configured
    image tags, in the app namespace.

    The same for every cluster: what differs (the database ConfigMap and Secret) is created on
    each cluster directly. The pods that read the database Secret carry its generation as an
    annotation, so a rotation restarts them (the app reads its password once, at start); that
    restart travels with the progressive rollout, which is safe because the previous
    generation's user keeps working (database.py).
    """
    objects = set_image_tags(objects, image_tags or {})
    objects = [
        _annotate_pods(o, {PASSWORD_GENERATION_ANNOTATION: str(password_generation)})
        if _reads_database_secret(o)
        else o
        for o in objects
    ]
    everything = sorted(objects, key=lambda o: (o["kind"], o["metadata"]["name"]))
    return place(everything, APP_NAMESPACE)


def _reads_database_secret(obj: Mapping[str, Any]) -> bool:
    pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    mounted = any(
        (v.get("secret") or {}).get("secretName") == DATABASE_SECRET for v in pod.get("volumes", [])
    )
    from_env = any(
        ((e.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name") == DATABASE_SECRET
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
