"""The guardrails, run through the registered policies on the objects pulumi_policy builds."""

import sys
from pathlib import Path

import pytest
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    Secret,
    StackValidationArgs,
)
from pulumi_policy.deserialize import SPECIAL_SECRET_SIG, SPECIAL_SIG_KEY, deserialize_properties
from pulumi_policy.proxy import UNKNOWN_ARRAY_VALUE, unknown_checking_proxy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ocm_fleet_policies as pol

PREFIX = "urn:pulumi:dev::ocm-fleet::"


def _opts() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)


def _props(raw: dict, *, keep_secrets: bool = False):
    """Properties as the analyzer hands them to policies (proxied, unknowns checked)."""
    return unknown_checking_proxy(deserialize_properties(raw, keep_secrets))


def _validate(policy, type_: str, name: str, raw: dict) -> list[str]:
    messages: list[str] = []
    args = ResourceValidationArgs(
        type_, _props(raw), f"{PREFIX}{type_}::{name}", name, _opts(), None
    )
    policy.validate(args, lambda message, urn=None: messages.append(message))
    return messages


def _resource(type_: str, name: str, raw: dict) -> PolicyResource:
    return PolicyResource(
        type_, _props(raw), f"{PREFIX}{type_}::{name}", name, _opts(), None, None, [], {}
    )


def _validate_stack(policy, resources: list[PolicyResource]) -> list[tuple[str, str]]:
    reported: list[tuple[str, str]] = []
    policy.validate(StackValidationArgs(resources), lambda m, urn=None: reported.append((m, urn)))
    return reported


def test_pack_registers_seven_policies_with_their_levels():
    levels = {p.name: p.enforcement_level for p in pol.POLICIES}
    assert levels == {
        "no-secret-in-manifestwork": EnforcementLevel.MANDATORY,
        "no-open-loadbalancer": EnforcementLevel.MANDATORY,
        "no-open-api-server": EnforcementLevel.ADVISORY,
        "eks-secrets-kms-encrypted": EnforcementLevel.MANDATORY,
        "manifestwork-depends-on-cluster-and-klusterlet": EnforcementLevel.MANDATORY,
        "kubeconfig-is-secret": EnforcementLevel.REMEDIATE,
        "images-pinned-by-digest": EnforcementLevel.MANDATORY,
    }
    assert all(p.description for p in pol.POLICIES)


# 1. Secrets in ManifestWorks -------------------------------------------------------------------


def _work(*manifests: dict) -> dict:
    return {
        "metadata": {"name": "bookstore", "namespace": "app-aws"},
        "spec": {"workload": {"manifests": list(manifests)}},
    }


DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "shopapi"}}


def test_manifestwork_without_secret_passes():
    assert (
        _validate(pol.no_secret_in_manifestwork, pol.MANIFEST_WORK, "bookstore", _work(DEPLOYMENT))
        == []
    )


def test_manifestwork_carrying_a_secret_is_refused_by_name():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-credentials"}}
    messages = _validate(
        pol.no_secret_in_manifestwork, pol.MANIFEST_WORK, "bookstore", _work(DEPLOYMENT, secret)
    )
    assert len(messages) == 1
    assert "ManifestWork bookstore" in messages[0]
    assert "'db-credentials'" in messages[0]
    assert "provider" in messages[0]


def test_replica_set_template_carrying_a_secret_is_refused_by_name():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-credentials"}}
    props = {"spec": {"manifestWorkTemplate": _work(DEPLOYMENT, secret)["spec"]}}
    messages = _validate(pol.no_secret_in_manifestwork, pol.REPLICA_SET, "bookstore", props)
    assert len(messages) == 1
    assert "ManifestWorkReplicaSet bookstore carries the Secret 'db-credentials'" in messages[0]
    clean = {"spec": {"manifestWorkTemplate": _work(DEPLOYMENT)["spec"]}}
    assert _validate(pol.no_secret_in_manifestwork, pol.REPLICA_SET, "bookstore", clean) == []


def test_manifestwork_policy_ignores_other_types():
    secret = {"kind": "Secret", "metadata": {"name": "x"}}
    assert _validate(pol.no_secret_in_manifestwork, pol.SERVICE, "s", _work(secret)) == []


# 2. LoadBalancer Services ----------------------------------------------------------------------


