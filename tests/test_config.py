"""The stack config is the user interface: bad config fails with one error naming every
offending key and value, before any resource is registered; good config parses into
ClusterSpec/FleetConfig with the documented defaults."""

from __future__ import annotations

import copy
import re
from typing import Any

import pulumi
import pytest
from conftest import dev_config
from harness import ROOT, Graph, load_stack_config, run_program

from components.config import (
    MAX_NAME_LENGTH,
    ClusterSpec,
    FleetConfig,
    FleetConfigError,
    MaintenanceWindow,
    parse_fleet_config,
)
from components.pulumi_config import load_fleet_config

KNOWN_KEYS = (
    "apiServerUrl, cloud, context, controlPlaneIdentity, controlPlaneLogRetentionDays, "
    "databaseStorage, egressIps, importLogGroup, kubeconfig, kubernetesVersion, "
    "maintenanceWindow, name, natGateways, nodeCount, nodeSize, physicalName, region, retire, "
    "standby, upgradePolicy"
)

VALID: dict[str, Any] = {
    "hub": {"name": "main", "cloud": "azure", "region": "westeurope"},
    "clusters": [
        {"name": "app-aws", "cloud": "aws", "region": "eu-west-1"},
        {"name": "app-azure", "cloud": "azure", "region": "westeurope"},
    ],
    "apiAllowedCidrs": ["203.0.113.0/24"],
    "eksAdminPrincipals": ["arn:aws:iam::123456789012:role/platform-admin"],
}

EXISTING: dict[str, Any] = {
    "name": "kind-app",
    "cloud": "existing",
    "context": "kind-app",
    "egressIps": ["192.0.2.1"],
}


def valid() -> dict[str, Any]:
    return copy.deepcopy(VALID)


def with_hub(**changes: Any) -> dict[str, Any]:
    raw = valid()
    raw["hub"].update(changes)
    return raw


def with_cluster(index: int, **changes: Any) -> dict[str, Any]:
    raw = valid()
    raw["clusters"][index].update(changes)
    return raw


def without(raw: dict[str, Any], path: str, key: str) -> dict[str, Any]:
    """`raw` with `key` removed from the mapping at `path` ("hub", "clusters[1]" or "")."""
    node: Any = raw
    if path == "hub":
        node = raw["hub"]
    elif path.startswith("clusters["):
        node = raw["clusters"][int(path[len("clusters[") : -1])]
    del node[key]
    return raw


def rejects(raw: dict[str, Any], message: str, *, count: int = 1) -> FleetConfigError:
    """parse_fleet_config(raw) fails with `message` (literal text) among `count` problems."""
    with pytest.raises(FleetConfigError, match=re.escape(message)) as info:
        parse_fleet_config(raw)
    assert len(info.value.problems) == count, (
        f"expected {count} problem(s), got {info.value.problems}"
    )
    return info.value


def pulumi_config(raw: dict[str, Any]) -> dict[str, Any]:
    """Raw keys as stack config keys (`ocm-fleet:<key>`), for the Pulumi config path."""
    return {f"ocm-fleet:{k}": v for k, v in raw.items()}


def load_through_pulumi(config: dict[str, Any]) -> FleetConfig:
    """load_fleet_config() run as a Pulumi program under mocks, reading `config`."""
    loaded: list[FleetConfig] = []
    run_program(config, program=lambda: loaded.append(load_fleet_config()))
    assert len(loaded) == 1, "the program must have loaded the config exactly once"
    return loaded[0]


# --- names ---------------------------------------------------------------------------------


def test_duplicate_app_cluster_names_name_both_keys():
    raw = with_cluster(1, name="app-aws")
    rejects(
        raw,
        "ocm-fleet:clusters[1].name: 'app-aws' is already used by ocm-fleet:clusters[0].name; "
        "cluster names are unique",
    )


def test_app_cluster_named_like_the_hub_is_a_duplicate():
    rejects(
        with_cluster(0, name="main"),
        "ocm-fleet:clusters[0].name: 'main' is already used by ocm-fleet:hub.name",
    )


def test_each_repeat_of_a_name_is_reported_against_its_first_use():
    raw = valid()
    raw["clusters"].append({"name": "app-aws", "cloud": "aws", "region": "us-east-1"})
    raw["clusters"].append({"name": "app-aws", "cloud": "azure", "region": "eastus2"})
    err = rejects(raw, "ocm-fleet:clusters[2].name: 'app-aws' is already used by", count=2)
    assert err.problems[1].startswith(
        "ocm-fleet:clusters[3].name: 'app-aws' is already used by ocm-fleet:clusters[0].name"
    ), err.problems


@pytest.mark.parametrize(
    "name",
    ["App-aws", "app_aws", "-app", "app-", "", "app.aws", "app aws", "app\n", 42, True],
    ids=[
        "uppercase",
        "underscore",
        "leading-dash",
        "trailing-dash",
        "empty",
        "dot",
        "space",
        "trailing-newline",
        "int",
        "bool",
    ],
)
def test_cluster_name_must_be_a_dns_1123_label(name):
    rejects(
        with_cluster(1, name=name),
        f"ocm-fleet:clusters[1].name: {name!r} is not a DNS-1123 label (lowercase letters, "
        "digits and '-', starting and ending with a letter or digit)",
    )


def test_missing_hub_name_is_called_missing():
    rejects(
        without(valid(), "hub", "name"), "ocm-fleet:hub.name: missing; it must be a DNS-1123 label"
    )


