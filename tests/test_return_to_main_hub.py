"""scripts/return_to_main_hub.sh, the way back from the standby OCM hub, run against stand-in
tools that record every call: the five steps in order, each only after the one before it.

The stand-ins keep the two hubs in state.json under the test's directory: after how many looks
each app cluster is Available on the main hub (null: never), the standby hub's ManagedClusters,
and its ManifestWorks (labels, deleting or not, after how many looks its placement drops it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from harness import ROOT

from components.app.rollout import REPLICA_SET_LABEL, REPLICA_SET_NAME
from components.config import NAMESPACE

if shutil.which("bash") is None or shutil.which("python3") is None:
    pytest.skip("bash and python3 are needed to run the script", allow_module_level=True)

SCRIPT = ROOT / "scripts" / "return_to_main_hub.sh"
STACK = "dev-standby-hub"
KUBECONFIGS = {
    "main": "kubeconfig-of-main",
    "second": "kubeconfig-of-second",
    "app-1": "kubeconfig-of-app-1",
    "app-2": "kubeconfig-of-app-2",
}
OUTPUTS = {
    "hub": {"name": "main", "cloud": "azure"},
    "clusters": {"app-1": {"edgeAddress": "10.0.0.1"}, "app-2": {"edgeAddress": "10.0.0.2"}},
    "hubStandby": {"second": {"cloud": "azure"}},
    "standbyHub": {"name": "second", "apiServerUrl": "https://second.example:443"},
    "kubeconfigs": KUBECONFIGS,
}
# The label the replica set's controller puts on its ManifestWorks, from the program itself.
REPLICA_SET = f"{NAMESPACE}.{REPLICA_SET_NAME}"

STAND_INS = {
    "pulumi": r"""#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
with open(os.environ["LOG"], "a") as log:
    log.write("pulumi " + " ".join(args) + "\n")
if args[:1] == ["whoami"]:
    sys.exit()
outputs = json.load(open(os.path.join(os.environ["WORK"], "outputs.json")))
if args[:2] == ["stack", "output"]:
    if args[2] == "kubeconfigs":
        print(json.dumps(outputs["kubeconfigs"] if "--show-secrets" in args else "[secret]"))
    else:
        print(json.dumps({k: "[secret]" if k == "kubeconfigs" else v for k, v in outputs.items()}))
""",
    "deploy": r"""#!/usr/bin/env python3
import os, sys
with open(os.environ["LOG"], "a") as log:
    log.write("deploy " + " ".join(sys.argv[1:]) + "\n")
if os.environ.get("DEPLOY_FAILS"):
    sys.exit("error: update failed")
""",
    "kubectl": r"""#!/usr/bin/env python3
import json, os, stat, sys
work, args = os.environ["WORK"], sys.argv[1:]
with open(os.environ["LOG"], "a") as log:
    log.write("kubectl " + " ".join(args) + "\n")
folder = os.path.dirname(args[1])
with open(os.path.join(work, "folders"), "a") as f:
    f.write(f"{folder} {oct(stat.S_IMODE(os.stat(folder).st_mode))}\n")
hub = os.path.basename(args[1]).removesuffix(".kubeconfig")
if os.environ.get("DOWN") == hub:
    sys.exit(f"Unable to connect to the server: {hub}")
rest = args[2:]
path = os.path.join(work, "state.json")
state = json.load(open(path))
out = None
if rest[:3] == ["get", "managedclusters", "-o"] and rest[3] == "name":
    names = state["standby_clusters"] if hub == "second" else state["available_after"]
    out = "\n".join(f"managedcluster.cluster.open-cluster-management.io/{n}" for n in names)
elif rest[:2] == ["get", "managedclusters"] and hub == "main":
    looks = state["main_looks"] = state.get("main_looks", 0) + 1
    items = []
    for name, after in state["available_after"].items():
        ready = after is not None and looks > after
        condition = {"type": "ManagedClusterConditionAvailable",
                     "status": "True" if ready else "Unknown"}
        items.append({"metadata": {"name": name}, "status": {"conditions": [condition]}})
    out = json.dumps({"items": items})
elif rest[:2] == ["get", "manifestworks"] and hub == "second":
    looks = state["work_looks"] = state.get("work_looks", 0) + 1
    key, _, value = rest[rest.index("-l") + 1].partition("=")
    items = []
    for w in state["works"]:
        if w.get("drop_after") is not None and looks > w["drop_after"]:
            w["deleting"] = True
        if w["labels"].get(key) != value and not os.environ.get("IGNORES_SELECTOR"):
            continue
        meta = {"namespace": w["namespace"], "name": w["name"], "labels": w["labels"],
                "finalizers": ["cluster.open-cluster-management.io/manifest-work-cleanup"]}
        if w["deleting"]:
            meta["deletionTimestamp"] = "2026-12-08T05:00:00Z"
        items.append({"metadata": meta})
    out = json.dumps({"items": items})