def _service(
    name: str,
    *,
    ranges=None,
    public: bool = False,
    type_: str = "LoadBalancer",
    cluster: str | None = None,
    parent: str | None = None,
):
    raw = {"metadata": {"name": name, "labels": {}}, "spec": {"type": type_}}
    if public:
        raw["metadata"]["labels"][pol.PUBLIC_ENTRY_LABEL] = "true"
    if ranges is not None:
        raw["spec"]["loadBalancerSourceRanges"] = ranges
    service = _resource(pol.SERVICE, name, raw)
    # A public entry is its PublicLoadBalancer's Service unless a test says otherwise.
    parent_type = parent if parent is not None else (pol.PUBLIC_LOAD_BALANCER if public else "")
    if parent_type:
        service.parent = _resource(parent_type, f"{name}-owner", {})
    if cluster is not None:
        provider_type = "pulumi:providers:kubernetes"
        service.provider = PolicyProviderResource(
            provider_type, _props({}), f"{PREFIX}{provider_type}::{cluster}-k8s", f"{cluster}-k8s"
        )
    return service


def test_allowlisted_edges_and_one_public_entry_pass():
    resources = [
        _service("public-lb", public=True),
        _service("edge-app-aws", ranges=["198.51.100.7/32"]),
        _service("database", ranges=["198.51.100.7/32", "2001:db8::/64"]),
        _service("internal", type_="ClusterIP"),
    ]
    assert _validate_stack(pol.no_open_loadbalancer, resources) == []


@pytest.mark.parametrize(
    ("ranges", "expected"),
    [
        (None, "has no spec.loadBalancerSourceRanges"),
        ([], "has no spec.loadBalancerSourceRanges"),
        (["10.0.0.0/8", "0.0.0.0/0"], "allows 0.0.0.0/0"),
        (["::/0"], "allows ::/0"),
    ],
)
def test_open_loadbalancer_is_refused(ranges, expected):
    edge = _service("edge-app-aws", ranges=ranges)
    reported = _validate_stack(pol.no_open_loadbalancer, [_service("public-lb", public=True), edge])
    assert [urn for _, urn in reported] == [edge.urn]
    assert expected in reported[0][0]
    assert edge.urn in reported[0][0]


@pytest.mark.parametrize("cluster", [None, "main"], ids=["default-provider", "main-k8s"])
def test_second_public_entry_on_one_cluster_is_refused(cluster):
    first = _service("public-lb", public=True, cluster=cluster)
    second = _service("another-lb", public=True, cluster=cluster)
    reported = _validate_stack(pol.no_open_loadbalancer, [first, second])
    assert sorted(urn for _, urn in reported) == sorted([first.urn, second.urn])
    assert all("exactly one public entry" in message for message, _ in reported), reported


def test_one_public_entry_on_each_main_home_passes():
    resources = [
        _service("public-lb", public=True, cluster="main"),
        _service("second-entry", public=True, cluster="second"),
        _service("edge-app-aws", ranges=["198.51.100.7/32", "198.51.100.8/32"], cluster="app"),
    ]
    assert _validate_stack(pol.no_open_loadbalancer, resources) == []


def test_public_entries_beyond_the_two_main_homes_are_refused():
    entries = [_service(f"{c}-entry", public=True, cluster=c) for c in ("main", "second", "third")]
    reported = _validate_stack(pol.no_open_loadbalancer, entries)
    assert sorted(urn for _, urn in reported) == sorted(e.urn for e in entries), reported
    assert all("at most 2" in message for message, _ in reported), reported


@pytest.mark.parametrize("parent", ["", "ocm-fleet:index:AppDelivery"], ids=["no-parent", "edge"])
def test_a_labelled_service_that_is_not_an_entrys_is_refused(parent):
    """With one entry, a second labelled Service on another cluster is not a second home's
    entry: only a PublicLoadBalancer's Service may be open to everyone."""
    entry = _service("public-lb", public=True, cluster="main")
    edge = _service("edge-app-aws", public=True, cluster="app", parent=parent)
    reported = _validate_stack(pol.no_open_loadbalancer, [entry, edge])
    assert [urn for _, urn in reported] == [edge.urn], reported
    assert f"is not the Service of a {pol.PUBLIC_LOAD_BALANCER}" in reported[0][0]


def test_allowlist_unknown_in_preview_is_not_reported():
    raw = {
        "metadata": {"name": "edge"},
        "spec": {"type": "LoadBalancer", "loadBalancerSourceRanges": UNKNOWN_ARRAY_VALUE},
    }
    assert _validate_stack(pol.no_open_loadbalancer, [_resource(pol.SERVICE, "edge", raw)]) == []


