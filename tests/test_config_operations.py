"""Config keys for running a fleet over time: retiring clusters, admin principals, stack-scoped
EKS names and NAT gateway modes. Each is validated with the others, naming key and value."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from components.config import FleetConfigError, parse_fleet_config, stack_scoped_name

ADMIN = "arn:aws:iam::123456789012:role/platform-admin"
VALID: dict[str, Any] = {
    "hub": {"name": "main", "cloud": "azure", "region": "westeurope"},
    "clusters": [
        {"name": "app-aws", "cloud": "aws", "region": "eu-west-1"},
        {"name": "app-azure", "cloud": "azure", "region": "westeurope"},
    ],
    "apiAllowedCidrs": ["203.0.113.0/24"],
    "eksAdminPrincipals": [ADMIN],
}


def valid(**top: Any) -> dict[str, Any]:
    raw = copy.deepcopy(VALID)
    raw.update(top)
    return raw


def with_cluster(index: int, **changes: Any) -> dict[str, Any]:
    raw = valid()
    raw["clusters"][index].update(changes)
    return raw


def problems_of(raw: dict[str, Any], stack: str = "dev") -> list[str]:
    with pytest.raises(FleetConfigError) as info:
        parse_fleet_config(raw, stack=stack)
    return info.value.problems


# --- retire --------------------------------------------------------------------------------


def test_retiring_and_active_clusters_split_the_app_clusters():
    fleet = parse_fleet_config(with_cluster(0, retire=True))
    assert [c.name for c in fleet.active_clusters] == ["app-azure"]
    assert [c.name for c in fleet.retiring_clusters] == ["app-aws"]
    assert [c.name for c in fleet.clusters] == ["app-aws", "app-azure"], "both are still built"


def test_clusters_are_active_by_default():
    fleet = parse_fleet_config(valid())
    assert fleet.retiring_clusters == ()
    assert fleet.active_clusters == fleet.clusters


@pytest.mark.parametrize("value", ["yes", 1])
def test_retire_must_be_a_bool(value):
    assert problems_of(with_cluster(1, retire=value)) == [
        f"ocm-fleet:clusters[1].retire: {value!r} must be true or false"
    ]


def test_the_hub_cannot_retire():
    raw = valid()
    raw["hub"]["retire"] = True
    (problem,) = problems_of(raw)
    assert problem.startswith("ocm-fleet:hub.retire: the hub cannot retire")


def test_retiring_every_cluster_is_refused():
    raw = valid()
    for c in raw["clusters"]:
        c["retire"] = True
    (problem,) = problems_of(raw)
    assert problem.startswith("ocm-fleet:clusters: every cluster has retire: true")
    assert "pulumi destroy" in problem


# --- eksAdminPrincipals --------------------------------------------------------------------


def test_admin_principals_are_required_with_an_aws_cluster():
    raw = valid()
    del raw["eksAdminPrincipals"]
    (problem,) = problems_of(raw)
    assert problem.startswith("ocm-fleet:eksAdminPrincipals: missing; the fleet has aws clusters")
    assert "(app-aws)" in problem
    assert "aws sts get-caller-identity" in problem and "scripts/caller_role_arn.py" in problem
    assert "pulumi config set --path 'ocm-fleet:eksAdminPrincipals[0]'" in problem


def test_admin_principals_are_optional_without_aws():
    raw = valid()
    del raw["eksAdminPrincipals"]
    raw["clusters"] = raw["clusters"][1:]
    assert parse_fleet_config(raw).eks_admin_principals == ()


def test_a_retiring_aws_cluster_still_needs_admins():
    raw = with_cluster(0, retire=True)
    del raw["eksAdminPrincipals"]
    assert problems_of(raw)[0].startswith("ocm-fleet:eksAdminPrincipals: missing")


@pytest.mark.parametrize(
    "arn",
    [
        ADMIN,
        "arn:aws:iam::123456789012:role/ci/github/deployer",
        "arn:aws:iam::123456789012:user/alice",
        "arn:aws-cn:iam::123456789012:role/admin",
        "arn:aws-us-gov:iam::123456789012:role/admin",
    ],
)
def test_role_and_user_arns_are_accepted(arn):
    assert parse_fleet_config(valid(eksAdminPrincipals=[arn])).eks_admin_principals == (arn,)


def test_an_sts_session_arn_is_refused_with_the_way_to_the_role():
    session = "arn:aws:sts::123456789012:assumed-role/platform-admin/alice"
    (problem,) = problems_of(valid(eksAdminPrincipals=[ADMIN, session]))
    assert problem.startswith(f"ocm-fleet:eksAdminPrincipals[1]: {session!r} is an STS session")
    assert "scripts/caller_role_arn.py" in problem


@pytest.mark.parametrize(
    "arn", ["platform-admin", "arn:aws:iam::12345:role/x", "arn:aws:iam::123456789012:group/g", 7]
)
def test_anything_else_is_not_a_principal(arn):
    (problem,) = problems_of(valid(eksAdminPrincipals=[arn]))
    assert problem.startswith(f"ocm-fleet:eksAdminPrincipals[0]: {arn!r} is not an IAM role")


def test_the_empty_list_pulumi_yaml_defaults_to_counts_as_unset():
    (problem,) = problems_of(valid(eksAdminPrincipals=[]))
    assert problem.startswith("ocm-fleet:eksAdminPrincipals: missing; the fleet has aws clusters")
    raw = valid(eksAdminPrincipals=[])
    raw["clusters"] = [c for c in raw["clusters"] if c["cloud"] != "aws"]
    assert parse_fleet_config(raw).eks_admin_principals == (), "no aws cluster needs none"


@pytest.mark.parametrize("value", ["arn:aws:iam::123456789012:role/x", {"a": 1}])
def test_admin_principals_must_be_a_non_empty_list(value):
    (problem,) = problems_of(valid(eksAdminPrincipals=value))
    assert problem.startswith(f"ocm-fleet:eksAdminPrincipals: {value!r} must be a non-empty list")


def test_a_principal_listed_twice_is_refused():
    (problem,) = problems_of(valid(eksAdminPrincipals=[ADMIN, ADMIN]))
    assert problem == (
        f"ocm-fleet:eksAdminPrincipals[1]: {ADMIN!r} is listed twice; EKS allows one entry each"
    )


# --- EKS names carry the stack ------------------------------------------------------------


def test_eks_cluster_names_carry_the_stack():
    dev = parse_fleet_config(valid(), stack="dev").clusters[0]
    prod = parse_fleet_config(valid(), stack="prod").clusters[0]
    assert (dev.cloud_name, prod.cloud_name) == ("dev-app-aws", "prod-app-aws")


def test_characters_of_stack_names_eks_refuses_become_dashes():
    assert stack_scoped_name("team.prod_2", "app") == "team-prod-2-app"
    assert parse_fleet_config(valid(), stack="a.b").clusters[0].cloud_name == "a-b-app-aws"


def test_physical_name_keeps_an_existing_clusters_name():
    spec = parse_fleet_config(with_cluster(0, physicalName="app-aws"), stack="prod").clusters[0]
    assert (spec.cloud_name, spec.physical_name) == ("app-aws", "app-aws")


def test_azure_and_existing_names_do_not_change():
    fleet = parse_fleet_config(valid(), stack="prod")
    assert fleet.clusters[1].cloud_name == "app-azure"
    assert fleet.hub.cloud_name == "main"


def test_the_stack_counts_in_the_eks_name_length():
    stack = "s" * 68  # 68 + "-" + "app-aws" (7) = 76: fine; 93 more would not be
    assert parse_fleet_config(valid(), stack=stack).clusters[0].cloud_name.startswith("sss")
    long_stack = "s" * 93
    (problem,) = problems_of(valid(), stack=long_stack)
    assert problem.startswith("ocm-fleet:clusters[0].name: the EKS cluster name ")
    assert f"(stack {long_stack!r} and cluster name) is 101 characters" in problem


@pytest.mark.parametrize("value", ["-bad", "has space", "a.b", 5, ""])
def test_physical_name_must_be_an_eks_cluster_name(value):
    problems = problems_of(with_cluster(0, physicalName=value))
    assert problems[0].startswith(f"ocm-fleet:clusters[0].physicalName: {value!r} is not an EKS")


@pytest.mark.parametrize("key", ["physicalName", "natGateways"])
def test_aws_only_keys_are_refused_elsewhere(key):
    (problem,) = problems_of(with_cluster(1, **{key: "single"}))
    assert problem == f"ocm-fleet:clusters[1].{key}: 'single' is only valid with cloud: aws"


# --- NAT gateways and Elastic IPs ---------------------------------------------------------


def test_nat_gateways_default_to_single():
    assert parse_fleet_config(valid()).clusters[0].nat_gateways == "single"


def test_nat_gateways_per_zone_is_kept():
    assert parse_fleet_config(with_cluster(0, natGateways="perZone")).clusters[0].nat_gateways == (
        "perZone"
    )


@pytest.mark.parametrize("value", ["PerZone", "three", 3])
def test_nat_gateways_must_be_one_of_the_modes(value):
    (problem,) = problems_of(with_cluster(0, natGateways=value))
    assert problem.startswith(
        f"ocm-fleet:clusters[0].natGateways: {value!r} is not one of single, perZone"
    )


def eks_fleet(*clusters: tuple[str, str, str]) -> dict[str, Any]:
    raw = valid()
    raw["clusters"] = [
        {"name": name, "cloud": "aws", "region": region, "natGateways": mode}
        for name, region, mode in clusters
    ]
    return raw


def test_elastic_ips_are_counted_per_region():
    fleet = parse_fleet_config(
        eks_fleet(
            ("a", "eu-west-1", "perZone"),
            ("b", "eu-west-1", "single"),
            ("c", "us-east-1", "perZone"),
        )
    )
    assert fleet.elastic_ips_by_region() == {"eu-west-1": 4, "us-east-1": 3}
    assert fleet.elastic_ip_warnings() == []


def test_two_per_zone_clusters_in_one_region_warn_with_region_and_count():
    fleet = parse_fleet_config(
        eks_fleet(("a", "eu-west-1", "perZone"), ("b", "eu-west-1", "perZone"))
    )
    (warning,) = fleet.elastic_ip_warnings()
    assert re.match(r"AWS region eu-west-1: the EKS clusters need 6 Elastic IPs", warning)
    assert "default quota of 5" in warning


def test_five_single_clusters_fit_the_default_quota_and_six_do_not():
    five = [(f"c{i}", "eu-west-1", "single") for i in range(5)]
    assert parse_fleet_config(eks_fleet(*five)).elastic_ip_warnings() == []
    six = parse_fleet_config(eks_fleet(*five, ("c5", "eu-west-1", "single")))
    assert [w.split(":")[0] for w in six.elastic_ip_warnings()] == ["AWS region eu-west-1"]
