"""A promotion of the database: what each app cluster points at, how it gets there without the
hub, and the providers that let the `up` run while the main cluster's API is unreachable."""

from __future__ import annotations

import copy
import re
import time
from typing import Any

import pulumi
import pytest
from conftest import FLEETS, STANDBY_FLEETS, fleet_graph
from haproxy_live import haproxy_binary, live_fleet
from harness import (
    ROOT,
    Graph,
    GraphChanges,
    graph_changes,
    is_unknown,
    run_program,
)
from schemas import kubernetes_errors

from components.app.delivery import (
    APP_NAMESPACE,
    DATABASE_CONFIG,
    DATABASE_HOST_ANNOTATION,
    DATABASE_SERVICE,
    database_home_service,
    database_peers,
)
from components.config import parse_fleet_config
from components.edge import _haproxy
from components.security import network_policies as netpol

PROVIDER = "pulumi:providers:kubernetes"
SERVICE = "kubernetes:core/v1:Service"
ENDPOINT_SLICE = "kubernetes:discovery.k8s.io/v1:EndpointSlice"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
DATABASE_TYPE = "ocm-fleet:index:Database"
DATABASE_PRIMARY_KEY = "ocm-fleet:database"
"""`database.primary`, as `pulumi config set --path database.primary standby` stores it."""
ANY = netpol.ANYWHERE
STATE_CHANGE_LIMIT = 30.0
"""Far above the ~8 s the entry's checks are tuned for: bounds the live test, does not time it."""


def homes_of(config: dict[str, Any]) -> tuple[str, str]:
    hub = config["ocm-fleet:hub"]
    return hub["name"], hub["standby"]["name"]


def with_primary(config: dict[str, Any], primary: str) -> dict[str, Any]:
    out = copy.deepcopy(config)
    out[DATABASE_PRIMARY_KEY] = {"primary": primary}
    return out


_HOMES: dict[tuple[str, str, bool], Graph] = {}


def graph_with_homes(fleet: str, primary: str, preview: bool) -> Graph:
    """The whole program for a fleet with a second home, its database on both homes, and
    `primary` taking the writes."""
    key = (fleet, primary, preview)
    if key not in _HOMES:
        _HOMES[key] = run_program(with_primary(FLEETS[fleet](), primary), preview=preview)
    return _HOMES[key]


def app_clusters(config: dict[str, Any]) -> list[str]:
    return [c["name"] for c in config["ocm-fleet:clusters"] if not c.get("retire")]


def on_provider(graph: Graph, cluster: str, type_: str) -> list:
    provider = graph.kubernetes_provider(cluster).urn
    return [r for r in graph.of_type(type_) if r.provider_urn == provider]


def named_object(graph: Graph, cluster: str, type_: str, name: str):
    found = [
        r
        for r in on_provider(graph, cluster, type_)
        if (r.inputs.get("metadata") or {}).get("name") == name
    ]
    assert len(found) == 1, f"{cluster}: expected one {type_} {name!r}, found {found}"
    return found[0]


def main_database_address(graph: Graph) -> Any:
    return graph.stack_outputs["databaseHost"]


def second_home_address(graph: Graph, fleet: str) -> Any:
    """The second home's database address: the replica's load balancer's (`databaseHosts`)."""
    _, second = homes_of(FLEETS[fleet]())
    return graph.stack_outputs["databaseHosts"][second]


# --- the stable name on every app cluster --------------------------------------------------


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
@pytest.mark.parametrize("primary", ["main", "standby"])
@pytest.mark.parametrize("fleet", list(STANDBY_FLEETS))
def test_every_app_cluster_reaches_the_database_by_a_name_pointing_at_the_primary(
    fleet, primary, preview
):
    config = FLEETS[fleet]()
    main, second = homes_of(config)
    graph = graph_with_homes(fleet, primary, preview)
    target = main if primary == "main" else second
    for cluster in app_clusters(config):
        data = named_object(graph, cluster, CONFIG_MAP, DATABASE_CONFIG).inputs["data"]
        assert data["DB_HOST"] == DATABASE_SERVICE, (
            f"{cluster}: DB_HOST must be the stable name {DATABASE_SERVICE!r}, not an address"
        )
        alias = named_object(graph, cluster, SERVICE, DATABASE_SERVICE).inputs["spec"]
        assert alias["type"] == "ExternalName", f"{cluster}: the stable name is an alias"
        assert alias["externalName"] == (
            f"{database_home_service(target)}.{APP_NAMESPACE}.svc.cluster.local"
        ), f"{cluster}: {DATABASE_SERVICE} must point at the Service of {target}'s database"
        for home in (main, second):
            named_object(graph, cluster, SERVICE, database_home_service(home))
            named_object(graph, cluster, ENDPOINT_SLICE, database_home_service(home))


