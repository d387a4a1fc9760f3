"""Who may talk to whom: the flow table computed from the NetworkPolicies a program run declares.

The model follows the NetworkPolicy semantics of the Kubernetes API reference:
- a pod selected by no policy of a direction is open in that direction; selected by any, it
  allows only what one of their rules allows;
- a flow needs the source's egress and the destination's ingress to allow it;
- peers are pods (podSelector, namespaceSelector, on the same cluster) or addresses (ipBlock);
  a rule without peers allows every peer, a rule without ports every port.
Across clusters a pod is reached only through a LoadBalancer Service. The source's egress is
then checked against the load balancer's address and port, the destination's ingress against
the address the packet arrives with: the source cluster's egress IP when the Service keeps
client addresses (`externalTrafficPolicy: Local`), a node address of the destination cluster
otherwise (kube-proxy's SNAT), and the load balancer's own address on kind, whose load balancers
are proxies (cloud-provider-kind's Envoy) that open connections of their own. Load balancer
source ranges are not part of the model: the table shows what the NetworkPolicies alone allow.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from harness import Graph
from workloads import (
    Placed,
    app_cluster_names,
    clusters_by_provider,
    pod_template,
    rendered_objects,
)

INTERNET = "internet"
INTERNET_ADDRESS = "198.18.0.1"  # benchmark range: nobody's egress address
API_SERVER_ADDRESS = "192.0.2.1"  # stands for each cluster's API endpoint, cloud-specific
NODE_ADDRESS = "10.255.255.254"  # the address a pod sees after kube-proxy's SNAT


CHART_PODS = {
    "prometheus": (
        (
            "prometheus-server",
            {"app.kubernetes.io/name": "prometheus", "app.kubernetes.io/component": "server"},
            (("TCP", 9090, ""),),  # the chart names no port here
        ),
        ("alertmanager", {"app.kubernetes.io/name": "alertmanager"}, (("TCP", 9093, "http"),)),
        (
            "kube-state-metrics",
            {"app.kubernetes.io/name": "kube-state-metrics"},
            (("TCP", 8080, "http"),),
        ),
    ),
    "grafana": (("grafana", {"app.kubernetes.io/name": "grafana"}, (("TCP", 3000, "grafana"),)),),
}
"""Pods of the monitoring charts (not rendered by the program): name, labels, ports."""


@dataclass(frozen=True)
class Endpoint:
    cluster: str
    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)
    ports: tuple[tuple[str, int, str], ...] = ()
    """(protocol, port, name) it listens on."""
    address: str = ""
    is_pod: bool = True

    @property
    def label(self) -> str:
        if self.cluster == INTERNET:
            return INTERNET
        return f"{self.cluster}/{self.namespace}/{self.name}"


@dataclass
class Network:
    """What the flow table is computed from; tests mutate `objects` to break policies."""

    objects: list[Placed]
    clusters: list[str]
    hub: str
    egress: dict[str, list[str]]
    """Cluster -> its egress CIDRs."""
    load_balancers: dict[tuple[str, str, str], str]
    """(cluster, namespace, Service name) -> the load balancer's address (IP or DNS name)."""
    operators: list[Endpoint]
    """Pods of the Helm charts (not rendered by the program): the OCM operators."""
    proxied: set[str] = field(default_factory=set)
    """Clusters whose load balancers proxy connections (kind)."""
    second_homes: list[str] = field(default_factory=list)
    """Standby main clusters (hub.standby): neither the hub nor app clusters."""


