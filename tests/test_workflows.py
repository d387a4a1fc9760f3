"""The GitHub workflows: schema-valid, clean under zizmor, and doing what the README says."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
NAMES = ("test", "preview", "up", "destroy", "e2e")
PULUMI_ACTION = "pulumi/actions@"


def _tool(name: str) -> Path:
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.skip(
            f"{name} is not installed next to {sys.executable}: pip install -r requirements-dev.txt"
        )
    return path


def _run(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def _load(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS / f"{name}.yml").read_text())
    # YAML 1.1 reads the key `on` as the boolean True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def _steps(workflow: dict) -> list[tuple[str, dict]]:
    return [(job, step) for job, spec in workflow["jobs"].items() for step in spec["steps"]]


def _pulumi_steps(workflow: dict) -> list[dict]:
    return [s for _, s in _steps(workflow) if s.get("uses", "").startswith(PULUMI_ACTION)]


def test_every_workflow_matches_the_github_schema():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert [f.stem for f in files] == sorted(NAMES)
    tool = _tool("check-jsonschema")
    result = _run(tool, "--builtin-schema", "vendor.github-workflows", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing():
    tool = _tool("zizmor")
    result = _run(tool, "--offline", WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_test_workflow_runs_the_test_command_on_push_and_pull_request():
    workflow = _load("test")
    assert set(workflow["on"]) == {"push", "pull_request"}
    runs = [s.get("run", "") for _, s in _steps(workflow)]
    assert any(r.strip() == "./scripts/test.sh" for r in runs), runs
    assert not _pulumi_steps(workflow)


def test_preview_runs_on_pull_requests_only_and_comments_with_the_policy_pack():
    workflow = _load("preview")
    assert set(workflow["on"]) == {"pull_request"}
    [step] = _pulumi_steps(workflow)
    assert step["with"]["command"] == "preview"
    assert step["with"]["comment-on-pr"] is True
    assert step["with"]["policyPacks"] == "policy"
    assert "PULUMI_STACK" in step["with"]["stack-name"]
    runs = "\n".join(s.get("run", "") for _, s in _steps(workflow))
    assert "policy/requirements.txt" in runs, "the policy pack needs its own virtualenv"


def test_up_runs_on_push_to_main_only_one_at_a_time():
    workflow = _load("up")
    assert set(workflow["on"]) == {"push"}
    assert workflow["on"]["push"] == {"branches": ["main"]}
    assert workflow["concurrency"]["cancel-in-progress"] is False
    assert workflow["concurrency"]["group"].startswith("pulumi-")
    [step] = _pulumi_steps(workflow)
    assert step["with"]["command"] == "up"
    assert step["with"]["policyPacks"] == "policy"


def test_destroy_is_manual_and_checks_the_confirmation_first():
    workflow = _load("destroy")
    assert set(workflow["on"]) == {"workflow_dispatch"}
    confirm = workflow["on"]["workflow_dispatch"]["inputs"]["confirm"]
    assert confirm["required"] is True
    assert workflow["concurrency"] == _load("up")["concurrency"]

    jobs = workflow["jobs"]
    [pulumi_job] = [name for name, spec in jobs.items() if _pulumi_steps({"jobs": {name: spec}})]
    assert (
        _pulumi_steps({"jobs": {pulumi_job: jobs[pulumi_job]}})[0]["with"]["command"] == "destroy"
    )

    # Every step that can run before the pulumi step: the jobs it needs, then its own steps.
    needs = jobs[pulumi_job].get("needs", [])
    earlier = [
        s for job in ([needs] if isinstance(needs, str) else needs) for s in jobs[job]["steps"]
    ]
    own = jobs[pulumi_job]["steps"]
    earlier += own[
        : next(i for i, s in enumerate(own) if s.get("uses", "").startswith(PULUMI_ACTION))
    ]
    checks = [s for s in earlier if "$CONFIRM" in s.get("run", "") and "exit 1" in s.get("run", "")]
    assert checks, "destroy must compare the confirm input with the stack name before pulumi runs"
    assert checks[0]["env"]["CONFIRM"] == "${{ inputs.confirm }}"
    assert "PULUMI_STACK" in checks[0]["env"]["STACK"]
    # The input reaches the script through the environment only.
    assert "${{" not in checks[0]["run"]


@pytest.mark.parametrize("name", NAMES)
def test_permissions_are_minimal_and_oidc_only_where_clouds_are_used(name):
    workflow = _load(name)
    top = workflow.get("permissions")
    assert top in ({}, {"contents": "read"}), f"{name}: top-level permissions {top}"
    for job, spec in workflow["jobs"].items():
        permissions = spec.get("permissions", top) or {}
        logs_in = any(
            s.get("uses", "").startswith(("aws-actions/configure-aws-credentials@", "azure/login@"))
            for s in spec["steps"]
        )
        assert (permissions.get("id-token") == "write") == logs_in, f"{name}/{job}: {permissions}"
        wrote = {k for k, v in permissions.items() if v == "write"} - {"id-token"}
        allowed = {"pull-requests"} if name == "preview" else set()
        assert wrote <= allowed, f"{name}/{job} may write {wrote}"


@pytest.mark.parametrize("name", NAMES)
def test_checkouts_keep_no_credentials_and_actions_are_pinned(name):
    for job, step in _steps(_load(name)):
        uses = step.get("uses", "")
        if uses.startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False, f"{name}/{job}"
        if uses and not uses.startswith(PULUMI_ACTION):
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", uses), f"{name}: {uses} not pinned"


@pytest.mark.parametrize("name", ("preview", "up", "destroy"))
def test_cloud_logins_use_oidc_roles_and_no_stored_keys(name):
    workflow = _load(name)
    text = (WORKFLOWS / f"{name}.yml").read_text()
    assert not re.search(r"AWS_SECRET_ACCESS_KEY|AWS_ACCESS_KEY_ID|ARM_CLIENT_SECRET|creds:", text)
    assert not re.search(r"client-secret|clientSecret|AZURE_CREDENTIALS", text)
    steps = [s for _, s in _steps(workflow)]
    [aws] = [
        s for s in steps if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")
    ]
    assert aws["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}"
    [azure] = [s for s in steps if s.get("uses", "").startswith("azure/login@")]
    assert set(azure["with"]) == {"client-id", "tenant-id", "subscription-id"}
    [pulumi] = _pulumi_steps(workflow)
    env = pulumi["env"]
    assert env["ARM_USE_OIDC"] == "true"
    assert {"ARM_CLIENT_ID", "ARM_TENANT_ID", "ARM_SUBSCRIPTION_ID"} <= set(env)
    assert env["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"
    assert env["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}"
    assert env["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"


def test_e2e_runs_both_local_stacks_on_pull_requests_and_nightly_and_checks_them_end_to_end():
    workflow = _load("e2e")
    assert {"pull_request", "schedule"} <= set(workflow["on"])
    assert workflow["on"]["schedule"][0]["cron"].split()[2:] == ["*", "*", "*"], "every night"
    [job] = workflow["jobs"].values()
    assert job["env"]["PULUMI_BACKEND_URL"].startswith("file://"), "a local backend"
    assert job["env"]["OCM_FLEET_PINNED_TOOLS"] == "1", "the pinned pulumi and kind"
    assert job["env"]["STACK"] == "${{ matrix.stack }}"
    strategy = job["strategy"]
    assert strategy["fail-fast"] is False, "one stack's failure must not cancel the other's run"
    entries = {entry["stack"]: entry for entry in strategy["matrix"]["include"]}
    assert set(entries) == {"local", "local-standby"}
    assert entries["local"]["standby"] is False and entries["local-standby"]["standby"] is True
    for stack in entries:
        assert (ROOT / f"Pulumi.{stack}.yaml").exists(), f"no stack file for {stack}"
    assert job["timeout-minutes"] == "${{ matrix.timeout }}"
    assert entries["local-standby"]["timeout"] > entries["local"]["timeout"], "three deploys"
    text = (WORKFLOWS / "e2e.yml").read_text()
    assert "secrets." not in text and "id-token" not in text, "no cloud and no secret"
    steps = job["steps"]
    runs = [s.get("run", "") for s in steps]

    def at(command: str) -> int:
        found = [i for i, run in enumerate(runs) if command in run]
        assert found, f"e2e never runs {command!r}"
        return found[0]

    order = [
        "sudo sysctl -w fs.inotify.max_user_watches=524288",
        './scripts/deploy.sh "$STACK" --yes',
        "./scripts/e2e.sh fleet-ready",
        "./scripts/e2e.sh serves",
        "./scripts/e2e.sh failover",
        "./scripts/e2e.sh promote-and-back",
        "--expect-no-changes",
        "./scripts/e2e.sh inventory",
        'pulumi destroy --stack "$STACK" --yes',
        "./scripts/e2e.sh no-leftovers",
    ]
    positions = [at(command) for command in order]
    assert positions == sorted(positions), order
    # The promotion runs on the stack with a second home only; every other check on both.
    assert steps[at("./scripts/e2e.sh promote-and-back")]["if"] == "matrix.standby"
    for command in order:
        if command != "./scripts/e2e.sh promote-and-back":
            assert "if" not in steps[at(command)], f"{command!r} must run for both stacks"
    assert "--policy-pack policy" in runs[at("--expect-no-changes")]
    collect = steps[at("./scripts/e2e.sh collect")]
    [upload] = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert collect["if"] == upload["if"] == "failure()", "logs are uploaded when a step fails"
    assert upload["with"]["path"] == "${{ runner.temp }}/e2e-logs"
    assert upload["with"]["name"] == "e2e-logs-${{ matrix.stack }}", "one artifact per stack"
    assert "$RUNNER_TEMP/e2e-logs" in collect["run"]
