"""The database's replica on the second home (`hub.standby`), in the graph: its StatefulSet and
TLS, the allowlists of both homes, the replication password, the roles `database.primary`
gives each home, and the destroy order of every object it adds."""

from __future__ import annotations

import copy
import ipaddress
import re
from typing import Any

import pytest
from conftest import FLEETS, STANDBY_FLEETS, fleet_graph
from harness import (
    Graph,
    Registered,
    contains_plain,
    contains_secret,
    is_secret,
    is_unknown,
    run_program,
    wire_get,
)
from schemas import kubernetes_errors

from components.app import database, replication
from components.config import FleetConfigError, parse_fleet_config

STATEFULSET = "kubernetes:apps/v1:StatefulSet"
SECRET = "kubernetes:core/v1:Secret"
SERVICE = "kubernetes:core/v1:Service"
POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
JOB = "kubernetes:batch/v1:Job"
REPLICA_SET = "kubernetes:work.open-cluster-management.io/v1alpha1:ManifestWorkReplicaSet"
MANIFEST_WORK = "kubernetes:work.open-cluster-management.io/v1:ManifestWork"
# (main home's cluster name, second home's cluster name) per fleet.
HOMES = {"dev-standby": ("main", "second"), "local-standby": ("hub", "second")}
MODES = pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
FLEET = pytest.mark.parametrize("fleet", list(STANDBY_FLEETS))


def promoted(fleet: str) -> dict[str, Any]:
    config = copy.deepcopy(FLEETS[fleet]())
    config["ocm-fleet:database"] = {"primary": "standby"}
    return config


_PROMOTED: dict[tuple[str, bool], Graph] = {}


def promoted_graph(fleet: str, preview: bool) -> Graph:
    key = (fleet, preview)
    if key not in _PROMOTED:
        _PROMOTED[key] = run_program(promoted(fleet), preview=preview)
    return _PROMOTED[key]


def home_db(graph: Graph, fleet: str, home: str, role: str, type_: str) -> Registered:
    """The database object `role` of a home: the main home's keep their names ("database-…"),
    the second home's carry its name ("database-second-…")."""
    second = HOMES[fleet][1]
    prefix = "database" if home == "main" else f"database-{second}"
    return graph.named(f"{prefix}-{role}", type_)


def provider_of(graph: Graph, fleet: str, home: str) -> str:
    main, second = HOMES[fleet]
    return graph.kubernetes_provider(main if home == "main" else second).urn


def sidecar(sts: Registered) -> dict[str, Any]:
    (found,) = [
        c
        for c in sts.inputs["spec"]["template"]["spec"]["containers"]
        if c["name"] == "replication"
    ]
    return found


def env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in container["env"]}


def as_object(res: Registered) -> dict[str, Any]:
    group_version, kind = res.type.split(":", 1)[1].split(":")
    group, version = group_version.split("/")
    api = version if group == "core" else f"{group}/{version}"
    body = {k: v for k, v in res.inputs.items() if not k.startswith("__")}
    return {"apiVersion": api, "kind": kind, **body}


# --- the replica and its TLS ---------------------------------------------------------------


@MODES
@FLEET
def test_each_home_runs_mariadb_with_the_shipped_options_its_own_server_id_and_tls(fleet, preview):
    graph = fleet_graph(fleet, preview)
    ids = set()
    for home in ("main", "standby"):
        sts = home_db(graph, fleet, home, "mariadb", STATEFULSET)
        assert sts.provider_urn == provider_of(graph, fleet, home), (
            f"{sts.name} must be created with its home's provider"
        )
        server = sts.inputs["spec"]["template"]["spec"]["containers"][0]
        args = server["args"]
        (server_id,) = [a for a in args if a.startswith("--server-id=")]
        ids.add(server_id)
        for flag in ("--ssl-ca=", "--ssl-cert=", "--ssl-key="):
            assert any(a.startswith(flag) for a in args), f"{sts.name}: the server needs {flag}"
        mounts = {m["mountPath"]: m for m in server["volumeMounts"]}
        assert mounts[database.SERVER_OPTIONS_PATH]["subPath"] == "replication.cnf"
        options = home_db(graph, fleet, home, "replication", "kubernetes:core/v1:ConfigMap")
        assert options.inputs["data"]["replication.cnf"] == replication.SERVER_OPTIONS.read_text()
        assert options.inputs["data"]["replication.sh"] == replication.SCRIPT.read_text(), (
            "the sidecar runs the replication.sh the real-server tests run"
        )
        # The image runs /docker-entrypoint-initdb.d/*.sql on an empty data directory only:
        # the binlog starts empty, so a fresh replica is seeded, not taken for a former primary.
        assert mounts[database.FIRST_START_PATH]["subPath"] == "first-start.sql", (
            f"{sts.name}: the image's first start must run first-start.sql"
        )
        assert options.inputs["data"]["first-start.sql"] == database.FIRST_START_SQL.read_text()
        assert "RESET MASTER" in database.FIRST_START_SQL.read_text()
        tls = home_db(graph, fleet, home, "tls", SECRET)
        assert tls.provider_urn == provider_of(graph, fleet, home)
        assert is_secret(wire_get(tls.wire_inputs, "stringData", database.TLS_KEY)), (
            f"{tls.name}: the server key is a secret"
        )
        assert graph.depends_on(sts, tls) and graph.depends_on(sts, options)
    assert len(ids) == 2, f"each home has its own server_id: {ids}"


