"""Every policy of the guardrails pack (policy/), run on the graph the whole program declares.

The recorded registrations are turned into exactly what pulumi_policy's analyzer server hands to
policies (pulumi_policy/policy.py, `_PolicyAnalyzerServicer`):

- `Analyze` (resource policies) gets each resource's inputs; `Remediate` (remediation policies)
  runs first, on the same inputs with secret markers kept, and its result replaces the inputs.
- `AnalyzeStack` (stack policies) gets every resource the engine registered (custom resources,
  components, providers and the root Stack) with its outputs, `dependencies` and
  `property_dependencies` as PolicyResource objects, `parent` as a PolicyResource.

Properties come from `wire_inputs`, the struct the engine received, through
`deserialize_properties` (secrets unwrapped, or kept as `Secret` for remediations) and
`unknown_checking_proxy` (unknowns raise UnknownValueError on access). Under mocks a resource's
outputs are its inputs plus what the cloud computes; the policies only read inputs.
"""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import STANDBY_FLEETS, dev_config
from conftest import fleet_graph as _fleet_graph
from harness import ROOT, Graph, Registered, is_secret, is_unknown, run_program, wire_get
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Secret,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import (
    SPECIAL_SECRET_SIG,
    SPECIAL_SIG_KEY,
    deserialize_properties,
    serialize_properties,
)
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

sys.path.insert(0, str(ROOT / "policy"))

import ocm_fleet_policies as pol

STACK_TYPE = "pulumi:pulumi:Stack"
# dev-open: the dev fleet deployed with --allow-open-api (apiAllowedCidrs 0.0.0.0/0).
OPEN_API = "dev-open"
MODES = [(f, p) for f in ("dev", "large", "local", OPEN_API) for p in (False, True)]
MODE_IDS = [f"{f}-{'preview' if p else 'update'}" for f, p in MODES]
# The fleets with a second home, and with it a second public entry.
STANDBY_MODES = [(f, p) for f in STANDBY_FLEETS for p in (False, True)]
STANDBY_IDS = [f"{f}-{'preview' if p else 'update'}" for f, p in STANDBY_MODES]
_OPEN_GRAPHS: dict[bool, Graph] = {}


def fleet_graph(fleet: str, preview: bool) -> Graph:
    if fleet != OPEN_API:
        return _fleet_graph(fleet, preview)
    if preview not in _OPEN_GRAPHS:
        config = {**dev_config(), "ocm-fleet:apiAllowedCidrs": ["0.0.0.0/0"]}
        _OPEN_GRAPHS[preview] = run_program(config, preview=preview)
    return _OPEN_GRAPHS[preview]


EKS_AND_AKS = {pol.EKS_CLUSTER, pol.AKS_CLUSTER}
KLUSTERLET_RELEASE_CHART = "klusterlet"


# The analyzer's view of a recorded graph --------------------------------------------------------


class _Watched(Mapping):
    """A resource's top-level props that note the resource's URN in `seen` when a policy reads
    them. Everything else is the SDK's own proxy, unchanged: reads go straight through."""

    def __init__(self, props: Mapping[str, Any], urn: str, seen: set[str]):
        self._props, self._urn, self._seen = props, urn, seen

    def __getitem__(self, key: str) -> Any:
        self._seen.add(self._urn)
        return self._props[key]

    def __iter__(self) -> Iterator[str]:
        self._seen.add(self._urn)
        return iter(self._props)

    def __len__(self) -> int:
        self._seen.add(self._urn)
        return len(self._props)


def _props(wire: Mapping[str, Any], *, keep_secrets: bool = False) -> Mapping[str, Any]:
    """Properties as the analyzer builds them from the request struct."""
    return unknown_checking_proxy(deserialize_properties(copy.deepcopy(dict(wire)), keep_secrets))


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def _seconds(duration: str) -> float:
    """A custom timeout as the engine forwards it: Go duration string -> seconds (0 if unset)."""
    parts = _DURATION.findall(duration)
    assert "".join(n + u for n, u in parts) == duration, f"unparsed custom timeout {duration!r}"
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def _options(res: Registered) -> PolicyResourceOptions:
    opts, timeouts = res.options, res.options["customTimeouts"]
    return PolicyResourceOptions(
        protect=opts["protect"],
        ignore_changes=list(opts["ignoreChanges"]),
        # The recording keeps the flag, not whether it was set: unset and False look alike.
        delete_before_replace=True if opts["deleteBeforeReplace"] else None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(
            _seconds(timeouts["create"]), _seconds(timeouts["update"]), _seconds(timeouts["delete"])
        ),
        additional_secret_outputs=list(opts["additionalSecretOutputs"]),
        parent=res.parent or None,
    )


