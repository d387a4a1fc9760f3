"""The second public entry (HAProxy on the second home, `hub.standby`) and the name in front of
both entries, for each `entry.dns`, in update and preview, with and without the second home."""

from __future__ import annotations

import copy
import ipaddress
import re
from functools import cache
from urllib.parse import urlparse

import pytest
from conftest import FLEETS, STANDBY_FLEETS, entry_egress, existing_kubeconfig
from harness import ROOT, Graph, failure_of, is_unknown, load_stack_config, run_program

from components.edge import _haproxy
from components.edge.public_load_balancer import DNS_LABEL_SUFFIX_LENGTH, azure_dns_label_prefix

ENTRY = "ocm-fleet:index:PublicLoadBalancer"
SERVICE = "kubernetes:core/v1:Service"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
TM_PROFILE = "azure-native:trafficmanager:Profile"
HEALTH_CHECK = "aws:route53/healthCheck:HealthCheck"
RECORD = "aws:route53/record:Record"
DNS_TYPES = {TM_PROFILE, HEALTH_CHECK, RECORD}
AZURE_DNS_LABEL = "service.beta.kubernetes.io/azure-dns-label-name"

DNS = {
    "none": {"dns": "none"},
    "trafficManager": {
        "dns": "trafficManager",
        "relativeName": "bookstore-dev",
        # The local fleets' hub is on kind: the profile's group needs a region of its own.
        "location": "westeurope",
    },
    "route53": {"dns": "route53", "hostedZoneId": "Z0123ABC", "recordName": "shop.example.com"},
}
WITHOUT = {without: standby for standby, without in STANDBY_FLEETS.items()}
"""A fleet without a second home -> the same fleet with it."""
SHAPES = [*STANDBY_FLEETS, *WITHOUT]
MODES = [(f, d, p) for f in SHAPES for d in DNS for p in (False, True)]
IDS = [f"{f}-{d}-{'preview' if p else 'update'}" for f, d, p in MODES]


@cache
def _graph(fleet: str, dns: str, preview: bool) -> Graph:
    config = {**copy.deepcopy(FLEETS[fleet]()), "ocm-fleet:entry": DNS[dns]}
    return run_program(config, preview=preview)


def second_home(fleet: str) -> str | None:
    standby = load_stack_config(ROOT / f"Pulumi.{fleet}.yaml")["ocm-fleet:hub"].get("standby")
    return standby["name"] if standby else None


def main_home(fleet: str) -> str:
    return load_stack_config(ROOT / f"Pulumi.{fleet}.yaml")["ocm-fleet:hub"]["name"]


def homes(fleet: str) -> list[str]:
    """The main homes that must carry an entry, main first."""
    return [main_home(fleet), *filter(None, [second_home(fleet)])]


def entry_names(fleet: str) -> list[str]:
    """The entries' component names, main first: `public-lb`, then `<second home>-entry`."""
    return ["public-lb", *[f"{name}-entry" for name in filter(None, [second_home(fleet)])]]


def host(url: str) -> str:
    return urlparse(url).hostname or ""


def is_ipv4(address: str) -> bool:
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        return False
    return True


def home_specs(fleet: str) -> list[dict]:
    """The main homes' config entries, main first."""
    hub = load_stack_config(ROOT / f"Pulumi.{fleet}.yaml")["ocm-fleet:hub"]
    return [hub, *filter(None, [hub.get("standby")])]


def dns_label(graph: Graph, entry: str) -> str | None:
    annotations = graph.named(f"{entry}-service", SERVICE).inputs["metadata"].get("annotations")
    return (annotations or {}).get(AZURE_DNS_LABEL)


def expected_targets(graph: Graph, fleet: str) -> list[str]:
    """What the name must point at, per entry: an entry with a DNS label by the name Azure
    gives its public IP when the other entry has a DNS name too, else the entry's address."""
    urls = graph.stack_outputs.get("entryUrls") or [graph.stack_outputs["url"]]
    addresses = [host(u) for u in urls]
    names = [
        f"{label}.{spec['region']}.cloudapp.azure.com" if label else None
        for label, spec in (
            (dns_label(graph, e), s)
            for e, s in zip(entry_names(fleet), home_specs(fleet), strict=True)
        )
    ]
    if all(n or not is_ipv4(a) for n, a in zip(names, addresses, strict=True)):
        return [n or a for n, a in zip(names, addresses, strict=True)]
    return addresses