# 3. Open API servers ---------------------------------------------------------------------------


def test_eks_endpoint_limited_to_allowlist_passes():
    raw = {"vpcConfig": {"endpointPublicAccess": True, "publicAccessCidrs": ["203.0.113.0/24"]}}
    assert _validate(pol.no_open_api_server, pol.EKS_CLUSTER, "app-aws", raw) == []


def test_eks_private_endpoint_passes():
    raw = {"vpcConfig": {"endpointPublicAccess": False}}
    assert _validate(pol.no_open_api_server, pol.EKS_CLUSTER, "app-aws", raw) == []


@pytest.mark.parametrize("vpc", [{}, {"publicAccessCidrs": ["0.0.0.0/0"]}])
def test_eks_endpoint_open_to_everyone_is_reported(vpc):
    messages = _validate(pol.no_open_api_server, pol.EKS_CLUSTER, "app-aws", {"vpcConfig": vpc})
    assert len(messages) == 1
    assert "EKS cluster app-aws" in messages[0]
    assert "publicAccessCidrs" in messages[0]


def test_aks_with_authorized_ranges_passes():
    raw = {"apiServerAccessProfile": {"authorizedIPRanges": ["203.0.113.0/24"]}}
    assert _validate(pol.no_open_api_server, pol.AKS_CLUSTER, "main", raw) == []


@pytest.mark.parametrize(
    "raw", [{}, {"apiServerAccessProfile": {"authorizedIPRanges": ["0.0.0.0/0"]}}]
)
def test_aks_open_api_server_is_reported(raw):
    messages = _validate(pol.no_open_api_server, pol.AKS_CLUSTER, "main", raw)
    assert len(messages) == 1
    assert "AKS cluster main" in messages[0]
    assert "authorizedIPRanges" in messages[0]


# 4. EKS secrets encryption ---------------------------------------------------------------------

KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_eks_with_kms_secrets_encryption_passes():
    raw = {"encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": KEY_ARN}}}
    assert _validate(pol.eks_secrets_encrypted, pol.EKS_CLUSTER, "app-aws", raw) == []


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"encryptionConfig": {"resources": [], "provider": {"keyArn": KEY_ARN}}},
        {"encryptionConfig": {"resources": ["secrets"], "provider": {}}},
    ],
)
def test_eks_without_kms_secrets_encryption_is_refused(raw):
    messages = _validate(pol.eks_secrets_encrypted, pol.EKS_CLUSTER, "app-aws", raw)
    assert len(messages) == 1
    assert "EKS cluster app-aws" in messages[0]
    assert "keyArn" in messages[0]


# 5. ManifestWork dependencies ------------------------------------------------------------------


def _fleet(*, work_deps: str, klusterlet_kind: str = "cr"):
    """A ManifestWork on app-aws whose dependencies are chosen by `work_deps`."""
    if klusterlet_kind == "cr":
        klusterlet = _resource(
            pol.KLUSTERLET, "app-aws-klusterlet", {"spec": {"clusterName": "app-aws"}}
        )
    else:
        klusterlet = _resource(
            pol.HELM_RELEASE,
            "app-aws-klusterlet",
            {"values": {"klusterlet": {"clusterName": "app-aws"}}},
        )
    managed = _resource(pol.MANAGED_CLUSTER, "app-aws", {"metadata": {"name": "app-aws"}})
    other = _resource(pol.MANAGED_CLUSTER, "app-azure", {"metadata": {"name": "app-azure"}})
    work = _resource(pol.MANIFEST_WORK, "app-aws-bookstore", _work(DEPLOYMENT))
    if work_deps in ("chain", "managed-only"):
        work.property_dependencies = {"metadata": [managed]}
    if work_deps == "chain":
        managed.dependencies = [klusterlet]
    if work_deps == "wrong-cluster":
        work.dependencies = [other]
    return [klusterlet, managed, other, work], work


@pytest.mark.parametrize("kind", ["cr", "chart"])
def test_manifestwork_depending_on_cluster_then_klusterlet_passes(kind):
    resources, _ = _fleet(work_deps="chain", klusterlet_kind=kind)
    assert _validate_stack(pol.manifestwork_depends_on_klusterlet, resources) == []


