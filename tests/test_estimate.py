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


@pytest.mark.parametrize(
    ("entry", "service"),
    [
        (
            {"dns": "route53", "hostedZoneId": "Z0123ABC", "recordName": "shop.example.com"},
            "Route 53",
        ),
        ({"dns": "trafficManager", "relativeName": "shop1"}, "Azure Traffic Manager"),
    ],
)
def test_the_public_name_is_reported_not_counted(entry, service):
    config = {**KNOWN_FLEET, "ocm-fleet:entry": entry}
    bill = estimate.estimate(estimate.fleet_of(config), run_program(config), PRICES)
    plain = estimate.estimate(estimate.fleet_of(KNOWN_FLEET), run_program(KNOWN_FLEET), PRICES)
    assert bill.total == plain.total, "the public name must not add a guessed price"
    assert [w for w in bill.warnings if w not in plain.warnings] == [
        f"public name (entry.dns: {entry['dns']}): {service} health checks and DNS queries NOT "
        "counted; add their list prices to scripts/prices.yaml with their source"
    ]


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
                assert entry["per"] in ("hour", "month", "GiB-month"), where
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