@MODES
@FLEET
def test_one_ca_signs_each_homes_certificate_for_its_load_balancer_address(fleet, preview):
    graph = fleet_graph(fleet, preview)
    (ca,) = [
        r
        for r in graph.of_type("tls:index/selfSignedCert:SelfSignedCert")
        if "replication" in r.name
    ]
    hosts = graph.stack_outputs["databaseHosts"]
    main, second = HOMES[fleet]
    for home, cluster in (("main", main), ("standby", second)):
        cert = home_db(
            graph, fleet, home, "server-cert", "tls:index/locallySignedCert:LocallySignedCert"
        )
        assert graph.depends_on(cert, ca), f"{cert.name} must be signed by the database CA"
        csr = home_db(graph, fleet, home, "server-csr", "tls:index/certRequest:CertRequest")
        public = home_db(graph, fleet, home, "public", SERVICE)
        assert graph.depends_on(csr, public), f"{csr.name} names its load balancer's address"
        if preview:
            continue
        address = hosts[cluster]
        try:
            ipaddress.ip_address(address)
            assert csr.inputs["ipAddresses"] == [address], f"{csr.name}: IP SAN {address}"
        except ValueError:
            assert address in csr.inputs["dnsNames"], f"{csr.name}: DNS SAN {address}"
        assert "mariadb.bookstore-data.svc.cluster.local" in csr.inputs["dnsNames"]


@FLEET
def test_the_replica_follows_over_verified_tls_and_the_script_requires_it(fleet):
    """The graph gives the sidecar the CA and the primary's address; replication.sh connects
    with MASTER_SSL=1 and verification, and grants REQUIRE SSL (the refusal over plain TCP is
    tests/test_db_replication.py's, with real servers)."""
    graph = fleet_graph(fleet, False)
    main = HOMES[fleet][0]
    replica = sidecar(home_db(graph, fleet, "standby", "mariadb", STATEFULSET))
    assert replica["command"][-2:] == ["serve", "replica"]
    values = env(replica)
    assert values["PEER_HOST"] == graph.stack_outputs["databaseHosts"][main]
    assert values["TLS_CA"].startswith(database.TLS_DIR)
    script = replication.SCRIPT.read_text()
    for needle in ("MASTER_SSL = 1", "MASTER_SSL_VERIFY_SERVER_CERT = 1", "REQUIRE SSL"):
        assert needle in script, f"replication.sh must use {needle}"


@MODES
@FLEET
def test_the_second_homes_volume_honours_protect_data(fleet, preview):
    config = copy.deepcopy(FLEETS[fleet]())
    config["ocm-fleet:protectData"] = True
    graph = run_program(config, preview=preview)
    for home in ("main", "standby"):
        claim = home_db(graph, fleet, home, "data", "kubernetes:core/v1:PersistentVolumeClaim")
        assert claim.options["protect"], f"{claim.name} must be protected with protectData"
    plain = home_db(
        fleet_graph(fleet, preview),
        fleet,
        "standby",
        "data",
        "kubernetes:core/v1:PersistentVolumeClaim",
    )
    assert not plain.options["protect"], "control: unprotected without protectData"


