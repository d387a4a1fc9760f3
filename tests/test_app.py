"""The bookstore end to end on the recorded graph: its ManifestWork template, per-cluster
credentials, database, edges, public entry.

Golden file: tests/golden/manifestwork-template.yaml holds the exact payload every cluster's
ManifestWork carries. Regenerate it with `UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_app.py`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import FLEETS, entry_egress, entry_services, fleet_graph
from harness import (
    Graph,
    contains_plain,
    contains_secret,
    failure_of,
    is_secret,
    is_unknown,
    run_program,
)
from schemas import kubernetes_errors
from test_ocm import REPLICA_SET, app_cluster_names, hub_name

from components.app._manifests import WORK_KINDS, load_manifests
from components.app.database import DB_USERS
from components.app.delivery import (
    DATABASE_SERVICE,
    PASSWORD_GENERATION_ANNOTATION,
    workload_manifests,
)
from components.clusters.node_pool_changes import CONTROL_PLANE_REPLACING_INPUTS
from components.edge import _haproxy
from components.edge.public_load_balancer import PUBLIC_ENTRY_LABEL

GOLDEN = Path(__file__).parent / "golden"


SERVICE = "kubernetes:core/v1:Service"
MODES = [pytest.param(False, id="update"), pytest.param(True, id="preview")]
GOLDEN_DATABASE = {
    "DB_HOST": "db.example.test",
    "DB_NAME": "bookstore",
    "DB_PORT": "3306",
    "DB_USER": "appuser",
}


class _ReadableDumper(yaml.SafeDumper):
    """Multi-line strings (config files) as literal blocks and no YAML anchors, so reviewers
    read the payload as the cluster will see it."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ReadableDumper.add_representer(str, _str)


def template_objects(graph: Graph) -> list[dict]:
    """The objects every cluster's ManifestWork carries: the replica set's template."""
    replica_set = graph.named("app-rollout-replica-set", REPLICA_SET)
    return replica_set.inputs["spec"]["manifestWorkTemplate"]["workload"]["manifests"]


# What each cluster's own ManifestWork applied in stacks made before the replica set: the
# manifests and the database ConfigMap. The first `up` after that upgrade deletes those works
# last, and their agents delete what the works applied.
PRE_REPLICA_SET_WORK_OBJECTS = {("ConfigMap", "bookstore", "bookstore-database")}


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_nothing_is_owned_both_by_pulumi_and_by_a_manifest_work(fleet):
    graph = fleet_graph(fleet, False)
    applied_by_works = {
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
        for o in template_objects(graph)
    } | PRE_REPLICA_SET_WORK_OBJECTS
    for cluster in app_cluster_names(fleet):
        provider = graph.kubernetes_provider(cluster).urn
        for res in graph.resources:
            if res.provider_urn != provider or not res.type.startswith("kubernetes:"):
                continue
            metadata = res.inputs.get("metadata") or {}
            ident = (
                res.type.rsplit(":", 1)[-1],
                metadata.get("namespace", ""),
                metadata.get("name"),
            )
            assert ident not in applied_by_works, (
                f"{res} on {cluster} is also applied by a ManifestWork: deleting that work "
                "would delete it behind Pulumi's back"
            )


def load_balancers(graph: Graph):
    # A spec unknown as a whole in preview is an app cluster's Service for a database home,
    # made from that home's address (AppDelivery): never a load balancer.
    return [
        r
        for r in graph.of_type(SERVICE)
        if not is_unknown(r.inputs["spec"]) and r.inputs["spec"].get("type") == "LoadBalancer"
    ]


def test_manifest_work_template_matches_golden():
    payload = workload_manifests(load_manifests())
    text = yaml.dump_all(payload, Dumper=_ReadableDumper, sort_keys=True)
    path = GOLDEN / "manifestwork-template.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run UPDATE_GOLDEN=1 pytest tests/test_app.py"
    assert text == path.read_text(), "the ManifestWork template changed; review and regenerate"