@pytest.mark.parametrize("cloud", ["aws", "azure", "existing"])
def test_name_longer_than_the_cloud_allows_is_rejected(cloud):
    limit = MAX_NAME_LENGTH[cloud]
    name = "a" * (limit + 1)
    cluster = {**EXISTING, "name": name} if cloud == "existing" else {"name": name, "cloud": cloud}
    if cloud == "aws":
        cluster["region"] = "eu-west-1"
    elif cloud == "azure":
        cluster["region"] = "westeurope"
    raw = valid()
    raw["clusters"][1] = cluster
    rejects(
        raw,
        f"ocm-fleet:clusters[1].name: {name!r} is {limit + 1} characters; {cloud} clusters "
        f"allow at most {limit} (cloud resource names derive from it)",
    )


@pytest.mark.parametrize(("cloud", "limit"), [("aws", 32), ("azure", 40), ("existing", 63)])
def test_name_of_exactly_the_cloud_limit_is_accepted(cloud, limit):
    assert MAX_NAME_LENGTH[cloud] == limit, f"{cloud} name limit changed: update the docs"
    name = "b" * limit
    raw = valid()
    raw["clusters"][1] = (
        {**EXISTING, "name": name}
        if cloud == "existing"
        else {"name": name, "cloud": cloud, "region": "eu-west-1" if cloud == "aws" else "eastus"}
    )
    fleet = parse_fleet_config(raw)
    assert fleet.clusters[1].name == name


# --- clouds --------------------------------------------------------------------------------


@pytest.mark.parametrize("cloud", ["gcp", "AWS", "", 3])
def test_unknown_cloud_is_rejected_with_the_choices(cloud):
    rejects(
        with_cluster(0, cloud=cloud),
        f"ocm-fleet:clusters[0].cloud: {cloud!r} is not one of aws, azure, existing",
    )


def test_missing_cloud_is_rejected():
    rejects(
        without(valid(), "clusters[0]", "cloud"),
        "ocm-fleet:clusters[0].cloud: missing; it must be one of aws, azure, existing",
    )


def test_hub_on_aws_is_rejected_because_eks_does_not_sign_client_auth_csrs():
    with pytest.raises(
        FleetConfigError,
        match=r"ocm-fleet:hub\.cloud: 'aws' is not supported for the hub: .*"
        r"EKS does not sign certificate signing requests with 'client auth' usage "
        r"\(aws/containers-roadmap#1856\)",
    ) as info:
        parse_fleet_config(with_hub(cloud="aws", region="eu-west-1"))
    assert len(info.value.problems) == 1, info.value.problems


def test_aws_is_fine_for_an_app_cluster():
    fleet = parse_fleet_config(valid())
    assert fleet.clusters[0].cloud == "aws"


# --- regions -------------------------------------------------------------------------------


@pytest.mark.parametrize("cloud", ["aws", "azure"])
@pytest.mark.parametrize("region", ["absent", ""])
def test_cloud_cluster_without_region_is_rejected(cloud, region):
    raw = valid()
    raw["clusters"][1] = {"name": "app-x", "cloud": cloud}
    if region != "absent":
        raw["clusters"][1]["region"] = region
    rejects(raw, f"ocm-fleet:clusters[1].region: missing; {cloud} clusters need a region")


@pytest.mark.parametrize(
    ("cloud", "region", "example"),
    [
        ("aws", "eu-west", "eu-west-1"),
        ("aws", "EU-WEST-1", "eu-west-1"),
        ("aws", "westeurope", "eu-west-1"),
        ("aws", "eu-west-1a", "eu-west-1"),
        ("aws", "eu-west-1\n", "eu-west-1"),
        ("aws", 5, "eu-west-1"),
        ("azure", "West Europe", "westeurope"),
        ("azure", "west-europe", "westeurope"),
        ("azure", "eu-west-1", "westeurope"),
        ("azure", "westeurope\n", "westeurope"),
        ("azure", ["westeurope"], "westeurope"),
    ],
)
def test_malformed_region_names_the_value_and_an_example(cloud, region, example):
    raw = valid()
    raw["clusters"][1] = {"name": "app-x", "cloud": cloud, "region": region}
    rejects(
        raw,
        f"ocm-fleet:clusters[1].region: {region!r} is not a {cloud} region name (e.g. {example!r})",
    )


@pytest.mark.parametrize(
    ("cloud", "region"),
    [("aws", "us-gov-west-1"), ("aws", "ap-northeast-1"), ("azure", "brazilsouth")],
)
def test_real_region_names_are_accepted(cloud, region):
    raw = with_cluster(1, cloud=cloud, region=region)
    assert parse_fleet_config(raw).clusters[1].region == region


# --- nodeCount, kubernetesVersion, nodeSize ------------------------------------------------


@pytest.mark.parametrize("count", [0, -1, "2", True, False, 2.0], ids=repr)
def test_node_count_must_be_a_positive_integer(count):
    rejects(
        with_cluster(0, nodeCount=count),
        f"ocm-fleet:clusters[0].nodeCount: {count!r} must be an integer of at least 1",
    )


def test_node_count_above_100_is_rejected():
    rejects(
        with_cluster(0, nodeCount=101),
        "ocm-fleet:clusters[0].nodeCount: 101 is above the supported 100",
    )


@pytest.mark.parametrize("count", [1, 100])
def test_node_count_bounds_are_accepted(count):
    assert parse_fleet_config(with_cluster(0, nodeCount=count)).clusters[0].node_count == count


@pytest.mark.parametrize(
    "version", ["1.35.2", "v1.35", 1.3, 1.35, "latest", "1.9", "2.35", "1.35\n", ""], ids=repr
)
def test_kubernetes_version_must_be_major_minor(version):
    rejects(
        with_cluster(1, kubernetesVersion=version),
        f"ocm-fleet:clusters[1].kubernetesVersion: {version!r} must be MAJOR.MINOR, such as "
        "'1.35' (quote it in YAML so 1.30 does not become 1.3)",
    )


