"""scripts/cloud_preflight.py, run for real against stand-in `aws` and `az` CLIs.

Each stand-in is a small script on PATH that answers the commands a test gives it (the longest
matching start of the command line) and fails on any other, the way a CLI fails on a call it
does not know; every call is logged, so the tests also read what was asked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import ROOT

SCRIPT = ROOT / "scripts" / "cloud_preflight.py"
REGION_AWS, REGION_AZ = "eu-west-1", "westeurope"

STAND_IN = """#!{python}
import json, os, sys
name = os.path.basename(sys.argv[0])
line = " ".join(sys.argv[1:])
with open(os.environ["STAND_IN_LOG"], "a") as log:
    log.write(name + " " + line + "\\n")
answers = json.load(open(os.environ["STAND_IN_ANSWERS"])).get(name, {{}})
match = max((k for k in answers if line.startswith(k)), key=len, default=None)
if match is None:
    sys.stderr.write(name + ": no answer for " + line + "\\n")
    sys.exit(254)
code, out = answers[match]
sys.stdout.write(out if isinstance(out, str) else json.dumps(out))
sys.exit(code)
"""

STACK = {
    "config": {
        "ocm-fleet:hub": {"name": "main", "cloud": "azure", "region": REGION_AZ},
        "ocm-fleet:clusters": [
            {"name": "app-aws", "cloud": "aws", "region": REGION_AWS},
            {"name": "app-azure", "cloud": "azure", "region": REGION_AZ},
        ],
    }
}
LOCAL_ACCOUNTS = "/providers/Microsoft.Authorization/policyDefinitions/" + (
    "993c2fcd-2b29-49d2-9eb0-df2c3a730c32"
)


def aws_answers(**over: Any) -> dict[str, Any]:
    """A signed-in AWS account with room for the stack; `over` replaces answers by command."""
    answers = {
        "sts get-caller-identity": [0, {"Arn": "arn:aws:iam::123456789012:user/ci"}],
        f"eks describe-cluster-versions --region {REGION_AWS}": [
            0,
            {"clusterVersions": [{"clusterVersion": v} for v in ("1.33", "1.34", "1.35")]},
        ],
        f"ec2 describe-instance-type-offerings --region {REGION_AWS}": [
            0,
            {"InstanceTypeOfferings": [{"Location": f"{REGION_AWS}{z}"} for z in "abc"]},
        ],
        f"ec2 describe-instance-types --region {REGION_AWS} --instance-types t3.large": [
            0,
            {"InstanceTypes": [{"VCpuInfo": {"DefaultVCpus": 2}}]},
        ],
        f"service-quotas get-service-quota --region {REGION_AWS} --service-code ec2 "
        "--quota-code L-1216C47A": [0, {"Quota": {"Value": 64.0}}],
        f"service-quotas get-service-quota --region {REGION_AWS} --service-code ec2 "
        "--quota-code L-0263D0A3": [0, {"Quota": {"Value": 5.0}}],
    }
    answers.update(over)
    return answers


def sku(zones=("1", "2", "3"), restrictions=()) -> dict[str, Any]:
    return {
        "name": "Standard_D4s_v5",
        "family": "standardDSv5Family",
        "locationInfo": [{"location": REGION_AZ, "zones": list(zones)}],
        "capabilities": [{"name": "vCPUs", "value": "4"}],
        "restrictions": list(restrictions),
    }


def az_answers(**over: Any) -> dict[str, Any]:
    """A signed-in Azure subscription with room for the stack."""
    answers = {
        "account show": [0, {"id": "33333333-3333-3333-3333-333333333333"}],
        f"aks get-versions --location {REGION_AZ}": [
            0,
            {
                "values": [
                    {"version": "1.34"},
                    {"version": "1.35"},
                    {"version": "1.36", "isPreview": True},
                ]
            },
        ],
        f"vm list-skus --location {REGION_AZ} --size Standard_D4s_v5": [0, [sku()]],
        f"vm list-usage --location {REGION_AZ}": [
            0,
            [
                {"name": {"value": "standardDSv5Family"}, "currentValue": 0, "limit": 100},
                {"name": {"value": "cores"}, "currentValue": 4, "limit": 100},
            ],
        ],
        "policy assignment list": [0, []],
    }
    answers.update(over)
    return answers


def preflight(
    tmp_path: Path,
    aws: dict[str, Any] | None = None,
    az: dict[str, Any] | None = None,
    stack: dict[str, Any] = STACK,
) -> tuple[int, str, list[str]]:
    """Run the preflight with only the given CLIs on PATH; its status, output and the calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    answers = {}
    for name, given in (("aws", aws), ("az", az)):
        if given is not None:
            (bin_dir / name).write_text(STAND_IN.format(python=sys.executable))
            (bin_dir / name).chmod(0o755)
            answers[name] = given
    (tmp_path / "answers.json").write_text(json.dumps(answers))
    # An importable `pulumi` that refuses to load: the script must not need the program's SDK.
    (tmp_path / "no-pulumi" / "pulumi").mkdir(parents=True, exist_ok=True)
    (tmp_path / "no-pulumi" / "pulumi" / "__init__.py").write_text(
        "raise ImportError('cloud_preflight.py must not import pulumi')\n"
    )
    stack_file = tmp_path / "Pulumi.test.yaml"
    stack_file.write_text(yaml.safe_dump(stack))
    log = tmp_path / "calls.log"
    log.write_text("")
    env = {
        # The stand-ins only: a real CLI elsewhere on this machine must not answer.
        "PATH": str(bin_dir),
        "PYTHONPATH": str(tmp_path / "no-pulumi"),
        "STAND_IN_ANSWERS": str(tmp_path / "answers.json"),
        "STAND_IN_LOG": str(log),
        "HOME": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(stack_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout, log.read_text().splitlines()


def problems(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("PROBLEM")]


def test_a_stack_with_room_passes_every_check(tmp_path):
    code, out, calls = preflight(tmp_path, aws=aws_answers(), az=az_answers())
    assert code == 0, out
    assert not problems(out) and "SKIPPED" not in out, out
    assert "ok       aws eu-west-1: EKS offers Kubernetes 1.35 (app-aws)" in out
    assert "ok       azure westeurope: AKS offers Kubernetes 1.35 (main, app-azure)" in out
    assert "ok       azure: no policy assignment denies AKS local accounts" in out
    # Only reads: no call that creates, changes or requests anything.
    writes = {"create", "update", "delete", "set", "request-service-quota-increase"}
    for call in calls:
        words = call.split()[1:]
        assert any(w.startswith(("get-", "describe-", "list", "show")) for w in words), call
        assert not writes & set(words), call


def test_a_short_vcpu_quota_is_named_with_the_command_that_shows_it(tmp_path):
    aws = aws_answers(
        **{
            f"service-quotas get-service-quota --region {REGION_AWS} --service-code ec2 "
            "--quota-code L-1216C47A": [0, {"Quota": {"Value": 8.0}}]
        }
    )
    az = az_answers(
        **{
            f"vm list-usage --location {REGION_AZ}": [
                0,
                [
                    {"name": {"value": "standardDSv5Family"}, "currentValue": 0, "limit": 16},
                    {"name": {"value": "cores"}, "currentValue": 0, "limit": 100},
                ],
            ]
        }
    )
    code, out, _ = preflight(tmp_path, aws=aws, az=az)
    assert code == 1, out
    (aws_problem,) = [p for p in problems(out) if "L-1216C47A" in p]
    # t3.large (2 vCPUs) x (2 nodes + 6 surge: twice the three zones) = 16 > 8.
    assert "is 8 vCPUs; the stack needs 16 at its upgrade peak" in aws_problem, aws_problem
    assert aws_problem.endswith(
        f"See: aws service-quotas get-service-quota --region {REGION_AWS} --service-code ec2 "
        "--quota-code L-1216C47A --output json"
    ), aws_problem
    (az_problem,) = [p for p in problems(out) if "standardDSv5Family" in p]
    # Two AKS clusters of 2 Standard_D4s_v5 (4 vCPUs) plus one surge node each: 24 > 16.
    assert "has 16 of 16 vCPUs free; the stack needs 24" in az_problem, az_problem
    assert az_problem.endswith(f"See: az vm list-usage --location {REGION_AZ} --output json")


def test_a_missing_size_and_a_missing_zone_are_named(tmp_path):
    aws = aws_answers(
        **{
            f"ec2 describe-instance-type-offerings --region {REGION_AWS}": [
                0,
                {"InstanceTypeOfferings": []},
            ]
        }
    )
    code, out, _ = preflight(tmp_path, aws=aws, az=az_answers())
    assert code == 1
    (missing,) = problems(out)
    assert "aws eu-west-1: instance type t3.large is not offered there (app-aws)" in missing
    assert "See: aws ec2 describe-instance-type-offerings --region eu-west-1" in missing

    az = az_answers(**{f"vm list-skus --location {REGION_AZ} --size Standard_D4s_v5": [0, []]})
    code, out, _ = preflight(tmp_path, aws=aws_answers(), az=az)
    (missing,) = problems(out)
    assert "azure westeurope: VM size Standard_D4s_v5 is not offered there (main, app-azure)" in (
        missing
    )
    assert f"See: az vm list-skus --location {REGION_AZ} --size Standard_D4s_v5" in missing

    restricted = sku(
        restrictions=[
            {"type": "Zone", "reasonCode": "NotAvailableForSubscription",
             "restrictionInfo": {"zones": ["3"]}}
        ]
    )  # fmt: skip
    az = az_answers(
        **{f"vm list-skus --location {REGION_AZ} --size Standard_D4s_v5": [0, [restricted]]}
    )
    code, out, _ = preflight(tmp_path, aws=aws_answers(), az=az)
    (zone,) = problems(out)
    assert "VM size Standard_D4s_v5 is not offered in zone(s) 3" in zone, zone
    assert "Azure/AKS#5746" in zone


def test_a_kubernetes_version_the_region_does_not_offer_is_named(tmp_path):
    aws = aws_answers(
        **{
            f"eks describe-cluster-versions --region {REGION_AWS}": [
                0,
                {"clusterVersions": [{"clusterVersion": "1.34"}]},
            ]
        }
    )
    az = az_answers(
        **{
            f"aks get-versions --location {REGION_AZ}": [
                0,
                {"values": [{"version": "1.34"}, {"version": "1.35", "isPreview": True}]},
            ]
        }
    )
    code, out, _ = preflight(tmp_path, aws=aws, az=az)
    assert code == 1
    found = problems(out)
    assert len(found) == 2, found
    assert (
        "aws eu-west-1: EKS does not offer Kubernetes 1.35 there (app-aws); it offers 1.34. "
        "See: aws eks describe-cluster-versions --region eu-west-1 --output json"
    ) in found[0]
    assert (
        "azure westeurope: AKS does not offer Kubernetes 1.35 there as generally available"
        in (found[1])
    )
    assert found[1].endswith("See: az aks get-versions --location westeurope --output json")


def test_a_policy_denying_local_accounts_is_named(tmp_path):
    direct = {
        "name": "no-local",
        "displayName": "Disable AKS local accounts",
        "scope": "/subscriptions/33333333-3333-3333-3333-333333333333",
        "policyDefinitionId": LOCAL_ACCOUNTS,
        "parameters": {"effect": {"value": "Deny"}},
    }
    code, out, _ = preflight(
        tmp_path, aws=aws_answers(), az=az_answers(**{"policy assignment list": [0, [direct]]})
    )
    assert code == 1
    (policy,) = problems(out)
    assert "Disable AKS local accounts (/subscriptions/3333" in policy, policy
    assert "deny AKS clusters with local accounts" in policy
    assert policy.endswith(
        "See: az policy assignment list --disable-scope-strict-match --output json"
    )

    # Audit (the built-in's default) does not stop a deployment; nor does DoNotEnforce.
    audit = {**direct, "parameters": {}}
    off = {**direct, "enforcementMode": "DoNotEnforce"}
    code, out, _ = preflight(
        tmp_path, aws=aws_answers(), az=az_answers(**{"policy assignment list": [0, [audit, off]]})
    )
    assert code == 0 and not problems(out), out


def test_a_policy_denying_local_accounts_through_an_initiative_is_named(tmp_path):
    initiative_id = "/providers/Microsoft.Authorization/policySetDefinitions/aks-baseline"
    assignment = {
        "name": "baseline",
        "displayName": "AKS baseline",
        "scope": "/providers/Microsoft.Management/managementGroups/contoso",
        "policyDefinitionId": initiative_id,
        "parameters": {"localAuthEffect": {"value": "Deny"}},
    }
    initiative = {
        "parameters": {"localAuthEffect": {"defaultValue": "Audit"}},
        "policyDefinitions": [
            {
                "policyDefinitionId": LOCAL_ACCOUNTS,
                "parameters": {"effect": {"value": "[parameters('localAuthEffect')]"}},
            }
        ],
    }
    az = az_answers(
        **{
            "policy assignment list": [0, [assignment]],
            f"policy set-definition show --ids {initiative_id}": [0, initiative],
        }
    )
    code, out, _ = preflight(tmp_path, aws=aws_answers(), az=az)
    assert code == 1
    (policy,) = problems(out)
    assert "AKS baseline (/providers/Microsoft.Management/managementGroups/contoso)" in policy


def test_checks_that_cannot_run_say_so_and_never_fail_the_run(tmp_path):
    # No AWS CLI at all, and an Azure CLI that is not signed in.
    code, out, calls = preflight(tmp_path, aws=None, az={"account show": [1, ""]})
    assert code == 0, out
    assert "SKIPPED  aws: the AWS CLI is missing or not signed in" in out
    assert "SKIPPED  azure: the Azure CLI is missing or not signed in (az account show)" in out
    assert calls == ["az account show --output json"], "nothing is asked once signed out"

    # Signed in, but a CLI that answers what the script cannot read (an older CLI, say).
    aws = aws_answers(**{f"eks describe-cluster-versions --region {REGION_AWS}": [0, "not json"]})
    az = az_answers(**{f"vm list-usage --location {REGION_AZ}": [2, ""]})
    code, out, _ = preflight(tmp_path, aws=aws, az=az)
    assert code == 0, out
    assert (
        "SKIPPED  aws eu-west-1: Kubernetes versions EKS offers: not checked (aws eks "
        "describe-cluster-versions --region eu-west-1 --output json did not answer as expected)"
    ) in out
    assert "SKIPPED  azure westeurope: vCPU quotas: not checked (az vm list-usage" in out


def test_node_counts_are_the_program_s(tmp_path):
    """The preflight and the estimate count nodes with scripts/fleet_nodes.py, which reads the
    program's defaults from its source: the counts match the program's config model."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import fleet_nodes
    from conftest import large_config

    from components.config import parse_fleet_config

    config = large_config()
    fleet = parse_fleet_config({k.split(":", 1)[1]: v for k, v in config.items()})
    counted = {
        n.cluster: (n.cloud, n.region, n.size, n.count) for n in fleet_nodes.cloud_nodes(config)
    }
    modelled = {
        c.name: (c.cloud, c.region, c.node_size, c.node_count)
        for c in fleet.all_clusters
        if c.cloud in ("aws", "azure")
    }
    assert counted == modelled


def test_a_stack_file_that_cannot_be_read_is_one_line_and_status_2(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "Pulumi.none.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_help_says_what_it_does_and_changes_nothing():
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert "nothing in any cloud changes" in done.stdout.lower()


@pytest.fixture(autouse=True)
def _no_real_clouds(monkeypatch):
    monkeypatch.delenv("AWS_PROFILE", raising=False)
