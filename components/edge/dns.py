"""One health-checked DNS name in front of the fleet's public entries."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_azure_native as azure_native

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


def _is_ipv4(address: str) -> bool:
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, kw_only=True)
class PublicNameArgs:
    spec: EntrySpec
    """Which service and its settings (validated in components/config.py)."""
    entries: Sequence[pulumi.Output[str]]
    """The entries' addresses (IP or DNS name, or their http:// URL), first preferred."""
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
      (`PRIMARY` for the first entry, `SECONDARY` for the second) in the user's hosted zone; an A
      record for an IP address, a CNAME for a load balancer's DNS name.

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
        hosts = [entry.apply(_host) for entry in args.entries]
        self._entry_resources = list(args.entry_resources)
        if spec.dns == "trafficManager":
            self.name = self._traffic_manager(name, spec, hosts)
        else:
            self.name = self._route53(name, spec, hosts, args.stack)
        self.register_outputs({"name": self.name})

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
        self, name: str, spec: EntrySpec, hosts: list[pulumi.Output[str]], stack: str
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
                ip_address=host.apply(lambda h: h if _is_ipv4(h) else None),
                fqdn=host.apply(lambda h: None if _is_ipv4(h) else h),
                request_interval=spec.probe_interval_s,
                failure_threshold=spec.failure_threshold,
                tags={"Name": f"{stack}-entry-{i + 1}"},
                opts=child,
            )
            aws.route53.Record(
                f"{name}-record-{i + 1}",
                zone_id=spec.hosted_zone_id,
                name=record_name,
                type=host.apply(lambda h: "A" if _is_ipv4(h) else "CNAME"),
                ttl=spec.ttl_s,
                records=[host],
                set_identifier=f"entry-{i + 1}",
                failover_routing_policies=[{"type": role}],
                health_check_id=check.id,
                opts=child,
            )
        return pulumi.Output.from_input(record_name)