@pytest.mark.parametrize("size", ["", "  ", 4], ids=repr)
def test_node_size_must_be_a_non_empty_string(size):
    rejects(
        with_cluster(0, nodeSize=size),
        f"ocm-fleet:clusters[0].nodeSize: {size!r} must be a non-empty string",
    )


# --- apiAllowedCidrs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("10.0.0.1/8", "10.0.0.1/8 has host bits set"),
        ("not-a-cidr", "does not appear to be an IPv4 or IPv6 network"),
        ("10.0.0.0/33", "10.0.0.0/33"),
        ("203.0.113.0/24 ", "does not appear to be an IPv4 or IPv6 network"),
    ],
)
def test_malformed_allowed_cidr_names_index_value_and_reason(value, reason):
    raw = valid()
    raw["apiAllowedCidrs"].append(value)
    rejects(raw, f"ocm-fleet:apiAllowedCidrs[1]: {value!r} is not a valid CIDR (")
    with pytest.raises(FleetConfigError, match=re.escape(reason)):
        parse_fleet_config(raw)


@pytest.mark.parametrize("value", [24, ["10.0.0.0/8"]], ids=repr)
def test_non_string_allowed_cidr_is_rejected(value):
    raw = valid()
    raw["apiAllowedCidrs"] = [value]
    rejects(
        raw,
        f"ocm-fleet:apiAllowedCidrs[0]: {value!r} is not a CIDR string such as '203.0.113.0/24'",
    )


@pytest.mark.parametrize("value", ["absent", [], "203.0.113.0/24", {"a": "10.0.0.0/8"}])
def test_allowed_cidrs_must_be_a_non_empty_list(value):
    raw = valid()
    if value == "absent":
        del raw["apiAllowedCidrs"]
    else:
        raw["apiAllowedCidrs"] = value
    shown = "missing; it" if value == "absent" else repr(value)
    rejects(
        raw,
        f"ocm-fleet:apiAllowedCidrs: {shown} must be a non-empty list of CIDRs that may "
        "reach the Kubernetes API servers",
    )


# --- clusters and hub shapes ---------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["absent", {"name": "app-aws", "cloud": "aws", "region": "eu-west-1"}, "app-aws", 3],
    ids=["missing", "mapping", "string", "int"],
)
def test_clusters_must_be_a_list(value):
    raw = valid()
    if value == "absent":
        del raw["clusters"]
    else:
        raw["clusters"] = value
    shown = "missing; it" if value == "absent" else repr(value)
    rejects(
        raw,
        f"ocm-fleet:clusters: {shown} must be a list of application clusters "
        "(each with name, cloud and region)",
    )


def test_empty_clusters_list_is_rejected():
    raw = valid()
    raw["clusters"] = []
    rejects(raw, "ocm-fleet:clusters: the list is empty; the fleet needs at least one app cluster")


@pytest.mark.parametrize("item", ["app-aws", ["app-aws", "aws"], 7], ids=repr)
def test_a_cluster_that_is_not_a_mapping_is_rejected(item):
    raw = valid()
    raw["clusters"][1] = item
    rejects(
        raw,
        f"ocm-fleet:clusters[1]: {item!r} must be a mapping with at least 'name', 'cloud' "
        "and 'region'",
    )


def test_missing_hub_is_rejected():
    raw = valid()
    del raw["hub"]
    rejects(raw, "ocm-fleet:hub: missing; set the main cluster (name, cloud, region)")


def test_hub_that_is_not_a_mapping_is_rejected():
    raw = valid()
    raw["hub"] = "main"
    rejects(raw, "ocm-fleet:hub: 'main' must be a mapping with at least 'name', 'cloud'")


@pytest.mark.parametrize(
    ("typo", "hint"),
    [
        ("nodecount", "did you mean 'nodeCount'? "),
        ("Region", "did you mean 'region'? "),
        ("size", ""),
    ],
)
def test_unknown_cluster_key_lists_the_known_keys(typo, hint):
    rejects(
        with_cluster(0, **{typo: 3}),
        f"ocm-fleet:clusters[0].{typo}: unknown key ({hint}known keys: {KNOWN_KEYS})",
    )


def test_unknown_hub_key_is_rejected():
    rejects(
        with_hub(nodes=3),
        "ocm-fleet:hub.nodes: unknown key (did you mean 'nodeSize'? known keys: apiServerUrl,",
    )


@pytest.mark.parametrize(
    ("typo", "hint"),
    [("protectdata", "'protectData'"), ("databasePasswordRotaton", "'databasePasswordRotation'")],
)
def test_a_misspelt_top_level_key_is_reported_not_ignored(typo, hint):
    """Through the real Pulumi config path: the key is not one the program reads, so without
    this check the setting would silently not apply."""
    config = {**pulumi_config(valid()), f"ocm-fleet:{typo}": "true"}
    with pytest.raises(
        FleetConfigError, match=re.escape(f"ocm-fleet:{typo}: unknown key (did you mean {hint}?")
    ):
        run_program(config, program=load_fleet_config)


@pytest.mark.parametrize(
    ("key", "value"), [("nodeCount", 3), ("nodeSize", "m6i.large"), ("kubernetesVersion", "1.34")]
)
def test_cloud_only_keys_are_refused_on_an_existing_cluster(key, value):
    raw = with_cluster(0, cloud="existing", egressIps=["192.0.2.1/32"], **{key: value})
    raw["clusters"][0].pop("region", None)
    rejects(raw, f"ocm-fleet:clusters[0].{key}: {value!r} is only valid with cloud: aws or azure")


