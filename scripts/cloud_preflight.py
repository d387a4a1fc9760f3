"""Checks a stack against the clouds before anything is deployed: what fails a first `up` whatever
the program does.

    python3 scripts/cloud_preflight.py Pulumi.dev.yaml

Where the AWS CLI is signed in (`aws sts get-caller-identity` works), per region of the stack's
EKS clusters: the instance type exists there and is offered in the zones the VPC spans, the
on-demand vCPU quota of its family covers the nodes at their upgrade peak, the Elastic IP quota
covers the NAT gateways, and EKS offers the Kubernetes version. Where the Azure CLI is signed in
(`az account show` works), per region of the AKS clusters: the VM size is offered to the
subscription, in zones 1 to 3 where the region has zones, the family's and the region's vCPU
quotas have room for the nodes at their upgrade peak, AKS offers the Kubernetes version, and no
Azure Policy assignment denies clusters with local accounts (the program reads the admin
credentials). Node counts come from scripts/fleet_nodes.py, as scripts/estimate.py counts them.

Each problem is one line with the command that shows it. A check that cannot run (no CLI, not
signed in, an answer it cannot read) is said so and does not fail the run. It only reads: no
cloud resource is created or changed. Exit status: 0 no problem found, 1 problems found, 2 the
stack file cannot be read. Standard library and PyYAML only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fleet_nodes
from fleet_nodes import Nodes

ROOT = Path(__file__).resolve().parent.parent
_ZONES = fleet_nodes.source_constants(
    ROOT / "components" / "clusters" / "_azure_zones.py", "ZONED_REGIONS", "ZONES"
)
ZONED_REGIONS: frozenset[str] = _ZONES["ZONED_REGIONS"]
"""Azure regions where the program spreads pools over zones (clusters/_azure_zones.py)."""
AZURE_ZONES: tuple[str, ...] = _ZONES["ZONES"]
CLI_TIMEOUT_SECONDS = 60

# EC2 on-demand vCPU quotas by instance family (Service Quotas, service code ec2).
AWS_VCPU_QUOTAS = (
    (("inf",), "L-1945791B", "Running On-Demand Inf instances"),
    (("trn",), "L-2C3B7624", "Running On-Demand Trn instances"),
    (("vt", "g"), "L-DB2E81BA", "Running On-Demand G and VT instances"),
    (("p",), "L-417A185B", "Running On-Demand P instances"),
    (("f",), "L-74FC7D96", "Running On-Demand F instances"),
    (("x",), "L-7295265B", "Running On-Demand X instances"),
    (("u-",), "L-43DA4232", "Running On-Demand High Memory instances"),
    (
        ("a", "c", "d", "h", "i", "m", "r", "t", "z"),
        "L-1216C47A",
        "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances",
    ),
)
AWS_ELASTIC_IP_QUOTA = ("L-0263D0A3", "EC2-VPC Elastic IPs")
# Built-in policy "Azure Kubernetes Service Clusters should have local authentication methods
# disabled" (Azure/azure-policy built-in-policies/policyDefinitions/Kubernetes/
# AKS_DisableLocalAccounts_Deny.json); its effect parameter defaults to Audit.
LOCAL_ACCOUNTS_POLICY = "993c2fcd-2b29-49d2-9eb0-df2c3a730c32"
LOCAL_ACCOUNTS_DEFAULT_EFFECT = "Audit"


class StackFileError(Exception):
    """The stack file cannot be read; the message is the one line the user sees."""


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)

    def problem(self, what: str, command: str) -> None:
        self.problems.append(f"{what}. See: {command}")

    def skip(self, what: str, command: str) -> None:
        self.skipped.append(f"{what}: not checked ({command} did not answer as expected)")

    def ok(self, what: str) -> None:
        self.passed.append(what)

    def render(self) -> str:
        lines = [f"PROBLEM  {p}" for p in self.problems]
        lines += [f"SKIPPED  {s}" for s in self.skipped]
        lines += [f"ok       {p}" for p in self.passed]
        verdict = (
            f"{len(self.problems)} problem(s) found"
            if self.problems
            else "no problem found in the checks that ran"
        )
        return "\n".join([*lines, f"cloud preflight: {verdict}"])


Runner = Callable[[Sequence[str]], "tuple[int, str]"]


def run_cli(args: Sequence[str]) -> tuple[int, str]:
    """Run a CLI; its exit status and standard output (127 if it is not installed)."""
    if shutil.which(args[0]) is None:
        return 127, ""
    try:
        done = subprocess.run(
            list(args), capture_output=True, text=True, timeout=CLI_TIMEOUT_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return 126, ""
    return done.returncode, done.stdout


def _json(run: Runner, args: Sequence[str]) -> Any:
    """The JSON a CLI prints, or None when it fails or prints something else."""
    code, out = run(args)
    if code != 0:
        return None
    try:
        return json.loads(out)
    except ValueError:
        return None


def read_stack(path: str) -> dict[str, Any]:
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise StackFileError(f"{path}: cannot read it ({err.strerror})") from err
    except yaml.YAMLError as err:
        raise StackFileError(f"{path}: not valid YAML ({err})") from err
    config = (doc or {}).get("config") if isinstance(doc, dict) else None
    if not isinstance(config, dict):
        raise StackFileError(f"{path}: no 'config:' mapping")
    return config


def _by_region(nodes: list[Nodes], cloud: str) -> dict[str, list[Nodes]]:
    regions: dict[str, list[Nodes]] = {}
    for n in nodes:
        if n.cloud == cloud:
            regions.setdefault(n.region, []).append(n)
    return dict(sorted(regions.items()))


# --- AWS ------------------------------------------------------------------------------------------


def aws_quota_for(instance_type: str) -> tuple[str, str]:
    family = instance_type.split(".", 1)[0].lower()
    for prefixes, code, label in AWS_VCPU_QUOTAS:
        if family.startswith(prefixes):
            return code, label
    return AWS_VCPU_QUOTAS[-1][1], AWS_VCPU_QUOTAS[-1][2]


def check_aws(nodes: list[Nodes], run: Runner, report: Report) -> None:
    regions = _by_region(nodes, "aws")
    if not regions:
        return
    if run(["aws", "sts", "get-caller-identity", "--output", "json"])[0] != 0:
        report.skipped.append(
            "aws: the AWS CLI is missing or not signed in (aws sts get-caller-identity): "
            "quotas, instance types and Kubernetes versions of "
            f"{', '.join(regions)} not checked"
        )
        return
    for region, clusters in regions.items():
        _aws_versions(region, clusters, run, report)
        need: dict[str, int] = {}
        labels: dict[str, str] = {}
        for size in sorted({c.size for c in clusters}):
            vcpus = _aws_instance_type(region, size, clusters, run, report)
            if vcpus is None:
                continue
            code, label = aws_quota_for(size)
            labels[code] = label
            need[code] = need.get(code, 0) + vcpus * sum(c.peak for c in clusters if c.size == size)
        for code, vcpus in sorted(need.items()):
            _aws_quota(region, code, labels[code], vcpus, "vCPUs", run, report)
        eips = sum(fleet_nodes.ELASTIC_IPS.get(c.nat_gateways, 1) for c in clusters)
        _aws_quota(region, *AWS_ELASTIC_IP_QUOTA, eips, "Elastic IPs", run, report)


def _aws_versions(region: str, clusters: list[Nodes], run: Runner, report: Report) -> None:
    command = ["aws", "eks", "describe-cluster-versions", "--region", region, "--output", "json"]
    shown = " ".join(command)
    answer = _json(run, command)
    versions = answer.get("clusterVersions") if isinstance(answer, dict) else None
    if not isinstance(versions, list):
        report.skip(f"aws {region}: Kubernetes versions EKS offers", shown)
        return
    offered = {v.get("clusterVersion") for v in versions if isinstance(v, dict)}
    for version in sorted({c.kubernetes_version for c in clusters}):
        users = ", ".join(c.cluster for c in clusters if c.kubernetes_version == version)
        if version in offered:
            report.ok(f"aws {region}: EKS offers Kubernetes {version} ({users})")
        else:
            report.problem(
                f"aws {region}: EKS does not offer Kubernetes {version} there ({users}); "
                f"it offers {', '.join(sorted(v for v in offered if v)) or 'none'}",
                shown,
            )


def _aws_instance_type(
    region: str, size: str, clusters: list[Nodes], run: Runner, report: Report
) -> int | None:
    users = ", ".join(c.cluster for c in clusters if c.size == size)
    command = [
        "aws", "ec2", "describe-instance-type-offerings", "--region", region,
        "--location-type", "availability-zone",
        "--filters", f"Name=instance-type,Values={size}", "--output", "json",
    ]  # fmt: skip
    shown = " ".join(command)
    answer = _json(run, command)
    offerings = answer.get("InstanceTypeOfferings") if isinstance(answer, dict) else None
    if not isinstance(offerings, list):
        report.skip(f"aws {region}: zones offering {size}", shown)
        return None
    zones = sorted({o.get("Location") for o in offerings if isinstance(o, dict)} - {None})
    if not zones:
        report.problem(f"aws {region}: instance type {size} is not offered there ({users})", shown)
        return None
    if len(zones) < fleet_nodes.EKS_ZONES:
        report.problem(
            f"aws {region}: instance type {size} is offered in {len(zones)} zone(s) only "
            f"({', '.join(zones)}); the node group of {users} spans {fleet_nodes.EKS_ZONES}",
            shown,
        )
    else:
        report.ok(f"aws {region}: {size} is offered in {len(zones)} zones ({users})")
    command = [
        "aws", "ec2", "describe-instance-types", "--region", region,
        "--instance-types", size, "--output", "json",
    ]  # fmt: skip
    answer = _json(run, command)
    try:
        return int(answer["InstanceTypes"][0]["VCpuInfo"]["DefaultVCpus"])
    except (KeyError, IndexError, TypeError, ValueError):
        report.skip(f"aws {region}: vCPUs of {size}", " ".join(command))
        return None


def _aws_quota(
    region: str, code: str, label: str, need: int, unit: str, run: Runner, report: Report
) -> None:
    command = [
        "aws", "service-quotas", "get-service-quota", "--region", region,
        "--service-code", "ec2", "--quota-code", code, "--output", "json",
    ]  # fmt: skip
    shown = " ".join(command)
    answer = _json(run, command)
    try:
        limit = float(answer["Quota"]["Value"])
    except (KeyError, TypeError, ValueError):
        report.skip(f"aws {region}: quota {code} ({label})", shown)
        return
    if need > limit:
        report.problem(
            f"aws {region}: quota {code} '{label}' is {limit:g} {unit}; the stack needs {need} "
            "at its upgrade peak (instances already running count against it too). Ask for "
            f"more: aws service-quotas request-service-quota-increase --region {region} "
            f"--service-code ec2 --quota-code {code} --desired-value {need}",
            shown,
        )
    else:
        report.ok(f"aws {region}: quota {code} ({label}) {limit:g} >= {need} {unit}")


# --- Azure ----------------------------------------------------------------------------------------


def check_azure(nodes: list[Nodes], run: Runner, report: Report) -> None:
    regions = _by_region(nodes, "azure")
    if not regions:
        return
    if run(["az", "account", "show", "--output", "json"])[0] != 0:
        report.skipped.append(
            "azure: the Azure CLI is missing or not signed in (az account show): quotas, VM "
            f"sizes, Kubernetes versions and policies of {', '.join(regions)} not checked"
        )
        return
    for region, clusters in regions.items():
        _azure_versions(region, clusters, run, report)
        need: dict[str, int] = {}
        for size in sorted({c.size for c in clusters}, key=str.casefold):
            found = _azure_size(region, size, clusters, run, report)
            if found is None:
                continue
            family, vcpus = found
            peak = sum(c.peak for c in clusters if c.size.casefold() == size.casefold())
            need[family] = need.get(family, 0) + vcpus * peak
        if need:
            _azure_quota(region, need, run, report)
    _azure_local_accounts_policy(run, report)


def _azure_versions(region: str, clusters: list[Nodes], run: Runner, report: Report) -> None:
    command = ["az", "aks", "get-versions", "--location", region, "--output", "json"]
    shown = " ".join(command)
    answer = _json(run, command)
    values = answer.get("values") if isinstance(answer, dict) else None
    if not isinstance(values, list):
        report.skip(f"azure {region}: Kubernetes versions AKS offers", shown)
        return
    offered = {v.get("version") for v in values if isinstance(v, dict) and not v.get("isPreview")}
    for version in sorted({c.kubernetes_version for c in clusters}):
        users = ", ".join(c.cluster for c in clusters if c.kubernetes_version == version)
        if version in offered:
            report.ok(f"azure {region}: AKS offers Kubernetes {version} ({users})")
        else:
            others = ", ".join(sorted(v for v in offered if v)) or "none"
            report.problem(
                f"azure {region}: AKS does not offer Kubernetes {version} there as generally "
                f"available ({users}); it offers {others}",
                shown,
            )


def _azure_size(
    region: str, size: str, clusters: list[Nodes], run: Runner, report: Report
) -> tuple[str, int] | None:
    users = ", ".join(c.cluster for c in clusters if c.size.casefold() == size.casefold())
    command = [
        "az", "vm", "list-skus", "--location", region, "--size", size,
        "--resource-type", "virtualMachines", "--output", "json",
    ]  # fmt: skip
    shown = " ".join(command)
    answer = _json(run, command)
    if not isinstance(answer, list):
        report.skip(f"azure {region}: VM size {size}", shown)
        return None
    skus = [
        s
        for s in answer
        if isinstance(s, dict) and str(s.get("name")).casefold() == size.casefold()
    ]
    if not skus:
        report.problem(f"azure {region}: VM size {size} is not offered there ({users})", shown)
        return None
    sku = skus[0]
    restrictions = [r for r in sku.get("restrictions") or [] if isinstance(r, dict)]
    if any(r.get("type") == "Location" for r in restrictions):
        report.problem(
            f"azure {region}: VM size {size} is not available to this subscription there "
            f"({users}; {restrictions[0].get('reasonCode', 'restricted')})",
            shown,
        )
        return None
    if region.lower() in ZONED_REGIONS:
        offered = set()
        for info in sku.get("locationInfo") or []:
            offered |= set(info.get("zones") or [])
        for r in restrictions:
            if r.get("type") == "Zone":
                for info in (r.get("restrictionInfo") or {}).get("zones") or []:
                    offered.discard(info)
        missing = sorted(set(AZURE_ZONES) - offered)
        if missing:
            report.problem(
                f"azure {region}: VM size {size} is not offered in zone(s) {', '.join(missing)}; "
                f"the pool of {users} spans zones {', '.join(AZURE_ZONES)} (Azure/AKS#5746)",
                shown,
            )
        else:
            report.ok(f"azure {region}: {size} is offered in zones {', '.join(AZURE_ZONES)}")
    capabilities = {c.get("name"): c.get("value") for c in sku.get("capabilities") or []}
    try:
        return str(sku["family"]), int(capabilities["vCPUs"])
    except (KeyError, TypeError, ValueError):
        report.skip(f"azure {region}: family and vCPUs of {size}", shown)
        return None


def _azure_quota(region: str, need: dict[str, int], run: Runner, report: Report) -> None:
    command = ["az", "vm", "list-usage", "--location", region, "--output", "json"]
    shown = " ".join(command)
    answer = _json(run, command)
    if not isinstance(answer, list):
        report.skip(f"azure {region}: vCPU quotas", shown)
        return
    usage = {}
    for item in answer:
        try:
            usage[item["name"]["value"]] = (int(item["currentValue"]), int(item["limit"]))
        except (KeyError, TypeError, ValueError):
            continue
    wanted = [*sorted(need.items()), ("cores", sum(need.values()))]
    for family, vcpus in wanted:
        label = "Total Regional vCPUs" if family == "cores" else family
        if family not in usage:
            report.skip(f"azure {region}: quota {label}", shown)
            continue
        current, limit = usage[family]
        if current + vcpus > limit:
            report.problem(
                f"azure {region}: quota {label} has {limit - current} of {limit} vCPUs free; "
                f"the stack needs {vcpus} at its upgrade peak (nodes of this stack that already "
                "run are in the use). Ask for more: az quota, or the portal's Quotas page",
                shown,
            )
        else:
            report.ok(f"azure {region}: quota {label} has {limit - current} vCPUs free >= {vcpus}")


def _effect(value: Any, parameters: Mapping[str, Any], defaults: Mapping[str, Any]) -> Any:
    """A policy parameter's value, following `[parameters('x')]` through an initiative."""
    if isinstance(value, str) and value.startswith("[parameters('") and value.endswith("')]"):
        name = value[len("[parameters('") : -len("')]")]
        given = parameters.get(name)
        if isinstance(given, dict) and "value" in given:
            return given["value"]
        return (defaults.get(name) or {}).get("defaultValue")
    return value


