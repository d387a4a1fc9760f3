"""The shell entry points: lint-clean, and wired the way the README says."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from harness import ROOT

SCRIPTS = [*sorted((ROOT / "scripts").glob("*.sh")), ROOT / ".ci" / "run"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_passes_shellcheck(script):
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (Debian package: shellcheck)")
    result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "./scripts/test.sh" in readme, (
        "the README must give ./scripts/test.sh as the test command"
    )
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./scripts/test.sh" in ci.split("exec", 1)[1], ".ci/run must run the README's command"


def test_deploy_keeps_the_users_login_and_checks_credentials_first():
    text = (ROOT / "scripts" / "deploy.sh").read_text()
    assert "pulumi login" not in text, "the deploy script must not change the user's Pulumi login"
    assert "PULUMI_BACKEND_URL=" in text and ".pulumi-state" in text
    deploy = text.index('pulumi up --stack "$stack"')
    assert text.index("aws sts get-caller-identity") < deploy
    assert text.index("az account show") < deploy


HELPERS = sorted([*(ROOT / "scripts").glob("*.py"), *(ROOT / "bench").glob("*.py")])


def _tree_state() -> dict[str, bytes]:
    return {
        str(p.relative_to(ROOT)): p.read_bytes()
        for p in [ROOT / "README.md", *(ROOT / "components").glob("*.yaml")]
    }


@pytest.mark.parametrize("script", HELPERS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_helper_answers_help_and_refuses_a_bad_option(script):
    before = _tree_state()
    helped = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage:") and len(helped.stdout.splitlines()) > 2, (
        f"{script.name} --help must say what it does:\n{helped.stdout}"
    )
    bad = subprocess.run(
        [sys.executable, str(script), "--no-such-option"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "Traceback" not in bad.stderr, bad.stderr
    assert _tree_state() == before, f"{script.name}: --help or a usage error changed files"


def test_test_sh_help_installs_nothing(tmp_path):
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "test.sh"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHON": str(tmp_path / "no-python")},
    )
    assert done.returncode == 0 and "Usage: ./scripts/test.sh" in done.stdout, done.stderr
    assert "==>" not in done.stdout, "nothing is set up for --help"


def test_the_drill_without_the_pulumi_cli_is_one_line(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "drill.py"),
            *("--stack", "dev", "--cluster", "app-aws", "--fault", "app-down"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": str(tmp_path)},
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "drill: the Pulumi CLI is not on PATH; put it there (./scripts/deploy.sh installs it "
        "into .tools/pulumi-<version>/pulumi) and run again"
    ]