def network_of(graph: Graph, chart_pods: list[Endpoint] | None = None) -> Network:
    """The network of a recorded run. The charts' pods are `chart_pods` where given (rendered
    by Helm: chart_endpoints), else the hand-written CHART_PODS."""
    providers = clusters_by_provider(graph)
    apps = app_cluster_names(graph)
    outputs = graph.stack_outputs
    # The second home (hub.standby) is a main cluster too, but not the hub.
    second_homes = outputs.get("hubStandby") or {}
    (hub,) = sorted(set(providers.values()) - set(apps) - set(second_homes))
    egress = {hub: list(outputs["hub"]["egressIps"])}
    egress |= {name: list(c["egressIps"]) for name, c in second_homes.items()}
    load_balancers = {}
    for name, cluster in outputs["clusters"].items():
        egress[name] = list(cluster["egressIps"])
        load_balancers[(name, "bookstore", "bookstore-edge")] = cluster["edgeAddress"]
    load_balancers[(hub, "bookstore-data", "mariadb-public")] = outputs["databaseHost"]
    # With a second home, each home has its database load balancer (databaseHosts).
    for name, address in (outputs.get("databaseHosts") or {}).items():
        load_balancers[(name, "bookstore-data", "mariadb-public")] = address
    load_balancers[(hub, "ocm-fleet-ingress", "public-lb")] = urlparse(outputs["url"]).hostname
    # With a second home, `entryUrls` lists the main cluster's entry, then that home's.
    for name, url in zip(sorted(second_homes), (outputs.get("entryUrls") or [])[1:], strict=True):
        load_balancers[(name, "ocm-fleet-ingress", "public-lb")] = urlparse(url).hostname
    load_balancers[(hub, "monitoring", "metrics-receiver")] = outputs["metricsReceiver"]
    operators = list(chart_pods or ())
    for r in [] if chart_pods is not None else graph.of_type("kubernetes:helm.sh/v3:Release"):
        cluster, namespace = providers[r.provider_urn], r.inputs["namespace"]
        # The monitoring charts' pods, with the labels the charts give them; node-exporter
        # runs on the host network, outside NetworkPolicies, and is left out.
        for name, labels, ports in CHART_PODS.get(r.inputs["chart"], ()):
            operators.append(Endpoint(cluster, namespace, name, labels, ports))
        if r.inputs["chart"] not in CHART_PODS:
            operators.append(
                Endpoint(cluster, namespace, r.inputs["chart"], {"app": r.inputs["chart"]})
            )
    proxied = {r.name for r in graph.of_type("ocm-fleet:index:KindCluster")}
    return Network(
        rendered_objects(graph),
        sorted(providers.values()),
        hub,
        egress,
        load_balancers,
        operators,
        proxied,
        sorted(second_homes),
    )


def chart_endpoints(
    cluster: str, chart: str, objects: Iterable[Mapping[str, Any]]
) -> list[Endpoint]:
    """The pods a chart's rendered objects run, with the labels and every port they render.

    A pod is named by its `app.kubernetes.io/name` label where that names a component other
    than the chart (a subchart's: alertmanager, kube-state-metrics), else by its workload
    (prometheus-server, grafana, cluster-manager). Pods on the host network are outside what
    NetworkPolicies govern and left out, as CHART_PODS leaves node-exporter out.
    """
    found = []
    for obj in objects:
        if obj.get("kind") not in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            continue
        template = pod_template(dict(obj))
        if template["spec"].get("hostNetwork"):
            continue
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        component = labels.get("app.kubernetes.io/name")
        name = component if component and component != chart else obj["metadata"]["name"]
        ports = tuple(
            (p.get("protocol", "TCP"), int(p["containerPort"]), p.get("name", ""))
            for c in template["spec"]["containers"]
            for p in c.get("ports") or []
        )
        found.append(Endpoint(cluster, obj["metadata"]["namespace"], name, labels, ports))
    return found


# --- selectors and peers ---------------------------------------------------------------------


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Label selector semantics; an empty selector selects everything."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def in_block(address: str, block: Mapping[str, Any]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        # A DNS name's address is unknown: only a block covering every address matches it.
        return ipaddress.ip_network(block["cidr"]).prefixlen == 0 and not block.get("except")
    network = ipaddress.ip_network(block["cidr"])
    if ip.version != network.version or ip not in network:
        return False
    return not any(
        ip.version == ipaddress.ip_network(e).version and ip in ipaddress.ip_network(e)
        for e in block.get("except") or []
    )


@dataclass
class Model:
    network: Network
    endpoints: list[Endpoint]
    namespace_labels: dict[tuple[str, str], dict[str, str]]
    policies: dict[tuple[str, str], list[dict[str, Any]]]
    services: list[Placed]

    def peer_matches(
        self, peer: Mapping[str, Any], policy_ns: str, other: Endpoint, address: str
    ) -> bool:
        if "ipBlock" in peer:
            return in_block(address, peer["ipBlock"])
        if not other.is_pod or other.cluster == INTERNET:
            return False
        if "namespaceSelector" in peer:
            ns_labels = self.namespace_labels.get((other.cluster, other.namespace), {})
            if not selects(peer["namespaceSelector"], ns_labels):
                return False
        elif other.namespace != policy_ns:
            return False
        return selects(peer.get("podSelector"), other.labels)

    def allows(
        self,
        pod: Endpoint,
        direction: str,
        other: Endpoint,
        address: str,
        protocol: str,
        port: int,
        port_owner: Endpoint,
    ) -> bool:
        """Whether `pod`'s policies let `other` (seen at `address`) in, or let `pod` out to it."""
        if not pod.is_pod or pod.cluster == INTERNET:
            return True
        kind = "Ingress" if direction == "ingress" else "Egress"
        peers_key = "from" if direction == "ingress" else "to"
        selecting = [
            p
            for p in self.policies.get((pod.cluster, pod.namespace), [])
            if selects(p["spec"].get("podSelector"), pod.labels) and kind in policy_types(p)
        ]
        if not selecting:
            return True
        for policy in selecting:
            for rule in policy["spec"].get(direction) or []:
                peers = rule.get(peers_key) or []
                if peers and not any(
                    self.peer_matches(peer, pod.namespace, other, address) for peer in peers
                ):
                    continue
                if port_allowed(rule.get("ports") or [], protocol, port, port_owner):
                    return True
        return False


