"""scripts/e2e.sh, the checks of the e2e workflow, run against stand-in tools: each check must
pass on a healthy fleet and fail on the fault it is there to catch.

The stand-ins keep a small fleet in files under the test's directory: the stack's outputs
(outputs.json), which home's database is the primary (primary), the rows each home's server
holds (marks-<cluster>), the Docker containers and volumes of the host (containers.json,
volumes.json). `pulumi config set` and the deploy stand-in move the primary as a deploy would;
environment variables break one thing at a time."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from harness import ROOT

if shutil.which("bash") is None or shutil.which("python3") is None:
    pytest.skip("bash and python3 are needed to run e2e.sh", allow_module_level=True)

KUBECONFIGS = {"hub": "kubeconfig-of-hub", "app-1": "kubeconfig-of-app-1", "app-2": "kc-2"}
LOCAL = {
    "url": "http://172.18.0.90",
    "hub": {"name": "hub"},
    "clusters": {"app-1": {"edgeAddress": "172.18.0.11"}, "app-2": {"edgeAddress": "172.18.0.12"}},
    "databaseHost": "172.18.0.50",
    "kubeconfigs": KUBECONFIGS,
}
STANDBY = {
    **LOCAL,
    "hubStandby": {"second": {"cloud": "kind"}},
    "entryUrls": ["http://172.18.0.90", "http://172.18.0.91"],
    "databaseHosts": {"hub": "172.18.0.50", "second": "172.18.0.60"},
    "standbyHub": {"name": "second", "apiServerUrl": "https://x-second-control-plane:6443"},
    "kubeconfigs": {**KUBECONFIGS, "second": "kubeconfig-of-second"},
}
HOMES = ("hub", "second")

STAND_INS = {
    "pulumi": r"""#!/usr/bin/env python3
import json, os, sys
work, args = os.environ["WORK"], sys.argv[1:]
with open(os.environ["LOG"], "a") as log:
    log.write("pulumi " + " ".join(args) + "\n")
outputs = json.load(open(os.path.join(work, "outputs.json")))
if args[:2] == ["stack", "output"]:
    rest = args[2:]
    name = rest[0] if rest and not rest[0].startswith("-") else None
    if name is None:
        print(json.dumps({k: "[secret]" if k == "kubeconfigs" else v for k, v in outputs.items()}))
        sys.exit()
    if name not in outputs:
        sys.exit(f"error: current stack does not have output property '{name}'")
    value = outputs[name]
    if name == "kubeconfigs" and "--show-secrets" not in rest:
        value = "[secret]"
    print(json.dumps(value) if "--json" in rest or not isinstance(value, str) else value)
elif args[:2] == ["config", "set"]:
    rest, words = args[2:], []
    while rest:
        word = rest.pop(0)
        if word == "--stack":
            rest.pop(0)
        elif not word.startswith("--"):
            words.append(word)
    key, value = words
    path = os.path.join(work, "config.json")
    config = json.load(open(path)) if os.path.exists(path) else {}
    config[key] = value
    json.dump(config, open(path, "w"))
""",
    # The deploy: what `up` does to the fleet with the config set, unless told to break.
    "deploy": r"""#!/usr/bin/env python3
import json, os, sys
work = os.environ["WORK"]
with open(os.environ["LOG"], "a") as log:
    log.write("deploy " + " ".join(sys.argv[1:]) + "\n")
if os.environ.get("DEPLOY_FAILS"):
    sys.exit("error: update failed")
config = json.load(open(os.path.join(work, "config.json")))
home = "second" if config["ocm-fleet:database.primary"] == "standby" else "hub"
if not os.environ.get("PROMOTION_IGNORED"):
    path = os.path.join(work, "outputs.json")
    outputs = json.load(open(path))
    outputs["databaseHost"] = outputs["databaseHosts"][home]
    json.dump(outputs, open(path, "w"))
    open(os.path.join(work, "primary"), "w").write(home)
