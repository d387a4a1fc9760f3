"""scripts/check.py: a stack checked offline by the program's own config model, every problem at
once, and nothing left behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from harness import ROOT, run_program

sys.path.insert(0, str(ROOT / "scripts"))
import check

from components.config import FleetConfigError
from components.pulumi_config import load_fleet_config

GOOD_HEAD = """\
config:
  ocm-fleet:hub: {name: main, cloud: azure, region: westeurope}
  ocm-fleet:apiAllowedCidrs: [203.0.113.7/32]
"""
AZURE_APP = "  ocm-fleet:clusters:\n    - {name: app-azure, cloud: azure, region: westeurope}\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of what the check reads: the config model, manifests/, Pulumi.yaml, the script."""
    root = tmp_path / "project"
    root.mkdir()
    for part in ("components", "manifests", "scripts"):
        shutil.copytree(ROOT / part, root / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "Pulumi.yaml", root / "Pulumi.yaml")
    return root


def snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))}


def run_check(root: Path, stack_text: str, *args: str, stack: str = "trial", **env: str):
    (root / f"Pulumi.{stack}.yaml").write_text(stack_text)
    before = snapshot(root)
    done = subprocess.run(
        [sys.executable, str(root / "scripts" / "check.py"), stack, *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )
    assert snapshot(root) == before, "the check must write nothing (no __pycache__ either)"
    assert "Traceback" not in done.stderr, done.stderr
    return done


BAD_STACKS = {
    "hub missing": (
        "config:\n  ocm-fleet:apiAllowedCidrs: [203.0.113.7/32]\n" + AZURE_APP,
        "ocm-fleet:hub: missing; set the main cluster",
    ),
    "clusters not a list": (
        GOOD_HEAD + "  ocm-fleet:clusters: app-azure\n",
        "ocm-fleet:clusters: 'app-azure' must be a list",
    ),
    "bad CIDR": (
        "config:\n  ocm-fleet:hub: {name: main, cloud: azure, region: westeurope}\n"
        "  ocm-fleet:apiAllowedCidrs: [10.0.0.1/8]\n" + AZURE_APP,
        "ocm-fleet:apiAllowedCidrs[0]: '10.0.0.1/8' is not a valid CIDR",
    ),
    "ocmVersion": (
        GOOD_HEAD + AZURE_APP + "  ocm-fleet:ocmVersion: v1.3.1\n",
        "ocm-fleet:ocmVersion: 'v1.3.1' must be an OCM release",
    ),
    "protectData": (
        GOOD_HEAD + AZURE_APP + "  ocm-fleet:protectData: maybe\n",
        "ocm-fleet:protectData: 'maybe' must be true or false",
    ),
    "rotation": (
        GOOD_HEAD + AZURE_APP + "  ocm-fleet:databasePasswordRotation: -1\n",
        "ocm-fleet:databasePasswordRotation: '-1' must be an integer of at least 0",
    ),
    "nodeCount": (
        GOOD_HEAD + "  ocm-fleet:clusters:\n    - {name: a, cloud: azure, "
        "region: westeurope, nodeCount: 0}\n",
        "ocm-fleet:clusters[0].nodeCount: 0 must be an integer of at least 1",
    ),
    "kubernetesVersion as a float": (
        GOOD_HEAD + "  ocm-fleet:clusters:\n    - {name: a, cloud: azure, region: westeurope, "
        "kubernetesVersion: 1.30}\n",
        "ocm-fleet:clusters[0].kubernetesVersion: 1.3 must be MAJOR.MINOR",
    ),
    "imageTags of an unknown container": (
        GOOD_HEAD + AZURE_APP + "  ocm-fleet:app: {imageTags: {nope: '1.1'}}\n",
        "ocm-fleet:app.imageTags.nope",
    ),
    "canary not a cluster": (
        GOOD_HEAD + AZURE_APP + "  ocm-fleet:rollout: {canary: [elsewhere]}\n",
        "ocm-fleet:rollout.canary[0]: 'elsewhere'",
    ),
    "STS session as EKS admin": (
        GOOD_HEAD + "  ocm-fleet:clusters:\n    - {name: a, cloud: aws, region: eu-west-1}\n"
        "  ocm-fleet:eksAdminPrincipals: "
        "['arn:aws:sts::123456789012:assumed-role/Admin/alice']\n",
        "ocm-fleet:eksAdminPrincipals[0]",
    ),
    "unknown cloud": (
        GOOD_HEAD + "  ocm-fleet:clusters:\n    - {name: a, cloud: gcp, region: europe-west1}\n",
        "ocm-fleet:clusters[0].cloud: 'gcp' is not one of aws, azure, existing",
    ),
    "singular key": (
        GOOD_HEAD + "  ocm-fleet:cluster:\n    - {name: a, cloud: azure, region: westeurope}\n",
        "ocm-fleet:cluster: unknown key (did you mean 'clusters'?",
    ),
    "misspelt aws region": (
        GOOD_HEAD + "  ocm-fleet:clusters:\n    - {name: a, cloud: aws, region: eu-west-9}\n"
        "  ocm-fleet:eksAdminPrincipals: ['arn:aws:iam::123456789012:role/Admin']\n",
        "ocm-fleet:clusters[0].region: 'eu-west-9' is not a known aws region (did you mean "
        "'eu-west-",
    ),
    "misspelt azure region": (
        GOOD_HEAD + "  ocm-fleet:clusters:\n    - {name: a, cloud: azure, region: westeurop}\n",
        "ocm-fleet:clusters[0].region: 'westeurop' is not a known azure region (did you mean "
        "'westeurope'?",
    ),
    "extraRegions not a list": (
        GOOD_HEAD + AZURE_APP + "  ocm-fleet:extraRegions: mars-1\n",
        "ocm-fleet:extraRegions: 'mars-1' must be a list",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_STACKS))
def test_each_problem_is_named_with_its_key_and_value_and_nothing_is_written(project, case):
    text, message = BAD_STACKS[case]
    done = run_check(project, text)
    assert done.returncode == 1, f"{case}: exit {done.returncode}\n{done.stderr}"
    # The singular key also leaves `clusters` missing: both are said.
    count = "2 problems" if case == "singular key" else "1 problem"
    assert f"check: {count} with stack 'trial'" in done.stderr, done.stderr
    assert f"  - Pulumi.trial.yaml: {message}" in done.stderr, done.stderr
    assert "<stack>" not in done.stderr


def test_a_yaml_error_is_one_line_with_the_file_line_and_column(project):
    done = run_check(project, "config:\n  ocm-fleet:hub:\n    name: main\n   cloud: kind\n")
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("check: Pulumi.trial.yaml:4:4: "), line


def test_every_problem_is_listed_in_one_run(project):
    text = GOOD_HEAD.replace("westeurope", "westeurop") + (
        "  ocm-fleet:cluster: []\n  ocm-fleet:clusters:\n    - {name: a, cloud: gcp}\n"
        "  ocm-fleet:protectData: maybe\n"
    )
    done = run_check(project, text)
    assert done.returncode == 1
    assert "check: 4 problems with stack 'trial'" in done.stderr, done.stderr
    for fragment in (
        "ocm-fleet:hub.region: 'westeurop' is not a known azure region",
        "ocm-fleet:cluster: unknown key",
        "ocm-fleet:clusters[0].cloud: 'gcp'",
        "ocm-fleet:protectData: 'maybe'",
    ):
        assert fragment in done.stderr, fragment


def test_a_region_newer_than_the_list_is_admitted_by_extra_regions(project):
    stack = (
        GOOD_HEAD + "  ocm-fleet:clusters:\n    - {name: a, cloud: aws, region: eu-west-9}\n"
        "  ocm-fleet:eksAdminPrincipals: ['arn:aws:iam::123456789012:role/Admin']\n"
    )
    assert run_check(project, stack).returncode == 1
    done = run_check(project, stack + "  ocm-fleet:extraRegions: [eu-west-9]\n")
    assert done.returncode == 0, done.stderr
    assert "check: Pulumi.trial.yaml: stack check passed" in done.stderr


def test_the_shipped_stacks_pass_once_deploy_fills_in_what_it_asks_for(project):
    for stack in ("dev", "local"):
        shutil.copy(ROOT / f"Pulumi.{stack}.yaml", project / f"Pulumi.{stack}.yaml")
        done = subprocess.run(
            [
                *(sys.executable, "scripts/check.py", stack, "--facts"),
                *(
                    "--filled-by-deploy",
                    "apiAllowedCidrs",
                    "--filled-by-deploy",
                    "eksAdminPrincipals",
                ),
            ],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"{stack}: {done.stderr}"
        facts = dict(line.split("=", 1) for line in done.stdout.splitlines())
        expected = {"dev": "aws azure", "local": "kind"}[stack]
        assert facts["clouds"] == expected, facts


def check_py(project: Path, *args: str) -> subprocess.CompletedProcess:
    """scripts/check.py in the project copy, as a user runs it there."""
    return subprocess.run(
        [sys.executable, "scripts/check.py", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        check=False,
    )


def test_usage_errors_and_a_missing_stack_exit_non_zero(project):
    done = run_check(project, GOOD_HEAD + AZURE_APP, "--no-such-option")
    assert done.returncode == 2 and "unrecognized arguments" in done.stderr
    missing = check_py(project, "prod")
    assert missing.returncode == 1
    assert "Pulumi.prod.yaml not found; copy Pulumi.dev.yaml" in missing.stderr
    helped = check_py(project, "--help")
    assert helped.returncode == 0 and "--preflight" in helped.stdout


def test_without_pyyaml_a_failed_install_is_one_line_and_leaves_no_folder(project, tmp_path):
    """`python3 -S` has no site-packages, so no PyYAML; pip is pointed at nothing."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    (project / "Pulumi.trial.yaml").write_text(GOOD_HEAD + AZURE_APP)
    done = subprocess.run(
        [sys.executable, "-S", "scripts/check.py", "trial"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TMPDIR": str(scratch), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": ""},
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "PyYAML is needed to read the stack file and could not be installed" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(scratch.iterdir()) == [], "the temporary folder must be removed"


# --- the same model as the program ---------------------------------------------------------------


def test_the_check_reports_exactly_what_the_program_reports(project):
    text = GOOD_HEAD.replace("westeurope", "westeurop") + (
        "  ocm-fleet:clusters:\n    - {name: A, cloud: aws, region: eu-west-9, nodeCount: 0}\n"
        "  ocm-fleet:rollout: {maxConcurrency: 0}\n  ocm-fleet:protectData: maybe\n"
    )
    done = run_check(project, text)
    reported = [
        line.removeprefix("  - Pulumi.trial.yaml: ")
        for line in done.stderr.splitlines()
        if line.startswith("  - ")
    ]
    import yaml

    config = yaml.safe_load(text)["config"]
    with pytest.raises(FleetConfigError) as info:
        run_program(config, program=load_fleet_config, admin_principals=None)
    assert reported == info.value.problems
    assert "fix Pulumi.dev.yaml" in str(info.value)


def test_secure_values_reach_the_model_only_as_an_opaque_marker(tmp_path):
    stack = tmp_path / "Pulumi.s.yaml"
    stack.write_text(
        "config:\n  ocm-fleet:protectData:\n    secure: v1:AAAABBBB\n"
        "  ocm-fleet:app:\n    imageTags:\n      shopui:\n        secure: v1:CCCC\n"
        "  aws:region: eu-west-1\n"
    )
    values = check.stack_values(stack, ROOT / "Pulumi.yaml")
    assert values["protectData"] == check.SECRET
    assert json.loads(values["app"]) == {"imageTags": {"shopui": check.SECRET}}
    assert "v1:" not in json.dumps(values)
    assert "region" not in values, "another namespace's keys are not the program's"
    assert "hub" not in values, "Pulumi takes no key without a namespace"
    assert values["ocmVersion"] == "1.3.1", "Pulumi.yaml's defaults apply"
    assert values["eksAdminPrincipals"] == "[]", "a list key's default is the empty list"


def test_values_reach_the_model_as_the_text_pulumi_gives_the_program(tmp_path):
    """Pulumi hands a top-level scalar over as the text written in the file, not as YAML 1.1
    reads it: `1.10` stays "1.10", `yes` stays "yes"."""
    stack = tmp_path / "Pulumi.s.yaml"
    stack.write_text(
        "config:\n  ocm-fleet:ocmVersion: 1.10\n  ocm-fleet:protectData: yes\n"
        "  ocm-fleet:config:databasePasswordRotation: 0x10\n"
        "  ocm-fleet:app: {imageTags: {web: 2024-01-01}}\n"
    )
    values = check.stack_values(stack, ROOT / "Pulumi.yaml")
    assert values["ocmVersion"] == "1.10"
    assert values["protectData"] == "yes"
    assert values["databasePasswordRotation"] == "0x10", "the older `config:` spelling is read"
    assert json.loads(values["app"]) == {"imageTags": {"web": "2024-01-01"}}


def test_keys_pulumi_would_refuse_are_problems(project):
    done = run_check(
        project,
        GOOD_HEAD + AZURE_APP + "  protectData: true\n",
    )
    assert done.returncode == 1
    assert (
        "Pulumi.trial.yaml:6: protectData: Pulumi needs a namespace on every config key; "
        "write `ocm-fleet:protectData`" in done.stderr
    ), done.stderr
    without_cidrs = GOOD_HEAD.replace("  ocm-fleet:apiAllowedCidrs: [203.0.113.7/32]\n", "")
    done = run_check(project, without_cidrs + AZURE_APP)
    assert (
        "ocm-fleet:apiAllowedCidrs: missing; Pulumi.yaml declares it with no default, so every "
        "stack must set it" in done.stderr
    ), done.stderr
    assert done.stderr.count("apiAllowedCidrs") == 1, "the model's own message is not repeated"


def test_a_secret_value_is_a_note_not_a_false_problem(project):
    text = GOOD_HEAD.replace("[203.0.113.7/32]", "[{secure: v1:abcd}]") + AZURE_APP
    done = run_check(project, text)
    assert done.returncode == 0, done.stderr
    assert "note: ocm-fleet:apiAllowedCidrs[0]: a secret value, not checked offline" in done.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfeconfig:\n", "not UTF-8 text"),
        (b"config: [1, 2]\n", "'config:' must be a mapping of keys to values"),
        (b"- a\n- b\n", "the stack file must be a mapping"),
        (b"config:\n  ocm-fleet:app: " + b"[" * 3000 + b"]" * 3000 + b"\n", "Pulumi.trial.yaml"),
    ],
    ids=["not-utf8", "config-list", "top-list", "deep"],
)
def test_files_that_cannot_be_read_are_one_line(project, content, message):
    (project / "Pulumi.trial.yaml").write_bytes(content)
    done = check_py(project, "trial")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr
    assert message in done.stderr, done.stderr


# --- preflight: tools, limits --------------------------------------------------------------------


def test_low_inotify_limits_are_a_problem_with_the_sysctl_commands(tmp_path):
    (tmp_path / "max_user_watches").write_text("8192\n")
    (tmp_path / "max_user_instances").write_text("512\n")
    report = check.Report()
    check.check_inotify(report, tmp_path)
    (problem,) = report.problems
    assert "max_user_watches is 8192" in problem
    assert "sudo sysctl fs.inotify.max_user_watches=524288" in problem
    assert "max_user_instances" not in problem, "only the low limit is named"
    report = check.Report()
    check.check_inotify(report, tmp_path / "absent")
    assert report.problems == [] and len(report.notes) == 2, "unreadable limits are a note"


def test_each_cloud_needs_its_tools_and_credentials(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("aws", "az", "docker"):
        (bin_dir / tool).write_text("#!/bin/sh\nexit 1\n")
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("ARM_CLIENT_ID", raising=False)
    monkeypatch.setattr(check, "INOTIFY_DIR", tmp_path)
    report = check.Report()
    check.check_tools({"aws", "azure", "kind"}, report)
    joined = "\n".join(report.problems)
    assert "aws: no working credentials" in joined
    assert "azure: no Azure session (`az account show` fails)" in joined
    assert "docker: the Docker engine is not running" in joined
    monkeypatch.setenv("ARM_CLIENT_ID", "00000000-0000-0000-0000-000000000000")
    report = check.Report()
    check.check_tools({"azure"}, report)
    assert report.problems == [], "a service principal in ARM_* needs no az session"


def test_the_help_of_every_helper_script_changes_nothing(project):
    """Each script answers --help with what it does and exits 0 (resolve_digests would
    otherwise rewrite components/images.yaml)."""
    before = snapshot(project)
    for script in ("check.py", "resolve_digests.py", "check_images.py"):
        done = subprocess.run(
            [sys.executable, f"scripts/{script}", "--help"],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            check=False,
        )
        assert done.returncode == 0 and "usage:" in done.stdout, f"{script}: {done.stderr}"
    assert snapshot(project) == before


def test_the_docstring_describes_the_checks():
    doc = textwrap.dedent(check.__doc__ or "")
    for word in ("--preflight", "inotify", "images", "Exit status"):
        assert word in doc, word