@pytest.mark.parametrize("fleet", list(FLEETS))
@pytest.mark.parametrize("preview", MODES)
def test_template_is_manifests_and_per_cluster_data_goes_to_each_cluster(fleet, preview):
    """One template for all; the database ConfigMap, which names its cluster, is created on each
    cluster with that cluster's provider and the graph's database address."""
    graph = fleet_graph(fleet, preview)
    # With a second home the app reaches the database by the stable name a promotion
    # re-points (tests/test_promotion.py), in the template and in each cluster's ConfigMap.
    stable = DATABASE_SERVICE if "databaseHosts" in graph.stack_outputs else None
    assert template_objects(graph) == workload_manifests(load_manifests(), database_host=stable)
    assert "ConfigMap" not in {
        o["kind"]
        for o in template_objects(graph)
        if o["metadata"]["name"] == "bookstore-database-endpoint"
    }, "the per-cluster database ConfigMap must not be in the shared template"
    host = stable or graph.stack_outputs["databaseHost"]
    for cluster in app_cluster_names(fleet):
        config = graph.named(f"{cluster}-app-database-config")
        assert config.provider_urn == graph.kubernetes_provider(cluster).urn, config
        assert config.inputs["metadata"]["labels"]["ocm-fleet.io/cluster"] == cluster, config
        data = config.inputs["data"]
        if preview:
            assert is_unknown(data) or is_unknown(data["DB_HOST"]) or data["DB_HOST"] == host
        else:
            assert host and data == {**GOLDEN_DATABASE, "DB_HOST": host}, (
                f"{config} must carry the graph's database address"
            )


def assert_no_secret_in_manifest_works_or_plain_text(graph: Graph) -> None:
    """No ManifestWork carries a Secret, a secret value or a generated password, and no
    generated password appears outside a Pulumi secret in any input or stack output."""
    generated = _generated_passwords(graph)
    assert generated, "the mocks must generate passwords for this check to mean anything"
    works = graph.of_type(REPLICA_SET)
    assert works
    for res in works:
        assert not contains_secret(res.wire_inputs), (
            f"{res} holds a secret value: the hub would store it in plain text"
        )
        kinds = {
            o["kind"] for o in res.inputs["spec"]["manifestWorkTemplate"]["workload"]["manifests"]
        }
        assert "Secret" not in kinds, f"{res} carries a Secret"
        text = json.dumps(res.inputs)
        assert not [p for p in generated if p in text], f"{res} carries a generated password"
    for res in graph.resources:
        for password in generated:
            assert not contains_plain(res.wire_inputs, password), (
                f"a generated password appears in plain text in the inputs of {res}"
            )
    for password in generated:
        assert not contains_plain(graph.stack_wire_outputs, password), "password in outputs"


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_no_secret_travels_in_a_manifest_work(fleet):
    assert_no_secret_in_manifest_works_or_plain_text(fleet_graph(fleet, False))


def test_no_secret_travels_when_the_password_is_rotated_and_data_guarded(dev):
    dev["ocm-fleet:databasePasswordRotation"] = "2"
    dev["ocm-fleet:protectData"] = "true"
    graph = run_program(dev)
    assert graph.named("database-password-rotation-2")
    assert_no_secret_in_manifest_works_or_plain_text(graph)


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_manifest_works_hold_no_secret_in_preview_either(fleet):
    for res in fleet_graph(fleet, True).of_type(REPLICA_SET):
        assert not contains_secret(res.wire_inputs), f"{res} holds a secret value in preview"


def _generated_passwords(graph: Graph) -> list[str]:
    """The passwords the mocks generated, read back where the program uses them (secrets)."""
    found = []
    for res in graph.of_type("kubernetes:core/v1:Secret"):
        data = res.inputs.get("stringData") or {}
        found += [v for k, v in data.items() if "PASSWORD" in k and isinstance(v, str)]
    return sorted(set(found))


