"""scripts/estimate.py: the bill of a fleet whose bill is known, and what it will not guess."""

from __future__ import annotations

import copy
import re
import sys

import pytest
from conftest import dev_config, dev_standby_config, large_config
from harness import MOCK_CALLER_ROLE, ROOT, run_program

sys.path.insert(0, str(ROOT / "scripts"))

import estimate
import up_model

from components.config import FleetConfigError


def _price(usd: float, per: str, **dated: str) -> dict:
    return {"usd": usd, "per": per, "read": "2026-12-03", **dated}


# Round figures, so the bill below can be checked by hand: 1000 hours a month.
LOCAL_FLEET = {
    "ocm-fleet:hub": {"name": "hub", "cloud": "kind"},
    "ocm-fleet:clusters": [
        {"name": "app-1", "cloud": "kind"},
        {"name": "app-2", "cloud": "kind"},
    ],
    "ocm-fleet:apiAllowedCidrs": ["127.0.0.1/32"],
}
PRICES = {
    "hoursPerMonth": 1000,
    "aws": {
        "global": {
            "eksControlPlane": _price(0.1, "hour"),
            "eksExtendedSupport": _price(0.5, "hour"),
        },
        "regions": {
            "us-east-1": {
                "vm:t3.large": _price(0.1, "hour", published="2025-06-18"),
                "natGateway": _price(0.05, "hour"),
                "publicIpv4": _price(0.005, "hour"),
                "networkLoadBalancer": _price(0.02, "hour"),
                "classicLoadBalancer": _price(0.03, "hour"),
                "ebsGp3": _price(0.1, "GiB-month"),
            }
        },
    },
    "azure": {
        "global": {"aksControlPlaneFree": _price(0, "hour")},
        "regions": {
            "westeurope": {
                "vm:Standard_D4s_v5": _price(0.2, "hour"),
                "standardPublicIp": _price(0.005, "hour"),
                "standardLoadBalancer": _price(0.025, "hour"),
                "premiumSsd128GiB": _price(20, "month"),
                "standardSsd4GiB": _price(1, "month"),
                "standardSsd32GiB": _price(2, "month"),
                "standardSsd64GiB": _price(4, "month"),
                "standardSsd128GiB": _price(8, "month"),
                "standardSsdZrs32GiB": _price(3, "month"),
            }
        },
    },
}

KNOWN_FLEET = {
    "ocm-fleet:hub": {"name": "main", "cloud": "azure", "region": "westeurope"},
    "ocm-fleet:clusters": [
        {
            "name": "east",
            "cloud": "aws",
            "region": "us-east-1",
            "nodeCount": 3,
            "natGateways": "perZone",
        },
        {"name": "west", "cloud": "azure", "region": "westeurope"},
    ],
    "ocm-fleet:apiAllowedCidrs": ["203.0.113.0/24"],
    "ocm-fleet:eksAdminPrincipals": [MOCK_CALLER_ROLE],
}


@pytest.fixture(scope="module")
def known_bill() -> estimate.Bill:
    graph = run_program(KNOWN_FLEET)
    return estimate.estimate(estimate.fleet_of(KNOWN_FLEET), graph, PRICES)


def test_the_bill_of_a_known_fleet_item_by_item(known_bill):
    items = {(line.cluster, line.item): line.monthly_usd for line in known_bill.lines}
    assert items == {
        # EKS, 3 t3.large: 100 + 3 x 100 + 3 NAT x 50 + (3 EIPs + 3 NLB zone IPs) x 5
        # + 1 NLB x 20 + (3 x 50 GiB roots) x 0.1 = 615
        ("east", "EKS control plane"): 100.0,
        ("east", "node VMs t3.large"): 300.0,
        ("east", "NAT gateways"): 150.0,
        ("east", "public IPv4 (NAT EIPs, NLB zones)"): 30.0,
        ("east", "Network Load Balancers"): 20.0,
        ("east", "EBS gp3 (node roots, volumes) GiB"): 15.0,
        # AKS, 2 D4s_v5: 0 + 2 x 200 + (egress + edge) x 5 + LB 25 + 2 OS disks x 20 = 475
        ("west", "AKS control plane (Free tier)"): 0.0,
        ("west", "node VMs Standard_D4s_v5"): 400.0,
        ("west", "Standard public IPs (egress, Services)"): 10.0,
        ("west", "Standard Load Balancer"): 25.0,
        ("west", "Premium SSD OS disks 128 GiB"): 40.0,
        # The hub: as above with the public entry's, the database's and the metrics
        # receiver's Services (4 IPs), and three volumes billed at the disk size they fit in:
        # Alertmanager's 2 GiB as 4, the database's 20 GiB as 32 (zone-redundant, a new hub in
        # a region with zones), Prometheus' 50 GiB as 64: 400 + 20 + 25 + 40 + 1 + 3 + 4 = 493
        ("main", "AKS control plane (Free tier)"): 0.0,
        ("main", "node VMs Standard_D4s_v5"): 400.0,
        ("main", "Standard public IPs (egress, Services)"): 20.0,
        ("main", "Standard Load Balancer"): 25.0,
        ("main", "Premium SSD OS disks 128 GiB"): 40.0,
        ("main", "Standard SSD volumes 4 GiB (alertmanager)"): 1.0,
        ("main", "Standard SSD ZRS volumes 32 GiB (mariadb-data-zrs)"): 3.0,
        ("main", "Standard SSD volumes 64 GiB (prometheus-server)"): 4.0,
    }
    assert (known_bill.of("east"), known_bill.of("west"), known_bill.of("main")) == (
        615.0,
        475.0,
        493.0,
    )
    assert known_bill.total == 1583.0
    assert known_bill.conditional == [], "no extended support unless chosen"
    as_of = {(line.cluster, line.item): line.as_of for line in known_bill.lines}
    assert as_of[("east", "node VMs t3.large")] == "2025-06-18", "the date its source states"
    assert as_of[("east", "NAT gateways")] == "2026-12-03", "undated: the date it was read"
    assert known_bill.warnings == [], "every price of this fleet is in the data"