_DEFAULT_OPTIONS: dict[str, Any] = {
    "protect": False,
    "ignoreChanges": [],
    "deleteBeforeReplace": False,
    "additionalSecretOutputs": [],
    "customTimeouts": {"create": "", "update": "", "delete": ""},
}


def _stack_resource(graph: Graph) -> Registered:
    """The root Stack, which the engine registers and analyzes too; the recording leaves it out."""
    parents = {r.parent for r in graph.resources if r.parent.split("::")[2:3] == [STACK_TYPE]}
    assert len(parents) == 1, f"expected one root Stack as parent, found {parents}"
    urn = parents.pop()
    return Registered(
        type=STACK_TYPE,
        name=urn.rsplit("::", 1)[1],
        urn=urn,
        parent="",
        provider="",
        custom=False,
        dependencies=[],
        property_dependencies={},
        options=copy.deepcopy(_DEFAULT_OPTIONS),
        inputs={},
        wire_inputs={},
    )


def _analyzed(graph: Graph) -> list[Registered]:
    return [_stack_resource(graph), *graph.resources]


def _provider(res: Registered, by_urn: Mapping[str, Registered]) -> PolicyProviderResource | None:
    """The provider as the engine describes it: type, URN, name and the provider's inputs.

    Resources on a default provider (registered by the engine, not the program) get None here."""
    prov = by_urn.get(res.provider_urn)
    if prov is None:
        return None
    return PolicyProviderResource(prov.type, _props(prov.wire_inputs), prov.urn, prov.name)


def policy_resources(
    graph: Graph, seen: set[str], props_of: Mapping[str, Mapping[str, Any]]
) -> list[PolicyResource]:
    """`StackValidationArgs.resources`, built as `AnalyzeStack` builds them."""
    analyzed = _analyzed(graph)
    by_urn = {r.urn: r for r in analyzed}
    resources = {
        r.urn: PolicyResource(
            r.type,
            _Watched(_props(props_of[r.urn]), r.urn, seen),
            r.urn,
            r.name,
            _options(r),
            _provider(r, by_urn),
            None,
            [],
            {},
        )
        for r in analyzed
    }
    for r in analyzed:
        resource = resources[r.urn]
        if r.parent in resources:
            resource.parent = resources[r.parent]
        resource.dependencies = [resources[u] for u in r.dependencies if u in resources]
        resource.property_dependencies = {
            key: [resources[u] for u in urns if u in resources]
            for key, urns in r.property_dependencies.items()
        }
    return list(resources.values())


# Running the pack ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    policy: str
    level: EnforcementLevel
    urn: str
    message: str

    def __str__(self) -> str:
        return f"[{self.level.value}] {self.policy} on {self.urn or '<stack>'}: {self.message}"


@dataclass
class PackRun:
    violations: list[Violation] = field(default_factory=list)
    remediated: dict[str, dict[str, Any]] = field(default_factory=dict)
    """policy name -> {urn: the properties the remediation returned}"""
    cannot_run: list[str] = field(default_factory=list)
    """What the analyzer reports when a policy trips over an unknown value in preview."""
    seen: dict[str, set[str]] = field(default_factory=dict)
    """policy name -> URNs of the resources whose properties the policy read"""

    def mandatory(self) -> list[Violation]:
        """Mandatory findings, except the refusal of images components/images.yaml marks
        unresolved: refused until resolved or allowed by the policy's flag, and checked on
        their own (tests/test_images.py)."""
        return [
            v
            for v in self.violations
            if v.level == EnforcementLevel.MANDATORY and not unresolved_image(v)
        ]