def policy_types(policy: Mapping[str, Any]) -> list[str]:
    spec = policy["spec"]
    if spec.get("policyTypes"):
        return list(spec["policyTypes"])
    return ["Ingress", *(["Egress"] if "egress" in spec else [])]


def port_allowed(ports: list[Mapping[str, Any]], protocol: str, port: int, owner: Endpoint) -> bool:
    if not ports:
        return True
    for entry in ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        want = entry.get("port")
        if want is None:
            return True
        if isinstance(want, str):
            named = {name: number for proto, number, name in owner.ports if proto == protocol}
            if named.get(want) == port:
                return True
            continue
        if int(want) <= port <= int(entry.get("endPort", want)):
            return True
    return False


def build(network: Network) -> Model:
    namespace_labels: dict[tuple[str, str], dict[str, str]] = {}
    policies: dict[tuple[str, str], list[dict[str, Any]]] = {}
    services = []
    endpoints: list[Endpoint] = []
    for placed in network.objects:
        if placed.kind == "Namespace":
            labels = dict(placed.obj["metadata"].get("labels") or {})
            labels["kubernetes.io/metadata.name"] = placed.name
            namespace_labels[(placed.cluster, placed.name)] = labels
        elif placed.kind == "NetworkPolicy":
            policies.setdefault((placed.cluster, placed.namespace), []).append(placed.obj)
        elif placed.kind == "Service" and placed.obj["spec"].get("type") == "LoadBalancer":
            services.append(placed)
    for cluster in network.clusters:
        namespace_labels[(cluster, "kube-system")] = {"kubernetes.io/metadata.name": "kube-system"}
        endpoints.append(
            Endpoint(
                cluster,
                "kube-system",
                "kube-dns",
                {"k8s-app": "kube-dns"},
                (("UDP", 53, "dns"), ("TCP", 53, "dns-tcp")),
            )
        )
        endpoints.append(
            Endpoint(
                cluster,
                "default",
                "kube-apiserver",
                {},
                (("TCP", 443, "https"), ("TCP", 6443, "https-alt")),
                address=API_SERVER_ADDRESS,
                is_pod=False,
            )
        )
    index = 0
    for workload in [
        w for w in network.objects if w.kind in ("Deployment", "StatefulSet", "Job", "DaemonSet")
    ]:
        template = pod_template(workload.obj)
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        ports = tuple(
            (p.get("protocol", "TCP"), int(p["containerPort"]), p.get("name", ""))
            for c in template["spec"]["containers"]
            for p in c.get("ports") or []
        )
        name = labels.get("app.kubernetes.io/name", workload.name)
        endpoints.append(Endpoint(workload.cluster, workload.namespace, name, labels, ports))
    for operator in network.operators:
        endpoints.append(operator)
    # Synthetic pod addresses from 10.0.0.0/8, so ipBlocks can (wrongly) match pods too.
    addressed = []
    for endpoint in endpoints:
        if endpoint.is_pod and not endpoint.address:
            index += 1
            endpoint = Endpoint(
                endpoint.cluster,
                endpoint.namespace,
                endpoint.name,
                endpoint.labels,
                endpoint.ports,
                address=str(ipaddress.ip_address("10.0.0.0") + index),
            )
        addressed.append(endpoint)
    return Model(network, addressed, namespace_labels, policies, services)