# --- existing clusters ---------------------------------------------------------------------


@pytest.mark.parametrize("cloud", ["aws", "azure"])
@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("context", "kind-app"),
        ("kubeconfig", "~/.kube/config"),
        ("apiServerUrl", "https://203.0.113.10:6443"),
        ("egressIps", ["192.0.2.1"]),
    ],
)
def test_existing_only_keys_are_rejected_on_cloud_clusters(cloud, key, value):
    region = "eu-west-1" if cloud == "aws" else "westeurope"
    rejects(
        with_cluster(1, cloud=cloud, region=region, **{key: value}),
        f"ocm-fleet:clusters[1].{key}: only valid with cloud: existing "
        f"(a {cloud} cluster's value comes from the cloud)",
    )


def test_existing_hub_needs_api_server_url():
    raw = valid()
    raw["hub"] = {"name": "main", "cloud": "existing", "egressIps": ["192.0.2.10"]}
    rejects(
        raw,
        "ocm-fleet:hub.apiServerUrl: missing; an existing hub needs the https:// URL at which "
        "the application clusters reach its API server",
    )


@pytest.mark.parametrize("url", ["http://203.0.113.10:6443", "203.0.113.10:6443", "", 6443])
def test_existing_api_server_url_must_be_https(url):
    raw = valid()
    raw["clusters"][1] = {**EXISTING, "apiServerUrl": url}
    rejects(raw, f"ocm-fleet:clusters[1].apiServerUrl: {url!r} must be an https:// URL")


@pytest.mark.parametrize("ips", ["absent", [], "192.0.2.1", None], ids=repr)
def test_existing_cluster_needs_egress_ips(ips):
    raw = valid()
    raw["clusters"][1] = {k: v for k, v in EXISTING.items() if k != "egressIps"}
    if ips != "absent":
        raw["clusters"][1]["egressIps"] = ips
    shown = "missing; it" if ips in ("absent", None) else repr(ips)
    rejects(
        raw,
        f"ocm-fleet:clusters[1].egressIps: {shown} must be a non-empty list of the public "
        "addresses (CIDRs) this cluster's traffic leaves from",
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("192.0.2.300", "'192.0.2.300' is not a valid CIDR ("),
        ("10.0.0.1/8", "'10.0.0.1/8' is not a valid CIDR (10.0.0.1/8 has host bits set)"),
        ("kind-node", "'kind-node' is not a valid CIDR ("),
        (3232235521, "3232235521 is not a CIDR string such as '203.0.113.0/24'"),
    ],
)
def test_bad_egress_ip_entry_names_its_index(entry, message):
    raw = valid()
    raw["clusters"][1] = {**EXISTING, "egressIps": ["192.0.2.1", entry]}
    rejects(raw, f"ocm-fleet:clusters[1].egressIps[1]: {message}")


@pytest.mark.parametrize(("key", "value"), [("context", ""), ("kubeconfig", 5)])
def test_existing_context_and_kubeconfig_must_be_non_empty_strings(key, value):
    raw = valid()
    raw["clusters"][1] = {**EXISTING, key: value}
    rejects(raw, f"ocm-fleet:clusters[1].{key}: {value!r} must be a non-empty string")


# --- fleet-wide settings -------------------------------------------------------------------


@pytest.mark.parametrize(
    "version", ["v1.3.1", "1.3", "1.3.1.0", "latest", 1.3, "1.3.1\n"], ids=repr
)
def test_ocm_version_must_be_x_y_z_without_v(version):
    rejects(
        {**valid(), "ocmVersion": version},
        f"ocm-fleet:ocmVersion: {version!r} must be an OCM release such as '1.3.1' "
        "(no leading 'v')",
    )


@pytest.mark.parametrize("value", ["true", "yes", 1, 0], ids=repr)
def test_protect_data_must_be_a_bool(value):
    rejects(
        {**valid(), "protectData": value},
        f"ocm-fleet:protectData: {value!r} must be true or false",
    )


@pytest.mark.parametrize("value", [-1, "2", 1.5, True], ids=repr)
def test_database_password_rotation_must_be_a_non_negative_int(value):
    rejects(
        {**valid(), "databasePasswordRotation": value},
        f"ocm-fleet:databasePasswordRotation: {value!r} must be an integer of at least 0 "
        "(raise it by one to rotate the app's database password)",
    )


# --- every problem at once -----------------------------------------------------------------


def test_every_problem_is_reported_in_one_error():
    raw = {
        "hub": {"name": "main", "cloud": "aws", "region": "eu-west-1"},
        "clusters": [
            {"name": "App", "cloud": "aws", "region": "eu-west-1"},
            {"name": "app-azure", "cloud": "azure", "region": "West Europe", "nodecount": 3},
            {"name": "main", "cloud": "gcp", "region": "europe-west1", "nodeCount": True},
            "app-existing",
        ],
        "apiAllowedCidrs": ["10.0.0.1/8"],
        "ocmVersion": "v1.3.1",
        "protectData": "yes",
        "databasePasswordRotation": -1,
    }
    expected = [
        "ocm-fleet:hub.cloud: 'aws' is not supported for the hub",
        "ocm-fleet:clusters[0].name: 'App' is not a DNS-1123 label",
        "ocm-fleet:clusters[1].nodecount: unknown key (did you mean 'nodeCount'? known keys: ",
        "ocm-fleet:clusters[1].region: 'West Europe' is not a azure region name",
        "ocm-fleet:clusters[2].cloud: 'gcp' is not one of aws, azure, existing",
        "ocm-fleet:clusters[2].nodeCount: True must be an integer of at least 1",
        "ocm-fleet:clusters[3]: 'app-existing' must be a mapping",
        "ocm-fleet:clusters[2].name: 'main' is already used by ocm-fleet:hub.name",
        "ocm-fleet:apiAllowedCidrs[0]: '10.0.0.1/8' is not a valid CIDR",
        "ocm-fleet:ocmVersion: 'v1.3.1' must be an OCM release",
        "ocm-fleet:protectData: 'yes' must be true or false",
        "ocm-fleet:databasePasswordRotation: -1 must be an integer of at least 0",
        "ocm-fleet:eksAdminPrincipals: missing; the fleet has aws clusters (App)",
    ]
    with pytest.raises(FleetConfigError, match=r"\(13 problems\); fix Pulumi\.dev\.yaml") as info:
        parse_fleet_config(raw)
    problems = info.value.problems
    assert len(problems) == len(expected), "\n".join(problems)
    for start in expected:
        matching = [p for p in problems if p.startswith(start)]
        assert len(matching) == 1, f"expected one problem starting {start!r}, got {problems}"
        assert f"\n  - {matching[0]}" in str(info.value), "the message must list each problem"