def _level(policy: Any) -> EnforcementLevel:
    # Every policy in the pack declares its level; a pack-wide default would apply otherwise.
    assert policy.enforcement_level is not None, f"policy {policy.name} declares no level"
    return policy.enforcement_level


def run_pack(graph: Graph) -> PackRun:
    run = PackRun(seen={p.name: set() for p in pol.POLICIES})
    analyzed = _analyzed(graph)
    by_urn = {r.urn: r for r in analyzed}
    # What each resource carries into AnalyzeStack: its inputs after remediation (the engine
    # stores remediated inputs and the provider computes outputs from them); the Stack's outputs.
    final_props: dict[str, Mapping[str, Any]] = {}

    for res in analyzed:
        inputs: Mapping[str, Any] = res.wire_inputs
        # Remediate pass: REMEDIATE-level resource policies, secrets kept as `Secret`.
        for policy in pol.POLICIES:
            if not isinstance(policy, ResourceValidationPolicy):
                continue
            if _level(policy) != EnforcementLevel.REMEDIATE or not policy.has_remediation():
                continue
            props = _Watched(_props(inputs, keep_secrets=True), res.urn, run.seen[policy.name])
            args = ResourceValidationArgs(
                res.type, props, res.urn, res.name, _options(res), _provider(res, by_urn)
            )
            try:
                new_props = policy.remediate(args)
            except UnknownValueError as e:
                run.cannot_run.append(f"{policy.name} on {res.urn}: {e.message}")
                continue
            if new_props:
                run.remediated.setdefault(policy.name, {})[res.urn] = dict(new_props)
                inputs = serialize_properties(new_props)
        # Analyze pass: resource validations on the (remediated) inputs, secrets unwrapped.
        for policy in pol.POLICIES:
            if not isinstance(policy, ResourceValidationPolicy) or not policy.has_validation():
                continue
            level = _level(policy)
            if level == EnforcementLevel.REMEDIATE:
                level = EnforcementLevel.MANDATORY  # what the analyzer reports a validation at
            props = _Watched(_props(inputs), res.urn, run.seen[policy.name])
            args = ResourceValidationArgs(
                res.type, props, res.urn, res.name, _options(res), _provider(res, by_urn)
            )

            def report(message: str, urn: str | None = None, *, _p=policy, _l=level, _r=res):
                # Resource validations always report against the resource validated.
                run.violations.append(Violation(_p.name, _l, _r.urn, message))

            try:
                result = policy.validate(args, report)
            except UnknownValueError as e:
                run.cannot_run.append(f"{policy.name} on {res.urn}: {e.message}")
                continue
            assert result is None, f"{policy.name} returned an awaitable; run it like the analyzer"
        final_props[res.urn] = graph.stack_wire_outputs if res.type == STACK_TYPE else inputs

    # AnalyzeStack: every stack policy on a fresh set of resources, as the analyzer builds them.
    for policy in pol.POLICIES:
        if not isinstance(policy, StackValidationPolicy):
            continue
        level = _level(policy)
        if level == EnforcementLevel.REMEDIATE:
            level = EnforcementLevel.MANDATORY
        resources = policy_resources(graph, run.seen[policy.name], final_props)

        def report_stack(message: str, urn: str | None = None, *, _p=policy, _l=level):
            # The engine files a violation under its URN when that URN is in the stack.
            run.violations.append(Violation(_p.name, _l, urn if urn in by_urn else "", message))

        try:
            result = policy.validate(StackValidationArgs(resources), report_stack)
        except UnknownValueError as e:
            run.cannot_run.append(f"{policy.name}: {e.message}")
            continue
        assert result is None, f"{policy.name} returned an awaitable; run it like the analyzer"
    return run


_RUNS: dict[tuple[str, bool], PackRun] = {}


def pack_run(fleet: str, preview: bool) -> PackRun:
    key = (fleet, preview)
    if key not in _RUNS:
        _RUNS[key] = run_pack(fleet_graph(fleet, preview))
    return _RUNS[key]


def _listing(violations: list[Violation]) -> str:
    return "\n".join(str(v) for v in violations) or "(none)"


# The pack on the real graph --------------------------------------------------------------------


