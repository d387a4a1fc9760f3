"""The bookstore's per-cluster part: what differs between clusters, created on each directly."""

from __future__ import annotations

import ipaddress
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
DATABASE_SERVICE = "bookstore-database"
"""With a second home: the name DB_HOST holds on every app cluster, an ExternalName Service
that points at the Service of the primary's home (`database_home_service`). Running pods keep
the DB_HOST they started with (the ConfigMap reaches them as environment, read once), so the
name must stay while what it points at moves: a promotion changes `externalName` only."""
CLUSTER_DOMAIN = "cluster.local"
"""The cluster DNS domain of EKS, AKS and kind alike, where the alias finds a home's Service."""
DATABASE_PORT_NAME = "mysql"
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
    database_homes: Mapping[str, pulumi.Input[str]] | None = None
    """With a second home: each home's database address (IP or DNS name), by home name. DB_HOST
    is then the stable `DATABASE_SERVICE`, and shopapi may reach every home's address. None
    (one home): DB_HOST is `database.host` itself, as it always was."""
    database_primary: str | None = None
    """With `database_homes`: the home whose database takes the writes, where the stable name
    points."""


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

    - with a second home (`database_homes`), the database's stable name: per home a Service
      that reaches that home's database (`database_home_service`), and the `DATABASE_SERVICE`
      alias to the primary's. A promotion re-points the alias on every app cluster through
      that cluster's own provider: no ManifestWork, so no hub, and no pod restart.

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
        names, database_peers = self._database_names(name, namespace, args, on_app)
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
            data=database_config(
                args.database, DATABASE_SERVICE if args.database_homes is not None else None
            ),
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
                namespace,
                args.edge_allowed_cidrs,
                args.database.host,
                args.database.port,
                database_peers=database_peers,
            ),
            on_app,
        )
        self.work_needs = [self.namespace, secret, config, work_role, *names, *policies]
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

    def _database_names(
        self,
        name: str,
        namespace: pulumi.Output[str],
        args: AppDeliveryArgs,
        on_app: pulumi.ResourceOptions,
    ) -> tuple[list[pulumi.Resource], pulumi.Output[list[dict[str, Any]]] | None]:
        """With a second home: the Services and EndpointSlices of the stable name, and the
        peers shopapi may reach the database at. Without: nothing, and None."""
        homes = args.database_homes
        if homes is None:
            return [], None
        if args.database_primary not in homes:
            raise ValueError(
                f"database primary {args.database_primary!r} is not one of the homes "
                f"{sorted(homes)}"
            )
        port = args.database.port
        labels = {"app.kubernetes.io/part-of": "bookstore"}
        made: list[pulumi.Resource] = []
        cluster_ips: list[pulumi.Output[str]] = []
        for home in sorted(homes):
            address = pulumi.Output.from_input(homes[home])
            service_name = database_home_service(home)
            # The kind of Service follows the kind of address, which a home's load balancer
            # keeps for its life; in preview the address, and so the spec, is unknown.
            service = k8s.core.v1.Service(
                f"{name}-database-{home}",
                metadata={
                    "name": service_name,
                    "namespace": namespace,
                    "labels": labels,
                    # pulumi-kubernetes waits for an Endpoints object with addresses for any
                    # Service but an ExternalName or headless one (provider/pkg/await/
                    # service.go, shouldWaitForPods); nothing makes one for a Service without
                    # a selector (the mirroring controller copies Endpoints into slices, never
                    # back), so that wait would time out. The EndpointSlice is the target.
                    "annotations": {"pulumi.com/skipAwait": "true"},
                },
                spec=address.apply(lambda a: home_service_spec(a, port)),
                opts=on_app,
            )
            endpoints = k8s.discovery.v1.EndpointSlice(
                f"{name}-database-{home}-endpoints",
                metadata={
                    "name": service_name,
                    "namespace": namespace,
                    "labels": {
                        **labels,
                        # Ties the slice to its Service; the managed-by label keeps the
                        # cluster's EndpointSlice controller from taking it over.
                        "kubernetes.io/service-name": service_name,
                        "endpointslice.kubernetes.io/managed-by": "ocm-fleet",
                    },
                },
                address_type=address.apply(endpoint_address_type),
                endpoints=address.apply(home_endpoints),
                ports=[{"name": DATABASE_PORT_NAME, "port": port, "protocol": "TCP"}],
                opts=on_app,
            )
            made += [service, endpoints]
            cluster_ips.append(
                service.spec.apply(lambda spec: (spec.cluster_ip or "") if spec else "")
            )
        alias = k8s.core.v1.Service(
            f"{name}-database-alias",
            metadata={"name": DATABASE_SERVICE, "namespace": namespace, "labels": labels},
            spec=alias_spec(args.database_primary, port),
            opts=on_app,
        )
        peers = pulumi.Output.all(
            pulumi.Output.all(*[homes[h] for h in sorted(homes)]), pulumi.Output.all(*cluster_ips)
        ).apply(lambda both: database_peers(both[0], both[1]))
        return [*made, alias], peers


def database_config(
    database: DatabaseEndpoint, stable_host: str | None = None
) -> dict[str, pulumi.Input[str]]:
    """The database ConfigMap's data: where the database is and which user to log in as.
    `stable_host`: the name DB_HOST holds instead of the address (a fleet with a second home)."""
    return {
        "DB_HOST": stable_host if stable_host is not None else database.host,
        "DB_NAME": database.name,
        "DB_PORT": str(database.port),
        "DB_USER": database.user,
    }


SHOPAPI_LABELS = {"app.kubernetes.io/name": "shopapi", "app.kubernetes.io/part-of": "bookstore"}


