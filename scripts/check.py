"""Checks a stack before anything is installed, created or written, and lists every problem at once.

    python3 scripts/check.py [STACK]            # the stack file Pulumi.<STACK>.yaml (default: dev)
    python3 scripts/check.py local --preflight  # also tools, credentials, kind's limits, images
    python3 scripts/check.py --stack-file path/to/Pulumi.prod.yaml

The stack file is read as Pulumi reads it (keys without a namespace are `ocm-fleet:` keys, the
defaults in Pulumi.yaml apply, `secure:` values stay opaque) and validated by the program's own
config model (components/config.py), so a problem found here is exactly the one `pulumi preview`
would report, with the same words.

--preflight adds what deploy.sh needs before it installs anything, for the clouds the stack
uses: the tools (Docker for kind, the AWS and Azure CLIs), the credentials, the inotify limits
that six kind nodes need, and the images of components/images.yaml without a digest. Where their
registries answer, the digests are resolved; with --pin they are written to components/images.yaml
once every check has passed (review and commit it, like a lock file). Where a registry cannot be
reached, each image is named with the way out.

Exit status: 0 when nothing is wrong, 1 when something is (each problem on its own line, naming
the key or the tool and what to do), 2 on a usage error. Nothing is left behind: PyYAML, when the
interpreter lacks it, is installed into a temporary folder that is removed on exit.
"""

from __future__ import annotations

import argparse
import atexit
import concurrent.futures
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.dont_write_bytecode = True  # the project's modules imported below leave no __pycache__

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
NAMESPACE = "ocm-fleet"
SECRET = "[secret]"
"""What the model sees of a `secure:` value: never the ciphertext, never a plain text."""
# Keys deploy.sh fills in on a first run (after asking): their absence is not a problem for it.
FILLED_BY_DEPLOY = ("apiAllowedCidrs", "eksAdminPrincipals")
PLACEHOLDERS = {
    "apiAllowedCidrs": ["192.0.2.1/32"],
    "eksAdminPrincipals": ["arn:aws:iam::000000000000:role/filled-in-by-deploy"],
}
# kind's known issues ("Pod errors due to too many open files"): what its nodes need at least.
INOTIFY_LIMITS = {"max_user_watches": 524288, "max_user_instances": 512}
# Read from the host Docker runs on; OCM_FLEET_INOTIFY_DIR names another folder (tests).
INOTIFY_DIR = Path(os.environ.get("OCM_FLEET_INOTIFY_DIR", "/proc/sys/fs/inotify"))
REGISTRY_TIMEOUT = 8.0


class CheckError(Exception):
    """The check itself cannot go on (the message is the one line the user sees)."""


def _ensure_yaml() -> None:
    """PyYAML for the model, from the interpreter or a temporary folder removed at exit."""
    try:
        import yaml  # noqa: F401
    except ImportError:
        pass
    else:
        return
    folder = tempfile.mkdtemp(prefix="ocm-fleet-check-")
    atexit.register(shutil.rmtree, folder, True)
    print("check: installing PyYAML into a temporary folder (removed on exit)", file=sys.stderr)
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
            *("--target", folder, "pyyaml>=6.0,<7"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise CheckError(
            f"PyYAML is needed to read the stack file and could not be installed ({last}); "
            "install it (pip install pyyaml, or apt-get install python3-yaml), or check your "
            "proxy settings for PyPI"
        )
    sys.path.insert(0, folder)


# --- the stack file, as Pulumi reads it ----------------------------------------------------------


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)
    pins: dict[str, tuple[str, str]] = field(default_factory=dict)
    """images.yaml reference -> (digest, registry host) resolved by the preflight."""
    required_missing: list[str] = field(default_factory=list)
    """Keys Pulumi.yaml declares with a type and no default that the stack does not set."""