@FLEET
def test_every_new_kubernetes_object_is_valid(fleet):
    graph = fleet_graph(fleet, False)
    with_home, without = graph, fleet_graph(STANDBY_FLEETS[fleet], False)
    database_objects = [
        r
        for r in with_home.resources
        if r.type.startswith("kubernetes:")
        and r.name.startswith("database")
        and r.type != "pulumi:providers:kubernetes"
    ]
    assert len(database_objects) > len(
        [
            r
            for r in without.resources
            if r.name.startswith("database") and r.type.startswith("kubernetes:")
        ]
    )
    for res in database_objects:
        errors = kubernetes_errors(as_object(res), "1.34")
        assert not errors, f"{res.type} {res.name} is invalid: {errors}"


# --- allowlists ----------------------------------------------------------------------------


def egress(graph: Graph, cluster: str) -> set[str]:
    described = (
        graph.stack_outputs["clusters"].get(cluster)
        or graph.stack_outputs["hubStandby"].get(cluster)
        or graph.stack_outputs["hub"]
    )
    return set(described["egressIps"])


@FLEET
def test_each_home_admits_the_app_clusters_and_exactly_the_other_home(fleet):
    graph = fleet_graph(fleet, False)
    second = HOMES[fleet][1]
    app = set()
    for described in graph.stack_outputs["clusters"].values():
        app |= set(described["egressIps"])
    main_egress = set(graph.stack_outputs["hub"]["egressIps"])
    second_egress = set(graph.stack_outputs["hubStandby"][second]["egressIps"])
    assert main_egress and second_egress and app
    for home, other in (("main", second_egress), ("standby", main_egress)):
        public = home_db(graph, fleet, home, "public", SERVICE)
        assert set(public.inputs["spec"]["loadBalancerSourceRanges"]) == app | other, (
            f"{public.name} admits the app clusters and the other home's egress, nothing else"
        )
        policy = home_db(graph, fleet, home, "network-policy-mariadb-clients", POLICY)
        (from_addresses, _) = policy.inputs["spec"]["ingress"]
        cidrs = {p["ipBlock"]["cidr"] for p in from_addresses["from"]}
        assert cidrs == app | other, f"{policy.name} admits {cidrs}"
        out = home_db(graph, fleet, home, "network-policy-mariadb-replication", POLICY)
        rule = out.inputs["spec"]["egress"][0]
        assert rule["ports"] == [{"protocol": "TCP", "port": database.PORT}], (
            f"{out.name}: the replica reaches the primary on the MySQL port only"
        )


def test_kind_homes_admit_their_load_balancers_proxy():
    graph = fleet_graph("local-standby", False)
    for home in ("main", "standby"):
        assert home_db(
            graph, "local-standby", home, "network-policy-mariadb-from-load-balancer", POLICY
        )


# --- the password --------------------------------------------------------------------------


@MODES
@FLEET
def test_the_replication_password_is_a_secret_on_each_home_and_never_in_a_manifest_work(
    fleet, preview
):
    graph = fleet_graph(fleet, preview)
    (password,) = [
        r
        for r in graph.of_type("random:index/randomPassword:RandomPassword")
        if r.name == "database-replication-password"
    ]
    assert password.inputs["special"] is False and password.inputs["keepers"] == {"rotation": "0"}
    for home in ("main", "standby"):
        secret = home_db(graph, fleet, home, "credentials", SECRET)
        assert secret.provider_urn == provider_of(graph, fleet, home)
        assert is_secret(
            wire_get(secret.wire_inputs, "stringData", database.REPLICATION_PASSWORD_KEY)
        )
    for res in graph.of_type(REPLICA_SET) + graph.of_type(MANIFEST_WORK):
        assert not contains_secret(res.wire_inputs), f"{res} holds a secret value"
    if preview:
        return
    value = graph.named("database-credentials", SECRET).inputs["stringData"][
        database.REPLICATION_PASSWORD_KEY
    ]
    assert value.startswith("generated-password-")
    for res in graph.resources:
        assert not contains_plain(res.wire_inputs, value), f"{res} holds the password in plain text"
    assert not contains_plain(graph.stack_wire_outputs, value), "an output holds the password"


