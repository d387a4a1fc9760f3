"""kind clusters and cloud-provider-kind: the local stack's graph, config and shell commands."""

from __future__ import annotations

import ipaddress
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import fleet_graph, local_config
from harness import COMMAND, Graph, is_kind_cluster_command, is_secret, run_program, wire_get

from components.clusters import kind
from components.config import FleetConfigError, parse_fleet_config

MODES = [pytest.param(False, id="update"), pytest.param(True, id="preview")]
SERVICE = "kubernetes:core/v1:Service"
STACK = "dev"  # the stack name run_program gives the program


def local_fleet():
    return parse_fleet_config({k.split(":", 1)[1]: v for k, v in local_config().items()})


def kind_command(graph: Graph, cluster: str):
    [res] = [
        r for r in graph.descendants(graph.cluster_component(cluster)) if is_kind_cluster_command(r)
    ]
    return res


def controller(graph: Graph):
    return graph.named("kind-load-balancer-controller", COMMAND)


def test_the_local_stack_is_a_hub_and_two_app_clusters_on_kind():
    fleet = local_fleet()
    assert fleet.hub.cloud == "kind"
    assert [c.cloud for c in fleet.clusters] == ["kind", "kind"]
    assert "0.0.0.0/0" not in fleet.api_allowed_cidrs


@pytest.mark.parametrize("preview", MODES)
def test_each_kind_cluster_is_created_before_and_deleted_after_everything_on_it(preview):
    graph = fleet_graph("local", preview)
    for spec in local_fleet().all_clusters:
        cluster = kind_command(graph, spec.name)
        provider = graph.kubernetes_provider(spec.name)
        on_it = [r for r in graph.resources if r.provider_urn == provider.urn]
        assert on_it, f"nothing found on {spec.name}"
        for res in [provider, *on_it]:
            assert graph.depends_on(res, cluster), (
                f"{res} on {spec.name} must depend on {cluster}, so the kind cluster exists "
                "before it and is deleted after it"
            )
        assert not graph.depends_on(cluster, provider), f"{cluster} must not wait for {provider}"


@pytest.mark.parametrize("preview", MODES)
def test_every_load_balancer_service_goes_before_cloud_provider_kind_stops(preview):
    graph = fleet_graph("local", preview)
    lb = controller(graph)
    services = [r for r in graph.of_type(SERVICE) if r.inputs["spec"].get("type") == "LoadBalancer"]
    # The edge of each app cluster, the database, the public entry and the metrics receiver.
    assert len(services) == len(local_fleet().clusters) + 3, services
    for service in services:
        assert graph.depends_on(service, lb), (
            f"{service} must depend on {lb}: destroy deletes the Service (and its proxy "
            "container) while the controller still runs"
        )
    for res in graph.resources:
        if res.type.startswith("kubernetes:"):
            assert not graph.depends_on(lb, res), f"{lb} must not depend on {res}"
    [started] = [r for r in graph.of_type(COMMAND) if "docker run" in r.inputs["create"]]
    assert started.urn == lb.urn, "one cloud-provider-kind for the whole host"


@pytest.mark.parametrize("preview", MODES)
def test_kubeconfigs_of_kind_clusters_are_secrets(preview):
    graph = fleet_graph("local", preview)
    for spec in local_fleet().all_clusters:
        cluster = kind_command(graph, spec.name)
        assert "stdout" in cluster.options["additionalSecretOutputs"], (
            f"{cluster} prints the admin kubeconfig: its stdout must be a secret"
        )
        provider = graph.kubernetes_provider(spec.name)
        assert is_secret(provider.wire_inputs["kubeconfig"]), f"{provider} kubeconfig"
    assert is_secret(graph.stack_wire_outputs["kubeconfigs"])


