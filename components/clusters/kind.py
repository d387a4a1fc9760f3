"""Clusters on this machine: kind clusters and the one load-balancer controller they share."""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_command as command
import pulumi_kubernetes as k8s

from components import _yaml, images
from components.clusters._base import FleetCluster
from components.config import ClusterSpec

KIND_CLUSTER_TYPE = "ocm-fleet:index:KindCluster"
KIND_LOAD_BALANCER_TYPE = "ocm-fleet:index:KindLoadBalancer"

# One controller for every kind cluster on the host: it watches LoadBalancer Services and runs
# an Envoy proxy container on the kind network for each (upstream: kubernetes-sigs/
# cloud-provider-kind, pkg/loadbalancer/proxy.go). The tag is pinned like every other image.
CLOUD_PROVIDER_KIND_IMAGE = "registry.k8s.io/cloud-provider-kind/cloud-controller-manager:v0.10.0"
CLOUD_PROVIDER_KIND_CONTAINER = "ocm-fleet-cloud-provider-kind"
KIND_NETWORK = "kind"
API_SERVER_PORT = 6443

# Adopting a cluster of the same name keeps a retried `pulumi up` working after a run that
# created the cluster but failed before Pulumi recorded it. `kind create` writes a kubeconfig:
# into a scratch file, so the user's ~/.kube/config is left alone; Pulumi keeps its own copy.
_CREATE_CLUSTER = """\
set -eu
if kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; then
  echo "kind cluster $KIND_CLUSTER exists already: using it" >&2
else
  scratch=$(mktemp)
  trap 'rm -f "$scratch"' EXIT
  printf '%s\\n' "$KIND_CONFIG" |
    kind create cluster --name "$KIND_CLUSTER" --config=- --kubeconfig "$scratch" --wait 5m >&2
fi
kind get kubeconfig --name "$KIND_CLUSTER"
"""
# `kind delete cluster` succeeds when the cluster is already gone, so destroy can be rerun.
_DELETE_CLUSTER = 'kind delete cluster --name "$KIND_CLUSTER"'

# The nodes' addresses on the kind network: what other clusters see as this cluster's source.
# Read on every preview and `up` (see KindCluster), so a node or a whole address that is missing
# is an error, never an allowlist with fewer addresses.
_NODE_ADDRESSES = """\
set -eu
nodes=$(kind get nodes --name "$KIND_CLUSTER")
if [ -z "$nodes" ]; then
  echo "kind cluster $KIND_CLUSTER has no nodes on this host: is Docker running?" >&2
  exit 1
fi
for node in $nodes; do
  address=$(docker inspect \\
    --format '{{(index .NetworkSettings.Networks "'"$KIND_NETWORK"'").IPAddress}}' "$node")
  if [ -z "$address" ]; then
    echo "kind node $node has no address on network $KIND_NETWORK: is it running?" >&2
    exit 1
  fi
  echo "$address"
done
"""

# The address of a LoadBalancer Service's proxy container on the kind network: the container
# carries the label LoadBalancerNameLabelKey, valued `<kind cluster>/<namespace>/<name>`
# (kubernetes-sigs/cloud-provider-kind, pkg/constants/constants.go). That address is the one
# the controller writes into the Service's status.
LOAD_BALANCER_LABEL = "io.x-k8s.cloud-provider-kind.loadbalancer.name"
_LOAD_BALANCER_ADDRESS = """\
set -eu
proxies=$(docker ps --quiet --filter "label=$LABEL=$KIND_CLUSTER/$NAMESPACE/$SERVICE")
if [ -z "$proxies" ]; then
  echo "no load balancer runs for $NAMESPACE/$SERVICE of kind cluster $KIND_CLUSTER:" \\
    "is $CONTROLLER running (docker start $CONTROLLER)?" >&2
  exit 1
fi
for id in $proxies; do
  docker inspect \\
    --format '{{(index .NetworkSettings.Networks "'"$KIND_NETWORK"'").IPAddress}}' "$id"
done
"""

