"""What a stack will cost per month at list prices, and how long its first `pulumi up` should take.

Run: .venv/bin/python scripts/estimate.py [STACK] [--dns-queries-per-month N]
     (default: dev; reads Pulumi.<STACK>.yaml)

The stack config goes through the program's own config model, then the program itself runs
once under mocks (no cloud is called) to count what it declares: NAT gateways, public IPs,
LoadBalancer Services, volumes (claims, and those a chart release's values ask for), and the
health-checked public name (`entry.dns`: Traffic Manager's endpoints or Route 53's health
checks, and an assumed DNS query volume). Every cluster is counted the same way, the second
home (`hub.standby`) included: its replica's volume and load balancer, its entry's, are what
its Kubernetes provider declares. Prices come
from scripts/prices.yaml, each the list price of the date it carries; a region or item without a
price is reported, not guessed. The `up` time comes from the model in scripts/up_model.py, and
beside it the modeled time of a version change once the fleet runs the app (the progressive
rollout the program renders for a change, with the stack's rollout settings).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "scripts")]

import check  # noqa: E402
import fleet_nodes  # noqa: E402
import up_model  # noqa: E402
from harness import Graph, load_stack_config, run_program, with_admin_principals  # noqa: E402
from workloads import pod_template, workloads  # noqa: E402

from components.app.database import ZONE_REDUNDANT_CLASS  # noqa: E402
from components.app.rollout import rollout_strategy  # noqa: E402
from components.clusters import aks, eks  # noqa: E402
from components.config import (  # noqa: E402
    NAMESPACE,
    ClusterSpec,
    FleetConfig,
    FleetConfigError,
    parse_fleet_config,
)

PRICES = ROOT / "scripts" / "prices.yaml"
BILLED_CLOUDS = ("aws", "azure")
NOT_COUNTED = (
    "traffic: internet egress, cross-zone and inter-region transfer, NAT gateway and load "
    "balancer data processing (NLCU), Azure rules beyond the first five",
    "disk operations: Azure Standard SSD transactions; EBS gp3 IOPS and throughput above the "
    "included baseline (the program provisions none)",
    "logs and metrics: EKS control-plane logs in CloudWatch, any log or metric store",
    "KMS key months and requests, snapshots, support plans, taxes",
    "DNS queries beyond the assumed volume (--dns-queries-per-month); Route 53's and Traffic "
    "Manager's lower rate past a billion queries a month",
)
DNS_QUERIES_PER_MONTH = 1_000_000
"""The DNS queries a month the public name is assumed to answer (`--dns-queries-per-month`).
Resolvers cache an answer for the record's TTL (`entry.ttlSeconds`, 30 s by default), so a
resolver whose users keep asking re-asks at most 730 h x 3600 s / 30 s = 87,600 times a month;
a million is about a dozen such resolvers asking around the clock, a small shop's traffic.
Queries are billed by the million, so the default is a round unit to scale from."""
AWS_LB_TYPE = "service.beta.kubernetes.io/aws-load-balancer-type"
"""The annotation that picks what EKS's in-tree service controller provisions for a
LoadBalancer Service: `nlb` a Network Load Balancer, none a Classic Load Balancer; `external`
and `nlb-ip` it leaves to the AWS Load Balancer Controller (kubernetes/cloud-provider-aws,
pkg/providers/v1/aws_loadbalancer.go (isNLB, isLBExternal)), which the program does not install."""
EBS_CSI_PROVISIONER = "ebs.csi.aws.com"
HEALTH_CHECK = "aws:route53/healthCheck:HealthCheck"
TRAFFIC_MANAGER_PROFILE = "azure-native:trafficmanager:Profile"
EXTERNAL_ENDPOINT = "Microsoft.Network/trafficManagerProfiles/externalEndpoints"
FAST_PROBE_INTERVAL_S = 10
"""Both services bill a 10 s probe interval as an add-on (Route 53: an optional health-check
feature; Traffic Manager: fast interval health checks)."""
PUBLIC_NAME = "public name"
"""The bill's owner column for the health-checked name: it belongs to no cluster."""
SERVICE = "kubernetes:core/v1:Service"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
RELEASE = "kubernetes:helm.sh/v3:Release"
CHART_VOLUMES = {
    "prometheus": (
        # (volume, switches that must all be on, where its size is), as in the prometheus
        # chart's values.yaml: each switch defaults to on there, so only an explicit false
        # turns a volume off. The StatefulSets make their claims at run time, from these values.
        (
            "prometheus-server",
            (("server", "persistentVolume", "enabled"),),
            ("server", "persistentVolume", "size"),
        ),
        (
            "alertmanager",
            (("alertmanager", "enabled"), ("alertmanager", "persistence", "enabled")),
            ("alertmanager", "persistence", "size"),
        ),
    ),
}
"""Volumes a chart's workloads claim, by chart name."""
AZURE_DISK_TIERS_GIB = (4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32767)
"""Managed disk sizes Azure bills by (Standard and Premium SSD): a disk costs its tier."""


