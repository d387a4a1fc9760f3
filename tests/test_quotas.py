"""Elastic IP quota: the whole program, in update and preview mode, warns when one region's EKS
clusters need more NAT Elastic IPs than AWS's default quota of 5, and declares as many as it
says."""

from __future__ import annotations

import pytest
from harness import run_program

MODES = pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
EIP = "aws:ec2/eip:Eip"


def fleet(*clusters: tuple[str, str, str]) -> dict:
    return {
        "ocm-fleet:hub": {"name": "main", "cloud": "azure", "region": "westeurope"},
        "ocm-fleet:clusters": [
            {"name": name, "cloud": "aws", "region": region, "natGateways": mode}
            for name, region, mode in clusters
        ],
        "ocm-fleet:apiAllowedCidrs": ["203.0.113.0/24"],
    }


def quota_warnings(graph) -> list[str]:
    return [line for line in graph.logs if "Elastic IPs" in line]


@MODES
def test_two_per_zone_clusters_in_one_region_warn_and_take_six(preview):
    g = run_program(
        fleet(("ie-1", "eu-west-1", "perZone"), ("ie-2", "eu-west-1", "perZone")), preview=preview
    )
    assert len(g.of_type(EIP)) == 6
    (warning,) = quota_warnings(g)
    assert warning.startswith("AWS region eu-west-1: the EKS clusters need 6 Elastic IPs")


@MODES
def test_the_default_single_gateway_fits_two_clusters_without_a_warning(preview):
    g = run_program(
        fleet(("ie-1", "eu-west-1", "single"), ("ie-2", "eu-west-1", "single")), preview=preview
    )
    assert len(g.of_type(EIP)) == 2
    assert quota_warnings(g) == []


@MODES
def test_clusters_in_different_regions_count_apart(preview):
    g = run_program(
        fleet(("ie", "eu-west-1", "perZone"), ("us", "us-east-1", "perZone")), preview=preview
    )
    assert len(g.of_type(EIP)) == 6
    assert quota_warnings(g) == [], "three per region is within the default quota"