def test_password_check_can_fail():
    """contains_plain sees a password outside a secret and not inside one."""
    wire = {"spec": {"a": "x generated-password-1 y"}}
    assert contains_plain(wire, "generated-password-1")
    secret = {
        "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
        "value": "generated-password-1",
    }
    assert not contains_plain({"spec": secret}, "generated-password-1")


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_every_object_in_every_manifest_work_is_valid_for_its_kubernetes_version(fleet):
    graph = fleet_graph(fleet, False)
    raw = {k.split(":", 1)[1]: v for k, v in FLEETS[fleet]().items()}
    from components.config import parse_fleet_config

    versions = {c.name: c.kubernetes_version for c in parse_fleet_config(raw).clusters}
    for cluster in app_cluster_names(fleet):
        for obj in template_objects(graph):
            errors = kubernetes_errors(obj, versions[cluster])
            assert not errors, (
                f"{obj['kind']} {obj['metadata']['name']} in the ManifestWork template is "
                f"invalid for Kubernetes {versions[cluster]} of {cluster}: {errors}"
            )


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_work_agent_may_apply_every_kind_it_is_sent(fleet):
    graph = fleet_graph(fleet, False)
    objects = template_objects(graph)
    for cluster in app_cluster_names(fleet):
        role = graph.named(f"{cluster}-app-work-agent-role")
        assert role.inputs["metadata"]["labels"] == {
            "open-cluster-management.io/aggregate-to-work": "true"
        }
        granted = {
            (group, resource)
            for rule in role.inputs["rules"]
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            if {"create", "update", "patch", "delete"} <= set(rule["verbs"])
        }
        for obj in objects:
            assert WORK_KINDS[obj["kind"]] in granted, f"{cluster}: no permission for {obj['kind']}"
        provider = graph.kubernetes_provider(cluster)
        assert role.provider_urn == provider.urn, f"{role} must be created on {cluster}"


@pytest.mark.parametrize("fleet", list(FLEETS))
@pytest.mark.parametrize("preview", MODES)
def test_app_secret_is_created_on_each_cluster_directly(fleet, preview):
    graph = fleet_graph(fleet, preview)
    for cluster in app_cluster_names(fleet):
        secret = graph.named(f"{cluster}-app-database-secret")
        assert secret.provider_urn == graph.kubernetes_provider(cluster).urn, secret
        assert is_secret(secret.wire_inputs["stringData"]) or is_secret(
            secret.wire_inputs["stringData"]["DB_PASSWORD"]
        ), f"{secret}: the password must be a Pulumi secret"
        work = graph.named("app-rollout-replica-set")
        assert graph.depends_on(work, secret), f"{work} must wait for {cluster}'s password Secret"
        assert graph.depends_on(secret, graph.named("database-schema")), (
            f"{secret} must wait for the schema migration"
        )
        assert graph.depends_on(work, graph.named("database-schema")), (
            f"{work} must wait for the schema migration"
        )


@pytest.mark.parametrize("fleet", list(FLEETS))
@pytest.mark.parametrize("preview", MODES)
def test_exactly_the_entries_are_open_to_the_internet(fleet, preview):
    graph = fleet_graph(fleet, preview)
    open_ones = [
        r for r in load_balancers(graph) if not r.inputs["spec"].get("loadBalancerSourceRanges")
    ]
    assert sorted(r.name for r in open_ones) == entry_services(fleet), (
        f"only the public entries (one per main home) may have no source ranges, found {open_ones}"
    )
    for entry in open_ones:
        assert entry.inputs["metadata"]["labels"][PUBLIC_ENTRY_LABEL] == "true", entry
    homes = {r.provider_urn for r in open_ones}
    assert len(homes) == len(open_ones), f"{fleet}: one entry per cluster, got {open_ones}"
    for res in load_balancers(graph):
        ranges = res.inputs["spec"].get("loadBalancerSourceRanges")
        if ranges and not is_unknown(ranges):
            assert "0.0.0.0/0" not in ranges and "::/0" not in ranges, res


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_database_allowlist_equals_app_cluster_egress_ips(fleet):
    graph = fleet_graph(fleet, False)
    database = graph.named("database-public")
    expected = sorted(
        {ip for c in graph.stack_outputs["clusters"].values() for ip in c["egressIps"]}
    )
    assert expected, "app clusters must have egress IPs"
    # With a second home, its replica reaches the primary from its own egress addresses
    # (tests/test_database_replica.py).
    second_home = {
        ip for c in graph.stack_outputs.get("hubStandby", {}).values() for ip in c["egressIps"]
    }
    expected = sorted(set(expected) | second_home)
    assert database.inputs["spec"]["loadBalancerSourceRanges"] == expected
    for cidr in expected:
        assert ipaddress.ip_network(cidr).prefixlen == 32, cidr


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_database_allowlist_comes_from_the_egress_resources_in_preview(fleet):
    """With every address unknown, the allowlist still follows from each egress IP resource."""
    graph = fleet_graph(fleet, True)
    database = graph.named("database-public")
    deps = set(database.property_dependencies.get("spec", []))
    for cluster in app_cluster_names(fleet):
        component = graph.cluster_component(cluster)
        if component.type == "ocm-fleet:index:ExistingCluster":
            continue  # its egress IPs are config, known in preview
        egress = graph.egress_resources(cluster)
        assert egress and all(r.urn in deps for r in egress), (
            f"the database allowlist must depend on {cluster}'s egress IP resources"
        )