@pytest.mark.parametrize(("fleet", "dns", "preview"), MODES, ids=IDS)
def test_one_entry_per_main_home_with_the_same_config(fleet, dns, preview):
    graph = _graph(fleet, dns, preview)
    entries = sorted(r.name for r in graph.of_type(ENTRY))
    assert entries == sorted(entry_names(fleet)), f"{fleet}: entries {entries}"
    configs = []
    for name, home in zip(entry_names(fleet), homes(fleet), strict=True):
        provider = graph.kubernetes_provider(home)
        children = graph.descendants(graph.named(name, ENTRY))
        assert children, f"{name} declares nothing"
        # The DNS label's random suffix (random:index) is the only child with no cluster.
        for child in (c for c in children if not c.type.startswith("random:")):
            assert child.provider_urn == provider.urn, (
                f"{child.name} of entry {name} must be on {home} ({provider.name}), "
                f"not {child.provider_urn}"
            )
        service = graph.named(f"{name}-service", SERVICE)
        assert service.inputs["spec"]["type"] == "LoadBalancer", service
        assert not service.inputs["spec"].get("loadBalancerSourceRanges"), (
            f"{service.name} is a public entry: open to everyone"
        )
        # Stats and metrics: the exporter's headless Service on every entry.
        metrics = graph.named(f"{name}-metrics-service", SERVICE).inputs["spec"]
        assert metrics["clusterIP"] == "None", f"{name}'s exporter must stay in-cluster"
        configs.append(graph.named(f"{name}-config", CONFIG_MAP).inputs["data"]["haproxy.cfg"])
    if preview:
        return
    apps = sorted(graph.stack_outputs["clusters"])
    for name, text in zip(entry_names(fleet), configs, strict=True):
        for app in apps:
            assert f"server {app} " in text, f"{name} must health-check app cluster {app}"
        # The health URI fails with no backend up; the exporter serves the stats as metrics.
        assert (
            f"if {{ path {_haproxy.ENTRY_HEALTH_PATH} }} {{ nbsrv({_haproxy.BACKEND}) lt 1 }}"
            in (text)
        ), f"{name}'s health URI must fail once no app cluster is up"
        assert "use-service prometheus-exporter" in text, f"{name} must export its metrics"
    assert all(text == configs[0] for text in configs), (
        f"{fleet}: the entries' HAProxy configs differ"
    )


@pytest.mark.parametrize(("fleet", "dns", "preview"), MODES, ids=IDS)
def test_entry_urls_are_exported_with_a_second_home_only(fleet, dns, preview):
    graph = _graph(fleet, dns, preview)
    outputs = graph.stack_outputs
    assert "url" in outputs, f"{fleet}: `url` stays the main entry's address"
    if second_home(fleet) is None:
        assert "entryUrls" not in outputs, f"{fleet}: entryUrls only with hub.standby"
        return
    urls = outputs["entryUrls"]
    assert len(urls) == 2, f"{fleet}: entryUrls {urls}"
    if not preview:
        assert urls[0] == outputs["url"], "entryUrls starts with the main cluster's entry"
        assert urls[1] != urls[0] and host(urls[1]), f"{fleet}: entryUrls {urls}"


DNS_MODES = [m for m in MODES if m[1] != "none"]
DNS_IDS = [i for m, i in zip(MODES, IDS, strict=True) if m[1] != "none"]


@pytest.mark.parametrize(("fleet", "dns", "preview"), DNS_MODES, ids=DNS_IDS)
def test_the_name_health_checks_the_health_uri_of_every_entry(fleet, dns, preview):
    graph = _graph(fleet, dns, preview)
    services = [graph.named(f"{name}-service", SERVICE) for name in entry_names(fleet)]
    ports = [p["port"] for s in services for p in s.inputs["spec"]["ports"]]
    if dns == "trafficManager":
        (profile,) = graph.of_type(TM_PROFILE)
        monitor = profile.inputs["monitorConfig"]
        assert monitor["path"] == _haproxy.ENTRY_HEALTH_PATH, f"{profile.name} probes {monitor}"
        assert monitor["protocol"] == "HTTP" and {monitor["port"]} == set(ports), monitor
        endpoints = profile.inputs["endpoints"]
        assert [e["priority"] for e in endpoints] == list(range(1, len(services) + 1)), endpoints
        for service in services:
            assert graph.depends_on(profile, service), f"{profile.name} must target {service.name}"
        if not preview:
            targets = [e["target"] for e in endpoints]
            assert targets == expected_targets(graph, fleet), endpoints
        return
    checks = sorted(graph.of_type(HEALTH_CHECK), key=lambda r: r.name)
    records = sorted(graph.of_type(RECORD), key=lambda r: r.name)
    assert len(checks) == len(records) == len(services), (
        f"{fleet}: one health check and one record per entry, got "
        f"{[r.name for r in checks + records]}"
    )
    roles = [r.inputs["failoverRoutingPolicies"] for r in records]
    assert roles == [[{"type": "PRIMARY"}], [{"type": "SECONDARY"}]][: len(services)], roles
    for check, record, service in zip(checks, records, services, strict=True):
        assert check.inputs["resourcePath"] == _haproxy.ENTRY_HEALTH_PATH, check.inputs
        assert check.inputs["type"] == "HTTP", check.inputs
        assert [check.inputs["port"]] == [p["port"] for p in service.inputs["spec"]["ports"]]
        assert graph.depends_on(check, service), f"{check.name} must probe {service.name}"
        assert graph.depends_on(record, check), f"{record.name} must carry {check.name}'s id"
    if not preview:
        targets = expected_targets(graph, fleet)
        for check, record, target in zip(checks, records, targets, strict=True):
            probed = check.inputs.get("ipAddress") or check.inputs.get("fqdn")
            assert probed == target, f"{check.name} probes {probed}, the entry is at {target}"
            assert record.inputs["records"] == [target], record.inputs