def database_home_service(home: str) -> str:
    """The Service on each app cluster that reaches the database of `home`."""
    return f"{DATABASE_SERVICE}-{home}"


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None


def home_service_spec(address: str, port: int) -> dict[str, Any]:
    """A home's Service: for a DNS name (an AWS load balancer's), an ExternalName to it; for an
    IP, a Service without selector, whose one endpoint is that IP (`home_endpoints`). An
    ExternalName must be a DNS name, never an IP (the Service API's `externalName`)."""
    ports = [{"name": DATABASE_PORT_NAME, "port": port, "targetPort": port, "protocol": "TCP"}]
    if _ip(address) is None:
        return {"type": "ExternalName", "externalName": address, "ports": ports}
    return {"type": "ClusterIP", "ports": ports}


def endpoint_address_type(address: str) -> str:
    ip = _ip(address)
    return "IPv6" if ip is not None and ip.version == 6 else "IPv4"


def home_endpoints(address: str) -> list[dict[str, Any]]:
    """The IP behind a home's Service; none for an ExternalName, which has no endpoints."""
    return [{"addresses": [address]}] if _ip(address) is not None else []


def alias_spec(primary: str, port: int) -> dict[str, Any]:
    """The stable name: a DNS alias (CNAME) of the primary home's Service, so a promotion is a
    change of `externalName` in place. Pointing the stable name at the address itself would
    change its type at a promotion between an IP home and a DNS-name home (AKS and EKS in
    Pulumi.dev-standby.yaml): the API server then releases the cluster IP (kubernetes
    pkg/registry/core/service/strategy.go (dropTypeDependentFields)), and older
    pulumi-kubernetes releases replace the Service (provider/pkg/provider/diff.go, forceNew on
    `.spec.type`)."""
    return {
        "type": "ExternalName",
        "externalName": (f"{database_home_service(primary)}.{APP_NAMESPACE}.svc.{CLUSTER_DOMAIN}"),
        "ports": [
            {"name": DATABASE_PORT_NAME, "port": port, "targetPort": port, "protocol": "TCP"}
        ],
    }


def database_peers(addresses: Sequence[str], cluster_ips: Sequence[str]) -> list[dict[str, Any]]:
    """Where shopapi may reach the database with a second home: every home's address, and the
    cluster IP of each home's Service without selector. Whether a NetworkPolicy sees a
    connection to a Service IP before or after it is rewritten to the endpoint is left to the
    network plugin (Kubernetes docs, "Network Policies", ipBlock): Cilium (AKS) sees the
    endpoint, the VPC CNI's policy agent (EKS) the Service IP (aws/amazon-network-policy-
    controller-k8s#224), so both are admitted. The primary does not matter: both homes stay
    admitted, so a promotion leaves the policy as it is."""
    peers = {
        p["ipBlock"]["cidr"]: p
        for address in [*addresses, *(ip for ip in cluster_ips if _ip(ip) is not None)]
        for p in netpol.address_peers(address)
    }
    return [peers[cidr] for cidr in sorted(peers)]


def address_policies(
    namespace: pulumi.Input[str],
    edge_allowed_cidrs: pulumi.Input[Sequence[str]],
    database_host: pulumi.Input[str],
    database_port: int,
    database_peers: pulumi.Input[Sequence[Mapping[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """The main cluster's egress addresses may reach the router (through the edge); shopapi may
    reach the database's load balancer, by its address, or, with a second home, at
    `database_peers`."""
    if database_peers is None:
        database_peers = pulumi.Output.from_input(database_host).apply(netpol.address_peers)
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
                    "to": database_peers,
                    "ports": netpol.tcp(database_port),
                }
            ],
        ),
    ]


PASSWORD_GENERATION_ANNOTATION = "ocm-fleet.io/database-password-generation"
DATABASE_HOST_ANNOTATION = "ocm-fleet.io/database-host"


def workload_manifests(
    objects: Sequence[Mapping[str, Any]],
    *,
    image_tags: Mapping[str, str] | None = None,
    password_generation: int = 0,
    database_host: str | None = None,
) -> list[dict[str, Any]]:
    """What the ManifestWork template carries to every cluster: manifests/ with the configured
    image tags, in the app namespace.

    The same for every cluster: what differs (the database ConfigMap and Secret) is created on
    each cluster directly. The pods that read the database Secret carry its generation as an
    annotation, so a rotation restarts them (the app reads its password once, at start); that
    restart travels with the progressive rollout, which is safe because the previous
    generation's user keeps working (database.py).

    `database_host` (a fleet with a second home): the stable name in DB_HOST. The pods that
    read the database ConfigMap carry it as an annotation too, so that turning the second home
    on restarts them once, through the rollout, onto the name; later promotions change nothing
    here.
    """
    objects = set_image_tags(objects, image_tags or {})
    objects = [
        _annotate_pods(o, {PASSWORD_GENERATION_ANNOTATION: str(password_generation)})
        if _reads_database_secret(o)
        else o
        for o in objects
    ]
    if database_host is not None:
        objects = [
            _annotate_pods(o, {DATABASE_HOST_ANNOTATION: database_host})
            if _reads_database_config(o)
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


def _reads_database_config(obj: Mapping[str, Any]) -> bool:
    pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return any(
        ((source.get("configMapRef") or {}).get("name")) == DATABASE_CONFIG
        for c in pod.get("containers", [])
        for source in c.get("envFrom", [])
    ) or any(
        ((e.get("valueFrom") or {}).get("configMapKeyRef") or {}).get("name") == DATABASE_CONFIG
        for c in pod.get("containers", [])
        for e in c.get("env", [])
    )


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
