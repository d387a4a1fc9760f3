"""scripts/caller_role_arn.py: the IAM principal for eksAdminPrincipals, from an STS caller ARN,
with `aws iam get-role` played by a stand-in script."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
from harness import ROOT

sys.path.insert(0, str(ROOT / "scripts"))

import caller_role_arn as helper

SCRIPT = ROOT / "scripts" / "caller_role_arn.py"
SESSION = "arn:aws:sts::123456789012:assumed-role/github-actions/GitHubActions"
PATHED_ROLE = "arn:aws:iam::123456789012:role/ci/github/github-actions"


def stand_in_aws(tmp_path: Path, *, answer: str, code: int = 0) -> Path:
    """An `aws` that records its arguments and answers `iam get-role` with `answer`."""
    aws = tmp_path / "aws"
    log = tmp_path / "aws.args"
    aws.write_text(
        f"#!/bin/sh\nprintf '%s\\n' \"$*\" >> {log}\nprintf '%s\\n' '{answer}'\nexit {code}\n"
    )
    aws.chmod(aws.stat().st_mode | stat.S_IXUSR)
    return aws


def test_a_session_becomes_its_role_with_the_path_from_iam(tmp_path):
    aws = stand_in_aws(tmp_path, answer=PATHED_ROLE)
    assert helper.principal_arn(SESSION, aws=str(aws)) == (PATHED_ROLE, "")
    args = (tmp_path / "aws.args").read_text().split()
    assert args[:4] == ["iam", "get-role", "--role-name", "github-actions"], args


def test_without_the_lookup_the_role_arn_lacks_the_path_and_says_so(tmp_path):
    aws = stand_in_aws(tmp_path, answer="AccessDenied", code=254)
    arn, warning = helper.principal_arn(SESSION, aws=str(aws))
    assert arn == "arn:aws:iam::123456789012:role/github-actions"
    assert warning.startswith("warning: the role's path is `aws iam get-role` failed")
    arn, warning = helper.principal_arn(SESSION, lookup=False)
    assert arn == "arn:aws:iam::123456789012:role/github-actions" and "--no-lookup" in warning


def test_a_lookup_answer_that_is_no_role_arn_is_not_trusted(tmp_path):
    aws = stand_in_aws(tmp_path, answer="None")
    arn, warning = helper.principal_arn(SESSION, aws=str(aws))
    assert arn == "arn:aws:iam::123456789012:role/github-actions" and warning


def test_a_missing_aws_cli_falls_back_to_the_path_less_arn(tmp_path):
    arn, warning = helper.principal_arn(SESSION, aws=str(tmp_path / "no-such-aws"))
    assert arn.endswith(":role/github-actions") and warning


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::123456789012:user/alice",
        "arn:aws:iam::123456789012:role/platform-admin",
        PATHED_ROLE,
        "arn:aws-cn:iam::123456789012:role/admin",
    ],
)
def test_users_and_roles_pass_unchanged(arn):
    assert helper.principal_arn(arn + "\n", lookup=False) == (arn, "")


def test_other_partitions_keep_theirs():
    session = "arn:aws-us-gov:sts::123456789012:assumed-role/admin/me"
    arn, _ = helper.principal_arn(session, lookup=False)
    assert arn == "arn:aws-us-gov:iam::123456789012:role/admin"


@pytest.mark.parametrize(
    ("arn", "message"),
    [
        ("arn:aws:iam::123456789012:root", "root user"),
        ("arn:aws:sts::123456789012:federated-user/bob", "neither an assumed-role"),
        ("not an arn", "neither an assumed-role"),
    ],
)
def test_what_no_access_entry_can_admit_is_an_error(arn, message):
    with pytest.raises(helper.CallerArnError, match=message):
        helper.principal_arn(arn, lookup=False)


def test_the_command_reads_stdin_and_prints_only_the_arn():
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--no-lookup"],
        input=SESSION + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "arn:aws:iam::123456789012:role/github-actions\n"
    assert "warning:" in done.stderr


def test_the_command_fails_on_a_root_arn():
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "arn:aws:iam::123456789012:root"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1 and done.stdout == "" and "root user" in done.stderr


def test_what_it_prints_is_accepted_by_the_config_model():
    from components.config import parse_fleet_config

    arn, _ = helper.principal_arn(SESSION, lookup=False)
    raw = {
        "hub": {"name": "main", "cloud": "azure", "region": "westeurope"},
        "clusters": [{"name": "app-aws", "cloud": "aws", "region": "eu-west-1"}],
        "apiAllowedCidrs": ["203.0.113.0/24"],
        "eksAdminPrincipals": [arn, PATHED_ROLE],
    }
    assert parse_fleet_config(raw).eks_admin_principals == (arn, PATHED_ROLE)