@pytest.mark.parametrize(("fleet", "dns", "preview"), MODES, ids=IDS)
def test_the_edges_admit_exactly_the_egress_of_every_entry(fleet, dns, preview):
    graph = _graph(fleet, dns, preview)
    for app in sorted(graph.stack_outputs["clusters"]):
        edge = graph.named(f"{app}-app-edge", SERVICE)
        policy = graph.named(f"{app}-app-network-policy-router-from-main-cluster", NETWORK_POLICY)
        for home in homes(fleet):
            for egress in graph.egress_resources(home):
                for res in (edge, policy):
                    assert graph.depends_on(res, egress), (
                        f"{res.name}'s allowlist must come from {home}'s egress ({egress.name})"
                    )
        ranges = edge.inputs["spec"]["loadBalancerSourceRanges"]
        if preview:
            assert is_unknown(ranges) or isinstance(ranges, list), ranges
            continue
        expected = entry_egress(graph)
        assert ranges == expected, f"{edge.name} admits {ranges}, the entries leave from {expected}"
        ((rule,),) = [policy.inputs["spec"]["ingress"]]
        peers = [p["ipBlock"]["cidr"] for p in rule["from"]]
        assert peers == expected, f"{policy.name} admits {peers}, expected {expected}"


@pytest.mark.parametrize(("fleet", "dns", "preview"), MODES, ids=IDS)
def test_destroy_removes_the_name_then_each_entry_then_its_cluster(fleet, dns, preview):
    graph = _graph(fleet, dns, preview)
    dns_resources = [r for r in graph.resources if r.type in DNS_TYPES]
    assert bool(dns_resources) == (dns != "none"), f"{fleet}/{dns}: {dns_resources}"
    for name, home in zip(entry_names(fleet), homes(fleet), strict=True):
        service = graph.named(f"{name}-service", SERVICE)
        for res in dns_resources:
            assert graph.depends_on(res, service), (
                f"{res.name} must depend on {service.name}: destroy removes the name first"
            )
        cluster = graph.control_plane(home)
        for child in graph.descendants(graph.named(name, ENTRY)):
            if child.type.startswith("random:"):
                continue  # the DNS label's suffix lives in state only
            assert graph.depends_on(child, cluster), (
                f"{child.name} must depend on {cluster.name}: destroy removes it before {home}"
            )
        assert not graph.depends_on(cluster, service), f"{home} must not wait for {name}"


DOC = ROOT / "docs" / "public-entry.md"
PREVIEW_BLOCK = re.compile(
    r"<!-- second-entry-preview -->\n```text\n(.*?)```\n<!-- /second-entry-preview -->", re.S
)