def test_the_replication_password_rotates_with_the_apps():
    config = copy.deepcopy(FLEETS["dev-standby"]())
    config["ocm-fleet:databasePasswordRotation"] = 1
    graph = run_program(config)
    password = graph.named("database-replication-password")
    assert password.inputs["keepers"] == {"rotation": "1"}
    # The mocks' passwords do not follow their keepers; the pod template's digest is taken
    # from the password itself, so a new one restarts the pod and its sidecar grants it.
    for home in ("main", "standby"):
        sts = home_db(graph, "dev-standby", home, "mariadb", STATEFULSET)
        annotations = sts.inputs["spec"]["template"]["metadata"]["annotations"]
        assert "ocm-fleet/replication-password" in annotations
        assert graph.depends_on(sts, password), f"{sts.name} must follow the password"
    assert graph.named("database-password-rotation-1", JOB)


# --- roles and promotion -------------------------------------------------------------------


@MODES
@FLEET
def test_database_primary_gives_each_home_its_role_and_moves_the_endpoint(fleet, preview):
    main, second = HOMES[fleet]
    for graph, roles, primary in (
        (fleet_graph(fleet, preview), {"main": "primary", "standby": "replica"}, "main"),
        (promoted_graph(fleet, preview), {"main": "replica", "standby": "promoted"}, "standby"),
    ):
        for home, role in roles.items():
            sts = home_db(graph, fleet, home, "mariadb", STATEFULSET)
            assert sidecar(sts)["command"] == [
                "bash",
                f"{database.SCRIPTS_DIR}/replication.sh",
                "serve",
                role,
            ], f"{sts.name} must serve as {role} with database.primary: {primary}"
        if preview:
            assert is_unknown(graph.stack_outputs["databaseHost"])
            continue
        hosts = graph.stack_outputs["databaseHosts"]
        assert set(hosts) == {main, second}
        assert graph.stack_outputs["databaseHost"] == hosts[main if primary == "main" else second]


@FLEET
def test_each_homes_jobs_wait_for_both_servers_and_act_only_on_the_primary(fleet):
    """Both homes run the schema Job (and a rotation's), with the same inputs whichever home
    is primary: a promotion creates, deletes or re-runs none. Each first asks its server
    whether it is the primary (writable) or a replica, and only the primary's migrates."""
    for graph, primary in (
        (fleet_graph(fleet, False), "main"),
        (promoted_graph(fleet, False), "standby"),
    ):
        other = "standby" if primary == "main" else "main"
        for home in (primary, other):
            schema = home_db(graph, fleet, home, "schema", JOB)
            assert schema.provider_urn == provider_of(graph, fleet, home)
            for each in (primary, other):
                sts = home_db(graph, fleet, each, "mariadb", STATEFULSET)
                assert graph.depends_on(schema, sts), f"{schema.name} must wait for {sts.name}"
            pod = schema.inputs["spec"]["template"]["spec"]
            first = pod["initContainers"][0]
            assert first["name"] == "home-role" and "read_only" in first["command"][-1]
            assert "replica" in pod["containers"][0]["command"][-1]
        # The replica's home restarts first on a change of primary, fenced before the other
        # is promoted.
        primary_sts = home_db(graph, fleet, primary, "mariadb", STATEFULSET)
        replica_sts = home_db(graph, fleet, other, "mariadb", STATEFULSET)
        assert graph.depends_on(primary_sts, replica_sts)
        assert not graph.depends_on(replica_sts, primary_sts)
    before, after = fleet_graph(fleet, False), promoted_graph(fleet, False)
    for home in ("main", "standby"):
        job = home_db(before, fleet, home, "schema", JOB)
        assert job.inputs == home_db(after, fleet, home, "schema", JOB).inputs, (
            f"{job.name} must not change with database.primary"
        )


def test_a_rotation_runs_on_both_homes_and_acts_on_the_primary_only():
    config = copy.deepcopy(FLEETS["dev-standby"]())
    config["ocm-fleet:databasePasswordRotation"] = 1
    graph = run_program(config)
    for home in ("main", "standby"):
        job = home_db(graph, "dev-standby", home, "password-rotation-1", JOB)
        command = job.inputs["spec"]["template"]["spec"]["containers"][0]["command"][-1]
        assert "read_only" in command and "replica" in command, (
            f"{job.name} must leave a replica alone (root may write on a read-only server)"
        )