# Host networking: the controller needs no kind network at start, so it can run before the
# first cluster exists and be stopped after the last Service is gone. One controller serves
# every kind cluster on the host, whichever stack made it: a second one would act on the same
# Services. So a stack that finds it running with the same image shares it, and a stack's
# destroy stops it only when no other stack's kind cluster is left, since those clusters'
# Services need it to release their finalizers when they are deleted.
_START_CONTROLLER = """\
set -eu
if [ "$(docker container inspect --format '{{.State.Running}} {{.Config.Image}}' "$CONTAINER" \\
    2>/dev/null)" = "true $IMAGE" ]; then
  echo "$CONTAINER already runs $IMAGE: this stack shares it" >&2
  docker container inspect --format '{{.Id}}' "$CONTAINER"
  exit 0
fi
docker rm -f "$CONTAINER" >/dev/null 2>&1 || true
docker run --detach --name "$CONTAINER" --network host --restart unless-stopped \\
  --volume /var/run/docker.sock:/var/run/docker.sock "$IMAGE"
"""
# The stack's own clusters are matched by their full names (CLUSTERS, space-separated): a
# prefix would take another stack's clusters for this one's whenever that stack's name starts
# with this one's and a dash (stack `local` and stack `local-2`). kind names have no spaces.
_STOP_CONTROLLER = """\
others=$(kind get clusters 2>/dev/null | while IFS= read -r cluster; do
  case " $CLUSTERS " in
    *" $cluster "*) ;;
    *) printf '%s\\n' "$cluster" ;;
  esac
done)
if [ -n "$others" ]; then
  echo "$CONTAINER keeps running: other kind clusters on this host need it: $others" >&2
  exit 0
fi
if docker container inspect "$CONTAINER" >/dev/null 2>&1; then
  docker rm -f "$CONTAINER" >/dev/null
fi
"""


def kind_cluster_name(spec: ClusterSpec, stack: str) -> str:
    """The kind cluster's name: host-wide, so it carries the stack and two stacks coexist."""
    return f"{stack}-{spec.name}"


def kind_config(workers: int) -> str:
    """kind's cluster config: a control plane and `workers` worker nodes.

    Workloads run on the workers: the control plane carries
    `node.kubernetes.io/exclude-from-external-load-balancers`, which keeps load balancers
    from sending traffic to it (cloud-provider-kind README).
    """
    nodes = [{"role": "control-plane"}] + [{"role": "worker"} for _ in range(workers)]
    return _yaml.safe_dump(
        {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "nodes": nodes},
        sort_keys=False,
    )


def ca_from_kubeconfig(kubeconfig: str) -> str:
    """Base64 PEM of the cluster CA in a kubeconfig from `kind get kubeconfig`."""
    doc = _yaml.safe_load(kubeconfig) or {}
    clusters = doc.get("clusters") or []
    data = clusters[0].get("cluster", {}).get("certificate-authority-data", "") if clusters else ""
    if not data:
        raise pulumi.RunError("kind get kubeconfig returned no certificate-authority-data")
    base64.b64decode(data, validate=True)
    return data


def load_balancer_ip(stdout: str, service: str) -> str:
    """The one address printed by the load-balancer address command."""
    found = sorted(set(stdout.split()))
    if len(found) != 1:
        raise pulumi.RunError(f"the kind load balancer of {service} has addresses {found}")
    try:
        return str(ipaddress.ip_address(found[0]))
    except ValueError as err:
        raise pulumi.RunError(f"the kind load balancer of {service}: {err}") from err


def node_cidrs(stdout: str) -> list[str]:
    """One /32 per node address printed by the node-address command."""
    try:
        return sorted({f"{ipaddress.ip_address(line.strip())}/32" for line in stdout.split()})
    except ValueError as err:
        raise pulumi.RunError(f"kind node addresses are not IP addresses: {err}") from err


@dataclass(frozen=True, kw_only=True)
class KindLoadBalancerArgs:
    image: str = images.pinned(CLOUD_PROVIDER_KIND_IMAGE)
    """cloud-provider-kind image."""
    container_name: str = CLOUD_PROVIDER_KIND_CONTAINER
    """Name of its container; one per host."""
    clusters: Sequence[str]
    """Full names of this stack's kind clusters (kind_cluster_name): its destroy leaves the
    controller running while any other kind cluster is on the host."""


