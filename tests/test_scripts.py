"""The shell entry points: lint-clean, and wired the way the README says."""

from __future__ import annotations

import shutil
import subprocess

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
