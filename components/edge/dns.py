"""One health-checked DNS name in front of the fleet's public entries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_azure_native as azure_native

from components._addresses import is_ipv4
from components.config import EntrySpec
from components.edge import _haproxy

PUBLIC_NAME_TYPE = "ocm-fleet:index:PublicName"

ENTRY_PORT = 80
"""The port every entry's LoadBalancer Service publishes (maps to HAProxy's listen port)."""

ROUTE53_REGION = "us-east-1"
"""Route 53 is a global service whose API, health checks included, is served from us-east-1."""

FAILOVER_ROLES = ("PRIMARY", "SECONDARY")
"""Route 53 failover records come in these two roles only (RecordFailoverRoutingPolicyArgs)."""


def _host(url_or_address: str) -> str:
    return url_or_address.removeprefix("http://").split("/", 1)[0].split(":", 1)[0]


ENTRY_ADDRESS_FORMS = {
    "aws": frozenset({"name"}),
    "azure": frozenset({"ip", "name"}),
    "kind": frozenset({"ip"}),
}
"""How a name can point at a public entry, by its cluster's cloud: EKS gives the entry's
Service a load balancer's DNS name, kind (cloud-provider-kind) an IP address, AKS an IP address
that also has a DNS name once the Service carries a DNS label
(components/edge/public_load_balancer.py). Every pair the config admits has a form in common:
kind is never mixed with another cloud (components/config.py, parse_fleet_config), and EKS and AKS
entries share `name`. `existing` is absent: its address is known only once its Service has
one, so that pair is checked at deploy."""


@dataclass(frozen=True, kw_only=True)
class EntryTarget:
    """One public entry as the name sees it."""

    name: str
    """The entry's component name (`public-lb`, `<second home>-entry`), for messages."""
    url: pulumi.Output[str]
    """Its address (IP or DNS name, or its http:// URL), from its Service's status."""
    cloud: str
    """The cloud of the cluster it runs on: tells, before deploy, what the address will be
    (ENTRY_ADDRESS_FORMS); `existing` tells nothing."""
    dns_name: pulumi.Output[str] | None = None
    """The DNS name its IP address also answers at (an AKS entry's DNS label), if any."""


def _choose_form(forms: Sequence[frozenset[str]]) -> str | None:
    """`name` or `ip`: the one form every entry can be pointed at by, names first; None when
    there is none.

    A Route 53 name cannot hold records of two types when one is a CNAME ("RRSet of type
    CNAME ... is not permitted as it conflicts with other records with the same DNS name",
    InvalidChangeBatch), so its failover records are all A or all CNAME; and a Traffic
    Manager profile "can't mix external endpoints that have targets of different types
    (domain name, IP address)" (learn.microsoft.com, azure/traffic-manager/
    traffic-manager-endpoint-types). Names come first because an AWS entry has nothing
    else: the NLB publishes a DNS name, not addresses to keep. Route 53 alias A records to
    the NLB (its zone from `aws.lb.get_hosted_zone_id(load_balancer_type="network",
    region=...)`) would reach the zone apex, but exist in Route 53 only, and not for an
    existing cluster's load balancer outside AWS: one rule for both services is simpler.
    """
    if all("name" in f for f in forms):
        return "name"
    if all("ip" in f for f in forms):
        return "ip"
    return None


def _known_forms(entry: EntryTarget) -> frozenset[str] | None:
    """Before deploy, from the entry's cloud: how it can be pointed at; None for existing."""
    forms = ENTRY_ADDRESS_FORMS.get(entry.cloud)
    if forms is None or entry.dns_name is not None:
        return forms
    # An AKS entry has a DNS name only once its Service carries a DNS label.
    return forms - {"name"} if "ip" in forms else forms


def _address_forms(host: str, dns_name: str | None) -> frozenset[str]:
    if not is_ipv4(host):
        return frozenset({"name"})
    return frozenset({"ip", "name"}) if dns_name else frozenset({"ip"})