def test_docs_show_what_the_mocked_preview_registers_for_the_second_entry():
    """docs/public-entry.md quotes the resources a preview of dev-standby with Route 53 adds
    for the second entry and the name; the quote is the program's, line for line."""
    found = PREVIEW_BLOCK.search(DOC.read_text())
    assert found, f"{DOC.name}: no second-entry-preview block"
    quoted = [tuple(line.split()) for line in found.group(1).splitlines() if line.strip()]
    graph = _graph("dev-standby", "route53", True)
    entry = graph.named("second-entry", ENTRY)
    name = graph.named("public-name", "ocm-fleet:index:PublicName")
    registered = []
    for component in (entry, name):
        registered.append((component.type, component.name))
        children = graph.descendants(component)
        # The component's explicit providers first, then its resources, as the doc lists them.
        providers = [r for r in children if r.type.startswith("pulumi:providers:")]
        others = [r for r in children if not r.type.startswith("pulumi:providers:")]
        registered += [(r.type, r.name) for r in providers]
        registered += sorted((r.type, r.name) for r in others)
    assert quoted == registered, f"{DOC.name} quotes {quoted}, the preview registers {registered}"


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
@pytest.mark.parametrize("fleet", list(STANDBY_FLEETS))
def test_a_retiring_cluster_leaves_both_entries(fleet, preview):
    config = copy.deepcopy(FLEETS[fleet]())
    clusters = config["ocm-fleet:clusters"]
    retiring, staying = clusters[0]["name"], [c["name"] for c in clusters[1:]]
    clusters[0]["retire"] = True
    graph = run_program(config, preview=preview)
    retired = {r.urn for r in graph.resources if r.name.startswith(f"{retiring}-")}
    for name in entry_names(fleet):
        config_map = graph.named(f"{name}-config", CONFIG_MAP)
        used = set(config_map.property_dependencies.get("data", []))
        assert not used & retired, f"{config_map.name} is still computed from retiring {retiring}"
        for app in staying:
            assert any(graph.by_urn[u].name.startswith(f"{app}-") for u in used), (
                f"{config_map.name} must be computed from {app}'s edge"
            )
        if not preview:
            text = config_map.inputs["data"]["haproxy.cfg"]
            assert f"server {retiring} " not in text, f"{name} still sends users to {retiring}"
            for app in staying:
                assert f"server {app} " in text, f"{name} lost {app}"


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
@pytest.mark.parametrize("fleet", sorted(STANDBY_FLEETS))
def test_an_entry_on_eks_asks_for_a_network_load_balancer(fleet, preview):
    """EKS makes a Classic Load Balancer for a Service unless it asks for an NLB; an entry on
    any other cloud carries no AWS annotation."""
    graph = _graph(fleet, "none", preview)
    hub = FLEETS[fleet]()["ocm-fleet:hub"]
    clouds = {hub["name"]: hub["cloud"], hub["standby"]["name"]: hub["standby"]["cloud"]}
    assert "aws" in clouds.values() or fleet.startswith("local"), clouds
    for name, home in zip(entry_names(fleet), homes(fleet), strict=True):
        annotations = (
            graph.named(f"{name}-service", SERVICE).inputs["metadata"].get("annotations", {})
        )
        wanted = (
            {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}
            if clouds[home] == "aws"
            else {}
        )
        assert annotations == wanted, f"{name} on {home} ({clouds[home]}): {annotations}"


def clouds_of(fleet: str) -> dict[str, str]:
    """Entry component name -> the cloud of the home it runs on."""
    return {e: s["cloud"] for e, s in zip(entry_names(fleet), home_specs(fleet), strict=True)}


@pytest.mark.parametrize(("fleet", "dns", "preview"), DNS_MODES, ids=DNS_IDS)
def test_every_record_of_the_name_has_one_type_and_every_endpoint_one_kind_of_target(
    fleet, dns, preview
):
    """Route 53 refuses a CNAME beside a record of another type at one name, and Traffic
    Manager external endpoints whose targets are IP addresses beside domain names: the name
    points at every entry in one form."""
    graph = _graph(fleet, dns, preview)
    two = len(entry_names(fleet)) == 2
    # With two entries the clouds say the form before deploy: names when a home is on a
    # cloud (an EKS entry has nothing else), IP addresses on kind.
    on_cloud = any(c in ("aws", "azure") for c in clouds_of(fleet).values())
    if dns == "route53":
        records = graph.of_type(RECORD)
        types = [r.inputs["type"] for r in records]
        if two:
            wanted = "CNAME" if on_cloud else "A"
            assert types == [wanted, wanted], f"{fleet}: the name's records are of types {types}"
        if preview:
            return
        assert len(set(types)) == 1, f"{fleet}: the name's records are of types {types}"
        for record in records:
            (value,) = record.inputs["records"]
            assert (record.inputs["type"] == "A") == is_ipv4(value), (
                f"{record.name} is a {record.inputs['type']} record for {value}"
            )
        return
    if preview:
        return
    (profile,) = graph.of_type(TM_PROFILE)
    targets = [e["target"] for e in profile.inputs["endpoints"]]
    kinds = {is_ipv4(t) for t in targets}
    assert len(kinds) == 1, f"{profile.name} mixes IP and domain-name targets: {targets}"
    if two:
        assert kinds == {not on_cloud}, f"{fleet}: {profile.name} targets {targets}"