@pytest.mark.parametrize("fleet", list(STANDBY_FLEETS))
def test_each_home_service_reaches_that_homes_address(fleet):
    config = FLEETS[fleet]()
    main, second = homes_of(config)
    graph = graph_with_homes(fleet, "main", preview=False)
    addresses = {main: main_database_address(graph), second: second_home_address(graph, fleet)}
    for cluster in app_clusters(config):
        for home, address in addresses.items():
            name = database_home_service(home)
            spec = named_object(graph, cluster, SERVICE, name).inputs["spec"]
            endpoints = named_object(graph, cluster, ENDPOINT_SLICE, name).inputs
            labels = endpoints["metadata"]["labels"]
            assert labels["kubernetes.io/service-name"] == name, f"{cluster}/{name}: slice label"
            assert labels["endpointslice.kubernetes.io/managed-by"] != (
                "endpointslice-controller.k8s.io"
            ), f"{cluster}/{name}: the cluster's controller must not own the slice"
            if netpol.address_peers(address) == netpol.cidr_peers(netpol.ANYWHERE):
                # A DNS name: an alias of it, and no endpoint.
                assert spec["type"] == "ExternalName", f"{cluster}/{name}: {address} is a name"
                assert spec["externalName"] == address, f"{cluster}/{name} must alias {address}"
                assert endpoints["endpoints"] == [], f"{cluster}/{name}: no endpoint for a name"
            else:
                assert spec["type"] == "ClusterIP" and "selector" not in spec, (
                    f"{cluster}/{name}: an IP is reached by a Service without selector"
                )
                assert endpoints["endpoints"] == [{"addresses": [address]}], (
                    f"{cluster}/{name}: its one endpoint must be {address}"
                )
            assert [p["port"] for p in endpoints["ports"]] == [p["port"] for p in spec["ports"]]
            # No Endpoints object ever exists for a Service without a selector: the provider
            # must not wait for one (pulumi-kubernetes provider/pkg/await/service.go).
            annotations = named_object(graph, cluster, SERVICE, name).inputs["metadata"]
            assert annotations.get("annotations", {}).get("pulumi.com/skipAwait") == "true", (
                f"{cluster}/{name}: the provider would wait for Endpoints nothing makes"
            )


@pytest.mark.parametrize("fleet", list(STANDBY_FLEETS))
def test_the_stable_name_objects_are_valid_kubernetes(fleet):
    config = FLEETS[fleet]()
    main, second = homes_of(config)
    graph = graph_with_homes(fleet, "standby", preview=False)
    names = [DATABASE_SERVICE, *(database_home_service(h) for h in (main, second))]
    checked = 0
    for cluster in app_clusters(config):
        objects = [("v1", "Service", named_object(graph, cluster, SERVICE, n)) for n in names] + [
            (
                "discovery.k8s.io/v1",
                "EndpointSlice",
                named_object(graph, cluster, ENDPOINT_SLICE, n),
            )
            for n in names[1:]
        ]
        for api_version, kind, res in objects:
            obj = {"apiVersion": api_version, "kind": kind, **res.inputs}
            errors = kubernetes_errors(obj, "1.33")
            assert not errors, f"{cluster}: {kind} {res.name} is invalid: {errors}"
            checked += 1
    assert checked == len(app_clusters(config)) * 5