def test_the_pack_is_the_one_registered_with_pulumi():
    # If a policy were added to the pack without being run here, this file would miss it.
    main = (ROOT / "policy" / "__main__.py").read_text()
    assert "policies=POLICIES" in main
    assert {type(p) for p in pol.POLICIES} <= {ResourceValidationPolicy, StackValidationPolicy}
    assert len({p.name for p in pol.POLICIES}) == len(pol.POLICIES) == 7


UNPINNED = re.compile(r"deploys the image '([^']+)' by tag")


def unresolved_image(violation: Violation) -> str | None:
    """The image of an images-pinned-by-digest violation when components/images.yaml marks it
    unresolved: those are refused until resolved, or allowed with the policy's flag."""
    from components import images

    found = UNPINNED.search(violation.message)
    if violation.policy != "images-pinned-by-digest" or not found:
        return None
    entry = images.read().get(found.group(1))
    return found.group(1) if entry and not entry.digest else None


@pytest.mark.parametrize(("fleet", "preview"), MODES + STANDBY_MODES, ids=MODE_IDS + STANDBY_IDS)
def test_real_graph_has_no_mandatory_violation(fleet, preview):
    run = pack_run(fleet, preview)
    refused = [v for v in run.mandatory() if not unresolved_image(v)]
    assert refused == [], (
        f"the {fleet} fleet would be refused by the guardrails:\n{_listing(refused)}"
    )
    assert run.cannot_run == [], f"policies that could not run on {fleet}: {run.cannot_run}"
    assert run.remediated == {}, (
        f"remediations on {fleet} (every kubeconfig should already be a secret): "
        f"{ {p: sorted(urns) for p, urns in run.remediated.items()} }"
    )


@pytest.mark.parametrize(("fleet", "preview"), MODES, ids=MODE_IDS)
def test_every_policy_reads_every_resource_it_governs(fleet, preview):
    graph = fleet_graph(fleet, preview)
    run = pack_run(fleet, preview)
    governed = {
        "no-secret-in-manifestwork": {pol.MANIFEST_WORK, pol.REPLICA_SET},
        "no-open-loadbalancer": {pol.SERVICE},
        "no-open-api-server": EKS_AND_AKS,
        "eks-secrets-kms-encrypted": {pol.EKS_CLUSTER},
        "manifestwork-depends-on-cluster-and-klusterlet": {pol.MANIFEST_WORK, pol.REPLICA_SET},
        "kubeconfig-is-secret": {pol.KUBERNETES_PROVIDER},
        "images-pinned-by-digest": pol.WORKLOADS
        | {
            pol.MANIFEST_WORK,
            pol.REPLICA_SET,
            pol.CLUSTER_MANAGER,
            pol.KLUSTERLET,
            pol.HELM_RELEASE,
        },
    }
    assert set(governed) == {p.name for p in pol.POLICIES}
    dev_counts = {
        pol.MANIFEST_WORK: 2,
        pol.REPLICA_SET: 1,
        pol.SERVICE: 7,
        pol.EKS_CLUSTER: 1,
        pol.AKS_CLUSTER: 2,
    }
    expected_counts = {
        "dev": dev_counts,
        OPEN_API: dev_counts,
        "large": {pol.MANIFEST_WORK: 7, pol.REPLICA_SET: 1, pol.EKS_CLUSTER: 3, pol.AKS_CLUSTER: 4},
        "local": {
            pol.MANIFEST_WORK: 2,
            pol.REPLICA_SET: 1,
            pol.SERVICE: 7,
            pol.EKS_CLUSTER: 0,
            pol.AKS_CLUSTER: 0,
        },
    }[fleet]
    if fleet == "local":
        # kind clusters have no cloud API allowlist or KMS: those policies have nothing here.
        del governed["no-open-api-server"], governed["eks-secrets-kms-encrypted"]
    for type_, count in expected_counts.items():
        assert len(graph.of_type(type_)) == count, f"the {fleet} fleet should have {count} {type_}"
    for policy, types in governed.items():
        urns = {r.urn for r in graph.resources if r.type in types}
        assert urns, f"the {fleet} fleet has nothing for {policy} to check"
        missed = sorted(urns - run.seen[policy])
        assert not missed, f"{policy} never read the properties of {missed}"
    # The dependency policy walks from the replica set to every ManagedCluster and klusterlet.
    walked = run.seen["manifestwork-depends-on-cluster-and-klusterlet"]
    for kind in (pol.MANAGED_CLUSTER, pol.KLUSTERLET):
        missed = sorted(r.urn for r in graph.of_type(kind) if r.urn not in walked)
        assert not missed, f"the dependency policy never reached {missed}"