def test_extended_support_is_shown_when_chosen_and_kept_out_of_the_total(known_bill):
    config = copy.deepcopy(KNOWN_FLEET)
    config["ocm-fleet:clusters"][0]["upgradePolicy"] = "EXTENDED"
    fleet = estimate.fleet_of(config)
    bill = estimate.estimate(fleet, run_program(config), PRICES)
    ((line, when),) = bill.conditional
    assert (line.cluster, line.item, line.monthly_usd) == (
        "east",
        "EKS extended support (upgradePolicy: EXTENDED)",
        500.0,
    ), "0.5 more per hour, 1000 hours"
    assert when == "once Kubernetes 1.35 leaves standard support"
    assert bill.total == known_bill.total, "billed only once the version leaves standard support"
    text = estimate.render("test", fleet, bill, PRICES, up_model_schedule(config))
    assert (
        "- east: EKS extended support (upgradePolicy: EXTENDED): $0.5/hour more ($500.00 per "
        "month, list price of 2026-12-03), once Kubernetes 1.35 leaves standard support"
    ) in text


def up_model_schedule(config):
    import up_model

    return up_model.schedule(up_model.nodes_from_graph(run_program(config)))


def _with_prometheus_values(graph, change):
    """A copy of the graph whose prometheus release's values went through `change`."""
    graph = copy.deepcopy(graph)
    (release,) = [
        r for r in graph.of_type(estimate.RELEASE) if r.inputs.get("chart") == "prometheus"
    ]
    change(release.inputs["values"])
    return graph


def _main_volumes(bill):
    return {
        line.item: line.quantity
        for line in bill.lines
        if line.cluster == "main" and line.item.startswith("Standard SSD volumes")
    }


def test_the_monitoring_volumes_are_sized_from_the_release_values():
    graph = run_program(KNOWN_FLEET)
    fleet = estimate.fleet_of(KNOWN_FLEET)

    def resize(values):
        values["server"]["persistentVolume"]["size"] = "100Gi"
        values["alertmanager"]["persistence"]["size"] = "3Gi"

    bill = estimate.estimate(fleet, _with_prometheus_values(graph, resize), PRICES)
    assert _main_volumes(bill) == {
        "Standard SSD volumes 4 GiB (alertmanager)": 1,
        "Standard SSD volumes 128 GiB (prometheus-server)": 1,
    }
    assert bill.of("main") == 400 + 20 + 25 + 40 + 1 + 3 + 8


def test_a_monitoring_volume_turned_off_in_the_values_is_not_counted():
    graph = run_program(KNOWN_FLEET)

    def no_alertmanager_volume(values):
        values["alertmanager"]["persistence"]["enabled"] = False

    bill = estimate.estimate(
        estimate.fleet_of(KNOWN_FLEET),
        _with_prometheus_values(graph, no_alertmanager_volume),
        PRICES,
    )
    assert "Standard SSD volumes 4 GiB (alertmanager)" not in _main_volumes(bill)
    assert "Standard SSD volumes 64 GiB (prometheus-server)" in _main_volumes(bill)
    assert bill.warnings == []


def test_a_monitoring_volume_without_a_declared_size_is_reported_not_guessed():
    graph = run_program(KNOWN_FLEET)

    def unsized(values):
        del values["server"]["persistentVolume"]["size"]

    bill = estimate.estimate(
        estimate.fleet_of(KNOWN_FLEET), _with_prometheus_values(graph, unsized), PRICES
    )
    assert not [item for item in _main_volumes(bill) if "prometheus-server" in item]
    assert bill.warnings == [
        "main: the prometheus-server volume of release 'monitoring-prometheus' declares no "
        "size (server.persistentVolume.size): NOT counted"
    ]


def test_a_region_without_prices_is_reported_not_guessed():
    config = {
        **KNOWN_FLEET,
        "ocm-fleet:clusters": [{"name": "tokyo", "cloud": "aws", "region": "ap-northeast-1"}],
    }
    bill = estimate.estimate(estimate.fleet_of(config), run_program(config), PRICES)
    tokyo = [line for line in bill.lines if line.cluster == "tokyo"]
    assert [line.item for line in tokyo] == ["EKS control plane"], (
        "only the price that holds in every region may be counted for a region without prices"
    )
    assert any(
        "tokyo: aws region 'ap-northeast-1' has no list prices: node VMs t3.large (2) NOT counted"
        in w
        for w in bill.warnings
    ), bill.warnings


ROUTE53 = {"dns": "route53", "hostedZoneId": "Z0123ABC", "recordName": "shop.example.com"}
TRAFFIC_MANAGER = {"dns": "trafficManager", "relativeName": "shop1", "location": "westeurope"}
DNS_PRICES = {
    "aws": {
        "route53HealthCheckAws": _price(0.5, "month"),
        "route53HealthCheckNonAws": _price(0.75, "month"),
        "route53OptionalFeatureAws": _price(1, "month"),
        "route53OptionalFeatureNonAws": _price(2, "month"),
        "route53StandardQueries": _price(0.4, "million queries"),
        "route53HostedZone": _price(0.5, "month"),
    },
    "azure": {
        "trafficManagerHealthCheckExternal": _price(0.54, "month"),
        "trafficManagerFastIntervalExternal": _price(2, "month"),
        "trafficManagerQueries": _price(0.54, "million queries"),
    },
}