def test_a_single_problem_is_singular_in_the_message():
    with pytest.raises(FleetConfigError, match=r"\(1 problem\); fix Pulumi"):
        parse_fleet_config({**valid(), "protectData": "no"})


# --- valid configs -------------------------------------------------------------------------


def test_minimal_config_gets_the_documented_defaults():
    fleet = parse_fleet_config(valid())
    assert fleet == FleetConfig(
        hub=ClusterSpec(
            name="main",
            cloud="azure",
            region="westeurope",
            node_count=2,
            node_size="Standard_D4s_v5",
            kubernetes_version="1.35",
        ),
        clusters=(
            ClusterSpec(
                name="app-aws",
                cloud="aws",
                region="eu-west-1",
                node_count=2,
                node_size="t3.large",
                kubernetes_version="1.35",
                nat_gateways="single",
                cloud_name="dev-app-aws",
            ),
            ClusterSpec(
                name="app-azure",
                cloud="azure",
                region="westeurope",
                node_count=2,
                node_size="Standard_D4s_v5",
                kubernetes_version="1.35",
            ),
        ),
        api_allowed_cidrs=("203.0.113.0/24",),
        ocm_version="1.3.1",
        protect_data=False,
        database_password_rotation=0,
        eks_admin_principals=("arn:aws:iam::123456789012:role/platform-admin",),
    )
    assert fleet.ocm_version == "1.3.1"
    assert fleet.protect_data is False
    assert fleet.database_password_rotation == 0


def test_hub_comes_first_in_all_clusters():
    fleet = parse_fleet_config(valid())
    assert [c.name for c in fleet.all_clusters] == ["main", "app-aws", "app-azure"]
    assert fleet.all_clusters[0] is fleet.hub


def test_overrides_are_kept():
    raw = with_cluster(0, nodeCount=5, nodeSize="m6i.xlarge", kubernetesVersion="1.34")
    raw.update(ocmVersion="1.4.0", protectData=True, databasePasswordRotation=3)
    fleet = parse_fleet_config(raw)
    app = fleet.clusters[0]
    assert (app.node_count, app.node_size, app.kubernetes_version) == (5, "m6i.xlarge", "1.34")
    assert (fleet.ocm_version, fleet.protect_data, fleet.database_password_rotation) == (
        "1.4.0",
        True,
        3,
    )


def test_existing_clusters_parse_with_normalised_egress_cidrs():
    raw = valid()
    raw["hub"] = {
        "name": "hub",
        "cloud": "existing",
        "kubeconfig": "/home/me/.kube/config",
        "apiServerUrl": "https://203.0.113.10:6443",
        "egressIps": ["203.0.113.10"],
    }
    raw["clusters"][1] = {**EXISTING, "egressIps": ["192.0.2.1", "198.51.100.0/24", "2001:db8::1"]}
    raw["apiAllowedCidrs"] = ["198.51.100.7"]
    fleet = parse_fleet_config(raw)
    assert fleet.hub == ClusterSpec(
        name="hub",
        cloud="existing",
        region="existing",
        node_count=2,
        node_size="",
        kubernetes_version="1.35",
        kubeconfig="/home/me/.kube/config",
        api_server_url="https://203.0.113.10:6443",
        egress_ips=("203.0.113.10/32",),
    )
    app = fleet.clusters[1]
    assert app.egress_ips == ("192.0.2.1/32", "198.51.100.0/24", "2001:db8::1/128")
    assert (app.context, app.kubeconfig, app.api_server_url) == ("kind-app", None, None)
    assert app.region == "existing"
    assert fleet.api_allowed_cidrs == ("198.51.100.7/32",)


def test_existing_cluster_keeps_a_region_label():
    raw = valid()
    raw["clusters"][1] = {**EXISTING, "region": "lab"}
    assert parse_fleet_config(raw).clusters[1].region == "lab"


# --- through Pulumi config -----------------------------------------------------------------


def test_dev_stack_ships_no_api_allowlist_and_loads_once_deploy_fills_it_in():
    shipped = load_stack_config(ROOT / "Pulumi.dev.yaml")
    assert "ocm-fleet:apiAllowedCidrs" not in shipped, (
        "Pulumi.dev.yaml must not ship an API allowlist (deploy.sh offers the caller's address)"
    )
    fleet = load_through_pulumi(dev_config())
    assert "0.0.0.0/0" not in fleet.api_allowed_cidrs
    assert [(c.name, c.cloud) for c in fleet.all_clusters] == [
        ("main", "azure"),
        ("app-aws", "aws"),
        ("app-azure", "azure"),
    ]