@pytest.mark.parametrize(("fleet", "preview"), MODES, ids=MODE_IDS)
def test_advisory_findings_are_the_open_api_servers_of_the_dev_fleet(fleet, preview):
    graph = fleet_graph(fleet, preview)
    run = pack_run(fleet, preview)
    advisory = [v for v in run.violations if v.level == EnforcementLevel.ADVISORY]
    assert all(v.policy == "no-open-api-server" for v in advisory), _listing(advisory)
    assert pol.no_open_api_server.enforcement_level == EnforcementLevel.ADVISORY
    if fleet != OPEN_API:
        # apiAllowedCidrs are narrow: every API server is limited to them.
        assert advisory == [], f"narrow CIDRs still reported:\n{_listing(advisory)}"
        return
    # dev-open has apiAllowedCidrs 0.0.0.0/0. The EKS allowlist is plain config, known in preview
    # too. The AKS authorizedIPRanges are computed (the hub's egress IPs join them), so preview
    # cannot know them and the policy, by design, reports AKS only on the update.
    types = EKS_AND_AKS if not preview else {pol.EKS_CLUSTER}
    expected = {r.urn for r in graph.resources if r.type in types}
    reported = {v.urn for v in advisory}
    assert reported == expected, (
        f"open API servers reported {sorted(reported)}, expected {sorted(expected)}"
    )
    for v in advisory:
        res = graph.by_urn[v.urn]
        cloud = "EKS" if res.type == pol.EKS_CLUSTER else "AKS"
        assert f"{cloud} cluster {res.name} " in v.message, f"message for {res.name}: {v.message}"
        assert "0.0.0.0/0" in v.message, f"message for {res.name}: {v.message}"
    if preview:
        for aks in graph.of_type(pol.AKS_CLUSTER):
            ranges = aks.wire_inputs["apiServerAccessProfile"]["authorizedIPRanges"]
            assert is_unknown(ranges), f"AKS {aks.name} ranges are known in preview: {ranges}"


# What each policy decides on: (resource type, path to the value). All known on the update.
DECISIVE = {
    "no-secret-in-manifestwork": [(pol.REPLICA_SET, pol.WORK_MANIFESTS[pol.REPLICA_SET])],
    "no-open-loadbalancer": [(pol.SERVICE, ("spec", "loadBalancerSourceRanges"))],
    "no-open-api-server": [
        (pol.EKS_CLUSTER, ("vpcConfig", "publicAccessCidrs")),
        (pol.AKS_CLUSTER, ("apiServerAccessProfile", "authorizedIPRanges")),
    ],
    "eks-secrets-kms-encrypted": [(pol.EKS_CLUSTER, ("encryptionConfig", "provider", "keyArn"))],
    "manifestwork-depends-on-cluster-and-klusterlet": [
        (pol.MANAGED_CLUSTER, ("metadata", "name")),
        (pol.KLUSTERLET, ("spec", "clusterName")),
    ],
}


def _unknown_decisive_values(graph: Graph) -> list[str]:
    found = []
    for policy, checks in DECISIVE.items():
        for type_, path in checks:
            for res in graph.of_type(type_):
                value = wire_get(res.wire_inputs, *path)
                if is_unknown(value) or (isinstance(value, list) and any(map(is_unknown, value))):
                    found.append(f"{policy}: {res.name} {'.'.join(path)}")
    return found