""",
    "kubectl": r"""#!/usr/bin/env python3
import os, re, sys
work, args = os.environ["WORK"], sys.argv[1:]
env = os.environ.get
with open(os.environ["LOG"], "a") as log:
    log.write("kubectl " + " ".join(args) + "\n")
if env("NOT_READY") and env("NOT_READY") in " ".join(args):
    sys.exit(1)
cluster = os.path.basename(args[1]).removesuffix(".kubeconfig")
rest = args[2:]
primary = open(os.path.join(work, "primary")).read()
homes = ("hub", "second")
other = {"hub": "second", "second": "hub"}

def marks(name):
    path = os.path.join(work, f"marks-{name}")
    return open(path).read().split() if os.path.exists(path) else []

if rest[0] == "exec":
    sql = next(a for a in rest if a.startswith("--execute=")).removeprefix("--execute=")
    if "SHOW SLAVE STATUS" in sql:
        if cluster != primary and cluster != env("NOT_REPLICATING"):
            print("*************************** 1. row ***************************")
            print("                Slave_IO_State: Waiting for master to send event")
            print("              Slave_IO_Running: " + env("SLAVE_IO", "Yes"))
            print("             Slave_SQL_Running: " + env("SLAVE_SQL", "Yes"))
            print("                 Last_IO_Error: " + env("LAST_IO_ERROR", ""))
            print("                    Using_Gtid: " + env("USING_GTID", "Slave_Pos"))
    elif "@@global.read_only" in sql:
        writable = cluster == primary and cluster != env("STUCK_READ_ONLY")
        print("0" if writable or env("BOTH_WRITABLE") else "1")
    elif "INSERT INTO" in sql:
        mark = re.search(r"VALUES \('([^']+)'\)", sql).group(1)
        for name in (cluster,) if env("REPLICATION_BROKEN") else (cluster, other[cluster]):
            with open(os.path.join(work, f"marks-{name}"), "a") as f:
                f.write(mark + "\n")
    elif "COUNT(*)" in sql:
        mark = re.search(r"mark = '([^']+)'", sql).group(1)
        print(marks(cluster).count(mark))
elif rest[0] == "get" and "bookstore-database" in rest:
    home = "hub" if env("ALIAS_STUCK") == cluster else primary
    print(f"bookstore-database-{home}.bookstore.svc.cluster.local", end="")
elif rest[0] == "get" and rest[1].startswith("managedcluster/"):
    print("false" if env("STANDBY_REFUSES") == rest[1].split("/")[1] else "true", end="")
""",
    "curl": r"""
for last; do :; done
echo "curl $last" >> "$LOG"
if [ -n "${DOWN_URL:-}" ] && [[ "$last" == *"$DOWN_URL"* ]]; then exit 7; fi
case "$last" in
  */api/books)
    if [ -n "${PAUSED_FAILS:-}" ] && [ -f "$WORK/paused" ]; then exit 28; fi
    echo "$BOOKS" ;;
  *) echo "<html>" ;;
esac
""",
    "docker": r"""#!/usr/bin/env python3
import json, os, re, sys
work, args = os.environ["WORK"], sys.argv[1:]
with open(os.environ["LOG"], "a") as log:
    log.write("docker " + " ".join(args) + "\n")
containers = json.load(open(os.path.join(work, "containers.json")))
volumes = json.load(open(os.path.join(work, "volumes.json")))
by_name = {c["name"]: c for c in containers}

def option(name):
    return [args[i + 1] for i, a in enumerate(args) if a == name]

def render(fmt, c):
    fmt = fmt.replace("{{.Names}}", c["name"])
    return re.sub(r'\{\{\.Label "([^"]+)"\}\}', lambda m: c["labels"].get(m.group(1), ""), fmt)