def test_load_fleet_config_raises_the_config_error_under_pulumi():
    config = pulumi_config(with_cluster(1, name="App_Azure"))
    with pytest.raises(
        FleetConfigError, match=re.escape("ocm-fleet:clusters[1].name: 'App_Azure' is not a")
    ):
        run_program(config, program=load_fleet_config)


@pytest.mark.parametrize(
    ("key", "text", "message"),
    [
        ("clusters", "app-aws", "ocm-fleet:clusters: 'app-aws' must be a list"),
        ("hub", "main", "ocm-fleet:hub: 'main' must be a mapping"),
        ("apiAllowedCidrs", "203.0.113.0/24", "ocm-fleet:apiAllowedCidrs: '203.0.113.0/24' must"),
    ],
)
def test_bare_scalar_for_a_structured_key_is_a_config_error(key, text, message):
    """`ocm-fleet:clusters: app-aws` in YAML reaches the program as plain text, not JSON."""
    config = pulumi_config(valid())
    config[f"ocm-fleet:{key}"] = text
    config["ocm-fleet:protectData"] = "maybe"
    with pytest.raises(FleetConfigError, match=re.escape(message)) as info:
        run_program(config, program=load_fleet_config)
    assert any("ocm-fleet:protectData: 'maybe'" in p for p in info.value.problems), (
        f"the other problems must be reported with it: {info.value.problems}"
    )


def test_the_graph_argument_records_what_was_registered_before_a_raise():
    """Control for the next test: a resource registered before the error is seen."""
    graph = Graph()

    def program() -> None:
        pulumi.ComponentResource("test:index:Probe", "probe")
        load_fleet_config()

    with pytest.raises(FleetConfigError):
        run_program(pulumi_config(with_hub(cloud="aws")), program=program, graph=graph)
    assert [(r.type, r.name) for r in graph.resources] == [("test:index:Probe", "probe")]


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
def test_bad_config_fails_the_whole_program_before_any_resource(preview):
    graph = Graph()
    config = pulumi_config(with_hub(cloud="aws", region="eu-west-1"))
    config["ocm-fleet:apiAllowedCidrs"] = ["10.0.0.1/8"]
    with pytest.raises(FleetConfigError, match=r"\(2 problems\)") as info:
        run_program(config, preview=preview, graph=graph)
    assert [p.split(":")[1] for p in info.value.problems] == [
        "hub.cloud",
        "apiAllowedCidrs[0]",
    ]
    assert graph.resources == [], f"no resource may be registered on bad config: {graph.resources}"


@pytest.mark.parametrize(
    ("text", "expected"), [("true", True), ("false", False), ("True", True), ("FALSE", False)]
)
def test_protect_data_string_from_pulumi_becomes_a_bool(text, expected):
    config = pulumi_config(valid())
    config["ocm-fleet:protectData"] = text
    assert load_through_pulumi(config).protect_data is expected


def test_protect_data_yes_from_pulumi_is_rejected():
    config = pulumi_config(valid())
    config["ocm-fleet:protectData"] = "yes"
    with pytest.raises(FleetConfigError, match=re.escape("ocm-fleet:protectData: 'yes' must be")):
        run_program(config, program=load_fleet_config)


@pytest.mark.parametrize(("text", "expected"), [("2", 2), ("0", 0), ("10", 10)])
def test_password_rotation_string_from_pulumi_becomes_an_int(text, expected):
    config = pulumi_config(valid())
    config["ocm-fleet:databasePasswordRotation"] = text
    rotation = load_through_pulumi(config).database_password_rotation
    assert rotation == expected and type(rotation) is int


@pytest.mark.parametrize("text", ["-1", "two", "1.5", " 2", "²"])
def test_bad_password_rotation_from_pulumi_is_a_config_error(text):
    config = pulumi_config(valid())
    config["ocm-fleet:databasePasswordRotation"] = text
    with pytest.raises(
        FleetConfigError,
        match=re.escape(f"ocm-fleet:databasePasswordRotation: {text!r} must be an integer"),
    ):
        run_program(config, program=load_fleet_config)


def test_unset_optional_settings_from_pulumi_get_defaults():
    fleet = load_through_pulumi(pulumi_config(valid()))
    assert (fleet.ocm_version, fleet.protect_data, fleet.database_password_rotation) == (
        "1.3.1",
        False,
        0,
    )


def test_ocm_version_from_pulumi_is_validated():
    config = pulumi_config(valid())
    config["ocm-fleet:ocmVersion"] = "1.4.0"
    assert load_through_pulumi(config).ocm_version == "1.4.0"
    config["ocm-fleet:ocmVersion"] = "v1.4.0"
    with pytest.raises(FleetConfigError, match=re.escape("ocm-fleet:ocmVersion: 'v1.4.0' must")):
        run_program(config, program=load_fleet_config)


# --- app versions, rollout and standbys ------------------------------------------------------


def with_standby(name: str = "standby-eu") -> dict[str, Any]:
    raw = valid()
    raw["clusters"] = [
        *raw["clusters"],
        {"name": name, "cloud": "azure", "region": "northeurope", "standby": True},
    ]
    return raw


def test_rollout_and_app_defaults_are_careful():
    fleet = parse_fleet_config(valid())
    assert fleet.rollout.canary == ("app-aws",), "the first app cluster is the canary"
    assert fleet.rollout.max_concurrency == "25%", "a share of the fleet: steps do not grow"
    assert fleet.rollout.max_failures == 0
    assert fleet.rollout.min_success_time == "2m"
    assert fleet.rollout.progress_deadline == "10m", "a finite deadline, unlike OCM's None"
    assert fleet.app.image_tags == {}
    assert [c.name for c in fleet.serving_clusters] == ["app-aws", "app-azure"]
    assert fleet.standby_clusters == ()