@dataclass(frozen=True)
class Line:
    cluster: str
    """The cluster billed, or PUBLIC_NAME."""
    item: str
    quantity: float
    unit_usd: float
    per: str
    monthly_usd: float
    as_of: str
    """The date the unit price is the list price of."""
    cloud: str = ""
    region: str = ""


@dataclass(frozen=True)
class Payer:
    """Who a line is billed to, where: a cluster, or the public name (a global service)."""

    name: str
    cloud: str
    region: str


@dataclass
class Bill:
    lines: list[Line] = field(default_factory=list)
    conditional: list[tuple[Line, str]] = field(default_factory=list)
    """Charges that start only on a condition (with it), not in the total: EKS extended support
    with `upgradePolicy: EXTENDED`."""
    warnings: list[str] = field(default_factory=list)
    free: list[str] = field(default_factory=list)
    """Clusters the program does not pay for, with why."""

    dns_queries_per_month: int | None = None
    """The assumed DNS query volume, when the fleet has a public name the bill counts."""

    @property
    def total(self) -> float:
        return sum(line.monthly_usd for line in self.lines)

    @property
    def owners(self) -> list[str]:
        """Who the lines are billed to, in the order they first appear."""
        return list(dict.fromkeys(line.cluster for line in self.lines))

    def of(self, cluster: str) -> float:
        return sum(line.monthly_usd for line in self.lines if line.cluster == cluster)


def load_prices(path: Path = PRICES) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def fleet_of(config: Mapping[str, Any], stack: str = "dev") -> FleetConfig:
    """The stack config through the program's config model (errors as the program gives them)."""
    prefix = f"{NAMESPACE}:"
    return parse_fleet_config(
        {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}, stack=stack
    )


class _Pricer:
    def __init__(self, prices: Mapping[str, Any], bill: Bill):
        self.prices = prices
        self.bill = bill
        self.hours = float(prices["hoursPerMonth"])

    def entry(self, spec: ClusterSpec | Payer, item: str) -> Mapping[str, Any] | None:
        cloud = self.prices.get(spec.cloud) or {}
        regional = ((cloud.get("regions") or {}).get(spec.region) or {}).get(item)
        return regional or (cloud.get("global") or {}).get(item)

    def add(
        self,
        spec: ClusterSpec | Payer,
        label: str,
        item: str,
        quantity: float,
        when: str | None = None,
    ) -> None:
        """A line of the bill; with `when`, a charge billed only then, kept out of the total."""
        if quantity <= 0:
            return
        entry = self.entry(spec, item)
        if entry is None:
            regions = (self.prices.get(spec.cloud) or {}).get("regions") or {}
            where = (
                f"{spec.cloud} region {spec.region!r} has no list prices"
                if spec.region not in regions and isinstance(spec, ClusterSpec)
                else f"no list price for {item} in {spec.cloud} region {spec.region!r}"
            )
            self.bill.warnings.append(
                f"{spec.name}: {where}: {label} ({quantity:g}) NOT counted; add it to "
                f"{PRICES.relative_to(ROOT)} with its source"
            )
            return
        per = entry["per"]
        factor = {"hour": self.hours, "month": 1.0, "GiB-month": 1.0, "million queries": 1.0}[per]
        usd = float(entry["usd"])
        as_of = str(entry.get("published") or entry["read"])
        line = Line(
            spec.name,
            label,
            quantity,
            usd,
            per,
            round(quantity * usd * factor, 2),
            as_of,
            spec.cloud,
            spec.region,
        )
        if when is None:
            self.bill.lines.append(line)
        else:
            self.bill.conditional.append((line, when))