def _resolve(names: Sequence[str], values: Sequence[str | None]) -> list[str]:
    """At deploy: the targets, all of one form, from each entry's host and DNS name."""
    hosts, dns_names = values[: len(names)], values[len(names) :]
    forms = [_address_forms(str(h), d) for h, d in zip(hosts, dns_names, strict=True)]
    form = _choose_form(forms)
    if form is None:
        described = ", ".join(
            f"{name} is at {host} ({'an IP address' if 'ip' in f else 'a DNS name'})"
            for name, host, f in zip(names, hosts, forms, strict=True)
        )
        raise pulumi.RunError(
            f"entry.dns cannot front these entries: {described}. One name cannot point at "
            "an IP address and a DNS name at once (Route 53 refuses an A and a CNAME record "
            "at one name; Traffic Manager refuses IP and domain-name endpoints in one "
            "profile). Give the entry at an IP address a DNS name (a load balancer that "
            "publishes one), or set entry.dns: none and point names of your own at the "
            "stack output entryUrls."
        )
    if form == "ip":
        return [str(h) for h in hosts]
    return [
        str(d) if d and is_ipv4(str(h)) else str(h) for h, d in zip(hosts, dns_names, strict=True)
    ]


@dataclass(frozen=True, kw_only=True)
class PublicNameArgs:
    spec: EntrySpec
    """Which service and its settings (validated in components/config.py)."""
    entries: Sequence[EntryTarget]
    """The entries, first preferred."""
    stack: str
    """Names the Route 53 health checks, so two stacks in one account tell theirs apart."""
    entry_resources: Sequence[pulumi.Resource] = ()
    """The entries themselves (their components): every DNS resource depends on all of them,
    so destroy removes the whole name before any entry, not only each record before its own."""