def test_rollout_and_app_settings_are_kept():
    raw = with_standby()
    raw["rollout"] = {
        "canary": ["app-azure", "app-aws"],
        "maxConcurrency": "25%",
        "minSuccessTime": "0",
        "progressDeadline": "1h",
        "maxFailures": "10%",
    }
    raw["app"] = {"imageTags": {"shopapi": "1.1", "router": "3.2@sha256:" + "a" * 64}}
    fleet = parse_fleet_config(raw, containers={"shopapi", "router"})
    assert fleet.rollout.canary == ("app-azure", "app-aws")
    assert (fleet.rollout.max_concurrency, fleet.rollout.max_failures) == ("25%", "10%")
    assert (fleet.rollout.min_success_time, fleet.rollout.progress_deadline) == ("0", "1h")
    assert fleet.app.image_tags == {"shopapi": "1.1", "router": "3.2@sha256:" + "a" * 64}
    assert [c.name for c in fleet.standby_clusters] == ["standby-eu"]
    assert fleet.clusters[2].standby is True


@pytest.mark.parametrize(
    ("rollout", "message"),
    [
        ({"canary": []}, r"rollout\.canary: \[\] must be a non-empty list"),
        ({"canary": ["nope"]}, r"rollout\.canary\[0\]: 'nope' is not an app cluster"),
        ({"canary": ["standby-eu"]}, r"rollout\.canary\[0\]: 'standby-eu' is a standby"),
        ({"canary": ["app-aws", "app-aws"]}, r"rollout\.canary\[1\]: 'app-aws' is listed twice"),
        ({"maxConcurrency": 0}, r"rollout\.maxConcurrency: 0 must be an integer of at least 1"),
        ({"maxConcurrency": "0%"}, r"rollout\.maxConcurrency: '0%' must be"),
        ({"maxConcurrency": "half"}, r"rollout\.maxConcurrency: 'half' must be"),
        ({"maxFailures": -1}, r"rollout\.maxFailures: -1 must be an integer of at least 0"),
        ({"maxFailures": "101%"}, r"rollout\.maxFailures: '101%' must be"),
        ({"progressDeadline": "None"}, r"rollout\.progressDeadline: 'None' .*forever"),
        ({"progressDeadline": "0s"}, r"rollout\.progressDeadline: '0s' would time every"),
        ({"progressDeadline": "10 minutes"}, r"rollout\.progressDeadline: '10 minutes' must be"),
        ({"minSuccessTime": 5}, r"rollout\.minSuccessTime: 5 must be a duration"),
        (
            {"maxConcurency": 2},
            r"rollout\.maxConcurency: unknown key \(did you mean 'maxConcurrency'",
        ),
    ],
)
def test_bad_rollout_settings_are_named(rollout, message):
    raw = with_standby()
    raw["rollout"] = rollout
    with pytest.raises(FleetConfigError, match=message):
        parse_fleet_config(raw)


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ({"imageTags": {"shopapi": 1.1}}, r"app\.imageTags\.shopapi: 1\.1 is not an image tag"),
        ({"imageTags": {"shopapi": "1 1"}}, r"app\.imageTags\.shopapi: '1 1' is not an image tag"),
        ({"imageTags": {"nginx": "1"}}, r"app\.imageTags\.nginx: no container of that name"),
        ({"imageTags": ["1.1"]}, r"app\.imageTags: \['1\.1'\] must map container names"),
        ({"images": {}}, r"app\.images: unknown key \(did you mean 'imageTags'"),
        ("1.1", r"ocm-fleet:app: '1\.1' must be a mapping"),
    ],
)
def test_bad_app_settings_are_named(app, message):
    raw = valid()
    raw["app"] = app
    with pytest.raises(FleetConfigError, match=message):
        parse_fleet_config(raw, containers={"shopapi", "router", "shopui", "website"})


def test_standby_must_sort_after_every_serving_cluster():
    raw = with_standby("aa-standby")
    with pytest.raises(
        FleetConfigError,
        match=r"clusters\[2\]\.name: standby 'aa-standby' sorts before serving cluster 'app-azure'",
    ):
        parse_fleet_config(raw)


def test_a_fleet_of_standbys_only_is_refused():
    raw = valid()
    for cluster in raw["clusters"]:
        cluster["standby"] = True
    with pytest.raises(FleetConfigError, match=r"every entry is a standby"):
        parse_fleet_config(raw)


@pytest.mark.parametrize("value", ["yes", 1])
def test_standby_must_be_a_bool(value):
    raw = valid()
    raw["clusters"][1]["standby"] = value
    with pytest.raises(
        FleetConfigError,
        match=rf"clusters\[1\]\.standby: {re.escape(repr(value))} must be true or false",
    ):
        parse_fleet_config(raw)


def test_the_hub_cannot_be_a_standby():
    # The hub's `standby` is its second home, a cluster entry, never the app clusters' flag.
    raw = valid()
    raw["hub"]["standby"] = False
    with pytest.raises(
        FleetConfigError,
        match=r"ocm-fleet:hub\.standby: False must be a cluster entry .* app clusters are made "
        r"standbys in their own entries",
    ):
        parse_fleet_config(raw)


def test_rollout_app_and_standby_from_pulumi_config_are_validated(dev):
    dev["ocm-fleet:rollout"] = {"maxConcurrency": "0%"}
    dev["ocm-fleet:app"] = {"imageTags": {"no-such-container": "1"}}
    with pytest.raises(FleetConfigError) as err:
        run_program(dev)
    assert "ocm-fleet:rollout.maxConcurrency: '0%'" in str(err.value)
    assert "ocm-fleet:app.imageTags.no-such-container: no container of that name in manifests/" in (
        str(err.value)
    )


