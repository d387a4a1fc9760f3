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


def test_deploy_finds_every_cloud_the_stack_uses(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    from stack_config import stack_clouds

    assert stack_clouds(str(ROOT / "Pulumi.dev.yaml")) == ["aws", "azure"]
    flow = tmp_path / "Pulumi.flow.yaml"
    flow.write_text(
        "config:\n"
        "  ocm-fleet:hub: {name: main, cloud: existing}\n"
        "  ocm-fleet:clusters:\n"
        "  - {cloud: aws, name: a, region: eu-west-1}\n"
    )
    assert stack_clouds(str(flow)) == ["aws", "existing"]


@pytest.mark.parametrize("name", ["dev", "local"])
def test_the_scan_without_pyyaml_finds_what_the_parser_finds(name):
    """deploy.sh reads a stack file before PyYAML is installed; the scan must agree with it on
    the clouds (which credentials to check) and the API allowlist (whether to refuse it)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from stack_config import describe

    path = str(ROOT / f"Pulumi.{name}.yaml")
    parsed, scanned = describe(path, use_yaml=True), describe(path, use_yaml=False)
    for key in ("clouds", "api_cidrs", "open_api"):
        assert scanned[key] == parsed[key], f"{name}: {key} scanned {scanned[key]!r}"


def test_the_scan_sees_an_open_allowlist_in_either_style(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    from stack_config import describe

    block = tmp_path / "Pulumi.a.yaml"
    block.write_text("config:\n  ocm-fleet:apiAllowedCidrs:\n    - 10.0.0.0/8\n    - 0.0.0.0/0\n")
    flow = tmp_path / "Pulumi.b.yaml"
    flow.write_text('config:\n  ocm-fleet:apiAllowedCidrs: ["0.0.0.0/0"]\n')
    for path in (block, flow):
        assert describe(str(path), use_yaml=False)["open_api"] == "yes", path.name
        assert describe(str(path), use_yaml=True)["open_api"] == "yes", path.name