class KindLoadBalancer(pulumi.ComponentResource):
    """cloud-provider-kind, run as a container with Docker's socket, as one node of the graph.

    Creates one `command:local:Command` that starts the controller on create and removes it on
    delete. Every kind cluster's Kubernetes provider depends on it, so every LoadBalancer
    Service does: destroy deletes the Services (the controller removes their proxy containers
    before it releases the Service's finalizer) and only then stops the controller.

    It does not apply `loadBalancerSourceRanges`: its Envoy config has no source filter
    (pkg/loadbalancer/proxy.go) and its documentation does not mention the field.
    """

    controller: command.local.Command
    """The command whose lifetime is the controller's."""
    container_name: str
    """Name of the controller's container."""

    def __init__(
        self,
        name: str,
        args: KindLoadBalancerArgs,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__(KIND_LOAD_BALANCER_TYPE, name, None, opts)
        self.container_name = args.container_name
        self.controller = command.local.Command(
            f"{name}-controller",
            create=_START_CONTROLLER,
            delete=_STOP_CONTROLLER,
            environment={
                "CONTAINER": args.container_name,
                "IMAGE": args.image,
                "CLUSTERS": " ".join(sorted(args.clusters)),
            },
            # A new image or name means a new container: stop the old one first, it has the name.
            triggers=[args.image, args.container_name],
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        self.register_outputs({"containerId": self.controller.stdout})


@dataclass(frozen=True, kw_only=True)
class KindClusterArgs:
    spec: ClusterSpec
    """Validated config of a `cloud: kind` cluster."""
    load_balancer: KindLoadBalancer
    """The host's cloud-provider-kind; the cluster's LoadBalancer Services need it."""
    stack: str
    """Pulumi stack name, part of the kind cluster's name."""


class KindCluster(FleetCluster):
    """A kind cluster on this machine, created and deleted by `kind` through pulumi-command.

    Creates:
    - `<name>-kind-cluster`: `kind create cluster` on create, `kind delete cluster` on delete;
      its output is the kubeconfig Pulumi uses (API server on a host port), a secret;
    - the Kubernetes provider, depending on both the cluster and the host's load balancer.

    Addresses on the kind network are not for a cluster's life: Docker hands them out again
    when containers start, so a Docker or host restart can move every node and every load
    balancer's proxy container. So they are read on every preview and `up`, by invokes of
    `command:local:run` (pulumi-command's `run`), not by a Command, whose output is kept from
    its create: the node containers' addresses (`egress_cidrs`, from which the database and
    edge allowlists are built) and each LoadBalancer Service's proxy address
    (`load_balancer_address`: HAProxy's upstreams, the database host, the policies admitting
    the proxies). A moved address shows as a diff of what is built from it, and `up` mends it;
    an unchanged one reads the same and shows nothing. The cost: every preview and `up` runs
    `kind get nodes` and `docker inspect` per cluster and `docker ps` per load balancer, and
    fails, saying which, when a node or proxy container is not running.

    Other clusters reach the API server at `https://<kind name>-control-plane:6443`, the name
    Docker resolves on the kind network and that kind puts in the API server certificate
    (`kind get kubeconfig --internal` prints the same address).
    """

    kind_name: str
    """The kind cluster's name (`kind get clusters`)."""
    # Envoy is a TCP proxy: each connection to a pod comes from its container's address.
    load_balancers_proxy = True

    def __init__(
        self, name: str, args: KindClusterArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(KIND_CLUSTER_TYPE, name, None, opts)
        self.spec = args.spec
        self.kind_name = kind_cluster_name(args.spec, args.stack)
        config = kind_config(args.spec.node_count)
        cluster = command.local.Command(
            f"{name}-kind-cluster",
            create=_CREATE_CLUSTER,
            delete=_DELETE_CLUSTER,
            environment={"KIND_CLUSTER": self.kind_name, "KIND_CONFIG": config},
            # Nodes cannot be added to a kind cluster: a new shape is a new cluster, and the old
            # one must go first because it has the same name.
            triggers=[self.kind_name, config],
            opts=pulumi.ResourceOptions(
                parent=self, delete_before_replace=True, additional_secret_outputs=["stdout"]
            ),
        )
        self._controller = args.load_balancer.container_name
        addresses = command.local.run_output(
            command=_NODE_ADDRESSES,
            environment={"KIND_CLUSTER": self.kind_name, "KIND_NETWORK": KIND_NETWORK},
            # Run once the cluster exists; unknown in a preview that creates it.
            opts=pulumi.InvokeOutputOptions(depends_on=[cluster]),
        )
        kubeconfig = pulumi.Output.secret(cluster.stdout)
        self._finish(
            kubeconfig=kubeconfig,
            api_server_url=f"https://{self.kind_name}-control-plane:{API_SERVER_PORT}",
            ca_data=kubeconfig.apply(ca_from_kubeconfig),
            # With the cluster's id, so the addresses carry the dependency on it in a preview
            # too: an invoke's unknown result carries none.
            egress_cidrs=pulumi.Output.all(addresses.stdout, cluster.id).apply(
                lambda out: node_cidrs(out[0])
            ),
            provider_depends_on=[cluster],
            load_balancer_depends_on=[args.load_balancer],
        )

    def load_balancer_address(self, service: k8s.core.v1.Service) -> pulumi.Output[str]:
        """The current address of the Service's proxy container, read on every preview and `up`
        (see the class docstring); unknown in a preview that creates the Service."""
        found = command.local.run_output(
            command=_LOAD_BALANCER_ADDRESS,
            environment=pulumi.Output.all(service.metadata.namespace, service.metadata.name).apply(
                lambda ref: {
                    "CONTROLLER": self._controller,
                    "KIND_CLUSTER": self.kind_name,
                    "KIND_NETWORK": KIND_NETWORK,
                    "LABEL": LOAD_BALANCER_LABEL,
                    "NAMESPACE": ref[0],
                    "SERVICE": ref[1],
                }
            ),
            opts=pulumi.InvokeOutputOptions(depends_on=[service]),
        )
        return pulumi.Output.all(found.stdout, service.metadata.name).apply(
            lambda out: load_balancer_ip(out[0], out[1])
        )