def test_klusterlets_reach_the_hub_on_the_kind_network_and_pulumi_from_the_host():
    graph = fleet_graph("local", False)
    hub = local_fleet().hub
    internal = f"https://{STACK}-{hub.name}-control-plane:6443"
    assert graph.stack_outputs["hub"]["apiServerUrl"] == internal
    for spec in local_fleet().clusters:
        chart = graph.named(f"{spec.name}-ocm-klusterlet")
        assert is_secret(wire_get(chart.wire_inputs, "values", "bootstrapHubKubeConfig")), chart
        bootstrap = yaml.safe_load(chart.inputs["values"]["bootstrapHubKubeConfig"])
        assert bootstrap["clusters"][0]["cluster"]["server"] == internal, (
            f"the klusterlet of {spec.name} must call the hub at its kind-network address"
        )
    for spec in local_fleet().all_clusters:
        provider = graph.kubernetes_provider(spec.name)
        kubeconfig = yaml.safe_load(provider.inputs["kubeconfig"])
        server = kubeconfig["clusters"][0]["cluster"]["server"]
        assert server.startswith("https://127.0.0.1:"), f"{provider} must use the host port"


def test_allowlists_are_the_node_containers_addresses():
    graph = fleet_graph("local", False)
    fleet = local_fleet()
    outputs = graph.stack_outputs
    hub = outputs["hub"]["egressIps"]
    apps = sorted(
        {c for spec in fleet.clusters for c in outputs["clusters"][spec.name]["egressIps"]}
    )
    for cidr in hub + apps:
        assert ipaddress.ip_network(cidr).prefixlen == 32, cidr
        assert ipaddress.ip_network(cidr).subnet_of(ipaddress.ip_network("172.18.0.0/16")), cidr
    database = graph.named("database-public", SERVICE)
    assert database.inputs["spec"]["loadBalancerSourceRanges"] == apps
    hub_cluster = kind_command(graph, fleet.hub.name)
    for spec in fleet.clusters:
        cluster = kind_command(graph, spec.name)
        assert cluster.urn in database.property_dependencies["spec"], (
            f"the database allowlist must wait for {cluster}, whose nodes it reads"
        )
        edge = graph.named(f"{spec.name}-app-edge", SERVICE)
        assert edge.inputs["spec"]["loadBalancerSourceRanges"] == hub, edge
        assert hub_cluster.urn in edge.property_dependencies["spec"], edge


def address_reads(graph: Graph) -> dict[str, str]:
    """The kind address reads the program made, by what they read -> the command."""
    reads = {}
    for token, args in graph.invokes:
        if token == "command:local:run":
            env = args["environment"]
            key = "/".join(env[k] for k in ("KIND_CLUSTER", "NAMESPACE", "SERVICE") if k in env)
            reads[key] = args["command"]
    return reads


def test_kind_addresses_are_read_on_every_run_not_kept_from_a_create():
    graph = run_program(local_config(), stack="local")
    stored = [
        r.name
        for r in graph.of_type(COMMAND)
        if any(s in r.inputs["create"] for s in ("kind get nodes", "docker ps", "docker inspect"))
    ]
    assert not stored, f"a Command keeps its first output for ever: {stored}"
    assert address_reads(graph) == {
        "local-hub": kind._NODE_ADDRESSES,
        "local-app-1": kind._NODE_ADDRESSES,
        "local-app-2": kind._NODE_ADDRESSES,
        "local-app-1/bookstore/bookstore-edge": kind._LOAD_BALANCER_ADDRESS,
        "local-app-2/bookstore/bookstore-edge": kind._LOAD_BALANCER_ADDRESS,
        "local-hub/bookstore-data/mariadb-public": kind._LOAD_BALANCER_ADDRESS,
        "local-hub/monitoring/metrics-receiver": kind._LOAD_BALANCER_ADDRESS,
    }, "each kind cluster's nodes and each kind LoadBalancer Service, read by an invoke"
    preview = run_program(local_config(), stack="local", preview=True)
    assert not address_reads(preview), "a preview that creates the clusters cannot read them"
    assert not [t for t, _ in fleet_graph("dev", False).invokes if t == "command:local:run"]