def test_standby_primary_needs_a_second_home_and_a_known_value():
    base = {
        "hub": {"name": "main", "cloud": "azure", "region": "westeurope"},
        "clusters": [{"name": "app-azure", "cloud": "azure", "region": "westeurope"}],
        "apiAllowedCidrs": ["203.0.113.7/32"],
    }
    with pytest.raises(
        FleetConfigError,
        match=re.escape("ocm-fleet:database.primary: 'standby' needs a second home"),
    ):
        parse_fleet_config({**base, "database": {"primary": "standby"}})
    with pytest.raises(
        FleetConfigError, match=r"ocm-fleet:database.primary: 'second' is not one of main, standby"
    ):
        parse_fleet_config({**base, "database": {"primary": "second"}})
    with pytest.raises(FleetConfigError, match=re.escape("ocm-fleet:database.primry: unknown key")):
        parse_fleet_config({**base, "database": {"primry": "main"}})
    assert parse_fleet_config({**base, "database": {"primary": "main"}}).database_primary == "main"


# --- destroy order -------------------------------------------------------------------------


@MODES
@FLEET
def test_every_new_object_is_deleted_before_what_it_needs(fleet, preview):
    graph = fleet_graph(fleet, preview)
    main, second = HOMES[fleet]
    for home, cluster in (("main", main), ("standby", second)):
        sts = home_db(graph, fleet, home, "mariadb", STATEFULSET)
        for role, type_ in (
            ("credentials", SECRET),
            ("tls", SECRET),
            ("replication", "kubernetes:core/v1:ConfigMap"),
            ("data", "kubernetes:core/v1:PersistentVolumeClaim"),
            ("service", SERVICE),
            ("public", SERVICE),
            ("network-policy-mariadb-replication", POLICY),
            ("network-policy-mariadb-clients", POLICY),
            ("namespace", "kubernetes:core/v1:Namespace"),
        ):
            need = home_db(graph, fleet, home, role, type_)
            assert graph.depends_on(sts, need), f"{sts.name} must be deleted before {need.name}"
        plane = graph.control_plane(cluster)
        for role, type_ in (
            ("public", SERVICE),
            ("data", "kubernetes:core/v1:PersistentVolumeClaim"),
        ):
            res = home_db(graph, fleet, home, role, type_)
            assert graph.depends_on(res, plane), f"{res.name} must go before its cluster {cluster}"
        public = home_db(graph, fleet, home, "public", SERVICE)
        assert not graph.depends_on(public, sts), (
            f"{public.name} is made before the server whose certificate names its address"
        )
        assert not (public.inputs["metadata"].get("finalizers")), "no finalizer of the program's"


# --- fleets without a second home ----------------------------------------------------------


@pytest.mark.parametrize("fleet", ["dev", "local", "large"])
def test_without_a_second_home_nothing_of_the_replica_exists(fleet):
    graph = fleet_graph(fleet, False)
    names = {r.name for r in graph.resources}
    for absent in ("database-replication-password", "database-replication-ca", "database-tls"):
        assert absent not in names, f"{absent} exists without hub.standby"
    sts = graph.named("database-mariadb", STATEFULSET)
    assert [c["name"] for c in sts.inputs["spec"]["template"]["spec"]["containers"]] == ["mariadb"]
    assert "databaseHosts" not in graph.stack_outputs
    public = graph.named("database-public", SERVICE)
    assert graph.depends_on(public, sts), "the one-home LoadBalancer still follows its server"


def test_the_replicas_disk_on_an_eks_home_is_a_gp3_class_of_the_programs():
    """EKS marks no storage class as the default from 1.30: a claim naming none stays Pending."""
    graph = fleet_graph("dev-standby", False)
    claim = graph.named("database-second-data", "kubernetes:core/v1:PersistentVolumeClaim")
    gp3 = graph.named("database-second-gp3", "kubernetes:storage.k8s.io/v1:StorageClass")
    assert claim.inputs["spec"]["storageClassName"] == gp3.inputs["metadata"]["name"]
    assert gp3.inputs["provisioner"] == "ebs.csi.aws.com"
    assert gp3.inputs["parameters"]["type"] == "gp3"
    assert gp3.provider_urn == graph.kubernetes_provider("second").urn
    assert graph.depends_on(claim, gp3), "the claim goes before its class"
    addon = [
        r
        for r in graph.descendants(graph.cluster_component("second"))
        if r.type == "aws:eks/addon:Addon" and "ebs" in r.name
    ]
    assert addon and all(graph.depends_on(claim, a) for a in addon), (
        "the claim is released before the EBS CSI driver goes"
    )
    local = fleet_graph("local-standby", False)
    kind_claim = local.named("database-second-data", "kubernetes:core/v1:PersistentVolumeClaim")
    assert "storageClassName" not in kind_claim.inputs["spec"], "kind: the cluster's default"