@pytest.mark.parametrize("fleet", list(STANDBY_FLEETS))
def test_in_preview_the_home_services_wait_for_the_addresses(fleet):
    config = FLEETS[fleet]()
    main, second = homes_of(config)
    graph = graph_with_homes(fleet, "main", preview=True)
    for cluster in app_clusters(config):
        for home in (main, second):
            name = database_home_service(home)
            spec = named_object(graph, cluster, SERVICE, name).inputs.get("spec")
            assert spec is None or is_unknown(spec), (
                f"{cluster}/{name}: an address unknown in preview cannot decide the Service's "
                f"kind, yet the spec is {spec!r}"
            )


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
@pytest.mark.parametrize("fleet", list(STANDBY_FLEETS))
def test_shopapi_may_reach_exactly_both_homes(fleet, preview):
    config = FLEETS[fleet]()
    graph = graph_with_homes(fleet, "main", preview)
    for cluster in app_clusters(config):
        policy = named_object(
            graph, cluster, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "shopapi-to-database"
        )
        to = policy.inputs["spec"]["egress"][0]["to"]
        if preview:
            assert is_unknown(to) or any(is_unknown(p) for p in to), (
                f"{cluster}: the peers come from addresses unknown in preview"
            )
            continue
        addresses = [main_database_address(graph), second_home_address(graph, fleet)]
        homes_peers = {p["ipBlock"]["cidr"] for a in addresses for p in netpol.address_peers(a)}
        cidrs = [p["ipBlock"]["cidr"] for p in to]
        assert cidrs == sorted(set(cidrs)), f"{cluster}: peers sorted, each once: {cidrs}"
        assert homes_peers <= set(cidrs), f"{cluster}: both homes' addresses must be admitted"
        # Besides them, the cluster IP of each home Service that proxies to an IP (a DNS-name
        # home is an alias, with no IP of its own), and nothing else.
        ip_homes = [a for a in addresses if netpol.address_peers(a) != netpol.cidr_peers(ANY)]
        extra = set(cidrs) - homes_peers
        assert len(extra) == len(ip_homes), (
            f"{cluster}: besides the homes' addresses only their Services' IPs: {sorted(extra)}"
        )
        assert all(c.endswith("/32") for c in extra), f"{cluster}: {sorted(extra)}"
        main_ip = main_database_address(graph)
        assert f"{main_ip}/32" in cidrs, f"{cluster}: the main home's {main_ip} must be admitted"


def test_the_database_peers_are_both_addresses_and_the_proxied_service_ips():
    peers = database_peers(["198.51.100.7", "db.example.test"], ["10.0.0.9", ""])
    assert [p["ipBlock"]["cidr"] for p in peers] == [
        "0.0.0.0/0",
        "10.0.0.9/32",
        "198.51.100.7/32",
        "::/0",
    ]
    both_ips = database_peers(["198.51.100.7", "203.0.113.9"], ["10.0.0.9", "10.0.0.10"])
    assert [p["ipBlock"]["cidr"] for p in both_ips] == [
        "10.0.0.10/32",
        "10.0.0.9/32",
        "198.51.100.7/32",
        "203.0.113.9/32",
    ], "two IP homes admit their two addresses and their Services' IPs, nothing wider"


@pytest.mark.parametrize("fleet", list(STANDBY_FLEETS))
def test_pods_that_read_the_endpoint_restart_once_onto_the_name_and_not_at_promotion(fleet):
    works = {}
    for primary in ("main", "standby"):
        graph = graph_with_homes(fleet, primary, preview=False)
        works[primary] = {
            r.name: r.inputs
            for r in graph.resources
            if r.type.startswith("kubernetes:work.open-cluster-management.io")
        }
        shopapi = [
            m
            for w in works[primary].values()
            for m in _manifests(w)
            if m.get("kind") == "Deployment" and m["metadata"]["name"] == "shopapi"
        ]
        assert shopapi, f"{fleet}: no shopapi Deployment in the app's ManifestWorks"
        for deployment in shopapi:
            annotations = deployment["spec"]["template"]["metadata"].get("annotations") or {}
            assert annotations.get(DATABASE_HOST_ANNOTATION) == DATABASE_SERVICE, (
                f"{fleet}: shopapi's pods must restart onto the stable name once"
            )
    assert works["main"] == works["standby"], (
        f"{fleet}: a promotion must not change a ManifestWork (it would need the hub)"
    )


def _manifests(inputs: dict[str, Any]) -> list[dict[str, Any]]:
    spec = inputs.get("spec") or {}
    template = spec.get("manifestWorkTemplate") or spec
    return [m for m in (template.get("workload") or {}).get("manifests") or []]


# --- fleets without a second home ------------------------------------------------------------


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
@pytest.mark.parametrize("fleet", ["dev", "local", "large"])
def test_fleets_without_a_second_home_keep_the_address_in_db_host(fleet, preview):
    graph = fleet_graph(fleet, preview)
    configs = [r for r in graph.of_type(CONFIG_MAP) if r.name.endswith("-database-config")]
    assert configs, f"{fleet}: no database ConfigMap"
    for config in configs:
        host = config.inputs["data"]["DB_HOST"]
        assert host != DATABASE_SERVICE, f"{fleet}: {config.name} must hold the address"
        if not preview:
            assert host == main_database_address(graph), f"{fleet}: {config.name} DB_HOST"
    names = [r.name for r in graph.of_type(ENDPOINT_SLICE)] + [
        r.name for r in graph.of_type(SERVICE) if r.name.endswith("-database-alias")
    ]
    assert not names, f"{fleet}: the stable name belongs to fleets with a second home: {names}"
    for provider in graph.of_type(PROVIDER):
        assert "skipUpdateUnreachable" not in provider.inputs, (
            f"{fleet}: provider {provider.name} must keep its inputs"
        )
        assert "deleteUnreachable" not in provider.inputs, f"{fleet}: {provider.name}"