class PublicName(pulumi.ComponentResource):
    """Creates, for `entry.dns: trafficManager`:

    - an explicit Azure provider and a resource group in `entry.location`;
    - a Traffic Manager profile with priority routing that probes every entry's health URI
      (`GET /entry-healthz` on port 80, expecting 200), one external endpoint per entry, the
      first entry at priority 1.

    For `entry.dns: route53`:

    - an explicit AWS provider in us-east-1;
    - per entry, a Route 53 HTTP health check of its health URI on port 80 and a failover record
      (`PRIMARY` for the first entry, `SECONDARY` for the second) in the user's hosted zone; A
      records for IP addresses, CNAMEs for DNS names, never both (see `_choose_form`).

    With two entries an AKS entry is pointed at by its DNS label's name unless the other entry
    has an IP address only; a pair with no form in common (possible only with an existing
    cluster, whose address is known at deploy) fails the deploy with both entries named.

    With one entry the single record or endpoint still carries its health check, so a second
    entry slots in as `SECONDARY` or priority 2 without replacing the first.
    """

    name: pulumi.Output[str]
    """The DNS name users reach the bookstore at."""

    def __init__(self, name: str, args: PublicNameArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(PUBLIC_NAME_TYPE, name, None, opts)
        spec = args.spec
        if spec.dns not in ("trafficManager", "route53"):
            raise ValueError(f"PublicName needs dns trafficManager or route53, not {spec.dns!r}")
        if not args.entries or len(args.entries) > len(FAILOVER_ROLES):
            raise ValueError(
                f"PublicName takes one or two entries, got {len(args.entries)} "
                "(Route 53 failover has a PRIMARY and a SECONDARY only)"
            )
        hosts, form = self._targets(args.entries)
        self._entry_resources = list(args.entry_resources)
        if spec.dns == "trafficManager":
            self.name = self._traffic_manager(name, spec, hosts)
        else:
            self.name = self._route53(name, spec, hosts, args.stack, form)
        self.register_outputs({"name": self.name})

    @staticmethod
    def _targets(entries: Sequence[EntryTarget]) -> tuple[list[pulumi.Output[str]], str | None]:
        """What the name points at, per entry, and their one form when the clouds already
        tell it (two entries, no existing cluster); otherwise it is found at deploy."""
        hosts = [entry.url.apply(_host) for entry in entries]
        forms = [_known_forms(entry) for entry in entries]
        if len(entries) == 2 and all(f is not None for f in forms):
            form = _choose_form(forms)
            if form is None:
                # Not reached: components/config.py (parse_fleet_config) mixes kind with none.
                raise ValueError(f"no one form reaches both entries: {forms}")
            return [
                entry.dns_name if form == "name" and entry.dns_name is not None else host
                for entry, host in zip(entries, hosts, strict=True)
            ], form
        names = [entry.name for entry in entries]
        resolved = pulumi.Output.all(*hosts, *[entry.dns_name for entry in entries]).apply(
            lambda values: _resolve(names, values)
        )
        return [resolved.apply(lambda targets, i=i: targets[i]) for i in range(len(entries))], None

    def _traffic_manager(
        self, name: str, spec: EntrySpec, hosts: list[pulumi.Output[str]]
    ) -> pulumi.Output[str]:
        provider = azure_native.Provider(
            f"{name}-azure", location=spec.location, opts=pulumi.ResourceOptions(parent=self)
        )
        child = pulumi.ResourceOptions(
            parent=self, provider=provider, depends_on=self._entry_resources
        )
        group = azure_native.resources.ResourceGroup(
            f"{name}-group", location=spec.location, opts=child
        )
        profile = azure_native.trafficmanager.Profile(
            f"{name}-profile",
            resource_group_name=group.name,
            # A profile is not in a region: it answers DNS worldwide.
            location="global",
            profile_status="Enabled",
            traffic_routing_method="Priority",
            dns_config={"relative_name": spec.relative_name, "ttl": spec.ttl_s},
            monitor_config={
                "protocol": "HTTP",
                "port": ENTRY_PORT,
                "path": _haproxy.ENTRY_HEALTH_PATH,
                "interval_in_seconds": spec.probe_interval_s,
                # "tolerates before declaring an endpoint ... Degraded after the next failed
                # health check" (azure-mgmt-trafficmanager, models/_models.py, MonitorConfig):
                # one fewer than the failures in a row that take the entry out.
                "tolerated_number_of_failures": spec.failure_threshold - 1,
                # An entry answers its health URI from HAProxy's memory in milliseconds; 5 s
                # stays under either probe interval.
                "timeout_in_seconds": 5,
                "expected_status_code_ranges": [{"min": 200, "max": 200}],
            },
            endpoints=[
                {
                    "name": f"entry-{i + 1}",
                    "type": "Microsoft.Network/trafficManagerProfiles/externalEndpoints",
                    "target": host,
                    "priority": i + 1,
                    "endpoint_status": "Enabled",
                }
                for i, host in enumerate(hosts)
            ],
            opts=child,
        )
        return profile.dns_config.apply(lambda dns: dns.fqdn if dns else "")

    def _route53(
        self,
        name: str,
        spec: EntrySpec,
        hosts: list[pulumi.Output[str]],
        stack: str,
        form: str | None,
    ) -> pulumi.Output[str]:
        provider = aws.Provider(
            f"{name}-aws", region=ROUTE53_REGION, opts=pulumi.ResourceOptions(parent=self)
        )
        child = pulumi.ResourceOptions(
            parent=self, provider=provider, depends_on=self._entry_resources
        )
        record_name = spec.record_name.removesuffix(".")
        for i, host in enumerate(hosts):
            role = FAILOVER_ROLES[i]
            check = aws.route53.HealthCheck(
                f"{name}-check-{i + 1}",
                type="HTTP",
                port=ENTRY_PORT,
                resource_path=_haproxy.ENTRY_HEALTH_PATH,
                ip_address=host.apply(lambda h: h if is_ipv4(h) else None)
                if form is None
                else (host if form == "ip" else None),
                fqdn=host.apply(lambda h: None if is_ipv4(h) else h)
                if form is None
                else (host if form == "name" else None),
                request_interval=spec.probe_interval_s,
                failure_threshold=spec.failure_threshold,
                tags={"Name": f"{stack}-entry-{i + 1}"},
                opts=child,
            )
            aws.route53.Record(
                f"{name}-record-{i + 1}",
                zone_id=spec.hosted_zone_id,
                name=record_name,
                # Known before deploy when the clouds tell: a preview shows the type.
                type=host.apply(lambda h: "A" if is_ipv4(h) else "CNAME")
                if form is None
                else {"ip": "A", "name": "CNAME"}[form],
                ttl=spec.ttl_s,
                records=[host],
                set_identifier=f"entry-{i + 1}",
                failover_routing_policies=[{"type": role}],
                health_check_id=check.id,
                opts=child,
            )
        return pulumi.Output.from_input(record_name)