MOVED = {
    # After a Docker restart: the hub's and app-1's nodes, app-1's edge and the database's
    # load balancer have other addresses on the kind network.
    "local-hub": "172.18.0.31\n172.18.0.32\n",
    "local-app-1": "172.18.0.41\n172.18.0.42\n",
    "local-app-1/bookstore/bookstore-edge": "172.18.0.51\n",
    "local-hub/bookstore-data/mariadb-public": "172.18.0.61\n",
}
ADDRESS_BUILT = [
    ("database-public", SERVICE),
    ("app-1-app-edge", SERVICE),
    (
        "app-1-app-network-policy-router-from-main-cluster",
        "kubernetes:networking.k8s.io/v1:NetworkPolicy",
    ),
    ("app-1-app-network-policy-router-from-edge", "kubernetes:networking.k8s.io/v1:NetworkPolicy"),
    (
        "database-network-policy-mariadb-from-load-balancer",
        "kubernetes:networking.k8s.io/v1:NetworkPolicy",
    ),
    ("app-1-app-database-config", "kubernetes:core/v1:ConfigMap"),
    ("public-lb-config", "kubernetes:core/v1:ConfigMap"),
]


def test_a_docker_restart_shows_as_a_diff_and_the_next_up_mends_every_address():
    before = run_program(local_config(), stack="local")
    again = run_program(local_config(), stack="local")
    after = run_program(local_config(), stack="local", kind_host=MOVED)
    for name, type_ in ADDRESS_BUILT:
        inputs = before.named(name, type_).inputs
        assert again.named(name, type_).inputs == inputs, f"{name}: a diff with nothing moved"
        assert after.named(name, type_).inputs != inputs, f"{name}: the move must show as a diff"
    database = after.named("database-public", SERVICE).inputs["spec"]
    app_2 = before.stack_outputs["clusters"]["app-2"]["egressIps"]
    assert database["loadBalancerSourceRanges"] == sorted(
        ["172.18.0.41/32", "172.18.0.42/32", *app_2]
    ), "the database allowlist must hold app-1's new node addresses"
    hub = ["172.18.0.31/32", "172.18.0.32/32"]
    assert after.named("app-1-app-edge", SERVICE).inputs["spec"]["loadBalancerSourceRanges"] == hub
    policies = {
        n: after.named(n, "kubernetes:networking.k8s.io/v1:NetworkPolicy").inputs["spec"]
        for n, t in ADDRESS_BUILT
        if "network-policy" in n
    }
    from_hub = policies["app-1-app-network-policy-router-from-main-cluster"]["ingress"][0]["from"]
    assert from_hub == [{"ipBlock": {"cidr": c}} for c in hub], from_hub
    from_edge = policies["app-1-app-network-policy-router-from-edge"]["ingress"][0]["from"]
    assert from_edge == [{"ipBlock": {"cidr": "172.18.0.51/32"}}], from_edge
    from_lb = policies["database-network-policy-mariadb-from-load-balancer"]["ingress"][0]["from"]
    assert from_lb == [{"ipBlock": {"cidr": "172.18.0.61/32"}}], from_lb
    config = after.named("app-1-app-database-config", "kubernetes:core/v1:ConfigMap")
    assert config.inputs["data"]["DB_HOST"] == "172.18.0.61", config
    haproxy = after.named("public-lb-config", "kubernetes:core/v1:ConfigMap").inputs["data"]
    assert "server app-1 172.18.0.51:" in haproxy["haproxy.cfg"], "HAProxy's upstream of app-1"