@pytest.mark.parametrize("fleet", ["dev", "large", "local"])
def test_update_decides_on_known_values(fleet):
    # The clean update result is not an artefact of unknowns: every value the policies decide
    # on is known, and the replica set has manifests to look through.
    graph = fleet_graph(fleet, preview=False)
    assert _unknown_decisive_values(graph) == []
    works = graph.of_type(pol.REPLICA_SET)
    assert works
    for work in works:
        manifests = wire_get(work.wire_inputs, *pol.WORK_MANIFESTS[pol.REPLICA_SET])
        assert manifests, f"ManifestWorkReplicaSet {work.name} has no manifests to check"


@pytest.mark.parametrize("fleet", ["dev", "large", "local"])
def test_preview_defers_what_it_cannot_know(fleet):
    # Preview: Service allowlists and AKS ranges are computed from cloud outputs, so the
    # policies let them pass and decide on the update. The replica set's template is plain
    # config and is checked in preview too. Listed here so that a change in what preview can
    # check is seen.
    graph = fleet_graph(fleet, preview=True)
    unknown = _unknown_decisive_values(graph)
    lbs = [
        s.name
        for s in graph.of_type(pol.SERVICE)
        if wire_get(s.wire_inputs, "spec", "type") == "LoadBalancer"
        and wire_get(s.wire_inputs, "metadata", "labels", pol.PUBLIC_ENTRY_LABEL) != "true"
    ]
    expected = sorted(
        [f"no-open-loadbalancer: {n} spec.loadBalancerSourceRanges" for n in lbs]
        + [
            f"no-open-api-server: {a.name} apiServerAccessProfile.authorizedIPRanges"
            for a in graph.of_type(pol.AKS_CLUSTER)
        ]
        + [
            f"eks-secrets-kms-encrypted: {e.name} encryptionConfig.provider.keyArn"
            for e in graph.of_type(pol.EKS_CLUSTER)
        ]
    )
    assert sorted(unknown) == expected


# The pack catches mistakes made to the real graph ----------------------------------------------


def _dev(preview: bool) -> Graph:
    return copy.deepcopy(fleet_graph("dev", preview))


def _one(graph: Graph, type_: str, name: str | None = None) -> Registered:
    found = [r for r in graph.of_type(type_) if name is None or r.name == name]
    assert found, f"the dev fleet has no {type_} {name or ''}"
    return found[0]


def _is_klusterlet(res: Registered) -> bool:
    if res.type == pol.KLUSTERLET:
        return True
    return res.type == pol.HELM_RELEASE and res.wire_inputs.get("chart") == (
        KLUSTERLET_RELEASE_CHART
    )


def _reaches(graph: Graph, start: str, targets: set[str]) -> bool:
    """True when `start` is, or depends through dependencies/property dependencies on, a target."""
    by_urn, todo, seen = graph.by_urn, [start], set()
    while todo:
        urn = todo.pop()
        if urn in seen:
            continue
        seen.add(urn)
        if urn in targets:
            return True
        res = by_urn.get(urn)
        if res is not None:
            todo += res.dependencies
            todo += [u for urns in res.property_dependencies.values() for u in urns]
    return False


def _only_new_mandatory(run: PackRun, policy: str, urn: str) -> list[Violation]:
    mandatory = run.mandatory()
    others = [v for v in mandatory if (v.policy, v.urn) != (policy, urn)]
    assert others == [], f"unexpected violations besides {policy} on {urn}:\n{_listing(others)}"
    return mandatory


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
def test_replica_set_cut_off_from_the_clusters_and_klusterlets_is_refused(preview):
    graph = _dev(preview)
    work = _one(graph, pol.REPLICA_SET)
    clusters = sorted(r.wire_inputs["metadata"]["name"] for r in graph.of_type(pol.MANAGED_CLUSTER))
    targets = {r.urn for r in graph.resources if r.type == pol.MANAGED_CLUSTER or _is_klusterlet(r)}
    assert _reaches(graph, work.urn, targets), f"{work.name} had no path to cut"
    work.dependencies = [u for u in work.dependencies if not _reaches(graph, u, targets)]
    work.property_dependencies = {
        key: [u for u in urns if not _reaches(graph, u, targets)]
        for key, urns in work.property_dependencies.items()
    }
    assert not _reaches(graph, work.urn, targets), f"{work.name} still reaches one"

    run = run_pack(graph)
    found = _only_new_mandatory(run, "manifestwork-depends-on-cluster-and-klusterlet", work.urn)
    messages = [v.message for v in found]
    assert len(messages) == 2 * len(clusters), (
        f"{work.name} should be refused for each ManagedCluster and klusterlet: {messages}"
    )
    for cluster in clusters:
        assert any(f"must depend on the ManagedCluster {cluster!r}" in m for m in messages), (
            f"{work.name}: no ManagedCluster {cluster!r} finding in {messages}"
        )
        assert any(f"must depend on the klusterlet of {cluster!r}" in m for m in messages), (
            f"{work.name}: no klusterlet of {cluster!r} finding in {messages}"
        )
    assert all(work.urn in m for m in messages), f"messages do not name {work.urn}: {messages}"


