"""scripts/e2e.sh, the checks of the e2e workflow, run against stand-in tools: each check must
pass on a healthy fleet and fail on the fault it is there to catch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from harness import ROOT

if shutil.which("bash") is None:
    pytest.skip("bash is needed to run e2e.sh", allow_module_level=True)

KUBECONFIGS = {"hub": "kubeconfig-of-hub", "app-1": "kubeconfig-of-app-1", "app-2": "kc-2"}
STAND_INS = {
    "pulumi": r"""
case "$*" in
  *"output url"*) echo "http://172.18.0.90" ;;
  *"output clusters"*) echo '{"app-1": {}, "app-2": {}}' ;;
  *"output kubeconfigs"*) cat "$WORK/kubeconfigs.json" ;;
esac
""",
    "kubectl": r"""
echo "kubectl $*" >> "$LOG"
case "$*" in *"$NOT_READY"*) [ -z "$NOT_READY" ] || exit 1 ;; esac
""",
    # Books while the paused cluster's share of requests is answered elsewhere, unless broken.
    "curl": r"""
for last; do :; done
echo "curl $last" >> "$LOG"
case "$last" in
  */api/books)
    if [ -n "${PAUSED_FAILS:-}" ] && [ -f "$WORK/paused" ]; then exit 28; fi
    echo "$BOOKS" ;;
  *) echo "<html>" ;;
esac
""",
    "docker": r"""
echo "docker $*" >> "$LOG"
case "$1" in
  ps) echo "${CONTAINERS:-}" ;;
  volume) echo "${VOLUMES:-}" ;;
  pause) touch "$WORK/paused" ;;
  unpause) rm -f "$WORK/paused" ;;
esac
""",
    "kind": 'echo "${KIND_CLUSTERS:-}"\n',
    "sleep": ":\n",
}


def e2e(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    bin_dir = tmp_path / "bin"
    if not bin_dir.exists():
        bin_dir.mkdir()
        for name, body in STAND_INS.items():
            (bin_dir / name).write_text("#!/bin/bash\n" + body)
            (bin_dir / name).chmod(0o755)
        (tmp_path / "kubeconfigs.json").write_text(json.dumps(KUBECONFIGS))
    log = tmp_path / "log"
    log.write_text("")
    full_env = {
        "PATH": os.pathsep.join([str(bin_dir), "/usr/bin", "/bin"]),
        "WORK": str(tmp_path),
        "LOG": str(log),
        "E2E_KUBECONFIGS": str(tmp_path / "kubeconfigs"),
        "E2E_FAILOVER_REQUESTS": "5",
        "NOT_READY": "",
        "BOOKS": json.dumps([{"id": 1, "title": "Dune"}]),
        **env,
    }
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "e2e.sh"), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done, log.read_text().splitlines()


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


def test_fleet_ready_fails_when_a_manifest_work_never_becomes_available(tmp_path):
    done, _ = e2e(tmp_path, "fleet-ready", NOT_READY="manifestwork/bookstore -n app-2")
    assert done.returncode != 0


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


def test_failover_pauses_one_cluster_and_unpauses_it_after(tmp_path):
    done, log = e2e(tmp_path, "failover", CONTAINERS="c1\nc2")
    assert done.returncode == 0, done.stderr
    assert "docker ps --quiet --filter label=io.x-k8s.kind.cluster=local-app-1" in log
    assert log.index("docker pause c1 c2") < log.index("docker unpause c1 c2")
    assert "5 of 5 requests answered" in done.stdout


def test_failover_fails_when_the_url_stops_answering(tmp_path):
    done, log = e2e(tmp_path, "failover", CONTAINERS="c1", PAUSED_FAILS="1")
    assert done.returncode == 1
    assert "stopped answering" in done.stderr
    assert log[-1] == "docker unpause c1", "the cluster is unpaused even when the check fails"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KIND_CLUSTERS": "local-hub"}, "kind clusters left"),
        ({"CONTAINERS": "kindccm-abc"}, "containers left"),
        ({"VOLUMES": "3f2a"}, "volumes left"),
    ],
)
def test_no_leftovers_names_what_destroy_left(tmp_path, env, message):
    done, _ = e2e(tmp_path, "no-leftovers", **env)
    assert done.returncode == 1
    assert message in done.stderr


def test_no_leftovers_passes_on_a_clean_machine(tmp_path):
    done, _ = e2e(tmp_path, "no-leftovers", KIND_CLUSTERS="someone-elses")
    assert done.returncode == 0, done.stderr


# --- manners: usage, missing tools, a stack without outputs ---------------------------------------


def test_help_exits_zero_and_a_usage_error_non_zero(tmp_path):
    done, _ = e2e(tmp_path, "--help")
    assert done.returncode == 0 and "fleet-ready" in done.stdout
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
    for command in ("fleet-ready", "serves"):
        done, _ = e2e(tmp_path, command)
        assert done.returncode == 1, command
        assert "Traceback" not in done.stderr and "JSONDecodeError" not in done.stderr
        assert "deploy it first (./scripts/deploy.sh local)" in done.stderr, done.stderr