def estimate(
    fleet: FleetConfig,
    graph: Graph,
    prices: Mapping[str, Any],
    nodes: Mapping[str, fleet_nodes.Nodes] | None = None,
    dns_queries_per_month: int = DNS_QUERIES_PER_MONTH,
) -> Bill:
    """The monthly bill of every cluster of the fleet, item by item, and of its public name.
    `nodes`: the node counts of scripts/fleet_nodes.py (the preflight's), by cluster; default:
    the fleet's. `dns_queries_per_month`: the queries the public name is assumed to answer."""
    bill = Bill()
    pricer = _Pricer(prices, bill)
    for spec in fleet.all_clusters:
        if spec.cloud not in BILLED_CLOUDS:
            bill.free.append(
                f"{spec.name} ({spec.cloud}): runs on machines you already have; the program "
                "creates no billed cloud resource for it"
            )
            continue
        inside = graph.descendants(graph.cluster_component(spec.name))
        provider = graph.kubernetes_provider(spec.name).urn
        on_cluster = [r for r in graph.resources if r.provider_urn == provider]
        balancers = [
            r
            for r in on_cluster
            if r.type == SERVICE and (r.inputs.get("spec") or {}).get("type") == "LoadBalancer"
        ]
        volumes = [
            (_claim_name(r), _gib(_claimed(r)), _storage_class(r))
            for r in on_cluster
            if r.type == PVC
        ]
        for release in (r for r in on_cluster if r.type == RELEASE):
            volumes += [(v, gib, None) for v, gib in _chart_volumes(spec, release, bill)]
        count = sum(1 for r in inside if r.type == "aws:ec2/natGateway:NatGateway")
        vm = f"vm:{spec.node_size}"
        node_count = nodes[spec.name].count if nodes else spec.node_count
        if spec.cloud == "aws":
            pricer.add(spec, "EKS control plane", "eksControlPlane", 1)
            if spec.upgrade_policy == "EXTENDED":
                pricer.add(
                    spec,
                    "EKS extended support (upgradePolicy: EXTENDED)",
                    "eksExtendedSupport",
                    1,
                    when=f"once Kubernetes {spec.kubernetes_version} leaves standard support",
                )
            pricer.add(spec, f"node VMs {spec.node_size}", vm, node_count)
            pricer.add(spec, "NAT gateways", "natGateway", count)
            kinds = {"networkLoadBalancer": [], "classicLoadBalancer": []}
            for service in balancers:
                kind = _aws_balancer(service)
                if kind is None:
                    bill.warnings.append(
                        f"{spec.name}: LoadBalancer Service {_service_name(service)} asks "
                        f"{AWS_LB_TYPE}: {_annotations(service)[AWS_LB_TYPE]!r}, which the AWS "
                        "Load Balancer Controller provisions, and the program installs none: "
                        "NOT counted"
                    )
                else:
                    kinds[kind].append(service)
            eips = sum(1 for r in inside if r.type == "aws:ec2/eip:Eip")
            # An internet-facing NLB or Classic Load Balancer holds one public IPv4 address in
            # each zone it spans (the cluster's public subnets, one per zone).
            lb_ips = sum(len(found) for found in kinds.values()) * eks.ZONE_COUNT
            zones = "NLB zones" if not kinds["classicLoadBalancer"] else "load balancer zones"
            pricer.add(spec, f"public IPv4 (NAT EIPs, {zones})", "publicIpv4", eips + lb_ips)
            pricer.add(
                spec,
                "Network Load Balancers",
                "networkLoadBalancer",
                len(kinds["networkLoadBalancer"]),
            )
            classic = kinds["classicLoadBalancer"]
            pricer.add(
                spec,
                f"Classic Load Balancers ({', '.join(sorted(map(_service_name, classic)))})",
                "classicLoadBalancer",
                len(classic),
            )
            ebs = _ebs_gp3_volumes(spec, volumes, on_cluster, bill)
            named = f", volumes: {', '.join(sorted(name for name, _ in ebs))}" if ebs else ""
            pricer.add(
                spec,
                f"EBS gp3 (node roots{named or ', volumes'}) GiB",
                "ebsGp3",
                node_count * eks.ROOT_VOLUME_GIB + sum(gib for _, gib in ebs),
            )
        else:
            pricer.add(spec, "AKS control plane (Free tier)", "aksControlPlaneFree", 1)
            pricer.add(spec, f"node VMs {spec.node_size}", vm, node_count)
            ips = sum(1 for r in inside if r.type == "azure-native:network:PublicIPAddress")
            # Each LoadBalancer Service gets a frontend public IP on the cluster's one
            # Standard Load Balancer, which also carries the outbound rule.
            pricer.add(
                spec,
                "Standard public IPs (egress, Services)",
                "standardPublicIp",
                ips + len(balancers),
            )
            pricer.add(spec, "Standard Load Balancer", "standardLoadBalancer", 1)
            # Managed OS disks of a VM size with premium storage (the `s` sizes) are Premium SSD.
            pricer.add(
                spec,
                f"Premium SSD OS disks {aks.OS_DISK_SIZE_GB} GiB",
                f"premiumSsd{aks.OS_DISK_SIZE_GB}GiB",
                node_count,
            )
            # Azure bills a managed disk at the size tier it fits in, per month; the default
            # storage class (managed-csi) makes Standard SSD LRS disks, the database's
            # zone-redundant class Standard SSD ZRS ones.
            tiers: dict[tuple[bool, int], list[str]] = {}
            for name, gib, storage_class in volumes:
                zrs = storage_class == ZONE_REDUNDANT_CLASS
                tier = next((t for t in AZURE_DISK_TIERS_GIB if t >= gib), AZURE_DISK_TIERS_GIB[-1])
                tiers.setdefault((zrs, tier), []).append(name)
            for (zrs, tier), names in sorted(tiers.items()):
                kind, item = (
                    ("Standard SSD ZRS", "standardSsdZrs")
                    if zrs
                    else ("Standard SSD", "standardSsd")
                )
                pricer.add(
                    spec,
                    f"{kind} volumes {tier} GiB ({', '.join(sorted(names))})",
                    f"{item}{tier}GiB",
                    len(names),
                )
    _public_name(fleet, graph, pricer, dns_queries_per_month)
    return bill