# --- the providers ---------------------------------------------------------------------------


SKIP_UNREACHABLE_ENV = "PULUMI_K8S_SKIP_UPDATE_UNREACHABLE"
"""Set by `deploy.sh --main-lost` (and `drill.py --promote`) for the run that promotes."""
DELETE_UNREACHABLE_ENV = "PULUMI_K8S_DELETE_UNREACHABLE"
"""Set by hand for the one run that gives up a lost home for good (docs/data.md)."""


def kubernetes_providers(graph: Graph, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every cluster's Kubernetes provider inputs, by cluster; every provider of the graph is
    one of them."""
    clusters = [*homes_of(config), *app_clusters(config)]
    found = {cluster: graph.kubernetes_provider(cluster) for cluster in clusters}
    others = {r.urn for r in graph.of_type(PROVIDER)} - {r.urn for r in found.values()}
    assert not others, f"Kubernetes providers of no cluster: {sorted(others)}"
    return {cluster: provider.inputs for cluster, provider in found.items()}


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
@pytest.mark.parametrize("fleet", list(STANDBY_FLEETS))
def test_no_provider_skips_an_unreachable_cluster_in_an_ordinary_run(fleet, preview, monkeypatch):
    """An ordinary `up` fails on a cluster whose API does not answer, home or not: skipping
    there would leave it stale without a word (a rotated password never reaching its database)."""
    monkeypatch.delenv(SKIP_UNREACHABLE_ENV, raising=False)
    monkeypatch.delenv(DELETE_UNREACHABLE_ENV, raising=False)
    config = FLEETS[fleet]()
    for cluster, inputs in kubernetes_providers(
        run_program(config, preview=preview), config
    ).items():
        assert "skipUpdateUnreachable" not in inputs, (
            f"{fleet}: the provider of {cluster} must fail, not skip, while unreachable"
        )
        assert "deleteUnreachable" not in inputs, f"{fleet}: {cluster} deleteUnreachable"


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
@pytest.mark.parametrize("fleet", list(STANDBY_FLEETS))
def test_the_main_lost_run_skips_every_unreachable_cluster(fleet, preview, monkeypatch):
    """With the variable `deploy.sh --main-lost` exports, every provider skips its cluster's
    objects if it does not answer: the main cluster and any app cluster lost with it (app-azure,
    in the main cluster's region, in dev-standby), so the promotion's `up` goes on."""
    monkeypatch.setenv(SKIP_UNREACHABLE_ENV, "true")
    monkeypatch.delenv(DELETE_UNREACHABLE_ENV, raising=False)
    config = FLEETS[fleet]()
    providers = kubernetes_providers(run_program(config, preview=preview), config)
    for cluster, inputs in providers.items():
        assert inputs.get("skipUpdateUnreachable") == "true", (
            f"{fleet}: with {SKIP_UNREACHABLE_ENV}=true the provider of {cluster} must skip "
            "its objects while unreachable"
        )
        # Skipping keeps the state; dropping it is for the run that gives up a home for good.
        assert "deleteUnreachable" not in inputs, f"{fleet}: {cluster} deleteUnreachable"
    if fleet == "dev-standby":
        hub = config["ocm-fleet:hub"]
        lost_with_it = [
            c["name"]
            for c in config["ocm-fleet:clusters"]
            if (c["cloud"], c["region"]) == (hub["cloud"], hub["region"])
        ]
        assert lost_with_it and set(lost_with_it) <= set(providers), lost_with_it


def test_giving_up_a_home_for_good_drops_unreachable_objects_only_with_its_variable(monkeypatch):
    monkeypatch.delenv(SKIP_UNREACHABLE_ENV, raising=False)
    monkeypatch.setenv(DELETE_UNREACHABLE_ENV, "true")
    config = FLEETS["dev-standby"]()
    for cluster, inputs in kubernetes_providers(run_program(config), config).items():
        assert inputs.get("deleteUnreachable") == "true", f"dev-standby: {cluster}"
        assert "skipUpdateUnreachable" not in inputs, f"dev-standby: {cluster}"


def test_a_second_home_leaves_the_main_clusters_spec_as_it_is():
    """Nothing in the config model marks the homes: what a run skips is the run's choice."""
    raw = {
        "hub": {
            "name": "main",
            "cloud": "azure",
            "region": "westeurope",
            "standby": {"name": "second", "cloud": "aws", "region": "eu-west-1"},
        },
        "clusters": [{"name": "app-azure", "cloud": "azure", "region": "westeurope"}],
        "apiAllowedCidrs": ["203.0.113.7/32"],
        "eksAdminPrincipals": ["arn:aws:iam::123456789012:role/platform-admin"],
    }
    with_home = parse_fleet_config(copy.deepcopy(raw))
    assert with_home.hub_standby is not None
    del raw["hub"]["standby"]
    without = parse_fleet_config(raw)
    assert with_home.hub == without.hub, "hub.standby must not change the main cluster's spec"
    assert with_home.clusters == without.clusters, "nor the app clusters' specs"


def test_the_one_call_about_the_main_cluster_is_its_aks_credentials():
    """docs/data.md states what a promotion's `up` still asks of the lost home's cloud."""
    graph = fleet_graph("dev-standby", False)
    about_main = [
        token
        for token, args in graph.invokes
        if any(str(v).startswith("main-") for v in args.values())
    ]
    assert about_main == ["azure-native:containerservice:listManagedClusterAdminCredentials"], (
        f"the calls a run makes about the main cluster changed: {about_main}; update the "
        "promotion's limits in docs/data.md"
    )


# --- a promotion, as a whole: one config change, one `up` ----------------------------------


def assert_promotion_needs_only_what_is_reachable(
    fleet: str, changes: GraphChanges, before: Graph
) -> None:
    """Every resource a promotion creates, deletes or changes is on the second home or an app
    cluster; on the main cluster only the database's objects, which its provider skips while
    it is unreachable and applies once it is back. Nothing on the hub's provider otherwise,
    and nothing created or deleted on it: a skipped cluster can do neither."""
    config = FLEETS[fleet]()
    main, second = homes_of(config)
    reachable = {before.kubernetes_provider(c).urn: c for c in [second, *app_clusters(config)]}
    main_provider = before.kubernetes_provider(main).urn
    database = [r for r in before.of_type(DATABASE_TYPE)]
    assert len(database) == 1, f"{fleet}: one Database component"
    database_objects = {r.urn for r in before.descendants(database[0])}
    assert changes.changed, f"{fleet}: a promotion must change something"
    for urn in changes.added | changes.removed:
        res = changes.resource(urn)
        assert res.provider_urn in reachable, (
            f"{fleet}: a promotion creates or deletes {urn}, which is not on the second home "
            "or an app cluster"
        )
    for urn in changes.changed:
        res = changes.resource(urn)
        if not res.custom:
            continue
        if res.provider_urn == main_provider:
            assert urn in database_objects, (
                f"{fleet}: a promotion changes {urn} on the main cluster, and only the "
                "database's objects may change there (the provider skips them while it is lost)"
            )
            continue
        assert res.provider_urn in reachable, (
            f"{fleet}: a promotion changes {urn} (provider {res.provider_urn or 'none'}), which "
            "is neither on the second home nor on an app cluster"
        )


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
@pytest.mark.parametrize("fleet", list(STANDBY_FLEETS))
def test_the_app_side_of_a_promotion_needs_nothing_from_the_main_cluster(fleet, preview):
    before = graph_with_homes(fleet, "main", preview)
    after = graph_with_homes(fleet, "standby", preview)
    changes = graph_changes(before, after)
    assert_promotion_needs_only_what_is_reachable(fleet, changes, before)
    config = FLEETS[fleet]()
    for cluster in app_clusters(config):
        alias = named_object(after, cluster, SERVICE, DATABASE_SERVICE)
        assert alias.urn in changes.changed, (
            f"{cluster}: the promotion must re-point {DATABASE_SERVICE}"
        )
        config_map = named_object(after, cluster, CONFIG_MAP, DATABASE_CONFIG)
        assert config_map.urn not in changes.changed, (
            f"{cluster}: DB_HOST must not change (running pods would keep the old one)"
        )


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
@pytest.mark.parametrize("fleet", list(STANDBY_FLEETS))
def test_a_promotion_is_one_config_change_and_one_up(fleet, preview):
    # The real program and the real key: `pulumi config set --path database.primary standby`.
    config = FLEETS[fleet]()
    before = run_program(with_primary(config, "main"), preview=preview)
    after = run_program(with_primary(config, "standby"), preview=preview)
    changes = graph_changes(before, after)
    assert_promotion_needs_only_what_is_reachable(fleet, changes, before)
    _, second = homes_of(config)
    for cluster in app_clusters(config):
        alias = named_object(after, cluster, SERVICE, DATABASE_SERVICE).inputs["spec"]
        assert alias["externalName"].startswith(f"{database_home_service(second)}."), (
            f"{cluster}: after the promotion the stable name must point at {second}"
        )


# --- the comparison itself -------------------------------------------------------------------


def test_graph_changes_finds_what_differs_and_nothing_else():
    def program(value: str, extra: bool) -> None:
        pulumi.CustomResource("test:index:Thing", "same", {"value": "fixed"})
        pulumi.CustomResource("test:index:Thing", "moving", {"value": value})
        if extra:
            pulumi.CustomResource("test:index:Thing", "extra", {"value": "x"})

    config = FLEETS["dev"]()
    one = run_program(config, program=lambda: program("a", False))
    two = run_program(config, program=lambda: program("b", True))
    changes = graph_changes(one, two)
    names = {urn.rsplit("::", 1)[-1] for urn in changes.changed}
    assert names == {"moving"}, f"only the resource whose inputs differ: {names}"
    assert {urn.rsplit("::", 1)[-1] for urn in changes.added} == {"extra"}
    assert not changes.removed
    assert not graph_changes(one, one).changed, "a graph compared with itself changes nothing"


# --- what the user sees between the loss and the promotion -----------------------------------


@pytest.mark.skipif(haproxy_binary() is None, reason="haproxy is not installed (Debian: haproxy)")
def test_without_a_database_the_entry_answers_503_for_every_page_until_it_is_back(tmp_path):
    """Between the loss of the primary and the promotion no app cluster reaches a database:
    /api/books fails everywhere, so the public entry takes every cluster out and answers 503
    for the landing page as well, though the clusters would serve it. Once the database
    answers again under the same name, the clusters come back without a restart."""
    with live_fleet(["app-a", "app-b"], tmp_path) as (proxy, clusters):
        assert proxy.get("/")[0] == 200, "the landing page must be served while healthy"
        lost_at = time.monotonic()
        for cluster in clusters.values():
            cluster.database_down = True
        for name in clusters:
            assert proxy.wait_for_event(name, "DOWN", lost_at, STATE_CHANGE_LIMIT) is not None, (
                f"{name} must be taken out when its /api/books fails"
            )
        status, _ = proxy.get("/")
        assert status == 503, f"with no database anywhere the landing page answered {status}"
        assert proxy.get(_haproxy.ENTRY_HEALTH_PATH)[0] == 503, "the entry must report itself down"

        promoted_at = time.monotonic()
        for cluster in clusters.values():
            cluster.database_down = False
        for name in clusters:
            took = proxy.wait_for_event(name, "UP", promoted_at, STATE_CHANGE_LIMIT)
            assert took is not None, f"{name} must come back once the database answers"
        assert proxy.get("/")[0] == 200 and proxy.get("/api/books")[0] == 200


PROMOTION_PREVIEW = re.compile(r"<!-- promotion-preview -->\n```text\n(.*?)```", re.S)


def test_docs_show_what_the_mocked_preview_of_a_promotion_updates():
    """docs/data.md quotes what a preview of dev-standby's promotion changes, line for line."""
    doc = ROOT / "docs" / "data.md"
    found = PROMOTION_PREVIEW.search(doc.read_text())
    assert found, f"{doc.name}: no promotion-preview block"
    quoted = sorted(tuple(line.split()) for line in found.group(1).splitlines() if line.strip())
    config = FLEETS["dev-standby"]()
    before = run_program(with_primary(config, "main"), preview=True)
    after = run_program(with_primary(config, "standby"), preview=True)
    changes = graph_changes(before, after)
    shown = []
    for kind, urns, graph in (
        ("create", changes.added, after),
        ("delete", changes.removed, before),
        ("update", changes.changed, after),
    ):
        for urn in urns:
            res = graph.by_urn[urn]
            shown.append((kind, res.type, res.name, graph.by_urn[res.provider_urn].name))
    assert quoted == sorted(shown), (
        f"{doc.name} quotes {quoted}, the preview changes {sorted(shown)}"
    )