def test_manifestwork_without_klusterlet_dependency_is_refused():
    resources, work = _fleet(work_deps="managed-only")
    reported = _validate_stack(pol.manifestwork_depends_on_klusterlet, resources)
    assert [urn for _, urn in reported] == [work.urn]
    assert "must depend on the klusterlet of 'app-aws'" in reported[0][0]


def test_manifestwork_on_the_wrong_cluster_is_refused_twice():
    resources, work = _fleet(work_deps="wrong-cluster")
    messages = [m for m, _ in _validate_stack(pol.manifestwork_depends_on_klusterlet, resources)]
    assert any("must depend on the ManagedCluster 'app-aws'" in m for m in messages)
    assert any("must depend on the klusterlet of 'app-aws'" in m for m in messages)
    assert all(work.urn in m for m in messages)


def _replica_set_fleet(*, covers: set[str]):
    """Two clusters with their klusterlets; a replica set depending on the `covers` ones."""
    resources, replica_set = [], _resource(pol.REPLICA_SET, "bookstore", {})
    for name in ("app-aws", "app-azure"):
        klusterlet = _resource(
            pol.KLUSTERLET, f"{name}-klusterlet", {"spec": {"clusterName": name}}
        )
        managed = _resource(pol.MANAGED_CLUSTER, name, {"metadata": {"name": name}})
        managed.dependencies = [klusterlet]
        resources += [klusterlet, managed]
        if name in covers:
            replica_set.dependencies = [*replica_set.dependencies, managed]
    return [*resources, replica_set], replica_set


def test_replica_set_depending_on_every_cluster_passes():
    resources, _ = _replica_set_fleet(covers={"app-aws", "app-azure"})
    assert _validate_stack(pol.manifestwork_depends_on_klusterlet, resources) == []


def test_replica_set_missing_a_cluster_is_refused_for_it():
    resources, replica_set = _replica_set_fleet(covers={"app-aws"})
    reported = _validate_stack(pol.manifestwork_depends_on_klusterlet, resources)
    messages = [m for m, _ in reported]
    assert [urn for _, urn in reported] == [replica_set.urn] * 2
    assert "must depend on the ManagedCluster 'app-azure'" in messages[0]
    assert "must depend on the klusterlet of 'app-azure'" in messages[1]


def test_transitive_dependencies_follow_cycles_without_looping():
    a = _resource(pol.SERVICE, "a", {})
    b = _resource(pol.SERVICE, "b", {})
    a.dependencies, b.property_dependencies = [b], {"spec": [a]}
    assert set(pol.transitive_dependencies(a)) == {a.urn, b.urn}


# 6. Kubeconfig secrets -------------------------------------------------------------------------

KUBECONFIG = "apiVersion: v1\nkind: Config\nusers: [{name: admin, user: {token: abc}}]\n"


def _provider_args(kubeconfig: object) -> ResourceValidationArgs:
    # Remediations get properties with the secret markers kept, exactly like this.
    props = _props({"kubeconfig": kubeconfig, "clusterIdentifier": "app-aws"}, keep_secrets=True)
    name = "app-aws"
    return ResourceValidationArgs(
        pol.KUBERNETES_PROVIDER,
        props,
        f"{PREFIX}{pol.KUBERNETES_PROVIDER}::{name}",
        name,
        _opts(),
        None,
    )


def test_secret_kubeconfig_is_left_alone():
    secret = {SPECIAL_SIG_KEY: SPECIAL_SECRET_SIG, "value": KUBECONFIG}
    assert pol.kubeconfig_is_secret.remediate(_provider_args(secret)) is None


def test_plain_kubeconfig_is_made_secret():
    args = _provider_args(KUBECONFIG)
    message = pol.kubeconfig_secret_violation(args.name, args.props)
    assert message is not None
    assert "Kubernetes provider app-aws" in message
    assert "pulumi.Output.secret" in message
    remediated = pol.kubeconfig_is_secret.remediate(args)
    assert isinstance(remediated["kubeconfig"], Secret)
    assert remediated["kubeconfig"].value == KUBECONFIG
    assert remediated["clusterIdentifier"] == "app-aws"


def test_validation_props_hide_secretness():
    # Why policy 6 remediates: the props a validation gets are the same for both cases.
    secret = {SPECIAL_SIG_KEY: SPECIAL_SECRET_SIG, "value": KUBECONFIG}
    assert (
        _props({"kubeconfig": secret})["kubeconfig"]
        == _props({"kubeconfig": KUBECONFIG})["kubeconfig"]
    )