@pytest.mark.parametrize("fleet", list(FLEETS))
@pytest.mark.parametrize("preview", MODES)
def test_edges_admit_only_the_entries(fleet, preview):
    graph = fleet_graph(fleet, preview)
    for cluster in app_cluster_names(fleet):
        edge = graph.named(f"{cluster}-app-edge")
        assert edge.provider_urn == graph.kubernetes_provider(cluster).urn
        assert edge.inputs["spec"]["type"] == "LoadBalancer"
        assert edge.inputs["metadata"]["annotations"]["pulumi.com/waitFor"] == (
            "jsonpath={.status.loadBalancer.ingress[0]}"
        ), f"{edge} has no pods until OCM delivers them (never on a standby): wait for its address"
        assert _minutes(edge.options["customTimeouts"]["create"]) >= 20, (
            f"{edge}: a cloud load balancer can take many minutes to get its address"
        )
        nodes = [
            r
            for r in graph.descendants(graph.cluster_component(cluster))
            if r.type
            in ("aws:eks/nodeGroup:NodeGroup", "azure-native:containerservice:ManagedCluster")
        ]
        assert all(graph.depends_on(edge, n) for n in nodes), (
            f"{edge} creates a cloud load balancer: destroy must remove it before {nodes}"
        )
        # The main cluster's egress, and the second home's where it runs an entry too.
        ranges = edge.inputs["spec"]["loadBalancerSourceRanges"]
        if preview:
            assert is_unknown(ranges) or ranges == entry_egress(graph)
        else:
            assert ranges == entry_egress(graph), f"{edge} of {cluster}"


def _minutes(timeout: str) -> float:
    """A Pulumi custom timeout such as "40m" or "1h30m", in minutes."""
    assert re.fullmatch(r"(\d+h)?(\d+m)?(\d+s)?", timeout) and timeout, timeout
    hours = re.search(r"(\d+)h", timeout)
    minutes = re.search(r"(\d+)m", timeout)
    seconds = re.search(r"(\d+)s", timeout)
    return (
        (int(hours.group(1)) * 60 if hours else 0)
        + (int(minutes.group(1)) if minutes else 0)
        + (int(seconds.group(1)) / 60 if seconds else 0)
    )


@pytest.mark.parametrize("preview", MODES)
def test_public_entry_waits_for_haproxy_within_its_create(preview):
    graph = fleet_graph("large", preview)
    service = graph.named("public-lb-service")
    haproxy = graph.named("public-lb-haproxy")
    assert (
        service.inputs["spec"]["selector"]
        == (haproxy.inputs["spec"]["template"]["metadata"]["labels"])
    ), f"{service} must select the HAProxy pods, so its create waits for them to be ready"
    edges = [r for r in load_balancers(graph) if r.name.endswith("-app-edge")]
    slowest_edge = max(_minutes(e.options["customTimeouts"]["create"]) for e in edges)
    assert _minutes(service.options["customTimeouts"]["create"]) > slowest_edge, (
        f"{service} starts with the main cluster and waits for HAProxy, which comes after "
        "every app cluster's edge: its create timeout must outlast theirs"
    )