if args[0] == "ps":
    for c in containers:
        keep = True
        for f in option("--filter"):
            key, _, value = f.removeprefix("label=").partition("=")
            keep &= key in c["labels"] and (not value or c["labels"][key] == value)
        if keep:
            fmt = (option("--format") or ["{{.Names}}"])[0]
            print("id-" + c["name"] if "--quiet" in args else render(fmt, c))
elif args[0] == "inspect":
    print(" ".join(by_name[args[-1]]["volumes"]) + " ")
elif args[:2] == ["volume", "inspect"]:
    sys.exit(0 if args[2] in volumes else 1)
elif args[:2] == ["container", "inspect"]:
    sys.exit(0 if args[-1] in by_name else 1)
elif args[0] == "pause":
    open(os.path.join(work, "paused"), "w").close()
elif args[0] == "unpause":
    os.remove(os.path.join(work, "paused"))
""",
    "kind": 'echo "${KIND_CLUSTERS:-}"\n',
    "sleep": ":\n",
}


def node(cluster: str, name: str, *volumes: str) -> dict:
    """A kind node container (labelled as kind labels it) with its anonymous volumes."""
    return {
        "name": f"{cluster}-{name}",
        "labels": {"io.x-k8s.kind.cluster": cluster},
        "volumes": list(volumes),
    }


def proxy(cluster: str, service: str, *volumes: str) -> dict:
    """A cloud-provider-kind proxy container for a LoadBalancer Service of `cluster`."""
    return {
        # Named as cloud-provider-kind names them: a hash of the label's value.
        "name": "kindccm-" + hashlib.sha256(f"{cluster}/{service}".encode()).hexdigest()[:12],
        "labels": {"io.x-k8s.cloud-provider-kind.loadbalancer.name": f"{cluster}/{service}"},
        "volumes": list(volumes),
    }


CONTROLLER = {"name": "ocm-fleet-cloud-provider-kind", "labels": {}, "volumes": []}


def e2e(
    tmp_path: Path,
    *args: str,
    outputs: dict | None = None,
    containers: list[dict] | None = None,
    volumes: list[str] | None = None,
    **env: str,
) -> tuple[subprocess.CompletedProcess, list[str]]:
    bin_dir = tmp_path / "bin"
    if not bin_dir.exists():
        bin_dir.mkdir()
        for name, body in STAND_INS.items():
            text = body if body.startswith("#!") else "#!/bin/bash\n" + body
            (bin_dir / name).write_text(text)
            (bin_dir / name).chmod(0o755)
        (tmp_path / "primary").write_text("hub")
    (tmp_path / "outputs.json").write_text(json.dumps(LOCAL if outputs is None else outputs))
    (tmp_path / "containers.json").write_text(json.dumps(containers or []))
    (tmp_path / "volumes.json").write_text(json.dumps(volumes or []))
    log = tmp_path / "log"
    log.write_text("")
    full_env = {
        "PATH": os.pathsep.join([str(bin_dir), "/usr/bin", "/bin"]),
        "WORK": str(tmp_path),
        "LOG": str(log),
        "E2E_KUBECONFIGS": str(tmp_path / "kubeconfigs"),
        "E2E_INVENTORY": str(tmp_path / "inventory"),
        "E2E_DEPLOY": str(bin_dir / "deploy"),
        "E2E_FAILOVER_REQUESTS": "5",
        "E2E_POLL_SECONDS": "10",
        "BOOKS": json.dumps([{"id": 1, "title": "Dune"}]),
        **env,
    }
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "e2e.sh"), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done, log.read_text().splitlines()


def standby(tmp_path: Path, *args: str, **env: str):
    return e2e(tmp_path, *args, outputs=STANDBY, STACK="local-standby", **env)


def sql_on(log: list[str], cluster: str, statement: str) -> bool:
    return any(
        f"/{cluster}.kubeconfig exec -n bookstore-data statefulset/mariadb -c replication" in line
        and statement in line
        for line in log
    )


# --- fleet-ready -----------------------------------------------------------------------------


def test_fleet_ready_waits_on_the_hub_for_each_cluster_and_its_manifest_work(tmp_path):
    done, log = e2e(tmp_path, "fleet-ready")
    assert done.returncode == 0, done.stderr
    hub = f"--kubeconfig {tmp_path}/kubeconfigs/hub.kubeconfig"
    for cluster in ("app-1", "app-2"):
        for condition in ("ManagedClusterJoined", "ManagedClusterConditionAvailable"):
            assert any(
                hub in line and f"condition={condition} managedcluster/{cluster}" in line
                for line in log
            ), f"no wait for {condition} of {cluster}"
        assert any(
            f"condition=Available manifestwork/bookstore -n {cluster}" in line for line in log
        )
    written = (tmp_path / "kubeconfigs" / "app-1.kubeconfig").read_text()
    assert written == KUBECONFIGS["app-1"]
    assert oct((tmp_path / "kubeconfigs" / "app-1.kubeconfig").stat().st_mode)[-3:] == "600"
    assert "kubeconfig-of" not in done.stdout + done.stderr, "kubeconfigs are never printed"
    assert not any("exec" in line for line in log), "a stack without a second home has no replica"


def test_fleet_ready_fails_when_a_manifest_work_never_becomes_available(tmp_path):
    done, _ = e2e(tmp_path, "fleet-ready", NOT_READY="manifestwork/bookstore -n app-2")
    assert done.returncode != 0


def test_fleet_ready_with_a_second_home_checks_the_replica_the_standby_hub_and_every_entry(
    tmp_path,
):
    done, log = standby(tmp_path, "fleet-ready")
    assert done.returncode == 0, done.stderr
    assert sql_on(log, "second", "SHOW SLAVE STATUS"), "the replica's status is read on second"
    assert sql_on(log, "hub", "SELECT @@global.read_only"), "the primary's role is read"
    assert sql_on(log, "second", "SELECT @@global.read_only"), "the replica's role is read"
    # The second home is not taken for the hub: the waits run on hub's kubeconfig only.
    assert not any("second.kubeconfig wait --for=condition=Managed" in line for line in log)
    assert any(
        "second.kubeconfig wait --for=condition=Applied clustermanager/cluster-manager" in line
        for line in log
    )
    for url in STANDBY["entryUrls"]:
        assert f"curl {url}/" in log, f"the entry {url} is not asked"
    assert "hub writable, second read-only and replicating" in done.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"SLAVE_IO": "Connecting", "LAST_IO_ERROR": "error connecting to master"},
            "Slave_IO_Running is 'Connecting', not 'Yes' (last error: error connecting to master)",
        ),
        ({"SLAVE_SQL": "No"}, "Slave_SQL_Running is 'No', not 'Yes'"),
        ({"USING_GTID": "No"}, "Using_Gtid is 'No', not 'Slave_Pos'"),
        ({"NOT_REPLICATING": "second"}, "SHOW SLAVE STATUS on second is empty"),
        ({"BOTH_WRITABLE": "1"}, "@@global.read_only on second is '0', not 1 (read-only)"),
        ({"STUCK_READ_ONLY": "hub"}, "@@global.read_only on hub is '1', not 0 (writable)"),
    ],
)
def test_fleet_ready_fails_naming_what_the_replica_lacks(tmp_path, env, message):
    done, _ = standby(tmp_path, "fleet-ready", **env)
    assert done.returncode == 1
    assert message in done.stderr, done.stderr
    assert "after 10s" in done.stderr, "it waited before failing"


def test_fleet_ready_fails_when_an_entry_does_not_answer(tmp_path):
    done, _ = standby(tmp_path, "fleet-ready", DOWN_URL="172.18.0.91")
    assert done.returncode == 1
    assert "the entry http://172.18.0.91 does not answer" in done.stderr


def test_fleet_ready_fails_when_the_standby_hub_does_not_accept_a_cluster(tmp_path):
    done, _ = standby(tmp_path, "fleet-ready", STANDBY_REFUSES="app-2")
    assert done.returncode == 1
    assert "standby hub second does not accept app-2 (spec.hubAcceptsClient)" in done.stderr


# --- serves and failover ---------------------------------------------------------------------


def test_serves_checks_the_three_paths(tmp_path):
    done, log = e2e(tmp_path, "serves")
    assert done.returncode == 0, done.stderr
    for path in ("/", "/shop/", "/api/books"):
        assert f"curl http://172.18.0.90{path}" in log
    assert "1 books" in done.stdout


def test_serves_fails_without_books_from_the_database(tmp_path):
    done, _ = e2e(tmp_path, "serves", BOOKS="[]")
    assert done.returncode == 1
    assert "does not serve books" in done.stderr


def test_serves_checks_the_three_paths_through_every_entry(tmp_path):
    done, log = standby(tmp_path, "serves")
    assert done.returncode == 0, done.stderr
    for url in STANDBY["entryUrls"]:
        for path in ("/", "/shop/", "/api/books"):
            assert f"curl {url}{path}" in log, f"{url}{path} not asked"


def test_serves_fails_when_the_second_entry_does_not_serve(tmp_path):
    done, _ = standby(tmp_path, "serves", DOWN_URL="172.18.0.91/shop/")
    assert done.returncode == 1
    assert "http://172.18.0.91/shop/ does not answer" in done.stderr


def test_serves_fails_when_url_is_not_the_first_entry(tmp_path):
    outputs = {**STANDBY, "entryUrls": list(reversed(STANDBY["entryUrls"]))}
    done, _ = e2e(tmp_path, "serves", outputs=outputs, STACK="local-standby")
    assert done.returncode == 1
    assert "the url output 'http://172.18.0.90' is not the first of entryUrls" in done.stderr


def app_nodes(stack: str = "local") -> list[dict]:
    return [node(f"{stack}-app-1", "control-plane"), node(f"{stack}-app-1", "worker")]


def test_failover_pauses_one_cluster_and_unpauses_it_after(tmp_path):
    done, log = e2e(tmp_path, "failover", containers=app_nodes())
    assert done.returncode == 0, done.stderr
    assert "docker ps --quiet --filter label=io.x-k8s.kind.cluster=local-app-1" in log
    pause = "docker pause id-local-app-1-control-plane id-local-app-1-worker"
    assert log.index(pause) < log.index(pause.replace("pause", "unpause"))
    assert "5 of 5 requests answered" in done.stdout


def test_failover_fails_when_the_url_stops_answering(tmp_path):
    done, log = e2e(tmp_path, "failover", containers=app_nodes(), PAUSED_FAILS="1")
    assert done.returncode == 1
    assert "stopped answering" in done.stderr
    assert log[-1].startswith("docker unpause "), "the cluster is unpaused even when it fails"


def test_failover_takes_turns_over_every_entry(tmp_path):
    done, log = standby(tmp_path, "failover", containers=app_nodes("local-standby"))
    assert done.returncode == 0, done.stderr
    asked = [line for line in log if line.endswith("/api/books")]
    assert asked == [f"curl {STANDBY['entryUrls'][i % 2]}/api/books" for i in range(5)]


def test_failover_fails_when_the_second_entry_does_not_fail_over(tmp_path):
    done, _ = standby(
        tmp_path, "failover", containers=app_nodes("local-standby"), DOWN_URL="172.18.0.91"
    )
    assert done.returncode == 1
    assert "request 2 to http://172.18.0.91 failed" in done.stderr


# --- promote-and-back ------------------------------------------------------------------------


def marks(tmp_path: Path, cluster: str) -> list[str]:
    return (tmp_path / f"marks-{cluster}").read_text().split()


def test_promote_and_back_moves_the_primary_and_back_checking_each_side(tmp_path):
    done, log = standby(tmp_path, "promote-and-back")
    assert done.returncode == 0, done.stderr
    steps = [line for line in log if line.startswith(("pulumi config set", "deploy"))]
    assert steps == [
        "pulumi config set --path ocm-fleet:database.primary standby --stack local-standby",
        "deploy local-standby --yes",
        "pulumi config set --path ocm-fleet:database.primary main --stack local-standby",
        "deploy local-standby --yes",
    ]
    first_deploy = log.index("deploy local-standby --yes")
    after = log[first_deploy:]
    # After the promotion: second writable, hub read-only and replicating, the alias moved on
    # both app clusters, books through both edges and both entries.
    assert sql_on(after, "hub", "SHOW SLAVE STATUS")
    for cluster in ("app-1", "app-2"):
        assert any(
            f"/{cluster}.kubeconfig get service bookstore-database -n bookstore" in line
            for line in after
        )
    for url in ("http://172.18.0.11", "http://172.18.0.12", *STANDBY["entryUrls"]):
        assert f"curl {url}/api/books" in after, f"{url} not asked after the promotion"
    # Each row, written on the primary of its time, is on both homes.
    for cluster in HOMES:
        assert [m.rsplit("-", 1)[1] for m in marks(tmp_path, cluster)] == [
            "main",
            "standby",
            "back",
        ]
    assert (tmp_path / "primary").read_text() == "hub"
    assert "back on hub: every row on both homes" in done.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEPLOY_FAILS": "1"}, "failed with database.primary standby"),
        (
            {"PROMOTION_IGNORED": "1"},
            "databaseHost is not the address of the database on second",
        ),
        ({"STUCK_READ_ONLY": "second"}, "the database on second is not writable"),
        ({"NOT_REPLICATING": "hub"}, "SHOW SLAVE STATUS on hub is empty"),
        (
            {"ALIAS_STUCK": "app-2"},
            "app-2 does not point at the database on second (after 10s): bookstore-database on "
            "app-2 points at 'bookstore-database-hub.bookstore.svc.cluster.local'",
        ),
        ({"DOWN_URL": "172.18.0.12/api/books"}, "app-2 does not serve books"),
        ({"REPLICATION_BROKEN": "1"}, "the row written on hub did not reach second"),
    ],
)
def test_promote_and_back_fails_naming_what_the_promotion_did_not_do(tmp_path, env, message):
    done, _ = standby(tmp_path, "promote-and-back", **env)
    assert done.returncode == 1
    assert message in done.stderr, done.stderr


def test_promote_and_back_fails_when_the_former_primary_does_not_follow(tmp_path):
    # The rows reach the other home only while the main one is the primary.
    stand_in = STAND_INS["kubectl"].replace(
        'if env("REPLICATION_BROKEN")', 'if env("REPLICATION_BROKEN") or cluster == "second"'
    )
    assert stand_in != STAND_INS["kubectl"]
    e2e(tmp_path, "--help")
    (tmp_path / "bin" / "kubectl").write_text(stand_in)
    done, _ = standby(tmp_path, "promote-and-back")
    assert done.returncode == 1
    assert "the former primary hub does not follow second" in done.stderr


def test_promote_and_back_needs_a_second_home(tmp_path):
    done, log = e2e(tmp_path, "promote-and-back")
    assert done.returncode == 1
    assert "has no second home (no output hubStandby)" in done.stderr
    assert not any(line.startswith(("pulumi config set", "deploy")) for line in log)


def test_promote_and_back_starts_only_from_the_main_home(tmp_path):
    outputs = {**STANDBY, "databaseHost": STANDBY["databaseHosts"]["second"]}
    done, log = e2e(tmp_path, "promote-and-back", outputs=outputs, STACK="local-standby")
    assert done.returncode == 1
    assert "set database.primary main first" in done.stderr
    assert not any(line.startswith("deploy") for line in log)


# --- inventory and no-leftovers --------------------------------------------------------------


def host_of(stack: str, *clusters: str) -> tuple[list[dict], list[str]]:
    """The containers and volumes a running stack has on the host."""
    containers, volumes = [], []
    for cluster in clusters:
        kind = f"{stack}-{cluster}"
        containers += [node(kind, "control-plane", f"v-{kind}-cp"), node(kind, "worker")]
        containers.append(proxy(kind, "bookstore/bookstore-edge", f"v-{kind}-proxy"))
        volumes += [f"v-{kind}-cp", f"v-{kind}-proxy"]
    return containers, volumes


LOCAL_CLUSTERS = ("hub", "app-1", "app-2")
STANDBY_CLUSTERS = (*LOCAL_CLUSTERS, "second")


def test_inventory_records_the_stacks_kind_clusters_and_their_volumes_only(tmp_path):
    mine, my_volumes = host_of("local", *LOCAL_CLUSTERS)
    theirs, their_volumes = host_of("local-standby", *STANDBY_CLUSTERS)
    done, _ = e2e(
        tmp_path,
        "inventory",
        containers=[*mine, *theirs, CONTROLLER],
        volumes=[*my_volumes, *their_volumes],
    )
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "inventory").read_text().splitlines()
    assert sorted(line for line in lines if line.startswith("cluster ")) == sorted(
        f"cluster local-{c}" for c in LOCAL_CLUSTERS
    )
    assert sorted(line for line in lines if line.startswith("volume ")) == sorted(
        f"volume {v}" for v in my_volumes
    )


def inventory_of(tmp_path: Path, stack: str, clusters: tuple[str, ...]) -> None:
    _, volumes = host_of(stack, *clusters)
    (tmp_path / "inventory").write_text(
        "".join(f"cluster {stack}-{c}\n" for c in clusters)
        + "".join(f"volume {v}\n" for v in volumes)
    )


@pytest.mark.parametrize(
    ("stack", "clusters", "other", "other_clusters"),
    [
        ("local", LOCAL_CLUSTERS, "local-standby", STANDBY_CLUSTERS),
        ("local-standby", STANDBY_CLUSTERS, "local", LOCAL_CLUSTERS),
    ],
)
def test_no_leftovers_passes_beside_another_stack_that_still_runs(
    tmp_path, stack, clusters, other, other_clusters
):
    inventory_of(tmp_path, stack, clusters)
    containers, volumes = host_of(other, *other_clusters)
    done, _ = e2e(
        tmp_path,
        "no-leftovers",
        STACK=stack,
        containers=[*containers, CONTROLLER],
        volumes=volumes,
        KIND_CLUSTERS="\n".join(f"{other}-{c}" for c in other_clusters),
    )
    assert done.returncode == 0, done.stderr
    assert f"of stack {stack} left" in done.stdout


@pytest.mark.parametrize(
    ("stack", "clusters"), [("local", LOCAL_CLUSTERS), ("local-standby", STANDBY_CLUSTERS)]
)
@pytest.mark.parametrize(
    ("leftover", "message"),
    [
        ("cluster", "kind clusters left after destroy: {stack}-hub"),
        ("node", "containers left after destroy: {stack}-app-2-worker"),
        ("proxy", "containers left after destroy: kindccm-"),
        ("volume", "volumes left after destroy: v-{stack}-hub-proxy"),
        ("controller", "ocm-fleet-cloud-provider-kind, with no kind cluster left"),
    ],
)
def test_no_leftovers_names_what_destroy_left(tmp_path, stack, clusters, leftover, message):
    inventory_of(tmp_path, stack, clusters)
    env: dict = {"containers": [], "volumes": []}
    if leftover == "cluster":
        env["KIND_CLUSTERS"] = f"{stack}-hub"
    elif leftover == "node":
        env["containers"] = [node(f"{stack}-app-2", "worker")]
    elif leftover == "proxy":
        env["containers"] = [proxy(f"{stack}-app-1", "bookstore/bookstore-edge")]
    elif leftover == "volume":
        env["volumes"] = [f"v-{stack}-hub-proxy"]
    else:
        env["containers"] = [CONTROLLER]
    done, _ = e2e(tmp_path, "no-leftovers", STACK=stack, **env)
    assert done.returncode == 1
    assert message.format(stack=stack) in done.stderr, done.stderr


def test_no_leftovers_of_local_sees_its_own_among_local_standbys(tmp_path):
    # Both stacks' names share the prefix "local-": only the exact names count.
    inventory_of(tmp_path, "local", LOCAL_CLUSTERS)
    containers, volumes = host_of("local-standby", *STANDBY_CLUSTERS)
    done, _ = e2e(
        tmp_path,
        "no-leftovers",
        containers=[*containers, node("local-app-1", "control-plane")],
        volumes=volumes,
        KIND_CLUSTERS="local-standby-hub\nlocal-app-1",
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "FAIL: kind clusters left after destroy: local-app-1"


def test_no_leftovers_without_an_inventory_says_to_take_one(tmp_path):
    done, _ = e2e(tmp_path, "no-leftovers")
    assert done.returncode == 1
    assert "run ./scripts/e2e.sh inventory before destroy (STACK=local)" in done.stderr


# --- manners: usage, missing tools, a stack without outputs ---------------------------------------


def test_help_exits_zero_and_a_usage_error_non_zero(tmp_path):
    done, _ = e2e(tmp_path, "--help")
    assert done.returncode == 0
    for command in ("fleet-ready", "promote-and-back", "inventory", "no-leftovers", "collect"):
        assert command in done.stdout, command
    done, _ = e2e(tmp_path, "fleet-redy")
    assert done.returncode == 64 and "unknown command 'fleet-redy'" in done.stderr


def test_without_pulumi_the_check_stops_with_one_line(tmp_path):
    e2e(tmp_path, "--help")  # writes the stand-ins
    (tmp_path / "bin" / "pulumi").unlink()
    done, _ = e2e(tmp_path, "fleet-ready")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "FAIL: pulumi is not on PATH; install it (deploy.sh puts pulumi and kind in .tools/) "
        "and run again"
    ]


def test_a_stack_without_outputs_is_one_line_not_a_traceback(tmp_path):
    e2e(tmp_path, "--help")
    (tmp_path / "bin" / "pulumi").write_text(
        "#!/bin/bash\necho 'error: no stack named local found' >&2\nexit 255\n"
    )
    for command in ("fleet-ready", "serves", "promote-and-back", "inventory"):
        done, _ = e2e(tmp_path, command)
        assert done.returncode == 1, command
        assert "Traceback" not in done.stderr and "JSONDecodeError" not in done.stderr
        assert "deploy it first (./scripts/deploy.sh local)" in done.stderr, done.stderr


def test_collect_gathers_each_homes_database_state_without_secrets(tmp_path):
    done, log = standby(tmp_path, "collect", str(tmp_path / "logs"))
    assert done.returncode == 0, done.stderr
    for cluster in HOMES:
        text = (tmp_path / "logs" / f"{cluster}-database.txt").read_text()
        assert text.strip(), f"no database state of {cluster}"
    assert "1" in (tmp_path / "logs" / "second-database.txt").read_text()
    assert not any("secret" in line and "get" in line for line in log if "kubectl" in line)


def test_no_leftovers_takes_proxies_by_their_whole_cluster_name(tmp_path):
    # A proxy's label starts with its kind cluster's name and a slash: app-1's check must not
    # take the proxy of a cluster whose name only starts with it (app-10).
    inventory_of(tmp_path, "local", LOCAL_CLUSTERS)
    done, _ = e2e(
        tmp_path,
        "no-leftovers",
        containers=[proxy("local-app-10", "bookstore/bookstore-edge"), CONTROLLER],
        KIND_CLUSTERS="local-app-10",
    )
    assert done.returncode == 0, done.stderr