def _public_name(fleet: FleetConfig, graph: Graph, pricer: _Pricer, queries_per_month: int) -> None:
    """The health-checked name's lines, from what the program declares for it: Route 53 health
    checks or a Traffic Manager profile's endpoints, and the assumed queries."""
    spec = fleet.entry
    if spec.dns == "none":
        return
    pricer.bill.dns_queries_per_month = queries_per_month
    millions = queries_per_month / 1e6
    if spec.dns == "route53":
        payer = Payer(PUBLIC_NAME, "aws", "global")
        # Entry i is the i-th home's (components/edge/dns.py: the main entry first, then the
        # second home's): Route 53 bills a check of an endpoint in AWS less than of one outside.
        homes = [fleet.hub, *([fleet.hub_standby] if fleet.hub_standby else [])]
        checks: dict[tuple[bool, bool], list[int]] = {}
        for check in graph.of_type(HEALTH_CHECK):
            index = int(check.name.rsplit("-", 1)[1])
            home = homes[index - 1] if index <= len(homes) else None
            in_aws = home is not None and home.cloud == "aws"
            fast = float(check.inputs.get("requestInterval", 30)) == FAST_PROBE_INTERVAL_S
            checks.setdefault((in_aws, fast), []).append(index)
        for (in_aws, fast), entries in sorted(checks.items()):
            where = "AWS" if in_aws else "non-AWS"
            which = ", ".join(f"entry-{i}" for i in sorted(entries))
            pricer.add(
                payer,
                f"Route 53 health checks, {where} endpoints ({which})",
                f"route53HealthCheck{'Aws' if in_aws else 'NonAws'}",
                len(entries),
            )
            if fast:
                pricer.add(
                    payer,
                    f"Route 53 fast interval ({FAST_PROBE_INTERVAL_S} s), {where} endpoints "
                    f"({which})",
                    f"route53OptionalFeature{'Aws' if in_aws else 'NonAws'}",
                    len(entries),
                )
        pricer.add(payer, "Route 53 standard queries (million)", "route53StandardQueries", millions)
        pricer.add(
            payer,
            f"Route 53 hosted zone {spec.hosted_zone_id}",
            "route53HostedZone",
            1,
            when="if it is not billed already: the zone is yours (entry.hostedZoneId); the "
            "program adds records to it and creates no zone",
        )
        return
    payer = Payer(PUBLIC_NAME, "azure", "global")
    for profile in graph.of_type(TRAFFIC_MANAGER_PROFILE):
        endpoints = profile.inputs.get("endpoints") or []
        external = [e for e in endpoints if e.get("type") == EXTERNAL_ENDPOINT]
        if len(external) != len(endpoints):
            pricer.bill.warnings.append(
                f"{PUBLIC_NAME}: Traffic Manager profile {profile.name} has endpoints other than "
                f"external ones: {len(endpoints) - len(external)} NOT counted"
            )
        names = ", ".join(sorted(str(e.get("name")) for e in external))
        pricer.add(
            payer,
            f"Traffic Manager health checks, external endpoints ({names})",
            "trafficManagerHealthCheckExternal",
            len(external),
        )
        interval = (profile.inputs.get("monitorConfig") or {}).get("intervalInSeconds", 30)
        if float(interval) == FAST_PROBE_INTERVAL_S:
            pricer.add(
                payer,
                f"Traffic Manager fast interval ({FAST_PROBE_INTERVAL_S} s), external endpoints "
                f"({names})",
                "trafficManagerFastIntervalExternal",
                len(external),
            )
    pricer.add(payer, "Traffic Manager DNS queries (million)", "trafficManagerQueries", millions)