def _secret_wrapped(value: Any) -> dict[str, Any]:
    return {SPECIAL_SIG_KEY: SPECIAL_SECRET_SIG, "value": value}


@pytest.mark.parametrize("as_secret", [False, True], ids=["plain", "pulumi-secret"])
@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
def test_secret_added_to_the_replica_set_template_is_refused(as_secret, preview):
    graph = _dev(preview)
    work = _one(graph, pol.REPLICA_SET)
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "bookstore-db-credentials", "namespace": "bookstore"},
        "stringData": {"password": _secret_wrapped("hunter2")},
    }
    manifests = wire_get(work.wire_inputs, *pol.WORK_MANIFESTS[pol.REPLICA_SET])
    assert isinstance(manifests, list), f"{work.name} manifests: {manifests!r}"
    # A manifest built from a secret Output reaches the engine wrapped as a secret.
    manifests.append(_secret_wrapped(manifest) if as_secret else manifest)
    assert is_secret(manifests[-1]) == as_secret

    run = run_pack(graph)
    found = _only_new_mandatory(run, "no-secret-in-manifestwork", work.urn)
    assert len(found) == 1, f"{work.name} should be refused once: {_listing(found)}"
    assert f"ManifestWorkReplicaSet {work.name} carries the Secret 'bookstore-db-credentials'" in (
        found[0].message
    ), f"message for {work.name}: {found[0].message}"


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
def test_database_loadbalancer_without_allowlist_is_refused(preview):
    graph = _dev(preview)
    service = _one(graph, pol.SERVICE, "database-public")
    assert service.wire_inputs["spec"]["type"] == "LoadBalancer"
    del service.wire_inputs["spec"]["loadBalancerSourceRanges"]

    run = run_pack(graph)
    found = _only_new_mandatory(run, "no-open-loadbalancer", service.urn)
    assert len(found) == 1, f"Service {service.name} should be refused once: {_listing(found)}"
    assert f"LoadBalancer Service {service.urn} has no spec.loadBalancerSourceRanges" in (
        found[0].message
    ), f"message for Service {service.name}: {found[0].message}"


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
def test_eks_cluster_without_encryption_config_is_refused(preview):
    graph = _dev(preview)
    eks = _one(graph, pol.EKS_CLUSTER)
    del eks.wire_inputs["encryptionConfig"]

    run = run_pack(graph)
    found = _only_new_mandatory(run, "eks-secrets-kms-encrypted", eks.urn)
    assert len(found) == 1, f"EKS cluster {eks.name} should be refused once: {_listing(found)}"
    assert f"EKS cluster {eks.name} does not encrypt Kubernetes Secrets" in found[0].message, (
        f"message for EKS cluster {eks.name}: {found[0].message}"
    )


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
def test_plain_kubeconfig_on_the_real_graph_is_made_secret(preview):
    graph = _dev(preview)
    provider = _one(graph, pol.KUBERNETES_PROVIDER)
    kubeconfig = provider.wire_inputs["kubeconfig"]
    assert is_secret(kubeconfig), f"provider {provider.name}: kubeconfig recorded as plain"
    provider.wire_inputs["kubeconfig"] = kubeconfig["value"]

    run = run_pack(graph)
    remediated = run.remediated.get("kubeconfig-is-secret", {})
    assert list(remediated) == [provider.urn], (
        f"only provider {provider.name} should be remediated, got {sorted(remediated)}"
    )
    new_kubeconfig = remediated[provider.urn]["kubeconfig"]
    assert isinstance(new_kubeconfig, Secret), f"provider {provider.name}: {new_kubeconfig!r}"
    assert new_kubeconfig.value == kubeconfig["value"], f"provider {provider.name} kubeconfig"
    assert run.mandatory() == [], _listing(run.mandatory())