def test_public_entry_config_passes_haproxy_check(tmp_path):
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed (Debian package: haproxy)")
    graph = fleet_graph("large", False)
    config = graph.named("public-lb-config").inputs["data"]["haproxy.cfg"]
    path = tmp_path / "haproxy.cfg"
    path.write_text(config)
    result = subprocess.run(
        ["haproxy", "-c", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "RES_OPTIONS": "timeout:1 attempts:1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    edges = {n: c["edgeAddress"] for n, c in graph.stack_outputs["clusters"].items()}
    server_lines = [
        line.split() for line in config.splitlines() if line.strip().startswith("server ")
    ]
    assert {line[1]: line[2].rsplit(":", 1)[0] for line in server_lines} == edges
    assert all("check" in line for line in server_lines)
    assert config == _haproxy.render_public_lb_config(edges)


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_public_entry_rolls_when_its_config_changes_and_exports_a_url(fleet):
    graph = fleet_graph(fleet, False)
    config = graph.named("public-lb-config").inputs["data"]["haproxy.cfg"]
    deployment = graph.named("public-lb-haproxy")
    annotation = deployment.inputs["spec"]["template"]["metadata"]["annotations"]
    assert annotation["ocm-fleet.io/config-sha256"] == hashlib.sha256(config.encode()).hexdigest()
    assert deployment.inputs["spec"]["replicas"] >= 2
    assert graph.stack_outputs["url"].startswith("http://")
    assert graph.stack_outputs["url"] != "http://"
    assert deployment.provider_urn == graph.kubernetes_provider(hub_name(fleet)).urn


def test_data_is_guarded_only_when_asked(dev):
    graph = fleet_graph("dev", False)
    assert graph.named("database-data").options["protect"] is False, "dev destroys in one go"
    dev["ocm-fleet:protectData"] = "true"
    guarded = run_program(dev)
    assert guarded.named("database-data").options["protect"] is True


def test_password_rotation_sets_and_rolls_out_a_new_password(dev):
    graph = fleet_graph("dev", False)
    assert not [r for r in graph.resources if "password-rotation" in r.name]
    dev["ocm-fleet:databasePasswordRotation"] = "1"
    rotated = run_program(dev)
    app_password = rotated.named("database-app-password")
    assert app_password.inputs["keepers"] == {"rotation": "1"}
    job = rotated.named("database-password-rotation-1")
    command = " ".join(job.inputs["spec"]["template"]["spec"]["containers"][0]["command"])
    assert f"'{DB_USERS[1]}'@" in command and f"'{DB_USERS[0]}'@" not in command, (
        "rotation 1 must set the password of the second user, leaving the first one working"
    )
    for work in rotated.of_type(REPLICA_SET):
        assert rotated.depends_on(work, job), f"{work} must wait for the new password to be set"
        readers = [
            o
            for o in template_objects(rotated)
            if o["kind"] == "Deployment" and o["metadata"]["name"] == "shopapi"
        ]
        annotations = readers[0]["spec"]["template"]["metadata"]["annotations"]
        assert annotations[PASSWORD_GENERATION_ANNOTATION] == "1", (
            f"{work}: shopapi must restart to read the rotated password"
        )
    for cluster in app_cluster_names("dev"):
        config = rotated.named(f"{cluster}-app-database-config")
        secret = rotated.named(f"{cluster}-app-database-secret")
        assert config.inputs["data"]["DB_USER"] == DB_USERS[1], config
        for res in (config, secret):
            assert rotated.depends_on(res, job), (
                f"{res} must change only once the database accepts the new user and password"
            )


def test_schema_job_logs_in_as_the_user_whose_password_the_secret_holds(dev):
    dev["ocm-fleet:databasePasswordRotation"] = "1"
    rotated = run_program(dev)
    schema = rotated.named("database-schema")
    job = rotated.named("database-password-rotation-1")
    pod = schema.inputs["spec"]["template"]["spec"]
    users = {
        container["name"]: {e["name"]: e.get("value") for e in container["env"]}["DB_USER"]
        for container in [*pod["initContainers"], *pod["containers"]]
    }
    assert users == {"seed-guard": DB_USERS[1], "schema": DB_USERS[1]}, (
        f"{schema}: after rotation 1 the Secret holds {DB_USERS[1]}'s password, not {users}"
    )
    assert rotated.depends_on(schema, job), (
        f"{schema} must run once {job} has set {DB_USERS[1]}'s password"
    )
    assert not rotated.depends_on(job, schema), f"{job} must not wait for {schema}"


def test_database_runs_mariadb_lts_on_a_pulumi_owned_volume():
    graph = fleet_graph("dev", False)
    statefulset = graph.named("database-mariadb")
    pod = statefulset.inputs["spec"]["template"]["spec"]
    image = pod["containers"][0]["image"]
    assert image.startswith("mariadb:11.4."), image
    claim = graph.named("database-data")
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == claim.inputs["metadata"]["name"]
    schema = graph.named("database-schema")
    assert graph.depends_on(schema, statefulset), "the schema Job runs after the database is up"
    command = " ".join(schema.inputs["spec"]["template"]["spec"]["containers"][0]["command"])
    assert "db:migrate" in command and "db:seed" in command
    assert statefulset.provider_urn == graph.kubernetes_provider(hub_name("dev")).urn


def test_statefulset_governing_service_is_headless():
    """A selector Service with a cluster IP waits for endpoints; the StatefulSet that makes them
    waits for the Service. Headless, the governing Service does not wait."""
    graph = fleet_graph("dev", False)
    service = graph.named("database-service")
    statefulset = graph.named("database-mariadb")
    assert service.inputs["spec"]["clusterIP"] == "None"
    assert statefulset.inputs["spec"]["serviceName"] == service.inputs["metadata"]["name"]
    waiting = [
        res
        for res in graph.of_type(SERVICE)
        if res.inputs["spec"].get("type") != "LoadBalancer"
        and res.inputs["spec"].get("clusterIP") != "None"
    ]
    assert not waiting, f"ClusterIP Services with selectors would wait on pods: {waiting}"


def test_rotation_job_sets_the_password_without_putting_it_on_a_command_line(tmp_path):
    """Runs the Job's shell command for real with a stand-in `mariadb` client."""
    from components.app.database import CREDENTIALS_DIR, ROOT_CLIENT_CONFIG, rotation_job_spec

    spec = rotation_job_spec("db.internal", "creds")["template"]["spec"]
    (container,) = spec["containers"]
    client = tmp_path / "mariadb"
    client.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/argv\ncat > {tmp_path}/stdin\n')
    client.chmod(0o755)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "MARIADB_PASSWORD").write_text("NewPassw0rd")
    (secrets / ROOT_CLIENT_CONFIG).write_text("[client]\nuser=root\npassword=R00tPassw0rd\n")
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env == {"DB_HOST": "db.internal", "CREDENTIALS_DIR": CREDENTIALS_DIR}, (
        "the rotation Job takes no password from its environment"
    )
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "DB_HOST": "db.internal"}
    env["CREDENTIALS_DIR"] = str(secrets)
    subprocess.run(container["command"], env=env, check=True, timeout=10)
    argv = (tmp_path / "argv").read_text()
    assert (tmp_path / "stdin").read_text() == (
        "CREATE USER IF NOT EXISTS 'appuser'@'%' IDENTIFIED BY 'NewPassw0rd';\n"
        "ALTER USER 'appuser'@'%' IDENTIFIED BY 'NewPassw0rd';\n"
        "GRANT ALL PRIVILEGES ON bookstore.* TO 'appuser'@'%';\n"
    )
    assert "Passw0rd" not in argv, f"a password is on the client's command line: {argv}"
    assert argv.split() == [
        f"--defaults-extra-file={secrets}/{ROOT_CLIENT_CONFIG}",
        "-h",
        "db.internal",
    ]
    (mount,) = container["volumeMounts"]
    (volume,) = spec["volumes"]
    assert mount == {"name": volume["name"], "mountPath": CREDENTIALS_DIR, "readOnly": True}
    assert {i["key"] for i in volume["secret"]["items"]} == {"MARIADB_PASSWORD", ROOT_CLIENT_CONFIG}