def test_changing_the_nodes_replaces_the_kind_cluster_old_one_first(tmp_path):
    config = local_config()
    config["ocm-fleet:clusters"][0]["nodeCount"] = 3
    graph = run_program(config)
    cluster = kind_command(graph, config["ocm-fleet:clusters"][0]["name"])
    nodes = yaml.safe_load(cluster.inputs["environment"]["KIND_CONFIG"])["nodes"]
    assert [n["role"] for n in nodes] == ["control-plane", "worker", "worker", "worker"]
    assert cluster.inputs["environment"]["KIND_CONFIG"] in cluster.inputs["triggers"]
    assert cluster.options["deleteBeforeReplace"], "the new cluster has the old one's name"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"nodeSize": "big"}, r"clusters\[0\]\.nodeSize: 'big' is not valid with cloud: kind"),
        ({"kubernetesVersion": "1.34"}, r"clusters\[0\]\.kubernetesVersion: .*pinned kind"),
        ({"egressIps": ["192.0.2.1/32"]}, r"clusters\[0\]\.egressIps: only valid with cloud: ex"),
        ({"cloud": "aws", "region": "eu-west-1"}, r"'kind' cannot be mixed with other clouds"),
    ],
)
def test_kind_config_errors_name_the_key(change, message):
    raw = {k.split(":", 1)[1]: v for k, v in local_config().items()}
    raw["clusters"][0].update(change)
    with pytest.raises(FleetConfigError, match=message):
        parse_fleet_config(raw)


# The shell the commands run in, with stand-in kind and docker that log their arguments.
STAND_INS = {
    "kind": """#!/bin/sh
echo "kind $*" >> "$LOG"
case "$1 $2" in
  "get clusters") cat "$STATE" 2>/dev/null ;;
  "create cluster") cat > "$LOG.config"; echo "$4" >> "$STATE"; echo "Creating cluster" ;;
  "get kubeconfig") echo "apiVersion: v1" ;;
  "get nodes") echo "$4-control-plane"; echo "$4-worker" ;;
  "delete cluster") : ;;
esac
""",
    "docker": """#!/bin/sh
echo "docker $*" >> "$LOG"
case "$1" in
  inspect) echo "${ADDRESS-172.18.0.7}" ;;
  ps) echo "${PROXIES-}" ;;
  run) echo "0123abcd" ;;
  container) exit 1 ;;
esac
""",
}