def test_a_retiring_cluster_is_neither_canary_nor_held_to_the_standby_order():
    raw = with_standby()
    raw["clusters"][1]["retire"] = True
    fleet = parse_fleet_config(raw)
    assert [c.name for c in fleet.serving_clusters] == ["app-aws"]
    assert [c.name for c in fleet.standby_clusters] == ["standby-eu"]
    raw["rollout"] = {"canary": ["app-azure"]}
    with pytest.raises(FleetConfigError, match=r"rollout\.canary\[0\]: 'app-azure' is retiring"):
        parse_fleet_config(raw)
    raw = with_standby("aa-standby")
    raw["clusters"][2]["retire"] = True
    assert parse_fleet_config(raw).standby_clusters == (), "a retiring standby is just retiring"


# --- managed-service keys: EKS support and logs, AKS identity, windows and database disk -------


def test_cloud_service_keys_default_to_the_documented_values():
    fleet = parse_fleet_config(valid())
    eks, aks = fleet.clusters
    assert (eks.upgrade_policy, eks.log_retention_days) == ("STANDARD", 90)
    assert eks.import_log_group is False
    assert aks.control_plane_identity is None, "unset: decided by the stack's history"
    assert fleet.hub.database_storage is None, "unset: decided by the stack's history"
    assert aks.maintenance_window == MaintenanceWindow(
        day_of_week="Sunday", start_time="02:00", duration_hours=4, utc_offset="+00:00"
    )


def test_cloud_service_keys_are_read():
    raw = with_cluster(
        0, upgradePolicy="EXTENDED", controlPlaneLogRetentionDays=365, importLogGroup=True
    )
    raw["clusters"][1].update(
        controlPlaneIdentity="systemAssigned",
        maintenanceWindow={"dayOfWeek": "Saturday", "startTime": "23:00", "durationHours": 8},
    )
    raw["hub"]["databaseStorage"] = "clusterDefault"
    fleet = parse_fleet_config(raw)
    eks, aks = fleet.clusters
    assert (eks.upgrade_policy, eks.log_retention_days) == ("EXTENDED", 365)
    assert eks.import_log_group is True
    assert aks.control_plane_identity == "systemAssigned"
    assert aks.maintenance_window == MaintenanceWindow(
        day_of_week="Saturday", start_time="23:00", duration_hours=8, utc_offset="+00:00"
    )
    assert fleet.hub.database_storage == "clusterDefault"


@pytest.mark.parametrize(
    ("index", "changes", "message"),
    [
        (0, {"upgradePolicy": "standard"}, "clusters[0].upgradePolicy: 'standard' is not one of"),
        (
            0,
            {"controlPlaneLogRetentionDays": 10},
            "clusters[0].controlPlaneLogRetentionDays: 10 is not a retention CloudWatch Logs",
        ),
        (
            0,
            {"controlPlaneLogRetentionDays": "90"},
            "clusters[0].controlPlaneLogRetentionDays: '90' is not a retention",
        ),
        (1, {"upgradePolicy": "STANDARD"}, "clusters[1].upgradePolicy: 'STANDARD' is only valid"),
        (0, {"importLogGroup": "yes"}, "clusters[0].importLogGroup: 'yes' must be true or false"),
        (1, {"importLogGroup": True}, "clusters[1].importLogGroup: True is only valid with"),
        (
            1,
            {"controlPlaneIdentity": "managed"},
            "clusters[1].controlPlaneIdentity: 'managed' is not one of userAssigned, "
            "systemAssigned",
        ),
        (
            0,
            {"controlPlaneIdentity": "userAssigned"},
            "clusters[0].controlPlaneIdentity: 'userAssigned' is only valid with cloud: azure",
        ),
        (
            1,
            {"databaseStorage": "zoneRedundant"},
            "clusters[1].databaseStorage: only the hub runs the database",
        ),
        (
            1,
            {"maintenanceWindow": {"dayOfWeek": "sunday"}},
            "clusters[1].maintenanceWindow.dayOfWeek: 'sunday' is not one of Monday",
        ),
        (
            1,
            {"maintenanceWindow": {"startTime": 120}},
            "clusters[1].maintenanceWindow.startTime: 120 must be a time HH:MM",
        ),
        (
            1,
            {"maintenanceWindow": {"durationHours": 3}},
            "clusters[1].maintenanceWindow.durationHours: 3 must be an integer from 4",
        ),
        (
            1,
            {"maintenanceWindow": {"utcOffset": "UTC"}},
            "clusters[1].maintenanceWindow.utcOffset: 'UTC' must be an offset such as '+00:00'",
        ),
        (
            1,
            {"maintenanceWindow": {"day": "Sunday"}},
            "clusters[1].maintenanceWindow.day: unknown key",
        ),
        (
            0,
            {"nodeSize": "g4ad.xlarge"},
            "clusters[0].nodeSize: 'g4ad.xlarge' (g4ad) has no EKS-optimized Amazon Linux 2023",
        ),
    ],
)
def test_cloud_service_keys_name_the_key_and_the_value(index, changes, message):
    rejects(with_cluster(index, **changes), f"ocm-fleet:{message}")


def test_database_storage_is_refused_on_a_hub_that_is_not_on_azure():
    raw = valid()
    raw["hub"] = {**EXISTING, "name": "lab", "apiServerUrl": "https://lab:6443"}
    raw["hub"]["databaseStorage"] = "zoneRedundant"
    rejects(raw, "ocm-fleet:hub.databaseStorage: 'zoneRedundant' is only valid with cloud: azure")
