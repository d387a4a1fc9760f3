#!/usr/bin/env python3
"""Print the IAM principal ARN behind an STS caller ARN, for `ocm-fleet:eksAdminPrincipals`.

    aws sts get-caller-identity --query Arn --output text | python3 scripts/caller_role_arn.py

`aws sts get-caller-identity` names the session (arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION),
which changes with every login and which EKS access entries refuse. The entry needs the role:
arn:aws:iam::ACCOUNT:role/PATH/ROLE. A session ARN drops the role's path, so the exact ARN is
looked up with `aws iam get-role` (needs iam:GetRole). Without that permission, or with
--no-lookup, the path-less ARN is printed and a warning says to add the path if the role has one:
the program compares the listed ARN with the caller's role ARN, path included, and stops with an
error naming eksAdminPrincipals when they differ. IAM user ARNs and role ARNs pass unchanged.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

_SESSION = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):sts::(?P<account>\d{12}):assumed-role/"
    r"(?P<role>[\w+=,.@-]+)/(?P<session>[\w+=,.@-]+)$"
)
_PRINCIPAL = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/([\w+=,.@-]+/)*[\w+=,.@-]+$")
_ARN_ONLY = ["--query", "Role.Arn", "--output", "text"]
_ROOT = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:root$")


class CallerArnError(ValueError):
    """The ARN names no IAM role or user that an EKS access entry could admit."""


def role_of_session(caller_arn: str) -> tuple[str, str] | None:
    """(role name, path-less role ARN) for an assumed-role session ARN, else None."""
    match = _SESSION.fullmatch(caller_arn)
    if not match:
        return None
    role = match["role"]
    return role, f"arn:{match['partition']}:iam::{match['account']}:role/{role}"


def lookup_role_arn(role_name: str, aws: str = "aws") -> str | None:
    """The role's ARN with its path, from `aws iam get-role`; None when the lookup fails."""
    try:
        done = subprocess.run(
            [aws, "iam", "get-role", "--role-name", role_name, *_ARN_ONLY],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except OSError:
        return None
    arn = done.stdout.strip()
    return arn if done.returncode == 0 and _PRINCIPAL.fullmatch(arn) else None


def principal_arn(caller_arn: str, *, lookup: bool = True, aws: str = "aws") -> tuple[str, str]:
    """(principal ARN, warning or "") for a caller ARN."""
    caller_arn = caller_arn.strip()
    session = role_of_session(caller_arn)
    if session:
        role, pathless = session
        found = lookup_role_arn(role, aws) if lookup else None
        if found:
            return found, ""
        why = "not looked up (--no-lookup)" if not lookup else "`aws iam get-role` failed"
        return pathless, (
            f"warning: the role's path is {why}; if role {role} has a path "
            f"(arn:...:role/PATH/{role}), list that ARN instead"
        )
    if _PRINCIPAL.fullmatch(caller_arn):
        return caller_arn, ""
    if _ROOT.fullmatch(caller_arn):
        raise CallerArnError(
            f"{caller_arn} is the account's root user; list an IAM role or user instead"
        )
    raise CallerArnError(
        f"{caller_arn!r} is neither an assumed-role session ARN nor an IAM role or user ARN"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arn", nargs="?", help="caller ARN (default: read from stdin)")
    parser.add_argument("--no-lookup", action="store_true", help="do not call aws iam get-role")
    args = parser.parse_args(argv)
    caller = args.arn if args.arn else sys.stdin.read()
    try:
        arn, warning = principal_arn(caller, lookup=not args.no_lookup)
    except CallerArnError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if warning:
        print(warning, file=sys.stderr)
    print(arn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