def service_routes(
    model: Model, service: Placed, target: Endpoint
) -> Iterable[tuple[int, int, str]]:
    """(load balancer port, pod port, protocol) for each Service port reaching `target`."""
    spec = service.obj["spec"]
    if service.cluster != target.cluster or service.namespace != target.namespace:
        return
    if not selects({"matchLabels": spec.get("selector") or {}}, target.labels) or not spec.get(
        "selector"
    ):
        return
    for port in spec["ports"]:
        protocol = port.get("protocol", "TCP")
        target_port = port.get("targetPort", port["port"])
        for proto, number, name in target.ports:
            if proto == protocol and target_port in (number, name):
                yield int(port["port"]), number, protocol


def flow_table(network: Network) -> set[tuple[str, str, str]]:
    """(source, destination, "PROTO/port") for every flow the policies allow."""
    model = build(network)
    internet = Endpoint(INTERNET, "", INTERNET, address=INTERNET_ADDRESS, is_pod=False)
    # Sources are the pods the program runs, and anyone on the internet. Pods of other
    # namespaces (kube-system's) are not the program's to restrict.
    sources = [e for e in model.endpoints if e.is_pod and e.namespace != "kube-system"]
    sources.append(internet)
    table = set()
    for dst in model.endpoints:
        for src in sources:
            if src is dst:
                continue
            for protocol, port, _ in dst.ports:
                if src.cluster == dst.cluster and _direct(model, src, dst, protocol, port):
                    table.add((src.label, dst.label, f"{protocol}/{port}"))
            for service in model.services:
                if src.cluster == service.cluster:
                    continue
                for lb_port, pod_port, protocol in service_routes(model, service, dst):
                    if _through(model, src, dst, service, lb_port, pod_port, protocol):
                        table.add((src.label, dst.label, f"{protocol}/{pod_port}"))
    return table


def _direct(model: Model, src: Endpoint, dst: Endpoint, protocol: str, port: int) -> bool:
    return model.allows(src, "egress", dst, dst.address, protocol, port, dst) and model.allows(
        dst, "ingress", src, src.address, protocol, port, dst
    )