def run_command(script: str, env: dict[str, str], tmp_path: Path) -> tuple[str, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in STAND_INS.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "log"
    full_env = {
        "PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin",
        "LOG": str(log),
        "STATE": str(tmp_path / "clusters"),
        **env,
    }
    done = subprocess.run(
        ["/bin/sh", "-c", script], env=full_env, capture_output=True, text=True, check=True
    )
    return done.stdout, log.read_text().splitlines() if log.exists() else []


def test_create_command_makes_the_cluster_and_prints_only_the_kubeconfig(tmp_path):
    env = {"KIND_CLUSTER": "local-hub", "KIND_CONFIG": kind.kind_config(1)}
    stdout, calls = run_command(kind._CREATE_CLUSTER, env, tmp_path)
    assert stdout == "apiVersion: v1\n", "stdout is the kubeconfig and nothing else"
    create = [c for c in calls if c.startswith("kind create cluster")]
    assert len(create) == 1 and "--name local-hub --config=- --kubeconfig" in create[0]
    assert "--kubeconfig /" in create[0], "kind must not write into the user's kubeconfig"
    assert yaml.safe_load((tmp_path / "log.config").read_text())["nodes"][1] == {"role": "worker"}
    # Run again (a retried create after a failure): the cluster is reused, not created twice.
    stdout, calls = run_command(kind._CREATE_CLUSTER, env, tmp_path)
    assert stdout == "apiVersion: v1\n"
    assert len([c for c in calls if c.startswith("kind create cluster")]) == 1


def test_node_address_command_prints_each_nodes_kind_network_address(tmp_path):
    env = {"KIND_CLUSTER": "local-app-1", "KIND_NETWORK": "kind"}
    stdout, calls = run_command(kind._NODE_ADDRESSES, env, tmp_path)
    assert kind.node_cidrs(stdout) == ["172.18.0.7/32"]
    inspects = [c for c in calls if c.startswith("docker inspect")]
    assert [c.rsplit(" ", 1)[1] for c in inspects] == [
        "local-app-1-control-plane",
        "local-app-1-worker",
    ]
    assert '(index .NetworkSettings.Networks "kind").IPAddress' in inspects[0]


def test_controller_commands_start_and_stop_one_container(tmp_path):
    env = {
        "CONTAINER": kind.CLOUD_PROVIDER_KIND_CONTAINER,
        "IMAGE": kind.CLOUD_PROVIDER_KIND_IMAGE,
        "STACK": "local",
    }
    stdout, calls = run_command(kind._START_CONTROLLER, env, tmp_path)
    assert stdout.strip() == "0123abcd"
    [run] = [c for c in calls if c.startswith("docker run")]
    assert "--network host" in run and "/var/run/docker.sock:/var/run/docker.sock" in run
    assert run.endswith(kind.CLOUD_PROVIDER_KIND_IMAGE)
    # Stopping what is already gone succeeds, so a destroy can be rerun.
    run_command(kind._STOP_CONTROLLER, env, tmp_path)


def test_load_balancer_address_command_reads_the_services_proxy_container(tmp_path):
    env = {
        "CONTROLLER": kind.CLOUD_PROVIDER_KIND_CONTAINER,
        "KIND_CLUSTER": "local-app-1",
        "KIND_NETWORK": "kind",
        "LABEL": kind.LOAD_BALANCER_LABEL,
        "NAMESPACE": "bookstore",
        "SERVICE": "bookstore-edge",
        "PROXIES": "9f1e",
    }
    stdout, calls = run_command(kind._LOAD_BALANCER_ADDRESS, env, tmp_path)
    assert kind.load_balancer_ip(stdout, "bookstore-edge") == "172.18.0.7"
    label = "io.x-k8s.cloud-provider-kind.loadbalancer.name=local-app-1/bookstore/bookstore-edge"
    assert calls[0] == f"docker ps --quiet --filter label={label}", calls
    assert calls[1].startswith("docker inspect") and calls[1].endswith(" 9f1e"), calls


@pytest.mark.parametrize(
    ("script", "env", "message"),
    [
        ("_NODE_ADDRESSES", {"ADDRESS": ""}, "kind node local-app-1-control-plane has no address"),
        ("_LOAD_BALANCER_ADDRESS", {"PROXIES": ""}, "no load balancer runs for bookstore/"),
    ],
    ids=["node not running", "no proxy container"],
)
def test_an_address_read_fails_naming_what_is_not_running(tmp_path, script, env, message):
    base = {
        "CONTROLLER": kind.CLOUD_PROVIDER_KIND_CONTAINER,
        "KIND_CLUSTER": "local-app-1",
        "KIND_NETWORK": "kind",
        "LABEL": kind.LOAD_BALANCER_LABEL,
        "NAMESPACE": "bookstore",
        "SERVICE": "bookstore-edge",
    }
    with pytest.raises(subprocess.CalledProcessError) as failed:
        run_command(getattr(kind, script), {**base, **env}, tmp_path)
    assert message in failed.value.stderr, failed.value.stderr


def test_node_addresses_that_are_not_ips_are_an_error():
    with pytest.raises(Exception, match="not IP addresses"):
        kind.node_cidrs("172.18.0.2\n<no value>\n")


NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
PROXY_POLICIES = {"router-from-edge", "mariadb-from-load-balancer"}


def test_pods_behind_kind_load_balancers_admit_the_proxy_and_only_it():
    """cloud-provider-kind's Envoy opens its own connections: the router and MariaDB see the
    load balancer's address, so their policies admit that one address."""
    graph = fleet_graph("local", False)
    outputs = graph.stack_outputs
    expected = {
        f"{spec.name}-app-network-policy-router-from-edge": outputs["clusters"][spec.name][
            "edgeAddress"
        ]
        for spec in local_fleet().clusters
    }
    expected["database-network-policy-mariadb-from-load-balancer"] = outputs["databaseHost"]
    for name, address in expected.items():
        policy = graph.named(name, NETWORK_POLICY)
        assert ipaddress.ip_address(address).is_private, f"{name}: {address}"
        [rule] = policy.inputs["spec"]["ingress"]
        assert rule["from"] == [{"ipBlock": {"cidr": f"{address}/32"}}], name
    work = graph.named("app-rollout-replica-set")
    assert graph.depends_on(
        work, graph.named("database-network-policy-mariadb-from-load-balancer")
    ), "the app must not reach for the database before its policy admits the load balancer"
    for fleet in ("dev", "large"):
        names = {
            r.inputs["metadata"]["name"] for r in fleet_graph(fleet, False).of_type(NETWORK_POLICY)
        }
        assert not names & PROXY_POLICIES, f"{fleet}: cloud load balancers keep client addresses"


def test_without_the_proxy_policies_the_local_data_path_is_blocked():
    import copy

    from network_flows import flow_table, needed_flows, network_of

    net = network_of(fleet_graph("local", False))
    assert needed_flows(net) <= flow_table(net)
    cut = copy.copy(net)
    cut.objects = [
        p for p in net.objects if not (p.kind == "NetworkPolicy" and p.name in PROXY_POLICIES)
    ]
    blocked = needed_flows(cut) - flow_table(cut)
    assert any(f[1].endswith("/bookstore-data/mariadb") for f in blocked), blocked
    assert any(f[1].endswith("/bookstore/router") for f in blocked), blocked


def test_a_stacks_destroy_leaves_the_controller_to_other_stacks_kind_clusters(tmp_path):
    env = {
        "CONTAINER": kind.CLOUD_PROVIDER_KIND_CONTAINER,
        "IMAGE": kind.CLOUD_PROVIDER_KIND_IMAGE,
        "CLUSTERS": "local-app-1 local-hub",
    }
    (tmp_path / "clusters").write_text("local-hub\nlocal-app-1\nother-hub\n")
    _, calls = run_command(kind._STOP_CONTROLLER, env, tmp_path)
    assert not [c for c in calls if c.startswith("docker")], (
        f"another stack's cluster (other-hub) still needs the controller: {calls}"
    )
    (tmp_path / "clusters").write_text("local-hub\nlocal-app-1\n")
    (tmp_path / "log").unlink()
    _, calls = run_command(kind._STOP_CONTROLLER, env, tmp_path)
    assert f"docker container inspect {kind.CLOUD_PROVIDER_KIND_CONTAINER}" in calls, (
        "with only this stack's clusters left, destroy stops the controller"
    )


# The stop command's filter before it matched full names: by the stack's name and a dash.
_PREFIX_FILTER = """others=$(kind get clusters 2>/dev/null | grep -v "^$STACK-" || true)"""


@pytest.mark.parametrize("filter_", ["by full names", "by prefix (before)"])
def test_destroying_stack_local_leaves_the_controller_to_stack_local_2(tmp_path, filter_):
    """Stack `local-2` names its clusters `local-2-*`: stack `local`'s destroy must count them
    as another stack's, so the controller keeps running to release their Services."""
    graph = run_program(local_config(), stack="local")
    env = dict(graph.named("kind-load-balancer-controller", COMMAND).inputs["environment"])
    script = kind._STOP_CONTROLLER
    if filter_ != "by full names":
        # The same command with the old first line in place of the new filter.
        end = script.index("done)\n") + len("done)\n")
        script = _PREFIX_FILTER + "\n" + script[end:]
        env["STACK"] = "local"
    (tmp_path / "clusters").write_text(
        "local-hub\nlocal-app-1\nlocal-app-2\nlocal-2-hub\nlocal-2-app-1\n"
    )
    _, calls = run_command(script, env, tmp_path)
    stopped = [c for c in calls if c.startswith("docker")]
    if filter_ == "by full names":
        assert not stopped, f"local-2's clusters still need {env['CONTAINER']}: {calls}"
    else:
        assert stopped, "the prefix filter took local-2-* for stack local's own clusters"


def test_every_stack_passes_its_kind_clusters_full_names_to_the_controller():
    graph = run_program(local_config(), stack="local")
    controller = graph.named("kind-load-balancer-controller")
    names = sorted(
        c.inputs["environment"]["KIND_CLUSTER"]
        for c in graph.resources
        if is_kind_cluster_command(c)
    )
    assert names == ["local-app-1", "local-app-2", "local-hub"], names
    assert controller.inputs["environment"]["CLUSTERS"] == " ".join(names), (
        f"{controller}: its stop command matches this stack's clusters by their full names"
    )