def _annotations(resource: Any) -> Mapping[str, Any]:
    return (resource.inputs.get("metadata") or {}).get("annotations") or {}


def _service_name(service: Any) -> str:
    metadata = service.inputs.get("metadata") or {}
    return f"{metadata.get('namespace') or 'default'}/{metadata.get('name') or service.name}"


def _aws_balancer(service: Any) -> str | None:
    """The price item of what EKS provisions for a LoadBalancer Service (AWS_LB_TYPE), or None
    when it leaves the Service to a controller the program does not install."""
    kind = _annotations(service).get(AWS_LB_TYPE)
    if kind is None:
        return "classicLoadBalancer"
    return "networkLoadBalancer" if kind == "nlb" else None


def _ebs_gp3_volumes(
    spec: ClusterSpec,
    volumes: list[tuple[str, float, str | None]],
    on_cluster: list[Any],
    bill: Bill,
) -> list[tuple[str, float]]:
    """The volumes on an EKS cluster that are EBS gp3 disks: those whose StorageClass, declared
    by the program on the same cluster, asks the EBS CSI driver for `type: gp3`. A volume of any
    other class is reported, not priced: its disk kind is not what the program says."""
    classes = {
        str((r.inputs.get("metadata") or {}).get("name")): r.inputs
        for r in on_cluster
        if r.type == STORAGE_CLASS
    }
    gp3 = []
    for name, gib, storage_class in volumes:
        declared = classes.get(storage_class or "")
        if (
            declared is not None
            and declared.get("provisioner") == EBS_CSI_PROVISIONER
            and (declared.get("parameters") or {}).get("type") == "gp3"
        ):
            gp3.append((name, gib))
            continue
        bill.warnings.append(
            f"{spec.name}: volume {name} ({gib:g} GiB) claims "
            + (
                f"the storage class {storage_class!r}"
                if storage_class
                else "the cluster's default storage class"
            )
            + ", not one the program declares as EBS gp3 on this cluster: NOT counted"
        )
    return gp3


def _storage_class(pvc: Any) -> str | None:
    return (pvc.inputs.get("spec") or {}).get("storageClassName")


def _claim_name(pvc: Any) -> str:
    return str((pvc.inputs.get("metadata") or {}).get("name") or pvc.name)


def _claimed(pvc: Any) -> str:
    return str(
        ((pvc.inputs.get("spec") or {}).get("resources") or {})
        .get("requests", {})
        .get("storage", "0")
    )