def _azure_local_accounts_policy(run: Runner, report: Report) -> None:
    command = [
        "az",
        "policy",
        "assignment",
        "list",
        "--disable-scope-strict-match",
        "--output",
        "json",
    ]
    shown = " ".join(command)
    assignments = _json(run, command)
    if not isinstance(assignments, list):
        report.skip("azure: policies on local accounts", shown)
        return
    denying = []
    for a in assignments:
        if not isinstance(a, dict) or a.get("enforcementMode") == "DoNotEnforce":
            continue
        definition = str(a.get("policyDefinitionId") or "")
        parameters = a.get("parameters") or {}
        effect = None
        if definition.lower().endswith(f"/policydefinitions/{LOCAL_ACCOUNTS_POLICY}"):
            effect = (parameters.get("effect") or {}).get("value", LOCAL_ACCOUNTS_DEFAULT_EFFECT)
        elif "/policysetdefinitions/" in definition.lower():
            show = [
                "az",
                "policy",
                "set-definition",
                "show",
                "--ids",
                definition,
                "--output",
                "json",
            ]
            initiative = _json(run, show)
            if not isinstance(initiative, dict):
                report.skip(f"azure: initiative {a.get('name')} on local accounts", " ".join(show))
                continue
            for member in initiative.get("policyDefinitions") or []:
                if (
                    str(member.get("policyDefinitionId", ""))
                    .lower()
                    .endswith(LOCAL_ACCOUNTS_POLICY)
                ):
                    given = (member.get("parameters") or {}).get("effect") or {}
                    effect = _effect(
                        given.get("value", LOCAL_ACCOUNTS_DEFAULT_EFFECT),
                        parameters,
                        initiative.get("parameters") or {},
                    )
        if isinstance(effect, str) and effect.lower() == "deny":
            denying.append(f"{a.get('displayName') or a.get('name')} ({a.get('scope', '?')})")
    if denying:
        report.problem(
            "azure: the policy assignment(s) " + "; ".join(denying) + " deny AKS clusters with "
            "local accounts, which the program needs for listClusterAdminCredential; ask for "
            "an exemption for the stack's resource groups",
            shown,
        )
    else:
        report.ok("azure: no policy assignment denies AKS local accounts")


def main(argv: list[str] | None = None, run: Runner = run_cli) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="Reads only: nothing in any cloud changes."
    )
    parser.add_argument("stack_file", metavar="STACKFILE", help="Pulumi.<stack>.yaml")
    args = parser.parse_args(argv)
    try:
        config = read_stack(args.stack_file)
    except StackFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    nodes = fleet_nodes.cloud_nodes(config)
    report = Report()
    check_aws(nodes, run, report)
    check_azure(nodes, run, report)
    if not nodes:
        report.ok("no aws or azure cluster in the stack: nothing to check")
    print(report.render())
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