elif rest[0] == "patch" and rest[1].startswith("managedcluster"):
    state.setdefault("refused", []).append(rest[1].split("/")[1])
elif rest[:1] == ["-n"] and rest[2:4] == ["patch", "manifestwork"]:
    # A deleting object whose finalizers are cleared is gone.
    state["works"] = [
        w for w in state["works"]
        if not (w["namespace"] == rest[1] and w["name"] == rest[4] and w["deleting"])
    ]
else:
    sys.exit("unexpected kubectl call: " + " ".join(rest))
json.dump(state, open(path, "w"))
if out is not None:
    print(out)
""",
    "sleep": "#!/bin/bash\n:\n",
}


def work(namespace: str, name: str, *, deleting: bool, drop_after=None, label=REPLICA_SET):
    labels = {REPLICA_SET_LABEL: label} if label else {"app": "other"}
    return {
        "namespace": namespace,
        "name": name,
        "labels": labels,
        "deleting": deleting,
        "drop_after": drop_after,
    }


def healthy_state() -> dict:
    """app-2 comes back after one look; one work already dropped, one dropped after a look."""
    return {
        "available_after": {"app-1": 0, "app-2": 1},
        "standby_clusters": ["app-1", "app-2"],
        "works": [
            work("app-1", "bookstore", deleting=True),
            work("app-2", "bookstore", deleting=False, drop_after=1),
        ],
    }


def run(tmp_path: Path, *args: str, outputs=None, state=None, **env: str):
    bin_dir = tmp_path / "bin"
    if not bin_dir.exists():
        bin_dir.mkdir()
        for name, body in STAND_INS.items():
            (bin_dir / name).write_text(body)
            (bin_dir / name).chmod(0o755)
    (tmp_path / "outputs.json").write_text(json.dumps(OUTPUTS if outputs is None else outputs))
    (tmp_path / "state.json").write_text(json.dumps(healthy_state() if state is None else state))
    temp = tmp_path / "tmp"
    temp.mkdir(exist_ok=True)
    log = tmp_path / "log"
    log.write_text("")
    done = subprocess.run(
        ["bash", str(SCRIPT), *args],
        env={
            "PATH": os.pathsep.join([str(bin_dir), "/usr/bin", "/bin"]),
            "WORK": str(tmp_path),
            "LOG": str(log),
            "TMPDIR": str(temp),
            "RETURN_DEPLOY": str(bin_dir / "deploy"),
            "RETURN_WAIT_SECONDS": "5",
            "RETURN_POLL_INTERVAL": "1",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done, log.read_text().splitlines()


def final_state(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "state.json").read_text())


def first(log: list[str], needle: str) -> int:
    found = [i for i, line in enumerate(log) if needle in line]
    assert found, f"no call containing {needle!r} in:\n" + "\n".join(log)
    return found[0]


def last(log: list[str], needle: str) -> int:
    return max(i for i, line in enumerate(log) if needle in line)


def test_the_five_steps_run_in_order_each_after_the_one_before(tmp_path):
    done, log = run(tmp_path, STACK, "--yes")
    assert done.returncode == 0, done.stderr
    deploys = [i for i, line in enumerate(log) if line.startswith("deploy ")]
    assert [log[i] for i in deploys] == [f"deploy {STACK} --yes -- --refresh"] * 2, (
        "steps 1 and 5 are both the deploy with a refresh, passing --yes on"
    )
    refuse = first(log, "second.kubeconfig patch managedcluster")
    available = last(log, "main.kubeconfig get managedclusters -o json")
    cleared = first(log, "patch manifestwork")
    assert deploys[0] < refuse, "step 1 (the main hub up to date) comes before any agent is sent"
    assert last(log, "second.kubeconfig patch managedcluster") < available, (
        "step 3 waits after every ManagedCluster is refused"
    )
    assert available < cleared, "finalizers are cleared only once every cluster is Available"
    assert last(log, "patch manifestwork") < deploys[1], "the re-arm comes last"
    assert final_state(tmp_path)["refused"] == ["app-1", "app-2"]
    assert final_state(tmp_path)["works"] == [], "every dropped ManifestWork is gone"
    assert "not yet Available on main: app-2" in done.stdout, "step 3 prints its progress"
    assert "kubeconfig-of" not in done.stdout + done.stderr, "kubeconfigs are never printed"


def test_refuses_a_stack_without_a_standby_hub_and_changes_nothing(tmp_path):
    outputs = {k: v for k, v in OUTPUTS.items() if k != "standbyHub"}
    done, log = run(tmp_path, STACK, outputs=outputs)
    assert done.returncode != 0
    assert "has no output standbyHub" in done.stderr and "hub.standby.ocmHub" in done.stderr
    assert not [line for line in log if not line.startswith("pulumi ")], (
        f"nothing but reading the outputs may run: {log}"
    )
    assert not any("--show-secrets" in line for line in log), "no kubeconfig is read"
    assert not list((tmp_path / "tmp").iterdir()), "nothing is left behind"


def test_refuses_while_the_main_hub_does_not_answer(tmp_path):
    done, log = run(tmp_path, STACK, DOWN="main")
    assert done.returncode != 0
    assert "the main hub main does not answer" in done.stderr
    assert not any(line.startswith("deploy ") or " patch " in line for line in log), log


def test_a_cluster_never_available_stops_before_the_finalizers_naming_the_undo(tmp_path):
    state = healthy_state()
    state["available_after"]["app-2"] = None
    done, log = run(tmp_path, STACK, state=state)
    assert done.returncode != 0
    assert "not Available on the main hub main: app-2" in done.stderr
    assert "The standby hub second still does not accept them" in done.stderr
    assert f"./scripts/deploy.sh {STACK} -- --refresh (the re-arm" in done.stderr
    assert not any("manifestwork" in line for line in log), "step 4 must not run"
    assert [line for line in log if line.startswith("deploy ")] == [
        f"deploy {STACK} -- --refresh"
    ], "only step 1's deploy ran: the standby hub is not re-armed behind the user's back"
    looks = sum("main.kubeconfig get managedclusters -o json" in line for line in log)
    assert looks == 5, f"RETURN_WAIT_SECONDS=5 at 1 s a look is 5 looks, not {looks}"


# A server that answered with more than the selector asked for must not cost a finalizer either.
@pytest.mark.parametrize("env", [{}, {"IGNORES_SELECTOR": "1"}], ids=["selector", "no-selector"])
def test_only_deleting_works_of_the_replica_set_lose_their_finalizer(tmp_path, env):
    state = healthy_state()
    state["works"] = [
        work("app-1", "bookstore", deleting=True),
        work("app-2", "bookstore", deleting=False, drop_after=2),
        work("app-1", "other", deleting=True, label=None),
        work("app-2", "other-set", deleting=True, label=f"{NAMESPACE}.other"),
    ]
    done, log = run(tmp_path, STACK, state=state, **env)
    assert done.returncode == 0, done.stderr
    selector = f"-l {REPLICA_SET_LABEL}={REPLICA_SET}"
    assert all(selector in line for line in log if "get manifestworks" in line)
    patched = [line.split(" -n ", 1)[1] for line in log if "patch manifestwork" in line]
    assert patched == [
        'app-1 patch manifestwork bookstore --type merge -p {"metadata":{"finalizers":null}}',
        'app-2 patch manifestwork bookstore --type merge -p {"metadata":{"finalizers":null}}',
    ], "only the replica set's works, each once it is deleting"
    left = {(w["namespace"], w["name"]) for w in final_state(tmp_path)["works"]}
    assert left == {("app-1", "other"), ("app-2", "other-set")}


def test_a_work_never_dropped_stops_before_the_re_arm(tmp_path):
    state = healthy_state()
    state["works"] = [work("app-2", "bookstore", deleting=False)]
    done, log = run(tmp_path, STACK, state=state)
    assert done.returncode != 0
    assert "still has ManifestWorks it has not dropped: app-2/bookstore" in done.stderr
    assert not any("patch manifestwork" in line for line in log), "a kept work is not touched"
    assert sum(line.startswith("deploy ") for line in log) == 1, "step 5 must not run"


@pytest.mark.parametrize("outcome", ["returned", "stopped at step 3", "deploy failed"])
def test_the_kubeconfigs_folder_is_private_and_removed(tmp_path, outcome):
    state = healthy_state()
    env = {}
    if outcome == "stopped at step 3":
        state["available_after"]["app-1"] = None
    elif outcome == "deploy failed":
        env["DEPLOY_FAILS"] = "1"
    done, _ = run(tmp_path, STACK, state=state, **env)
    assert (done.returncode == 0) == (outcome == "returned"), done.stderr
    folders = set((tmp_path / "folders").read_text().splitlines())
    assert len(folders) == 1, f"one kubeconfigs folder per run: {folders}"
    folder, mode = folders.pop().split()
    assert mode == "0o700", f"the kubeconfigs folder {folder} is {mode}, not 0o700"
    assert Path(folder).parent == tmp_path / "tmp", "the folder is a temporary one"
    assert not Path(folder).exists(), f"{folder} is left behind ({outcome})"


def test_help_changes_nothing_and_a_bad_option_is_refused(tmp_path):
    done, log = run(tmp_path, "--help")
    assert done.returncode == 0 and "hubAcceptsClient false" in done.stdout, done.stderr
    assert log == [], "--help runs nothing"
    bad, log = run(tmp_path, "--no-such-option")
    assert bad.returncode != 0 and "unknown option --no-such-option" in bad.stderr
    assert log == []