def _with_dns_prices(prices: dict) -> dict:
    prices = copy.deepcopy(prices)
    for cloud, items in DNS_PRICES.items():
        prices[cloud]["global"].update(items)
    return prices


def _standby_fleet(entry: dict | None = None, **standby) -> dict:
    """KNOWN_FLEET with a second home (on aws us-east-1 unless said) and an entry config."""
    config = copy.deepcopy(KNOWN_FLEET)
    config["ocm-fleet:hub"]["standby"] = {
        "name": "second",
        "cloud": "aws",
        "region": "us-east-1",
        **standby,
    }
    if entry is not None:
        config["ocm-fleet:entry"] = entry
    return config


def _on(graph, cluster: str, type_: str, name: str, inputs: dict):
    """A resource as the program would declare it on `cluster` (its Kubernetes provider)."""
    from harness import Registered

    provider = graph.kubernetes_provider(cluster)
    return Registered(
        type=type_,
        name=name,
        urn=f"urn:pulumi:test::ocm-fleet::{type_}::{name}",
        parent="",
        provider=f"{provider.urn}::{name}-provider-id",
        custom=True,
        dependencies=[],
        property_dependencies={},
        options={},
        inputs=inputs,
        wire_inputs=inputs,
    )


def _balancer(graph, cluster: str, namespace: str, name: str, annotations: dict | None = None):
    metadata = {"name": name, "namespace": namespace, "annotations": annotations or {}}
    spec = {"type": "LoadBalancer", "ports": [{"port": 80}]}
    return _on(
        graph, cluster, estimate.SERVICE, f"{cluster}-{name}", {"metadata": metadata, "spec": spec}
    )