# --- the database disk, and stacks from before ------------------------------------------------

PVC = "kubernetes:core/v1:PersistentVolumeClaim"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
MANAGED_CLUSTER = "azure-native:containerservice:ManagedCluster"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
EKS = "aws:eks/cluster:Cluster"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


@pytest.mark.parametrize("preview", MODES)
def test_the_database_claim_uses_the_zone_redundant_class_on_aks(preview):
    graph = fleet_graph("dev", preview)
    (storage_class,) = graph.of_type(STORAGE_CLASS)
    claim, statefulset = graph.named("database-data"), graph.named("database-mariadb")
    assert storage_class.inputs["provisioner"] == "disk.csi.azure.com"
    assert storage_class.inputs["parameters"] == {"skuName": "StandardSSD_ZRS"}, (
        f"{storage_class.name} must make zone-redundant disks"
    )
    assert storage_class.inputs["volumeBindingMode"] == "WaitForFirstConsumer"
    assert storage_class.inputs["reclaimPolicy"] == "Delete", "destroy must leave no disk"
    assert claim.inputs["spec"]["storageClassName"] == storage_class.inputs["metadata"]["name"], (
        f"claim {claim.name} must use {storage_class.name}"
    )
    assert graph.depends_on(claim, storage_class)
    assert claim.inputs["metadata"]["name"] == "mariadb-data-zrs"
    pod = statefulset.inputs["spec"]["template"]["spec"]
    (data,) = [v for v in pod["volumes"] if v["name"] == "data"]
    assert data["persistentVolumeClaim"]["claimName"] == "mariadb-data-zrs"
    assert storage_class.provider_urn == graph.kubernetes_provider(hub_name("dev")).urn
    assert graph.stack_outputs["hub"]["databaseStorage"] == "zoneRedundant"


