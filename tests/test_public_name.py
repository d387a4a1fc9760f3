"""The health-checked DNS name in front of the public entry (`entry.dns`), on the mocked graph."""

from __future__ import annotations

import pytest
from harness import run_program
from test_program import fleet_of

from components.config import FleetConfigError, parse_fleet_config
from components.edge import _haproxy

TM_PROFILE = "azure-native:trafficmanager:Profile"
HEALTH_CHECK = "aws:route53/healthCheck:HealthCheck"
RECORD = "aws:route53/record:Record"
DNS_TYPES = {TM_PROFILE, HEALTH_CHECK, RECORD}
ENTRY_SERVICE = "public-lb-service"

TRAFFIC_MANAGER = {
    "dns": "trafficManager",
    "relativeName": "bookstore-dev",
    "location": "westeurope",
}
ROUTE53 = {"dns": "route53", "hostedZoneId": "Z0123ABC", "recordName": "shop.example.com"}


def entry_port(graph) -> int:
    (port,) = graph.named(ENTRY_SERVICE).inputs["spec"]["ports"]
    return port["port"]


def fleet_with(entry: dict | None) -> dict:
    config = fleet_of(1, 1)
    if entry is not None:
        config["ocm-fleet:entry"] = entry
    return config


def raw(entry: dict) -> dict:
    # Config parsing alone: an azure-only fleet needs no eksAdminPrincipals.
    config = {k.removeprefix("ocm-fleet:"): v for k, v in fleet_of(0, 1).items()}
    return {**config, "entry": entry}


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
@pytest.mark.parametrize("entry", [None, {"dns": "none"}], ids=["unset", "none"])
def test_without_dns_config_the_graph_and_outputs_are_unchanged(entry, preview):
    base = run_program(fleet_of(1, 1), preview=preview)
    graph = run_program(fleet_with(entry), preview=preview)
    # Resources register concurrently: compare the set of resources and their inputs.
    ours, theirs = graph.by_urn, base.by_urn
    assert sorted(ours) == sorted(theirs), (
        "entry.dns none must declare exactly the graph of a fleet without the key"
    )
    changed = [urn for urn in ours if ours[urn].wire_inputs != theirs[urn].wire_inputs]
    assert not changed, f"inputs differ from a fleet without entry: {changed[:5]}"
    assert not [r for r in graph.resources if r.type in DNS_TYPES]
    assert set(graph.stack_outputs) == set(base.stack_outputs)
    assert "url" in graph.stack_outputs, "without DNS the entry's address is the `url` output"


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
def test_traffic_manager_probes_the_entry_health_uri(preview):
    graph = run_program(fleet_with(TRAFFIC_MANAGER), preview=preview)
    (profile,) = graph.of_type(TM_PROFILE)
    monitor = profile.inputs["monitorConfig"]
    assert monitor["path"] == _haproxy.ENTRY_HEALTH_PATH, f"{profile.name} probes {monitor}"
    assert monitor["port"] == entry_port(graph) and monitor["protocol"] == "HTTP", monitor
    assert monitor["intervalInSeconds"] == 30 and monitor["toleratedNumberOfFailures"] == 2
    assert profile.inputs["trafficRoutingMethod"] == "Priority"
    assert profile.inputs["dnsConfig"]["relativeName"] == "bookstore-dev"
    endpoints = profile.inputs["endpoints"]
    assert [e["priority"] for e in endpoints] == [1], f"one entry today: {endpoints}"
    assert endpoints[0]["type"].endswith("externalEndpoints"), endpoints
    if not preview:
        assert endpoints[0]["target"] == graph.stack_outputs["url"].removeprefix("http://")
        assert graph.stack_outputs["publicName"] == "bookstore-dev.trafficmanager.net"
    assert "publicName" in graph.stack_outputs


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
def test_route53_health_checks_the_entry_health_uri_and_records_fail_over(preview):
    graph = run_program(fleet_with({**ROUTE53, "probeIntervalSeconds": 10}), preview=preview)
    (check,) = graph.of_type(HEALTH_CHECK)
    assert check.inputs["resourcePath"] == _haproxy.ENTRY_HEALTH_PATH, check.inputs
    assert check.inputs["port"] == entry_port(graph), f"{check.name} must probe the entry's port"
    assert check.inputs["type"] == "HTTP", check.inputs
    assert check.inputs["requestInterval"] == 10 and check.inputs["failureThreshold"] == 3
    (record,) = graph.of_type(RECORD)
    assert record.inputs["zoneId"] == "Z0123ABC" and record.inputs["name"] == "shop.example.com"
    assert record.inputs["failoverRoutingPolicies"] == [{"type": "PRIMARY"}], record.inputs
    assert graph.depends_on(record, check), f"{record.name} must carry {check.name}'s id"
    assert graph.stack_outputs.get("publicName") == "shop.example.com"