def _through(
    model: Model,
    src: Endpoint,
    dst: Endpoint,
    service: Placed,
    lb_port: int,
    pod_port: int,
    protocol: str,
) -> bool:
    address = model.network.load_balancers.get((service.cluster, service.namespace, service.name))
    assert address, f"no address known for {service}"
    lb = Endpoint(service.cluster, service.namespace, service.name, is_pod=False)
    if src.cluster != INTERNET and not model.allows(
        src, "egress", lb, address, protocol, lb_port, lb
    ):
        return False
    if service.cluster in model.network.proxied:
        source_address = address
    elif service.obj["spec"].get("externalTrafficPolicy") == "Local":
        source_address = (
            INTERNET_ADDRESS
            if src.cluster == INTERNET
            else str(ipaddress.ip_network(model.network.egress[src.cluster][0], strict=False)[0])
        )
    else:
        source_address = NODE_ADDRESS
    seen_as = Endpoint(src.cluster, "", src.label, is_pod=False)
    return model.allows(dst, "ingress", seen_as, source_address, protocol, pod_port, dst)


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def needed_flows(network: Network) -> set[tuple[str, str, str]]:
    """The data path's flows, written from the architecture, not from the policies."""
    hub = network.hub
    apps = [c for c in network.clusters if c != hub and c not in network.second_homes]
    dns = [f"{p}/53" for p in ("TCP", "UDP")]
    api = ["TCP/443", "TCP/6443"]
    lb = f"{hub}/ocm-fleet-ingress/public-lb"
    db = f"{hub}/bookstore-data/mariadb"
    flows = {(INTERNET, lb, "TCP/8080")}
    flows |= {(lb, f"{hub}/kube-system/kube-dns", p) for p in dns}
    jobs = [
        w.obj["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
        for w in network.objects
        if w.kind == "Job" and w.cluster == hub
    ]
    for job in jobs:
        flows.add((f"{hub}/bookstore-data/{job}", db, "TCP/3306"))
        flows |= {(f"{hub}/bookstore-data/{job}", f"{hub}/kube-system/kube-dns", p) for p in dns}
    for operator in network.operators:
        if operator.namespace != "monitoring":
            flows |= {
                (operator.label, f"{operator.cluster}/default/kube-apiserver", p) for p in api
            }
    # Monitoring on the main cluster: the receiver and Grafana reach Prometheus, which scrapes
    # Alertmanager, kube-state-metrics and the public entry's exporter.
    mon = f"{hub}/monitoring"
    server = f"{mon}/prometheus-server"
    hub_dns = [(f"{hub}/kube-system/kube-dns", p) for p in dns]
    flows |= {(server, f"{hub}/default/kube-apiserver", p) for p in api}
    flows |= {(f"{mon}/kube-state-metrics", f"{hub}/default/kube-apiserver", p) for p in api}
    flows |= {
        (server, f"{mon}/alertmanager", "TCP/9093"),
        (server, f"{mon}/kube-state-metrics", "TCP/8080"),
    }
    flows.add((server, lb, "TCP/8405"))
    for client in (f"{mon}/metrics-receiver", f"{mon}/grafana", server):
        flows |= {(client, *d) for d in hub_dns}
    flows |= {
        (f"{mon}/metrics-receiver", server, "TCP/9090"),
        (f"{mon}/grafana", server, "TCP/9090"),
    }
    # The second home's entry: the same HAProxy, reached from the internet, reaching the same
    # edges; no Prometheus runs there to scrape it.
    entries = [lb]
    for home in network.second_homes:
        entry = f"{home}/ocm-fleet-ingress/public-lb"
        entries.append(entry)
        flows.add((INTERNET, entry, "TCP/8080"))
        flows |= {(entry, f"{home}/kube-system/kube-dns", p) for p in dns}
    # An entry reaches an edge that is a DNS name (an AWS load balancer's) as "anywhere" on the
    # edge port (network_policies.address_peers), and every entry takes connections from anyone
    # on it: so the entries reach each other, as any client on the internet does.
    if any(
        not _is_ip(network.load_balancers[(app, "bookstore", "bookstore-edge")]) for app in apps
    ):
        flows |= {(a, b, "TCP/8080") for a in entries for b in entries if a != b}
    for app in apps:
        ns = f"{app}/bookstore"
        flows |= {(entry, f"{ns}/router", "TCP/8080") for entry in entries}
        flows |= {(f"{ns}/router", f"{ns}/{c}", "TCP/80") for c in ("website", "shopui")}
        flows.add((f"{ns}/router", f"{ns}/shopapi", "TCP/3000"))
        flows.add((f"{ns}/shopapi", db, "TCP/3306"))
        for pod in ("router", "shopapi"):
            flows |= {(f"{ns}/{pod}", f"{app}/kube-system/kube-dns", p) for p in dns}
        # The metrics agent ships to the receiver and scrapes its cluster.
        agent, ksm = f"{app}/monitoring/metrics-agent", f"{app}/monitoring/kube-state-metrics"
        flows.add((agent, f"{mon}/metrics-receiver", "TCP/8443"))
        flows |= {(agent, f"{app}/kube-system/kube-dns", p) for p in dns}
        flows.add((agent, ksm, "TCP/8080"))
        flows.add((agent, f"{app}/monitoring-host/node-exporter", "TCP/9100"))
        flows |= {(ksm, f"{app}/default/kube-apiserver", p) for p in api}
    # With a second home, each home's MariaDB replicates from the other's, through its load
    # balancer (by name on AWS, hence DNS): either may be the primary.
    for home in network.second_homes:
        replica = f"{home}/bookstore-data/mariadb"
        flows |= {(db, replica, "TCP/3306"), (replica, db, "TCP/3306")}
        # Each home runs the database Jobs (only the primary's act), and the app may reach
        # whichever home is primary.
        home_jobs = [
            w.obj["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
            for w in network.objects
            if w.kind == "Job" and w.cluster == home
        ]
        for job in home_jobs:
            flows.add((f"{home}/bookstore-data/{job}", replica, "TCP/3306"))
            flows |= {
                (f"{home}/bookstore-data/{job}", f"{home}/kube-system/kube-dns", p) for p in dns
            }
        flows |= {(f"{app}/bookstore/shopapi", replica, "TCP/3306") for app in apps}
        flows |= {(db, f"{hub}/kube-system/kube-dns", p) for p in dns}
        flows |= {(replica, f"{home}/kube-system/kube-dns", p) for p in dns}
        if home in network.proxied:
            flows.add((INTERNET, replica, "TCP/3306"))
    # On kind a load balancer is a proxy that hides its client, so the pods behind it admit
    # whoever reaches it; the kind network is the host's own (docs/how-it-works.md, "Clusters on
    # kind").
    if hub in network.proxied:
        flows.add((INTERNET, db, "TCP/3306"))
        flows.add((INTERNET, f"{mon}/metrics-receiver", "TCP/8443"))
    flows |= {
        (INTERNET, f"{app}/bookstore/router", "TCP/8080") for app in network.proxied & set(apps)
    }
    return flows