AZURE_LABEL = re.compile(r"^[a-z][a-z0-9-]{1,61}[a-z0-9]$")


@pytest.mark.parametrize(("fleet", "dns", "preview"), MODES, ids=IDS)
def test_an_azure_entry_carries_a_dns_label_only_with_a_second_home_and_a_name(fleet, dns, preview):
    graph = _graph(fleet, dns, preview)
    for entry, cloud in clouds_of(fleet).items():
        label = dns_label(graph, entry)
        wanted = cloud == "azure" and second_home(fleet) is not None and dns != "none"
        assert (label is not None) == wanted, (
            f"{entry} on {cloud} ({fleet}, dns {dns}): DNS label {label!r}, wanted one: {wanted}"
        )
        if label is None or preview:
            continue
        assert AZURE_LABEL.match(label), f"{entry}'s DNS label {label!r} is not a valid label"
        prefix = azure_dns_label_prefix("ocm-fleet", "dev", main_home(fleet))
        assert label.startswith(f"{prefix}-"), f"{entry}'s DNS label {label!r}"


@pytest.mark.parametrize(
    ("project", "stack", "home"),
    [
        ("ocm-fleet", "dev", "main"),
        ("9lives", "Prod_EU", "main"),
        ("p" * 40, "s" * 40, "h" * 40),
        ("ocm-fleet", "x" * 49, "m"),
    ],
)
def test_the_dns_label_prefix_leaves_a_valid_label_with_its_suffix(project, stack, home):
    prefix = azure_dns_label_prefix(project, stack, home)
    label = f"{prefix}-{'z' * DNS_LABEL_SUFFIX_LENGTH}"
    assert AZURE_LABEL.match(label), f"{project}/{stack}/{home}: label {label!r}"
    assert home[0] in prefix or len(prefix) == 63 - 1 - DNS_LABEL_SUFFIX_LENGTH, prefix


def existing_home(**extra) -> dict:
    return {
        "cloud": "existing",
        "kubeconfig": existing_kubeconfig(),
        "context": "c",
        "egressIps": ["192.0.2.10/32"],
        **extra,
    }


@pytest.mark.parametrize("dns", ["trafficManager", "route53"])
def test_an_existing_home_whose_address_mixes_with_the_other_entry_fails_naming_both(dns):
    """An existing main cluster's entry at an IP address (its mock load balancer's) and an
    EKS second home's at a DNS name: no one form reaches both, and the deploy says so."""
    code = f"""
import copy
from conftest import dev_standby_config
from test_second_entry import DNS, existing_home
from harness import run_program
config = copy.deepcopy(dev_standby_config())
standby = config["ocm-fleet:hub"]["standby"]
config["ocm-fleet:hub"] = {{
    "name": "main", **existing_home(apiServerUrl="https://lab.example.test:6443"),
    "standby": standby,
}}
config["ocm-fleet:entry"] = DNS[{dns!r}]
graph = run_program(config)
print("url", graph.stack_outputs["entryUrls"])
"""
    failure = failure_of(code)
    assert failure is not None, f"dns {dns}: an IP entry and a DNS-name entry were accepted"
    assert "public-lb is at " in failure and "(an IP address)" in failure, failure
    assert "second-entry is at " in failure and "(a DNS name)" in failure, failure
    assert "entry.dns: none" in failure and "entryUrls" in failure, failure


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
@pytest.mark.parametrize(("standby", "form"), [("second", "name"), ("home0", "ip")])
def test_an_azure_main_cluster_beside_an_existing_home_takes_the_form_of_its_address(
    standby, form, preview
):
    """The existing home's entry decides at deploy: a DNS name (`second-entry`'s mock load
    balancer) and the AKS entry is pointed at by its DNS label's name; an IP address
    (`home0-entry`'s) and by its IP address."""
    config = copy.deepcopy(FLEETS["dev-standby"]())
    config["ocm-fleet:hub"]["standby"] = {"name": standby, **existing_home()}
    config["ocm-fleet:entry"] = DNS["route53"]
    graph = run_program(config, preview=preview)
    records = sorted(graph.of_type(RECORD), key=lambda r: r.name)
    assert len(records) == 2, records
    if preview:
        return
    types = [r.inputs["type"] for r in records]
    assert types == [{"name": "CNAME", "ip": "A"}[form]] * 2, types
    label = dns_label(graph, "public-lb")
    urls = [host(u) for u in graph.stack_outputs["entryUrls"]]
    wanted = [f"{label}.westeurope.cloudapp.azure.com", urls[1]] if form == "name" else urls
    assert [r.inputs["records"] for r in records] == [[w] for w in wanted], records