def test_a_hub_in_a_region_without_zones_keeps_the_default_class(dev):
    dev["ocm-fleet:hub"] = {**dev["ocm-fleet:hub"], "region": "northcentralus"}
    graph = run_program(dev)
    assert not graph.of_type(STORAGE_CLASS), "ZRS disks need a region with zones"
    claim = graph.named("database-data")
    assert claim.inputs["metadata"]["name"] == "mariadb-data"
    assert "storageClassName" not in claim.inputs["spec"], claim.inputs["spec"]


def as_before_this_change(outputs):
    """Stack outputs as a run of the program before the identity, disk and log-group choices
    were recorded wrote them: those keys absent."""
    outputs = json.loads(json.dumps(outputs))
    for key in ("clusters", "retiringClusters"):
        for described in (outputs.get(key) or {}).values():
            for gone in ("logGroup", "controlPlaneIdentity"):
                described.pop(gone, None)
    for gone in ("logGroup", "controlPlaneIdentity", "databaseStorage"):
        outputs["hub"].pop(gone, None)
    return outputs


_OLD: dict[str, Graph] = {}


def old_stack_outputs() -> dict:
    if "first" not in _OLD:
        _OLD["first"] = run_program(FLEETS["dev"]())
    return as_before_this_change(_OLD["first"].stack_outputs)


def assert_kept_as_before(graph: Graph, fresh: Graph) -> None:
    for aks in graph.of_type(MANAGED_CLUSTER):
        assert aks.inputs["identity"] == {"type": "SystemAssigned"}, (
            f"ManagedCluster {aks.name} must keep the identity it was created with"
        )
    assert not graph.of_type(IDENTITY), "no user-assigned identity for clusters that have one"
    for role in graph.of_type("azure-native:authorization:RoleAssignment"):
        owner = graph.named(role.name.removesuffix("-network-contributor") + "-aks")
        assert owner.urn in role.property_dependencies["principalId"], (
            f"{role.name} must stay granted to {owner.name}'s own identity"
        )
    claim = graph.named("database-data")
    assert claim.inputs["metadata"]["name"] == "mariadb-data", "the claim must keep its name"
    assert "storageClassName" not in claim.inputs["spec"], (
        f"claim {claim.name} must keep the default class: a class change replaces the volume"
    )
    assert not graph.of_type(STORAGE_CLASS)
    # Nothing that would replace a control plane moved against a fresh run of the same config.
    fresh_planes = {r.name: r for r in fresh.resources if r.type in CONTROL_PLANE_REPLACING_INPUTS}
    for plane in (r for r in graph.resources if r.type in CONTROL_PLANE_REPLACING_INPUTS):
        for key in CONTROL_PLANE_REPLACING_INPUTS[plane.type]:
            assert plane.wire_inputs.get(key) == fresh_planes[plane.name].wire_inputs.get(key), (
                f"{plane.name}.{key} would replace the control plane"
            )


def keeping(config: dict) -> dict:
    """`config` with the keys a stack from before sets to keep what it has, and to import the
    log group EKS made (docs/day-2.md, stacks from before the cloud-path changes)."""
    config = json.loads(json.dumps(config))
    config["ocm-fleet:hub"]["databaseStorage"] = "clusterDefault"
    config["ocm-fleet:hub"]["controlPlaneIdentity"] = "systemAssigned"
    for entry in config["ocm-fleet:clusters"]:
        if entry["cloud"] == "azure":
            entry["controlPlaneIdentity"] = "systemAssigned"
        if entry["cloud"] == "aws":
            entry["importLogGroup"] = True
    return config