def _is_secure(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


def _opaque_secrets(value: Any) -> Any:
    if _is_secure(value):
        return SECRET
    if isinstance(value, dict):
        return {k: _opaque_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_opaque_secrets(v) for v in value]
    return value


def _as_pulumi_text(value: Any) -> str:
    """The text Pulumi hands the program for a structured value (JSON), with secrets opaque; a
    value JSON has no type for (a YAML date) as its text."""
    if _is_secure(value):
        return SECRET
    return json.dumps(_opaque_secrets(value), default=str)


def _compose(path: Path, what: str) -> Any:
    """The YAML file's top node (None when empty); every way it cannot be read is one line
    naming the file (and the line and column of a syntax error)."""
    import yaml

    try:
        text = path.read_bytes().decode("utf-8")
        return yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except OSError as err:
        raise CheckError(f"{path}: cannot be read ({err.strerror})") from err
    except UnicodeDecodeError as err:
        raise CheckError(f"{path}: not UTF-8 text (byte {err.start}); save it as UTF-8") from err
    except RecursionError as err:
        raise CheckError(f"{path}: nested too deeply to be a {what}") from err
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise CheckError(f"{where}: {err.problem or err.context or 'not valid YAML'}") from err
    except yaml.YAMLError as err:
        raise CheckError(f"{path}: not valid YAML ({err})") from err


def _construct(node: Any, path: Path) -> Any:
    import yaml

    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    except (yaml.YAMLError, RecursionError, TypeError, ValueError) as err:
        line = node.start_mark.line + 1
        raise CheckError(f"{path}:{line}: a value YAML cannot construct ({err})") from err


def _config_entries(path: Path, what: str) -> list[tuple[Any, Any]]:
    """(key node, value node) of the file's `config:` mapping."""
    import yaml

    root = _compose(path, what)
    if root is None:
        return []
    if not isinstance(root, yaml.MappingNode):
        raise CheckError(f"{path}:1: {what} must be a mapping with a 'config:' key")
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "config":
            if isinstance(value, yaml.ScalarNode) and value.tag.endswith(":null"):
                return []
            if not isinstance(value, yaml.MappingNode):
                line = value.start_mark.line + 1
                raise CheckError(f"{path}:{line}: 'config:' must be a mapping of keys to values")
            return list(value.value)
    return []


def _pulumi_text(node: Any, path: Path) -> str:
    """What Pulumi gives the program for a value: a scalar's own text, as written (Pulumi reads
    `1.10` as "1.10" and `yes` as "yes"), JSON for a structure, an opaque marker for a secret."""
    import yaml

    if isinstance(node, yaml.ScalarNode):
        return "" if node.tag.endswith(":null") else str(node.value)
    return _as_pulumi_text(_construct(node, path))


def _our_name(key: str) -> str | None:
    """The `ocm-fleet:` key's name, or None for another namespace's key (`aws:region`).
    `ocm-fleet:config:name` is Pulumi's older spelling of the same key."""
    namespace, _, name = key.partition(":")
    if namespace != NAMESPACE:
        return None
    return name.removeprefix("config:")


def stack_values(
    stack_file: Path, project_file: Path, report: Report | None = None
) -> dict[str, str]:
    """The stack's `ocm-fleet:` values (keys without the namespace) as the program receives
    them: the stack file's, then Pulumi.yaml's values and defaults for keys the stack does not
    set. Keys Pulumi would refuse (no namespace; declared in Pulumi.yaml with a type but no
    default, and not set) are problems in `report`."""
    import yaml

    values: dict[str, str] = {}
    for key_node, value_node in _config_entries(stack_file, "the stack file"):
        key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else None
        line = key_node.start_mark.line + 1
        if key is None or ":" not in key:
            if report is not None:
                shown = key if key is not None else "a key that is not text"
                report.problems.append(
                    f"{stack_file.name}:{line}: {shown}: Pulumi needs a namespace on every config "
                    f"key; write `{NAMESPACE}:{shown}`"
                )
            continue
        name = _our_name(key)
        if name is not None:
            values[name] = _pulumi_text(value_node, stack_file)
    required = []
    for key_node, spec_node in _config_entries(project_file, "Pulumi.yaml"):
        key = str(key_node.value)
        name = _our_name(key) if ":" in key else key
        if name is None or name in values:
            continue
        spec = _construct(spec_node, project_file)
        if not isinstance(spec, dict):
            values[name] = _pulumi_text(spec_node, project_file)
        elif "value" in spec or "default" in spec:
            given = spec.get("value", spec.get("default"))
            values[name] = given if isinstance(given, str) else _as_pulumi_text(given)
        elif "type" in spec:
            required.append(name)
    if report is not None:
        report.required_missing = required
    return values


def check_stack(
    stack: str, stack_file: Path, report: Report, *, filled_by_deploy: Sequence[str] = ()
) -> dict[str, str]:
    """Runs the config model on the stack file's values; returns those values."""
    from components.config import FleetConfigError, fleet_config_from_values

    values = stack_values(stack_file, ROOT / "Pulumi.yaml", report)
    for key in filled_by_deploy:
        if key in FILLED_BY_DEPLOY and values.get(key, "[]") == "[]":
            values[key] = json.dumps(PLACEHOLDERS[key])
            report.facts[f"fill_{key}"] = "yes"
    for name in report.required_missing:
        if not report.facts.get(f"fill_{name}"):
            fills = (
                f"; ./scripts/deploy.sh {stack} offers to fill it in on a first run"
                if name in FILLED_BY_DEPLOY
                else ""
            )
            report.problems.append(
                f"{stack_file.name}: {NAMESPACE}:{name}: missing; Pulumi.yaml declares it with "
                f"no default, so every stack must set it (Pulumi refuses the stack otherwise)"
                f"{fills}"
            )
    try:
        # Relative paths in the config (charts) are the project directory's, as under Pulumi.
        with contextlib.chdir(ROOT):
            fleet = fleet_config_from_values(values, stack=stack)
    except FleetConfigError as err:
        for problem in err.problems:
            if f"{SECRET!r}" in problem:
                # The value is encrypted in the stack file; only the program sees it.
                key = problem.split(": ", 1)[0]
                report.notes.append(f"{key}: a secret value, not checked offline")
            elif not any(
                problem.startswith(f"{NAMESPACE}:{name}:") for name in report.required_missing
            ):
                report.problems.append(f"{stack_file.name}: {problem}")
        return values
    except ValueError as err:  # manifests/ that cannot be delivered (ManifestError)
        report.problems.append(f"manifests/: {err}")
        return values
    cidrs = [] if report.facts.get("fill_apiAllowedCidrs") else list(fleet.api_allowed_cidrs)
    report.facts["clouds"] = " ".join(sorted({c.cloud for c in fleet.all_clusters}))
    report.facts["eks_admin_principals"] = (
        "no" if report.facts.get("fill_eksAdminPrincipals") else "yes"
    )
    report.facts["api_cidrs"] = " ".join(cidrs)
    report.facts["open_api"] = "yes" if "0.0.0.0/0" in cidrs else "no"
    report.facts["ocm_version"] = fleet.ocm_version
    report.facts["second_home"] = "yes" if fleet.hub_standby is not None else "no"
    return values


def stack_clouds(values: Mapping[str, str]) -> set[str]:
    """The known clouds the stack's hub and clusters name, even in a config with problems, so
    that the tools and credentials are checked in the same run."""
    from components.config import CLOUDS, raw_from_config_values

    raw = raw_from_config_values(values)
    entries = [
        raw.get("hub"),
        *(raw.get("clusters") or [] if isinstance(raw.get("clusters"), list) else []),
    ]
    return {e.get("cloud") for e in entries if isinstance(e, dict) and e.get("cloud") in CLOUDS}


# --- tools, credentials, limits ----------------------------------------------------------------


def _runs(*command: str) -> bool:
    if shutil.which(command[0]) is None:
        return False
    try:
        done = subprocess.run(command, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def check_tools(clouds: set[str], report: Report, *, runs: Callable[..., bool] = _runs) -> None:
    """The tools and credentials each cloud of the stack needs, all checked, each named."""
    if "aws" in clouds:
        if shutil.which("aws") is None:
            report.problems.append(
                "aws: the AWS CLI is needed (EKS kubeconfigs call `aws eks get-token`); install "
                "it: https://aws.amazon.com/cli/"
            )
        elif not runs("aws", "sts", "get-caller-identity"):
            report.problems.append(
                "aws: no working credentials (`aws sts get-caller-identity` fails); run "
                "`aws configure` or `aws sso login`, or set AWS_PROFILE"
            )
    if "azure" in clouds and not os.environ.get("ARM_CLIENT_ID"):
        if shutil.which("az") is None:
            report.problems.append(
                "azure: sign in to Azure: install the Azure CLI and run `az login`, or set the "
                "ARM_* variables of a service principal"
            )
        elif not runs("az", "account", "show"):
            report.problems.append(
                "azure: no Azure session (`az account show` fails); run `az login`"
            )
    if "kind" in clouds:
        if shutil.which("docker") is None:
            report.problems.append(
                "docker: Docker is needed for kind clusters; install it: "
                "https://docs.docker.com/engine/install/"
            )
        elif not runs("docker", "info"):
            report.problems.append(
                "docker: the Docker engine is not running, or this user may not use it "
                "(`docker info` fails); start it (`sudo systemctl start docker`) or add yourself "
                "to the docker group"
            )
        check_inotify(report)


def check_inotify(report: Report, directory: Path = INOTIFY_DIR) -> None:
    """kind's nodes share the host's inotify limits; Ubuntu's defaults are too low for six."""
    low = []
    for name, needed in INOTIFY_LIMITS.items():
        try:
            current = int((directory / name).read_text().strip())
        except (OSError, ValueError):
            report.notes.append(f"inotify: cannot read {directory / name}; not checked")
            continue
        if current < needed:
            low.append((name, current, needed))
    if low:
        have = ", ".join(f"{name} is {current}" for name, current, _ in low)
        commands = " && ".join(f"sudo sysctl fs.inotify.{n}={needed}" for n, _, needed in low)
        report.problems.append(
            f"inotify: {have}, below what kind's nodes need (kind known issue \"too many open "
            f'files"); raise it: {commands} (and add the same lines to /etc/sysctl.conf to keep '
            "them)"
        )


# --- images --------------------------------------------------------------------------------------


OCM_IMAGES = "quay.io/open-cluster-management/"
"""Where every OCM image comes from, tagged v<ocmVersion> (components/ocm/_charts.py)."""


def check_images(
    clouds: set[str],
    ocm_version: str,
    report: Report,
    *,
    endpoints: Mapping[str, str],
    timeout: float,
) -> None:
    """Resolves the digests images.yaml lacks, or names each image that cannot be resolved;
    an ocmVersion whose images images.yaml does not list is a problem too."""
    import resolve_digests

    from components import images

    try:
        data = images.read()
    except images.ImageDataError as err:
        report.problems.append(f"images: {err}")
        return
    ocm = {ref.rpartition(":")[0] for ref in data if ref.startswith(OCM_IMAGES)}
    listed = sorted({ref.rpartition(":v")[2] for ref in data if ref.startswith(OCM_IMAGES)})
    unlisted = sorted(f"{repo}:v{ocm_version}" for repo in ocm) if ocm_version else []
    unlisted = [ref for ref in unlisted if ref not in data]
    if unlisted:
        report.problems.append(
            f"images: ocmVersion {ocm_version}: components/images.yaml has no entry for "
            f"{', '.join(unlisted)}; add them there (without a digest, with `unresolved:` saying "
            "why; scripts/resolve_digests.py then resolves them), or use an ocmVersion it lists "
            f"({', '.join(listed)})"
        )
    wanted = [
        ref
        for ref, entry in sorted(data.items())
        if not entry.digest and ("kind" in clouds or "cloud-provider-kind" not in ref)
    ]
    if not wanted:
        return

    def resolve(ref: str) -> tuple[str, str]:
        return resolve_digests.fetch_digest(ref, dict(endpoints), timeout=timeout)

    failed: dict[tuple[str, str], list[str]] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        for ref, future in zip(wanted, [pool.submit(resolve, r) for r in wanted], strict=True):
            try:
                report.pins[ref] = future.result()
            except (resolve_digests.ResolveError, OSError, ValueError) as err:
                host = resolve_digests.split_reference(ref)[0]
                failed.setdefault((host, resolve_digests.describe_failure(err)), []).append(ref)
    for (host, why), refs in sorted(failed.items()):
        report.problems.append(
            f"images: {len(refs)} image(s) of {host} have no digest in components/images.yaml, "
            f"and {host} could not be asked for them ({why}): {', '.join(refs)}. Resolve them "
            "where the registry answers (python3 scripts/resolve_digests.py --only-unresolved) "
            "and commit components/images.yaml, or deploy by tag on purpose with "
            "--allow-unresolved-images"
        )


def read_pins(path: Path) -> dict[str, tuple[str, str]]:
    """The digests a preflight saved (--save-pins)."""
    try:
        saved = json.loads(path.read_text())
        return {ref: (digest, host) for ref, (digest, host) in saved.items()}
    except (OSError, ValueError, TypeError) as err:
        raise CheckError(f"{path}: not the digests a preflight saved ({err})") from err


def write_pins(report: Report) -> list[str]:
    """Records the preflight's digests in components/images.yaml; returns what it pinned."""
    import resolve_digests

    return resolve_digests.record(report.pins)


# --- command line --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="See the module docstring (scripts/check.py) for what each check covers.",
    )
    parser.add_argument("stack", nargs="?", default="dev", help="stack name (default: dev)")
    parser.add_argument("--stack-file", type=Path, help="default: Pulumi.<stack>.yaml")
    parser.add_argument("--preflight", action="store_true", help="also tools, credentials, images")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="resolve the digests components/images.yaml lacks and record them there",
    )
    parser.add_argument(
        "--allow-unresolved-images", action="store_true", help="do not check image digests"
    )
    parser.add_argument(
        "--filled-by-deploy",
        action="append",
        default=[],
        choices=FILLED_BY_DEPLOY,
        help="a key deploy.sh fills in when it is absent",
    )
    parser.add_argument("--facts", action="store_true", help="print key=value facts for deploy.sh")
    parser.add_argument(
        "--save-pins",
        type=Path,
        metavar="FILE",
        help="write the digests the image check resolved to FILE (JSON), for --pins-from",
    )
    parser.add_argument(
        "--pins-from",
        type=Path,
        metavar="FILE",
        help="with --pin: record the digests a preflight saved, without asking the registries",
    )
    parser.add_argument(
        "--registry", action="append", default=[], metavar="HOST=URL", help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    stack_file = args.stack_file or ROOT / f"Pulumi.{args.stack}.yaml"
    with contextlib.suppress(ValueError):  # named as the user would: relative where it can be
        stack_file = stack_file.resolve().relative_to(Path.cwd())
    stack = args.stack if not args.stack_file else stack_file.name.removeprefix("Pulumi.")
    stack = stack.removesuffix(".yaml")
    try:
        endpoints = dict(item.split("=", 1) for item in args.registry)
    except ValueError:
        parser.error("--registry takes HOST=URL")
    if not stack_file.is_file():
        print(
            f"check: {stack_file} not found; copy Pulumi.dev.yaml to {stack_file.name} and edit "
            "it, or name an existing stack (Pulumi.<stack>.yaml)",
            file=sys.stderr,
        )
        return 1
    if args.pins_from and not args.pin:
        parser.error("--pins-from goes with --pin")
    # The project needs 3.11 (pyproject.toml); this says so where an older python3 runs it.
    if sys.version_info < (3, 11):  # noqa: UP036
        print(
            f"check: Python 3.11 or newer is needed ({sys.executable} is "
            f"{sys.version.split()[0]}); run it with one: python3.11 scripts/check.py",
            file=sys.stderr,
        )
        return 1
    report = Report()
    try:
        _ensure_yaml()
        values = check_stack(stack, stack_file, report, filled_by_deploy=args.filled_by_deploy)
        clouds = stack_clouds(values)
        if args.preflight:
            check_tools(clouds, report)
        if args.pins_from:
            report.pins = read_pins(args.pins_from)
        elif (args.preflight or args.pin) and not args.allow_unresolved_images:
            version = values.get("ocmVersion") or ""
            check_images(clouds, version, report, endpoints=endpoints, timeout=REGISTRY_TIMEOUT)
    except CheckError as err:
        print(f"check: {err}", file=sys.stderr)
        return 1
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    if report.problems:
        count = len(report.problems)
        print(
            f"check: {count} problem{'s' if count > 1 else ''} with stack '{stack}', before "
            "anything was installed or written:",
            file=sys.stderr,
        )
        for problem in report.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    if args.pin and report.pins:
        for line in write_pins(report):
            print(f"pinned {line}", file=sys.stderr)
        print(
            "check: components/images.yaml now records these digests; review and commit it",
            file=sys.stderr,
        )
    elif args.save_pins and report.pins:
        args.save_pins.write_text(json.dumps(report.pins, sort_keys=True))
    elif report.pins:
        for ref, (digest, _host) in sorted(report.pins.items()):
            print(f"resolvable {ref} -> {digest} (not written without --pin)", file=sys.stderr)
    what = "preflight" if args.preflight else "stack check"
    print(f"check: {stack_file.name}: {what} passed", file=sys.stderr)
    if args.facts:
        for key, value in sorted(report.facts.items()):
            print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