def test_replica_set_reaching_the_klusterlets_through_the_managed_clusters_passes():
    # The policy follows edges transitively: each ManagedCluster depends on its Klusterlet CR,
    # so the replica set's own edges to the Klusterlets are not required.
    graph = _dev(False)
    work = _one(graph, pol.REPLICA_SET)
    klusterlets = {r.urn for r in graph.of_type(pol.KLUSTERLET)}
    assert set(work.dependencies) & klusterlets, f"{work.name}: no Klusterlet edge"
    work.dependencies = [u for u in work.dependencies if u not in klusterlets]
    work.property_dependencies = {
        key: [u for u in urns if u not in klusterlets]
        for key, urns in work.property_dependencies.items()
    }
    assert _reaches(graph, work.urn, klusterlets), f"{work.name} lost its path"
    run = run_pack(graph)
    assert run.mandatory() == [], f"{work.name}:\n{_listing(run.mandatory())}"


def _public_entries(graph: Graph) -> list[Registered]:
    return [
        s
        for s in graph.of_type(pol.SERVICE)
        if wire_get(s.wire_inputs, "metadata", "labels", pol.PUBLIC_ENTRY_LABEL) == "true"
    ]


@pytest.mark.parametrize(("fleet", "preview"), STANDBY_MODES, ids=STANDBY_IDS)
def test_the_two_entries_pass_as_one_per_main_home(fleet, preview):
    graph = fleet_graph(fleet, preview)
    entries = _public_entries(graph)
    homes = {graph.by_urn[e.provider_urn].name for e in entries}
    assert sorted(e.name for e in entries) == ["public-lb-service", "second-entry-service"], (
        f"{fleet}: the public entries are the main cluster's and the second home's"
    )
    assert len(homes) == 2, f"{fleet}: the two entries must be on two clusters, not {homes}"
    found = [v for v in pack_run(fleet, preview).mandatory() if v.policy == "no-open-loadbalancer"]
    assert found == [], f"{fleet}: the two entries are refused:\n{_listing(found)}"


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
def test_a_second_entry_on_the_main_cluster_is_refused(preview):
    """The label moved onto an allowlisted Service of the main cluster makes two entries there."""
    graph = copy.deepcopy(fleet_graph("dev-standby", preview))
    (main_entry,) = [e for e in _public_entries(graph) if e.name == "public-lb-service"]
    database = _one(graph, pol.SERVICE, "database-public")
    assert database.provider_urn == main_entry.provider_urn, "the database is on the main cluster"
    database.wire_inputs["metadata"].setdefault("labels", {})[pol.PUBLIC_ENTRY_LABEL] = "true"

    found = [v for v in run_pack(graph).mandatory() if v.policy == "no-open-loadbalancer"]
    # The database is no PublicLoadBalancer's Service: it is refused, the real entry is not.
    assert [v.urn for v in found] == [database.urn], _listing(found)
    assert "is not the Service of a ocm-fleet:index:PublicLoadBalancer" in found[0].message


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
def test_a_labelled_edge_on_a_fleet_with_one_home_is_refused(preview):
    """Without a second home, the label on an app cluster's edge is not a second entry."""
    graph = copy.deepcopy(fleet_graph("dev", preview))
    edge = next(s for s in graph.of_type(pol.SERVICE) if s.name == "app-aws-app-edge")
    edge.wire_inputs["metadata"].setdefault("labels", {})[pol.PUBLIC_ENTRY_LABEL] = "true"
    found = [v for v in run_pack(graph).mandatory() if v.policy == "no-open-loadbalancer"]
    assert [v.urn for v in found] == [edge.urn], _listing(found)
    assert "is not the Service of a ocm-fleet:index:PublicLoadBalancer" in found[0].message
