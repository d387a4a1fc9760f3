"""What deploy.sh needs to know about a stack file, as `key=value` lines, before anything runs.

    python3 scripts/stack_config.py Pulumi.dev.yaml

prints `clouds=aws azure`, `api_cidrs=...`, `open_api=yes|no`, `eks_admin_principals=yes|no`
and `parser=yaml|scan`. A file that is not valid YAML, or has no `config:` mapping, is one line
on stderr naming the file, the line and the problem, and exit status 2.

It runs before any dependency is installed: with PyYAML when the interpreter has it, else with a
line scan that finds the `cloud:` values and the `apiAllowedCidrs` list, enough to choose the
credential checks. deploy.sh reads the file again with PyYAML once the virtualenv exists.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from typing import Any

NAMESPACE = "ocm-fleet"
CLOUDS = ("aws", "azure", "existing", "kind")


class StackFileError(Exception):
    """The stack file cannot be read; the message is the one line the user sees."""


def _parse_yaml(path: str, text: str) -> dict[str, Any]:
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        problem = err.problem or err.context or "not valid YAML"
        raise StackFileError(f"{where}: {problem}") from err
    except yaml.YAMLError as err:
        raise StackFileError(f"{path}: not valid YAML ({err})") from err
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise StackFileError(f"{path}:1: the file must be a mapping with a 'config:' key")
    config = doc.get("config", {})
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise StackFileError(f"{path}: 'config:' must be a mapping of keys to values")
    return config


def _scan(text: str) -> dict[str, Any]:
    """Block- and flow-style `cloud:` values and the apiAllowedCidrs list, without a parser."""
    clouds = [{"cloud": c} for c in re.findall(r"\bcloud:\s*[\"']?([a-z]+)", text)]
    cidrs: list[str] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)ocm-fleet:apiAllowedCidrs:\s*(.*)$", line)
        if not match:
            continue
        inline = match.group(2).split("#", 1)[0].strip()
        if inline.startswith("["):
            cidrs = [c.strip(" \"'") for c in inline.strip("[]").split(",") if c.strip()]
            break
        for item in lines[i + 1 :]:
            entry = re.match(r"^\s*-\s*[\"']?([^\"'#\s]+)", item)
            if entry:
                cidrs.append(entry.group(1))
            elif item.strip() and not item.strip().startswith("#"):
                break
    config: dict[str, Any] = {f"{NAMESPACE}:clusters": clouds}
    if cidrs:
        config[f"{NAMESPACE}:apiAllowedCidrs"] = cidrs
    return config


def _opens_everything(cidr: Any) -> bool:
    try:
        return ipaddress.ip_network(str(cidr), strict=False).prefixlen == 0
    except ValueError:
        return False


def describe(path: str, *, use_yaml: bool | None = None) -> dict[str, str]:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as err:
        raise StackFileError(f"{path}: cannot read it ({err.strerror})") from err
    if use_yaml is None:
        try:
            import yaml  # noqa: F401

            use_yaml = True
        except ImportError:
            use_yaml = False
    config = _parse_yaml(path, text) if use_yaml else _scan(text)

    hub = config.get(f"{NAMESPACE}:hub")
    clusters = config.get(f"{NAMESPACE}:clusters")
    entries = [hub, *(clusters if isinstance(clusters, list) else [])]
    clouds = sorted({c["cloud"] for c in entries if isinstance(c, dict) and c.get("cloud")})
    cidrs = config.get(f"{NAMESPACE}:apiAllowedCidrs")
    cidrs = [str(c) for c in cidrs] if isinstance(cidrs, list) else []
    return {
        "clouds": " ".join(c for c in clouds if c in CLOUDS),
        "api_cidrs": " ".join(cidrs),
        "open_api": "yes" if any(_opens_everything(c) for c in cidrs) else "no",
        "eks_admin_principals": "yes" if f"{NAMESPACE}:eksAdminPrincipals" in config else "no",
        "parser": "yaml" if use_yaml else "scan",
    }


def stack_clouds(path: str) -> list[str]:
    """The clouds a stack file uses (e.g. ["aws", "azure"])."""
    return describe(path)["clouds"].split()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: stack_config.py Pulumi.<stack>.yaml", file=sys.stderr)
        return 64
    try:
        facts = describe(argv[1])
    except StackFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for key, value in facts.items():
        print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