def _claim(graph, cluster: str, name: str, size: str, storage_class: str | None):
    spec = {"resources": {"requests": {"storage": size}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return _on(
        graph,
        cluster,
        estimate.PVC,
        f"{cluster}-{name}",
        {"metadata": {"name": name, "namespace": "bookstore-data"}, "spec": spec},
    )


def _gp3_class(graph, cluster: str, name: str = "ocm-fleet-gp3", type_: str = "gp3"):
    inputs = {
        "metadata": {"name": name},
        "provisioner": estimate.EBS_CSI_PROVISIONER,
        "parameters": {"type": type_},
    }
    return _on(graph, cluster, estimate.STORAGE_CLASS, f"{cluster}-{name}", inputs)


def _adding(graph, *resources):
    graph = copy.deepcopy(graph)
    graph.resources += list(resources)
    return graph


def _bare(graph, cluster: str):
    """The graph without the volumes, storage classes and LoadBalancer Services declared on
    `cluster`: its bill is then the cluster's own, whatever the program puts on it."""
    provider = graph.kubernetes_provider(cluster).urn
    graph = copy.deepcopy(graph)
    graph.resources = [
        r
        for r in graph.resources
        if r.provider_urn != provider
        or not (
            r.type in (estimate.PVC, estimate.STORAGE_CLASS)
            or (
                r.type == estimate.SERVICE
                and r.inputs.get("spec", {}).get("type") == "LoadBalancer"
            )
        )
    ]
    return graph


def _replica_disk(graph):
    """The replica's claim as the shared design has it on an EKS second home: the primary's
    size (DatabaseArgs.storage_gb) on a gp3 class of the program's."""
    from components.app.database import DatabaseArgs

    size = f"{DatabaseArgs.storage_gb}Gi"
    return [
        _gp3_class(graph, "second"),
        _claim(graph, "second", "mariadb-data", size, "ocm-fleet-gp3"),
    ]


def _second_home_on_eks(graph):
    """The second home's replica and entry on EKS, each Service asking for an NLB."""
    nlb = {estimate.AWS_LB_TYPE: "nlb"}
    return _adding(
        graph,
        *_replica_disk(graph),
        _balancer(graph, "second", "bookstore-data", "mariadb-public", nlb),
        _balancer(graph, "second", "ocm-fleet-ingress", "public-lb", nlb),
    )


def _lines(bill, cluster: str) -> dict[str, float]:
    return {line.item: line.monthly_usd for line in bill.lines if line.cluster == cluster}


def _monthly(prices: dict, cloud: str, region: str, item: str, quantity: float) -> float:
    """What `quantity` of a price item costs a month, from the prices (not from the estimate)."""
    entry = prices[cloud]["regions"].get(region, {}).get(item) or prices[cloud]["global"][item]
    hours = prices["hoursPerMonth"] if entry["per"] == "hour" else 1
    return round(quantity * entry["usd"] * hours, 2)


def test_the_replica_and_the_second_entry_are_billed_on_an_eks_second_home():
    from components.app.database import DatabaseArgs

    config = _standby_fleet()
    fleet = estimate.fleet_of(config)
    graph = _bare(run_program(config), "second")
    before = estimate.estimate(fleet, graph, PRICES)
    after = estimate.estimate(fleet, _second_home_on_eks(graph), PRICES)
    old, new = _lines(before, "second"), _lines(after, "second")
    assert "Network Load Balancers" not in old, "a bare second home has no load balancer"
    nlbs = _monthly(PRICES, "aws", "us-east-1", "networkLoadBalancer", 2)
    assert new["Network Load Balancers"] == nlbs, "the replica's and the entry's NLB"
    ips = "public IPv4 (NAT EIPs, NLB zones)"
    zone_ips = _monthly(PRICES, "aws", "us-east-1", "publicIpv4", 2 * estimate.eks.ZONE_COUNT)
    assert new[ips] == pytest.approx(old[ips] + zone_ips), "each NLB holds an address per zone"
    disk = _monthly(PRICES, "aws", "us-east-1", "ebsGp3", DatabaseArgs.storage_gb)
    assert new["EBS gp3 (node roots, volumes: mariadb-data) GiB"] == pytest.approx(
        old["EBS gp3 (node roots, volumes) GiB"] + disk
    ), "the replica's disk is gp3 beside the node roots"
    assert after.of("second") == pytest.approx(before.of("second") + nlbs + zone_ips + disk)
    assert after.warnings == before.warnings == []
    plain = estimate.estimate(estimate.fleet_of(KNOWN_FLEET), run_program(KNOWN_FLEET), PRICES)
    assert "second" not in plain.owners, "only a fleet with hub.standby has these lines"
    for cluster in ("main", "east", "west"):
        assert _lines(after, cluster) == _lines(before, cluster), f"{cluster} is unchanged"


def test_the_replica_and_the_second_entry_are_billed_on_an_aks_second_home():
    """An AKS second home (another Azure region): the replica's zone-redundant disk at its
    size tier, and a frontend public IP per LoadBalancer Service on the cluster's one LB."""
    from components.app.database import CLAIM, ZONE_REDUNDANT_CLASS, DatabaseArgs

    prices = copy.deepcopy(PRICES)
    prices["azure"]["regions"]["northeurope"] = prices["azure"]["regions"]["westeurope"]
    config = _standby_fleet(cloud="azure", region="northeurope")
    fleet = estimate.fleet_of(config)
    graph = _bare(run_program(config), "second")
    claim = CLAIM["zoneRedundant"]
    home = _adding(
        graph,
        _claim(graph, "second", claim, f"{DatabaseArgs.storage_gb}Gi", ZONE_REDUNDANT_CLASS),
        _balancer(graph, "second", "bookstore-data", "mariadb-public"),
        _balancer(graph, "second", "ocm-fleet-ingress", "public-lb"),
    )
    before, after = (estimate.estimate(fleet, g, prices) for g in (graph, home))
    old, new = _lines(before, "second"), _lines(after, "second")
    ips = "Standard public IPs (egress, Services)"
    assert new[ips] == pytest.approx(
        old[ips] + _monthly(prices, "azure", "northeurope", "standardPublicIp", 2)
    )
    tier = next(t for t in estimate.AZURE_DISK_TIERS_GIB if t >= DatabaseArgs.storage_gb)
    item = f"Standard SSD ZRS volumes {tier} GiB ({claim})"
    assert item not in old
    assert new[item] == _monthly(prices, "azure", "northeurope", f"standardSsdZrs{tier}GiB", 1)
    assert new["Standard Load Balancer"] == old["Standard Load Balancer"], (
        "the Services share the cluster's one Standard Load Balancer"
    )


def test_a_service_without_the_nlb_annotation_is_billed_as_the_classic_load_balancer_eks_makes():
    config = _standby_fleet()
    graph = _bare(run_program(config), "second")
    fleet = estimate.fleet_of(config)
    home = _adding(
        graph,
        _balancer(graph, "second", "bookstore-data", "mariadb-public"),
        _balancer(graph, "second", "x", "external", {estimate.AWS_LB_TYPE: "external"}),
    )
    bill = estimate.estimate(fleet, home, PRICES)
    lines = _lines(bill, "second")
    assert lines["Classic Load Balancers (bookstore-data/mariadb-public)"] == _monthly(
        PRICES, "aws", "us-east-1", "classicLoadBalancer", 1
    )
    assert "Network Load Balancers" not in lines
    bare = _lines(estimate.estimate(fleet, graph, PRICES), "second")
    assert lines["public IPv4 (NAT EIPs, load balancer zones)"] == pytest.approx(
        bare["public IPv4 (NAT EIPs, NLB zones)"]
        + _monthly(PRICES, "aws", "us-east-1", "publicIpv4", estimate.eks.ZONE_COUNT)
    ), "a Classic Load Balancer holds an address per zone as well; the external one none"
    assert bill.warnings == [
        f"second: LoadBalancer Service x/external asks {estimate.AWS_LB_TYPE}: 'external', which "
        "the AWS Load Balancer Controller provisions, and the program installs none: NOT counted"
    ]


@pytest.mark.parametrize(
    ("storage_class", "declared", "said"),
    [
        (None, None, "the cluster's default storage class"),
        ("gp2", None, "the storage class 'gp2'"),
        ("ocm-fleet-io2", "io2", "the storage class 'ocm-fleet-io2'"),
    ],
)
def test_an_eks_volume_not_on_a_gp3_class_of_the_programs_is_reported_not_guessed(
    storage_class, declared, said
):
    config = _standby_fleet()
    graph = _bare(run_program(config), "second")
    extra = [_claim(graph, "second", "mariadb-data", "20Gi", storage_class)]
    if declared:
        extra.append(_gp3_class(graph, "second", storage_class, declared))
    bill = estimate.estimate(estimate.fleet_of(config), _adding(graph, *extra), PRICES)
    assert "EBS gp3 (node roots, volumes) GiB" in _lines(bill, "second"), "node roots only"
    assert bill.warnings == [
        f"second: volume mariadb-data (20 GiB) claims {said}, not one the program declares as "
        "EBS gp3 on this cluster: NOT counted"
    ]


def _with_second_check(graph):
    """The graph with a health check of the second entry, as the program declares one once
    the second home has its entry (a copy of the first's, with the second's name)."""
    checks = graph.of_type(estimate.HEALTH_CHECK)
    if len(checks) > 1:
        return graph
    second = copy.deepcopy(checks[0])
    second.name = second.name.replace("-check-1", "-check-2")
    second.urn = second.urn.replace("-check-1", "-check-2")
    return _adding(graph, second)


@pytest.mark.parametrize("interval", [30, 10])
def test_route53_bills_each_entrys_health_check_by_where_it_runs_and_the_assumed_queries(
    interval,
):
    config = _standby_fleet({**ROUTE53, "probeIntervalSeconds": interval})
    prices = _with_dns_prices(PRICES)
    graph = _with_second_check(run_program(config))
    bill = estimate.estimate(
        estimate.fleet_of(config), graph, prices, dns_queries_per_month=5_000_000
    )
    lines = _lines(bill, estimate.PUBLIC_NAME)
    expected = {
        # entry-1 is the main cluster's, on Azure; entry-2 the second home's, on AWS.
        "Route 53 health checks, non-AWS endpoints (entry-1)": _monthly(
            prices, "aws", "global", "route53HealthCheckNonAws", 1
        ),
        "Route 53 health checks, AWS endpoints (entry-2)": _monthly(
            prices, "aws", "global", "route53HealthCheckAws", 1
        ),
        "Route 53 standard queries (million)": _monthly(
            prices, "aws", "global", "route53StandardQueries", 5
        ),
    }
    if interval == 10:
        expected["Route 53 fast interval (10 s), non-AWS endpoints (entry-1)"] = _monthly(
            prices, "aws", "global", "route53OptionalFeatureNonAws", 1
        )
        expected["Route 53 fast interval (10 s), AWS endpoints (entry-2)"] = _monthly(
            prices, "aws", "global", "route53OptionalFeatureAws", 1
        )
    assert lines == expected
    plain = estimate.estimate(estimate.fleet_of(config), graph, PRICES)
    ((zone, when),) = bill.conditional
    assert (zone.item, zone.monthly_usd) == ("Route 53 hosted zone Z0123ABC", 0.5)
    assert "creates no zone" in when, "the user's zone is shown, not totalled"
    assert bill.total == pytest.approx(plain.total + sum(expected.values())), (
        "the public name adds exactly its lines"
    )
    assert bill.warnings == []


@pytest.mark.parametrize("interval", [30, 10])
def test_traffic_manager_bills_each_external_endpoint_and_the_assumed_queries(interval):
    config = _standby_fleet({**TRAFFIC_MANAGER, "probeIntervalSeconds": interval})
    prices = _with_dns_prices(PRICES)
    graph = run_program(config)
    (profile,) = graph.of_type(estimate.TRAFFIC_MANAGER_PROFILE)
    endpoints = sorted(e["name"] for e in profile.inputs["endpoints"])
    bill = estimate.estimate(
        estimate.fleet_of(config), graph, prices, dns_queries_per_month=250_000
    )
    names = ", ".join(endpoints)
    expected = {
        f"Traffic Manager health checks, external endpoints ({names})": _monthly(
            prices, "azure", "global", "trafficManagerHealthCheckExternal", len(endpoints)
        ),
        "Traffic Manager DNS queries (million)": _monthly(
            prices, "azure", "global", "trafficManagerQueries", 0.25
        ),
    }
    if interval == 10:
        expected[f"Traffic Manager fast interval (10 s), external endpoints ({names})"] = _monthly(
            prices, "azure", "global", "trafficManagerFastIntervalExternal", len(endpoints)
        )
    assert _lines(bill, estimate.PUBLIC_NAME) == expected
    assert bill.conditional == [] and bill.warnings == []


def test_the_printed_bill_states_the_query_assumption_and_the_public_names_subtotal():
    config = _standby_fleet(ROUTE53)
    prices = _with_dns_prices(PRICES)
    fleet = estimate.fleet_of(config)
    bill = estimate.estimate(fleet, run_program(config), prices, dns_queries_per_month=3_000_000)
    text = estimate.render("test", fleet, bill, prices, up_model_schedule(config))
    hours = prices["hoursPerMonth"]
    assert (
        "DNS queries assumed: 3,000,000 a month (--dns-queries-per-month; resolvers cache each "
        f"answer for the record's TTL, 30 s here, so a resolver asks at most {hours * 120:,} "
        "times a month)."
    ) in text
    subtotal = f"| **public name** | | | subtotal | | | | **${bill.of('public name'):,.2f}** |"
    assert subtotal in text
    assert "| public name | aws | global | Route 53 standard queries (million) | 3 |" in text


def test_without_a_public_name_there_is_no_dns_line_and_no_query_assumption():
    prices = _with_dns_prices(PRICES)
    bill = estimate.estimate(estimate.fleet_of(KNOWN_FLEET), run_program(KNOWN_FLEET), prices)
    assert estimate.PUBLIC_NAME not in bill.owners
    assert bill.dns_queries_per_month is None


@pytest.mark.parametrize("entry", [ROUTE53, TRAFFIC_MANAGER])
def test_a_public_name_without_list_prices_is_reported_not_guessed(entry):
    config = {**KNOWN_FLEET, "ocm-fleet:entry": entry}
    bill = estimate.estimate(estimate.fleet_of(config), run_program(config), PRICES)
    plain = estimate.estimate(estimate.fleet_of(KNOWN_FLEET), run_program(KNOWN_FLEET), PRICES)
    assert bill.total == plain.total, "the public name must not add a guessed price"
    new = [w for w in bill.warnings if w not in plain.warnings]
    assert new and all(
        w.startswith("public name: no list price for ") and "NOT counted" in w for w in new
    ), new


@pytest.mark.parametrize("entry", [ROUTE53, TRAFFIC_MANAGER])
def test_the_shipped_prices_cover_the_public_name(entry):
    config = {**dev_standby_config(), "ocm-fleet:entry": entry}
    bill = estimate.estimate(estimate.fleet_of(config), run_program(config), estimate.load_prices())
    assert bill.warnings == [], "every item of the public name has a sourced list price"
    assert _lines(bill, estimate.PUBLIC_NAME), "the public name is on the bill"


@pytest.mark.parametrize("value", ["-1", "many", "1.5"])
def test_a_query_volume_that_is_not_a_count_is_refused(value, capsys):
    with pytest.raises(SystemExit) as stopped:
        estimate.main(["dev", "--dns-queries-per-month", value])
    assert stopped.value.code == 2
    assert f"--dns-queries-per-month: {value!r} is not a whole number" in capsys.readouterr().err


def test_clusters_you_already_run_cost_the_program_nothing():
    config = large_config()
    bill = estimate.estimate(estimate.fleet_of(config), run_program(config), PRICES)
    assert not [line for line in bill.lines if line.cluster == "lab"]
    assert [f for f in bill.free if f.startswith("lab (existing)")], bill.free


def test_every_list_price_says_where_and_when_it_was_read():
    prices = estimate.load_prices()
    assert prices["hoursPerMonth"] == 730
    for cloud in ("aws", "azure"):
        scopes = {"global": prices[cloud]["global"], **prices[cloud]["regions"]}
        for scope, entries in scopes.items():
            for item, entry in entries.items():
                where = f"{cloud} {scope} {item}"
                assert isinstance(entry["usd"], int | float) and entry["usd"] >= 0, where
                assert entry["per"] in ("hour", "month", "GiB-month", "million queries"), where
                assert entry["source"].startswith("https://"), f"{where} needs its source page"
                assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", entry["read"]), f"{where}: read date"
                published = entry.get("published", entry["read"])
                assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", published), f"{where}: its date"
                assert published <= entry["read"], f"{where} cannot be dated after it was read"
                if "github.com" in entry["source"]:
                    assert re.search(r"/blob/[0-9a-f]{40}/", entry["source"]), (
                        f"{where}: a repository source names the commit it was read at"
                    )


def test_the_dev_stack_estimate_prints_cost_exclusions_and_up_time(capsys):
    assert estimate.main(["dev"]) == 0
    out = capsys.readouterr().out
    assert "# Stack dev: monthly cost at list prices (USD, on demand, 730 h a month" in out
    assert "Each unit price is the list price of the date beside it" in out
    assert (
        "| app-aws | aws | eu-west-1 | EKS control plane | 1 | $0.1/hour | 2026-12-03 | $73.00 |"
        in out
    )
    # Prometheus' 50 GiB volume on the main cluster, at the Azure disk size it fits in.
    assert re.search(
        r"\| main \| azure \| westeurope \| Standard SSD volumes 64 GiB \(prometheus-server\) "
        r"\| 1 \| \$[\d.]+/month \| \d{4}-\d{2}-\d{2} \|",
        out,
    )
    assert "Not counted:" in out and "traffic" in out and "logs" in out
    assert "WARNINGS" not in out, "every item of the dev stack has a sourced list price"
    assert re.search(r"# Modeled first `pulumi up`: \d+ min \d\d s", out)
    # dev: the canary app-aws, then app-azure: two steps and one soak.
    change = up_model.CREATION_SECONDS.get(
        up_model.MANIFEST_WORK_REPLICA_SET, up_model.DEFAULT_SECONDS
    ).seconds + (2 * up_model.ROLLOUT_STEP.seconds + 120)
    assert f"Modeled version change: {up_model.minutes(change)} (" in out, (
        "the estimate prints the modeled time of a version change beside the first `up`"
    )
    assert "| public-lb-service |" in out or "| app-rollout-status |" in out, (
        "the critical path ends at the public entry or at the app's rollout"
    )


FIRST_HOUR = ROOT / "docs" / "first-hour.md"


@pytest.mark.parametrize("stack", ["dev", "local"])
def test_the_docs_show_what_the_estimate_prints(stack, capsys):
    shown = FIRST_HOUR.read_text().split(f"For the {stack} stack it prints (abridged):", 1)[1]
    shown = shown.split("```text\n", 1)[1].split("```", 1)[0]
    assert estimate.main([stack]) == 0
    out = capsys.readouterr().out.splitlines()
    stale = [line for line in shown.splitlines() if line not in out]
    assert shown.strip() and not stale, (
        f"{FIRST_HOUR.name} lines the {stack} estimate no longer prints: {stale}"
    )


FIGURE = re.compile(r"\$[\d,]+\.\d\d|\d+ min \d\d s|\d+(?:\.\d+)? (?:CPUs|GiB)")


def test_the_readme_figures_are_what_the_estimate_prints(capsys):
    """Each README figure beside `scripts/estimate.py STACK` (in its cell, or in its row when the
    row names one stack) is in what that command prints."""
    claimed: dict[str, set[str]] = {}
    for row in (ROOT / "README.md").read_text().splitlines():
        if not row.startswith("|"):
            continue
        cells = row.strip("|").split("|")
        stacks = re.findall(r"scripts/estimate\.py (\w+)", row)
        for cell in cells:
            named = re.findall(r"scripts/estimate\.py (\w+)", cell)
            stack = named[0] if named else (stacks[0] if len(set(stacks)) == 1 else None)
            if stack:
                claimed.setdefault(stack, set()).update(FIGURE.findall(cell))
    assert {"dev", "local"} <= set(claimed) and all(claimed.values()), claimed
    for stack, figures in claimed.items():
        assert estimate.main([stack]) == 0
        out = capsys.readouterr().out
        wrong = sorted(f for f in figures if f not in out)
        assert not wrong, f"README figures `scripts/estimate.py {stack}` does not print: {wrong}"


def test_the_estimate_reads_the_config_through_the_program_model():
    config = dev_config()
    config["ocm-fleet:clusters"][0]["nodeCount"] = "three"
    with pytest.raises(FleetConfigError, match="nodeCount"):
        estimate.fleet_of(config)


def test_a_local_kind_fleet_costs_nothing_and_still_gets_its_up_time(capsys):
    assert estimate.main(["local"]) == 0
    out = capsys.readouterr().out
    assert "**Total counted: $0.00 per month**" in out
    for cluster in ("hub", "app-1", "app-2"):
        assert f"- {cluster} (kind): runs on machines you already have" in out
    assert "WARNINGS" not in out
    assert "| public-lb-service |" in out or "| app-rollout-status |" in out


def test_a_local_fleet_gets_what_docker_must_give_it_and_no_empty_price_table(capsys):
    assert estimate.main(["local"]) == 0
    out = capsys.readouterr().out
    assert "| cluster | cloud | region | item |" not in out, "no price table with no prices"
    assert "\nNot counted:\n" not in out, "the clouds' exclusions say nothing of a local fleet"
    assert "# What Docker must give the kind clusters" in out
    assert re.search(r"\| \*\*all\*\* \| \*\*6\*\* \| \*\*[\d.]+ cores\*\* \|", out), out


def test_each_kind_worker_adds_what_every_node_runs():
    """A worker more adds kindnet's requests and one copy of every DaemonSet's pods; the
    control plane's own pods are counted once per cluster."""
    from workloads import pod_template, workloads

    def needs(workers: int) -> tuple[dict, object]:
        config = copy.deepcopy(LOCAL_FLEET)
        config["ocm-fleet:clusters"][0]["nodeCount"] = workers
        graph = run_program(config, stack="local")
        fleet = estimate.fleet_of(config, "local")
        return {n.cluster: n for n in estimate.local_needs(fleet, graph)}, graph

    one, graph = needs(1)
    two, _ = needs(2)
    daemons = [p for p in workloads(graph) if p.cluster == "app-1" and p.kind == "DaemonSet"]
    assert daemons, "the app clusters run the metrics agents' DaemonSets"
    per_node_cpu = estimate.KIND_NODE_REQUESTS[0] + sum(
        estimate._cpu_millicores((c.get("resources") or {}).get("requests", {}).get("cpu", "0"))
        for p in daemons
        for c in pod_template(p.obj)["spec"]["containers"]
    )
    assert two["app-1"].nodes == one["app-1"].nodes + 1 == 3
    assert two["app-1"].cpu_millicores - one["app-1"].cpu_millicores == pytest.approx(per_node_cpu)
    assert two["hub"] == one["hub"], "another cluster's workers change nothing on the hub"
    control_plane_cpu = estimate.KIND_CONTROL_PLANE_REQUESTS[0]
    assert one["hub"].cpu_millicores > control_plane_cpu + 2 * estimate.KIND_NODE_REQUESTS[0]
    assert one["hub"].volumes_gib > 0, "the database and monitoring volumes are on the hub"


@pytest.mark.parametrize(
    ("quantity", "gib"),
    [
        ("50Gi", 50.0),
        ("2.5Gi", 2.5),
        ("512Mi", 0.5),
        ("1Ti", 1024.0),
        ("50G", 50e9 / 2**30),
        ("500M", 500e6 / 2**30),
        ("1e9", 1e9 / 2**30),
        ("1E3", 1e3 / 2**30),
        ("5E", 5e18 / 2**30),
        ("1Ei", 2.0**30),
        ("500m", 0.5 / 2**30),
        (".5Gi", 0.5),
        ("+2Gi", 2.0),
        (" 8Gi ", 8.0),
    ],
)
def test_storage_quantities_in_binary_and_decimal_units(quantity, gib):
    assert estimate._gib(quantity) == pytest.approx(gib)


@pytest.mark.parametrize("quantity", ["50GB", "Gi", "", "-5Gi", "1_000Gi", "infGi", "nan", "1e3k"])
def test_a_storage_quantity_kubernetes_would_refuse_is_named(quantity):
    with pytest.raises(ValueError, match=rf"storage quantity '{quantity}' is not a Kubernetes"):
        estimate._gib(quantity)


def test_the_second_home_is_billed_as_a_cluster_of_its_own(capsys):
    """hub.standby is a cluster of the fleet: its control plane, nodes and NAT are counted."""
    assert estimate.main(["dev-standby"]) == 0
    out = capsys.readouterr().out
    for item in ("EKS control plane", "node VMs t3.large", "NAT gateways"):
        assert re.search(rf"\| second \| aws \| eu-west-1 \| {item} \|", out), (
            f"the second home's {item} must be on the bill"
        )
    assert re.search(r"\| \*\*second\*\* \| \| \| subtotal \| \| \| \| \*\*\$[\d,.]+\*\* \|", out)
    assert "WARNINGS" not in out, "every item of the dev-standby stack has a sourced list price"
    plain = estimate.fleet_of(dev_config())
    with_home = estimate.fleet_of(dev_standby_config())
    assert [c.name for c in with_home.all_clusters] == [
        "main",
        "second",
        *[c.name for c in plain.clusters],
    ]


def test_the_kind_second_home_is_in_what_docker_must_give(capsys):
    assert estimate.main(["local-standby"]) == 0
    out = capsys.readouterr().out
    assert "- second (kind): runs on machines you already have" in out
    assert re.search(r"^\| second \| 2 \| [\d.]+ cores \| [\d.]+ GiB \| \d+ GiB \|$", out, re.M)


DATA_DOC = ROOT / "docs" / "data.md"


def test_the_data_doc_shows_what_the_estimate_prints_for_the_second_home(capsys):
    shown = DATA_DOC.read_text().split("For the dev-standby stack it prints (abridged):", 1)[1]
    shown = shown.split("```text\n", 1)[1].split("```", 1)[0]
    assert estimate.main(["dev-standby"]) == 0
    out = capsys.readouterr().out.splitlines()
    stale = [line for line in shown.splitlines() if line not in out]
    assert shown.strip() and not stale, f"{DATA_DOC.name} lines the estimate no longer prints"


PUBLIC_ENTRY_DOC = ROOT / "docs" / "public-entry.md"
PRICE_ROW = re.compile(
    r"^\| [^|]+ \| `(?P<item>\w+)` \| \$(?P<usd>[\d.]+)/(?P<per>[\w -]+) \| (?P<date>[\d-]+) \|$"
)
TERM = re.compile(r"(?P<quantity>\d+(?:\.\d+)?) \u00d7 `(?P<item>\w+)`")
SUM_ROW = re.compile(r"^\|(?P<cells>.*)\| \*{0,2}\$(?P<usd>[\d,]+\.\d\d)\*{0,2} \|$")


def _section(path, heading: str) -> str:
    text = path.read_text()
    assert heading in text, f"{path.name} has no {heading!r}"
    return text.split(heading, 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]


def _sum_rows(section: str, prices: dict, cloud_region) -> list[tuple[str, float, float]]:
    """(row, the month the row states, the month its `quantity x price item` terms come to,
    whether it has terms)."""
    rows = []
    for row in section.splitlines():
        match = SUM_ROW.match(row)
        if not match:
            continue
        terms = TERM.findall(match["cells"])
        computed = sum(
            _monthly(prices, *cloud_region(item), item, float(quantity)) for quantity, item in terms
        )
        rows.append((row, float(match["usd"].replace(",", "")), round(computed, 2), bool(terms)))
    return rows


def _where(prices: dict, region: str):
    def cloud_region(item: str) -> tuple[str, str]:
        clouds = [
            c
            for c in ("aws", "azure")
            if item in prices[c]["global"] or item in prices[c]["regions"].get(region, {})
        ]
        assert len(clouds) == 1, f"price item {item} must be in exactly one cloud's prices"
        return clouds[0], region

    return cloud_region


def test_the_public_entry_docs_price_table_is_prices_yaml():
    prices = estimate.load_prices()
    rows = [PRICE_ROW.match(r) for r in _section(PUBLIC_ENTRY_DOC, "## Cost\n").splitlines()]
    rows = [r for r in rows if r]
    assert len(rows) == 9, "every price item of the public name is in the table"
    for row in rows:
        cloud, _ = _where(prices, "global")(row["item"])
        entry = prices[cloud]["global"][row["item"]]
        assert (float(row["usd"]), row["per"]) == (entry["usd"], entry["per"]), row["item"]
        assert row["date"] == str(entry.get("published") or entry["read"]), row["item"]


def test_the_public_entry_docs_monthly_figures_are_what_the_estimate_bills_for_two_entries():
    prices = estimate.load_prices()
    rows = _sum_rows(_section(PUBLIC_ENTRY_DOC, "## Cost\n"), prices, _where(prices, "global"))
    assert len(rows) == 4, rows
    for row, stated, computed, _ in rows:
        assert stated == computed, f"docs/public-entry.md: {row} comes to ${computed}"
    # The same through the estimate: the dev-standby fleet with its second entry in the name.
    billed = {}
    for entry, interval in (
        (ROUTE53, 30),
        (ROUTE53, 10),
        (TRAFFIC_MANAGER, 30),
        (TRAFFIC_MANAGER, 10),
    ):
        config = {
            **dev_standby_config(),
            "ocm-fleet:entry": {**entry, "probeIntervalSeconds": interval},
        }
        graph = _with_second_check(run_program(config)) if entry is ROUTE53 else run_program(config)
        if entry is TRAFFIC_MANAGER:
            graph = _with_second_endpoint(graph)
        bill = estimate.estimate(estimate.fleet_of(config), graph, prices)
        billed[(entry["dns"], interval)] = bill.of(estimate.PUBLIC_NAME)
    stated = {
        (re.search(r"`(\w+)`", row)[1], int(row.split("|")[2])): usd for row, usd, _, _ in rows
    }
    assert stated == billed, "the docs' figures are the estimate's public name subtotals"


def _with_second_endpoint(graph):
    """The graph with the second entry in the Traffic Manager profile (as the first one)."""
    graph = copy.deepcopy(graph)
    (profile,) = graph.of_type(estimate.TRAFFIC_MANAGER_PROFILE)
    endpoints = profile.inputs["endpoints"]
    if len(endpoints) == 1:
        endpoints.append({**endpoints[0], "name": "entry-2", "priority": 2.0})
    return graph


def test_the_data_docs_cost_table_is_what_the_estimate_adds_for_the_replica_and_the_entry():
    prices = estimate.load_prices()
    config = dev_standby_config()
    fleet = estimate.fleet_of(config)
    region = fleet.hub_standby.region
    rows = _sum_rows(_section(DATA_DOC, "### Cost\n"), prices, _where(prices, region))
    assert [terms for *_, terms in rows] == [True, True, True], rows
    for row, stated, computed, _ in rows:
        assert stated == computed, f"docs/data.md: {row} comes to ${computed}"
    # The same through the estimate: what each adds to a bare second home.
    graph = _bare(run_program(config), "second")
    bare = estimate.estimate(fleet, graph, prices).of("second")
    nlb = {estimate.AWS_LB_TYPE: "nlb"}
    added = [
        _replica_disk(graph),
        [_balancer(graph, "second", "bookstore-data", "mariadb-public", nlb)],
        [_balancer(graph, "second", "ocm-fleet-ingress", "public-lb")],
    ]
    for (row, stated, _, _), extra in zip(rows, added, strict=True):
        bill = estimate.estimate(fleet, _adding(graph, *extra), prices)
        assert bill.warnings == []
        assert round(bill.of("second") - bare, 2) == stated, (
            f"docs/data.md: {row} is not what the estimate adds to the second home"
        )