@pytest.mark.parametrize("entry", [TRAFFIC_MANAGER, ROUTE53], ids=["trafficManager", "route53"])
def test_dns_is_removed_before_the_entry_it_points_at(entry):
    graph = run_program(fleet_with(entry))
    service = graph.named(ENTRY_SERVICE)
    dns = [r for r in graph.resources if r.type in DNS_TYPES]
    assert dns, f"no DNS resource for {entry}"
    for res in dns:
        assert graph.depends_on(res, service), (
            f"{res.name} must depend on {service.name}: destroy removes DNS first"
        )


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"dns": "cloudflare"}, r"entry\.dns: 'cloudflare' is not one of none"),
        ({"dns": "trafficManager", "location": "westeurope"}, r"entry\.relativeName: missing"),
        ({**ROUTE53, "hostedZoneId": "abc"}, r"entry\.hostedZoneId: 'abc' must be"),
        ({**ROUTE53, "recordName": "shop"}, r"entry\.recordName: 'shop' must be"),
        ({**ROUTE53, "probeIntervalSeconds": 15}, r"entry\.probeIntervalSeconds: 15 must be 10"),
        ({**ROUTE53, "failureThreshold": 0}, r"entry\.failureThreshold: 0 must be"),
        ({**ROUTE53, "ttlSeconds": -1}, r"entry\.ttlSeconds: -1 must be"),
        ({"dns": "none", "recordName": "a.b"}, r"entry\.recordName: only for dns: route53"),
        ({"dns": "none", "ttl": 5}, r"entry\.ttl: unknown key \(known keys: dns"),
        ("route53", r"entry: 'route53' must be a mapping"),
    ],
)
def test_bad_entry_config_names_key_and_value(entry, match):
    with pytest.raises(FleetConfigError, match=match):
        parse_fleet_config(raw(entry))


def test_traffic_manager_location_defaults_to_an_azure_hub_region():
    spec = parse_fleet_config(raw({"dns": "trafficManager", "relativeName": "x1"})).entry
    assert spec.location == "northeurope", spec
    config = raw({"dns": "trafficManager", "relativeName": "x1"})
    config["hub"] = {"name": "main", "cloud": "aws", "region": "eu-west-1"}
    with pytest.raises(FleetConfigError, match=r"entry\.location: missing"):
        parse_fleet_config(config)


@pytest.mark.parametrize("entry", [TRAFFIC_MANAGER, ROUTE53], ids=["trafficManager", "route53"])
def test_dns_resources_use_the_names_own_explicit_provider(entry):
    graph = run_program(fleet_with(entry))
    providers = {r.urn: r for r in graph.resources if r.type.startswith("pulumi:providers:")}
    for res in (r for r in graph.resources if r.type in DNS_TYPES):
        provider_urn = res.provider.rsplit("::", 1)[0] if "::" in res.provider else res.provider
        provider = providers.get(provider_urn)
        assert provider is not None and provider.name.startswith("public-name-"), (
            f"{res.name} must use the public name's explicit provider, not {res.provider!r}"
        )
    if entry is ROUTE53:
        (provider,) = [p for p in providers.values() if p.name == "public-name-aws"]
        assert provider.inputs["region"] == "us-east-1", provider.inputs


def test_route53_record_type_follows_the_entry_address():
    graph = run_program(fleet_with(ROUTE53))
    (record,) = graph.of_type(RECORD)
    host = graph.stack_outputs["url"].removeprefix("http://")
    (check,) = graph.of_type(HEALTH_CHECK)
    if host.replace(".", "").isdigit():
        assert record.inputs["type"] == "A" and check.inputs["ipAddress"] == host, record.inputs
    else:
        assert record.inputs["type"] == "CNAME" and check.inputs["fqdn"] == host, record.inputs
    assert record.inputs["records"] == [host], record.inputs