@pytest.mark.parametrize("preview", MODES)
def test_a_stack_from_before_plans_no_replacement_of_a_cluster_or_the_volume(dev, preview):
    upgraded = run_program(keeping(dev), preview=preview, previous_outputs=old_stack_outputs())
    assert_kept_as_before(upgraded, fleet_graph("dev", preview))
    (group,) = upgraded.of_type(LOG_GROUP)
    eks = upgraded.named("app-aws-eks", EKS)
    assert group.options["importId"] == f"/aws/eks/{eks.inputs['name']}/cluster", (
        "the log group EKS made must be imported, not created a second time"
    )
    assert upgraded.depends_on(eks, group)
    if not preview:
        # The next run, with importLogGroup removed, manages the group with its retention,
        # and what this run recorded keeps the rest as it is.
        config = keeping(dev)
        del config["ocm-fleet:clusters"][0]["importLogGroup"]
        after = run_program(config, previous_outputs=upgraded.stack_outputs)
        assert_kept_as_before(after, fleet_graph("dev", False))
        (group,) = after.of_type(LOG_GROUP)
        assert not group.options["importId"] and group.inputs["retentionInDays"] == 90
        assert after.stack_outputs["hub"]["databaseStorage"] == "clusterDefault"
        assert after.stack_outputs["clusters"]["app-azure"]["controlPlaneIdentity"] == (
            "systemAssigned"
        )


@pytest.mark.parametrize(
    ("unset", "message"),
    [
        (
            ("ocm-fleet:clusters", 1, "controlPlaneIdentity"),
            "KeptChoiceError: ocm-fleet:clusters[1].controlPlaneIdentity: missing; the AKS "
            "cluster of 'app-azure' runs a systemAssigned identity",
        ),
        (
            ("ocm-fleet:hub", None, "databaseStorage"),
            "KeptChoiceError: ocm-fleet:hub.databaseStorage: missing; the database of this "
            "stack is on a clusterDefault disk",
        ),
        (
            ("ocm-fleet:clusters", 0, "importLogGroup"),
            "KeptChoiceError: ocm-fleet:clusters[0].importLogGroup: missing; EKS made the log "
            "group /aws/eks/dev-app-aws/cluster of 'app-aws' itself",
        ),
    ],
    ids=["identity", "database", "log-group"],
)
def test_a_stack_from_before_stops_until_its_entry_says_what_to_keep(dev, unset, message):
    config = keeping(dev)
    key, index, field = unset
    del (config[key] if index is None else config[key][index])[field]
    code = (
        "from harness import run_program\n"
        f"run_program({config!r}, previous_outputs={old_stack_outputs()!r})\n"
    )
    error = failure_of(code)
    assert error is not None and message in error, error


def test_importing_a_log_group_a_new_cluster_does_not_have_is_refused(dev):
    dev["ocm-fleet:clusters"][0]["importLogGroup"] = True
    error = failure_of(f"from harness import run_program\nrun_program({dev!r})\n")
    assert (
        error is not None
        and ("ocm-fleet:clusters[0].importLogGroup: true, but the cluster 'app-aws' is new")
        in error
    ), error


def test_a_stack_from_before_moves_only_when_the_user_chooses(dev):
    config = keeping(dev)
    config["ocm-fleet:hub"]["databaseStorage"] = "zoneRedundant"
    config["ocm-fleet:clusters"][1]["controlPlaneIdentity"] = "userAssigned"
    moved = run_program(config, previous_outputs=old_stack_outputs())
    claim = moved.named("database-data")
    assert claim.inputs["metadata"]["name"] == "mariadb-data-zrs", (
        "the new claim needs a name of its own, so it exists before the old one is deleted"
    )
    assert claim.inputs["spec"]["storageClassName"] == "ocm-fleet-zone-redundant"
    assert moved.named("app-azure-aks", MANAGED_CLUSTER).inputs["identity"]["type"] == (
        "UserAssigned"
    )
    assert moved.named("main-aks", MANAGED_CLUSTER).inputs["identity"] == {"type": "SystemAssigned"}


@pytest.mark.parametrize("preview", MODES)
def test_fresh_aks_clusters_have_their_identity_and_rights_before_they_exist(preview):
    graph = fleet_graph("dev", preview)
    for aks in graph.of_type(MANAGED_CLUSTER):
        cluster = aks.name.removesuffix("-aks")
        identity = graph.named(f"{cluster}-control-plane-identity", IDENTITY)
        role = graph.named(f"{cluster}-network-contributor")
        assert identity.urn in role.property_dependencies["principalId"]
        for before in (identity, role):
            assert graph.depends_on(aks, before), f"{aks.name} must wait for {before.name}"
        assert not graph.depends_on(role, aks), f"{role.name} must not wait for {aks.name}"