def _chart_volumes(spec: ClusterSpec, release: Any, bill: Bill) -> list[tuple[str, float]]:
    """The volumes a Helm release's workloads will claim, sized from the values it declares."""
    values = release.inputs.get("values") or {}
    found = []
    for volume, switches, size_at in CHART_VOLUMES.get(release.inputs.get("chart"), ()):
        if any(_at(values, path) is False for path in switches):
            continue
        size = _at(values, size_at)
        if not isinstance(size, str):
            bill.warnings.append(
                f"{spec.name}: the {volume} volume of release {release.name!r} declares no size "
                f"({'.'.join(size_at)}): NOT counted"
            )
            continue
        found.append((volume, _gib(size)))
    return found


def _at(values: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(values, Mapping):
            return None
        values = values.get(key)
    return values


QUANTITY_SUFFIXES = {
    **{suffix: 1024**power for power, suffix in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"), 1)},
    **{suffix: 1000**power for power, suffix in enumerate(("k", "M", "G", "T", "P", "E"), 1)},
    "m": 1e-3,
}
"""Kubernetes quantity suffixes (binary, decimal, milli) and the bytes each stands for."""

QUANTITY = re.compile(
    r"\+?(?P<number>\d+(\.\d*)?|\.\d+)"
    r"(?:(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)|[eE](?P<exponent>[+-]?\d+))?"
)
"""A quantity as Kubernetes reads it: a number, then a suffix or a decimal exponent, not both."""


def _gib(text: str) -> float:
    """A storage quantity as Kubernetes writes it (`50Gi`, `50G`, `500Mi`, `1e9`), in GiB."""
    match = QUANTITY.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"storage quantity {text!r} is not a Kubernetes quantity such as 50Gi, 50G or 5e10"
        )
    number = float(match["number"])
    if match["exponent"] is not None:
        return number * 10 ** int(match["exponent"]) / 2**30
    return number * QUANTITY_SUFFIXES.get(match["suffix"] or "", 1) / 2**30


# What every kind node runs before the program adds anything, as requests (CPU millicores,
# memory MiB). Control-plane node: kubeadm's static pods (cmd/kubeadm/app/phases/controlplane:
# kube-apiserver 250m, kube-controller-manager 200m, kube-scheduler 100m; etcd/local.go: etcd
# 100m and 100Mi) and CoreDNS's two replicas (kubeadm's CoreDNS Deployment: 100m and 70Mi each).
# Every node: kindnet (kind's kindnetd DaemonSet: 100m and 50Mi).
KIND_CONTROL_PLANE_REQUESTS = (250 + 200 + 100 + 100 + 2 * 100, 100 + 2 * 70)
KIND_NODE_REQUESTS = (100, 50)


@dataclass(frozen=True)
class LocalNeed:
    cluster: str
    nodes: int
    cpu_millicores: float
    memory_mib: float
    volumes_gib: float


def _cpu_millicores(text: Any) -> float:
    text = str(text)
    return float(text[:-1]) if text.endswith("m") else float(text) * 1000


def _memory_mib(text: Any) -> float:
    return _gib(str(text)) * 1024


def local_needs(fleet: FleetConfig, graph: Graph) -> list[LocalNeed]:
    """The requests of what each kind cluster runs (the program's workloads, and what kind and
    kubeadm put on every node), and the volumes it claims: what Docker must have to give."""
    placed = workloads(graph)
    needs = []
    for spec in fleet.all_clusters:
        if spec.cloud != "kind":
            continue
        nodes = 1 + spec.node_count
        cpu = KIND_CONTROL_PLANE_REQUESTS[0] + nodes * KIND_NODE_REQUESTS[0]
        memory = KIND_CONTROL_PLANE_REQUESTS[1] + nodes * KIND_NODE_REQUESTS[1]
        for item in (p for p in placed if p.cluster == spec.name):
            copies = nodes if item.kind == "DaemonSet" else item.obj["spec"].get("replicas", 1)
            pod = pod_template(item.obj)["spec"]
            for container in pod.get("containers") or []:
                requests = (container.get("resources") or {}).get("requests") or {}
                cpu += copies * _cpu_millicores(requests.get("cpu", "0"))
                memory += copies * _memory_mib(requests.get("memory", "0"))
        provider = graph.kubernetes_provider(spec.name).urn
        volumes = sum(
            _gib(_claimed(r))
            for r in graph.resources
            if r.provider_urn == provider and r.type == PVC
        )
        for release in (
            r for r in graph.resources if r.provider_urn == provider and r.type == RELEASE
        ):
            volumes += sum(gib for _, gib in _chart_volumes(spec, release, Bill()))
        needs.append(LocalNeed(spec.name, nodes, cpu, memory, volumes))
    return needs


def render_local(needs: list[LocalNeed]) -> list[str]:
    out = [
        "# What Docker must give the kind clusters",
        "",
        "Requests, not limits: the pods the program declares on each cluster (its Deployments, "
        "StatefulSets, DaemonSets and Jobs, and the ManifestWorks' app), and what every kind "
        "node runs already (kubeadm's control plane and CoreDNS, kind's kindnet; figures in "
        "scripts/estimate.py with their sources). Not counted: the Helm releases' own pods "
        "(the OCM operators and agents, the monitoring charts), which set their own requests.",
        "",
        "| cluster | nodes | CPU requested | memory requested | volumes claimed |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for need in needs:
        out.append(
            f"| {need.cluster} | {need.nodes} | {need.cpu_millicores / 1000:.2f} cores "
            f"| {need.memory_mib / 1024:.2f} GiB | {need.volumes_gib:g} GiB |"
        )
    cpu = sum(n.cpu_millicores for n in needs) / 1000
    memory = sum(n.memory_mib for n in needs) / 1024
    volumes = sum(n.volumes_gib for n in needs)
    nodes = sum(n.nodes for n in needs)
    out += [
        f"| **all** | **{nodes}** | **{cpu:.2f} cores** | **{memory:.2f} GiB** "
        f"| **{volumes:g} GiB** |",
        "",
        f"Give Docker at least {cpu:.1f} CPUs and {memory:.1f} GiB of memory beyond what else "
        f"it runs, and {volumes:g} GiB of disk for the volumes plus the node image and every "
        "image each node pulls. Six or more nodes need raised inotify limits "
        "(scripts/check.py --preflight says which).",
        "",
    ]
    return out


def version_change_seconds(fleet: FleetConfig) -> float:
    """The modeled time of a version change on the fleet once it runs the app: the rollout the
    program renders for a change (components/app/rollout.py, rollout_strategy), over the
    serving clusters, the canaries first."""
    serving = len(fleet.serving_clusters)
    return up_model.version_change_seconds(
        rollout_strategy(fleet.rollout), serving, len(fleet.rollout.canary)
    )


def render(
    stack: str,
    fleet: FleetConfig,
    bill: Bill,
    prices: Mapping[str, Any],
    sched: Any,
    local: list[LocalNeed] | None = None,
) -> str:
    out = [
        f"# Stack {stack}: monthly cost at list prices (USD, on demand, "
        f"{prices['hoursPerMonth']} h a month; not a quote)",
        "",
        "Each unit price is the list price of the date beside it, from the source that "
        f"{PRICES.relative_to(ROOT)} names; a price of an earlier date may have changed since.",
        "",
    ]
    if bill.lines or bill.warnings:
        out += [
            "| cluster | cloud | region | item | quantity | unit price | list price of "
            "| per month |",
            "| --- | --- | --- | --- | ---: | ---: | --- | ---: |",
        ]
    for line in bill.lines:
        out.append(
            f"| {line.cluster} | {line.cloud} | {line.region} | {line.item} | {line.quantity:g} "
            f"| ${line.unit_usd:g}/{line.per} | {line.as_of} | ${line.monthly_usd:,.2f} |"
        )
    for owner in bill.owners:
        out.append(f"| **{owner}** | | | subtotal | | | | **${bill.of(owner):,.2f}** |")
    partial = " (PARTIAL: see warnings)" if bill.warnings else ""
    out += ["", f"**Total counted: ${bill.total:,.2f} per month{partial}**", ""]
    if bill.dns_queries_per_month is not None:
        out += [
            f"DNS queries assumed: {bill.dns_queries_per_month:,} a month "
            "(--dns-queries-per-month; resolvers cache each answer for the record's TTL, "
            f"{fleet.entry.ttl_s} s here, so a resolver asks at most "
            f"{round(float(prices['hoursPerMonth']) * 3600 / max(fleet.entry.ttl_s, 1)):,} "
            "times a month).",
            "",
        ]
    if bill.conditional:
        out += ["Chosen, and billed only on a condition (not in the total):"]
        out += [
            f"- {line.cluster}: {line.item}: ${line.unit_usd:g}/{line.per} more "
            f"(${line.monthly_usd:,.2f} per month, list price of {line.as_of}), {when}"
            for line, when in bill.conditional
        ]
        out += [""]
    if bill.free:
        out += ["Not billed by the program:", *[f"- {f}" for f in bill.free], ""]
    if bill.lines or bill.warnings:
        out += ["Not counted:", *[f"- {n}" for n in NOT_COUNTED], ""]
    if local:
        out += render_local(local)
    if bill.warnings:
        out += ["WARNINGS (no price, no guess):", *[f"- {w}" for w in bill.warnings], ""]
    up = up_model.modeled_up_seconds(sched)
    unavoidable = up_model.unavoidable_chain(sched)
    change = version_change_seconds(fleet)
    rollout = fleet.rollout
    out += [
        f"# Modeled first `pulumi up`: {up_model.minutes(up)}",
        "",
        f"Modeled version change: {up_model.minutes(change)} (a new image tag or manifest once "
        f"the fleet runs the app: the canaries, then maxConcurrency {rollout.max_concurrency} "
        f"of the other serving clusters a step, {rollout.min_success_time} of soak between "
        "steps; a first delivery goes to every cluster at once).",
        "",
        "Typical creation times per resource type (scripts/up_model.py, each with its source). "
        "Critical path:",
        "",
        *up_model.critical_path_table(sched),
        "",
        f"Unavoidable chain: {up_model.minutes(unavoidable)} (`up` is {up / unavoidable:.2f} "
        "times it): the same graph when only the steps nothing can skip take time "
        "(control planes, nodes and the add-ons they need, OCM's operators, workloads ready, "
        "the rollout's soak; load balancers at the end of the public entry):",
        "",
        *up_model.critical_path_table(sched, sched.unavoidable),
    ]
    return "\n".join(out)


def _queries(text: str) -> int:
    """A query count as the flag takes it: a whole number, 0 or more (underscores allowed)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"--dns-queries-per-month: {text!r} is not a whole number of queries, 0 or more"
        )
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack", nargs="?", default="dev", help="stack name (Pulumi.<stack>.yaml)")
    parser.add_argument(
        "--dns-queries-per-month",
        type=_queries,
        default=DNS_QUERIES_PER_MONTH,
        metavar="N",
        help="DNS queries a month the public name (entry.dns) is assumed to answer "
        f"(default {DNS_QUERIES_PER_MONTH:,}: about a dozen resolvers re-asking every TTL of "
        "30 s around the clock)",
    )
    args = parser.parse_args(argv)
    path = ROOT / f"Pulumi.{args.stack}.yaml"
    if not path.is_file():
        parser.error(f"{path.name} not found in {ROOT}")
    config = load_stack_config(path)
    # A stack file may leave the API allowlist to deploy.sh's first run; who may reach the API
    # servers changes no price, so a documentation address stands in for the estimate.
    config.setdefault(f"{NAMESPACE}:apiAllowedCidrs", ["192.0.2.1/32"])
    # Nor does who is cluster admin: the mocks' caller stands in where deploy.sh would ask.
    config = with_admin_principals(config)
    # The stack file as the program would read it, every problem at once (scripts/check.py).
    report = check.Report()
    try:
        check.check_stack(args.stack, path, report, filled_by_deploy=check.FILLED_BY_DEPLOY)
    except check.CheckError as err:
        print(f"estimate: {err}", file=sys.stderr)
        return 1
    if report.problems:
        listing = "\n".join(f"  - {p}" for p in report.problems)
        print(f"estimate: fix {path.name} first:\n{listing}", file=sys.stderr)
        return 1
    try:
        fleet = fleet_of(config, args.stack)
    except FleetConfigError as err:
        print(f"estimate: {err}", file=sys.stderr)
        return 1
    graph = run_program(config, stack=args.stack)
    prices = load_prices()
    # The node counts the cloud preflight checks quotas against.
    nodes = {n.cluster: n for n in fleet_nodes.cloud_nodes(config)}
    bill = estimate(fleet, graph, prices, nodes, args.dns_queries_per_month)
    sched = up_model.schedule(up_model.nodes_from_graph(graph))
    print(render(args.stack, fleet, bill, prices, sched, local_needs(fleet, graph)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
