"""scripts/deploy.sh, run for real against stand-in pulumi, kind, docker, aws, az and curl.

Each test copies the script and the stack files into a scratch project and puts stand-ins first
on PATH. Every stand-in, and the Python that creates virtualenvs and runs pip, appends one line
per call to a log, so the tests read the order of the steps and what never ran.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from harness import ROOT
from registry_stand_in import Registry

PULUMI_VERSION = "3.272.0"
KIND_VERSION = "v0.31.0"
CALLER_ADDRESS = "203.0.113.7"
CALLER_ARN = "arn:aws:sts::123456789012:assumed-role/Admin/alice"
# The role behind the session, with the path only `aws iam get-role` knows.
ROLE_ARN = "arn:aws:iam::123456789012:role/ops/Admin"

if shutil.which("bash") is None:
    pytest.skip("bash is needed to run deploy.sh", allow_module_level=True)

STAND_INS = {
    "pulumi": r"""
echo "pulumi $*" >> "$LOG"
case "$1" in
  preview | up) echo "env: $1 skip=${PULUMI_K8S_SKIP_UPDATE_UNREACHABLE:-unset}" >> "$LOG" ;;
esac
case "$1" in
  whoami) exit 1 ;;
  stack)
    case "$2" in
      select) grep -qx "$3" "$WORK/stacks" 2>/dev/null ;;
      init) echo "$3" >> "$WORK/stacks"; echo "Created stack '$3'" ;;
      output) echo "http://172.18.0.90" ;;
    esac ;;
  preview) echo "Previewing update ($3)"; echo "path-kind=$(command -v kind || true)" >> "$LOG" ;;
  up) echo "Updating ($3)" ;;
esac
""",
    "kind": 'echo "kind $*" >> "$LOG"\n',
    "docker": r"""
echo "docker $*" >> "$LOG"
[ "$1" != info ] || [ -z "${DOCKER_DOWN:-}" ]
""",
    "aws": r"""
echo "aws $*" >> "$LOG"
[ -n "${AWS_OK:-}" ] || { echo "Unable to locate credentials" >&2; exit 255; }
case "$*" in
  *"--query Arn"*) echo "$CALLER_ARN" ;;
  "iam get-role --role-name Admin "*) echo "$ROLE_ARN" ;;
  *) echo '{"Arn": "'"$CALLER_ARN"'"}' ;;
esac
""",
    "az": r"""
echo "az $*" >> "$LOG"
[ -n "${AZ_OK:-}" ] || { echo "Please run 'az login'" >&2; exit 1; }
""",
    # Serves the release files from $DOWNLOADS by name, and the caller's address.
    "curl": r"""
out=""
url=""
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out=$2; shift ;;
    --max-time) shift ;;
    -*) ;;
    *) url=$1 ;;
  esac
  shift
done
echo "curl $url" >> "$LOG"
case "$url" in
  *checkip*) echo "$CALLER_ADDRESS"; exit 0 ;;
esac
file="$DOWNLOADS/${url##*/}"
[ -f "$file" ] || { echo "curl: (22) 404 $url" >&2; exit 22; }
if [ -n "$out" ]; then cp "$file" "$out"; else cat "$file"; fi
""",
}

# Stands in for the interpreter: creating a virtualenv and running pip are logged and faked;
# everything else (stack_config.py, the caller ARN helper) runs on the real Python.
PYTHON_STAND_IN = """#!/bin/sh
if [ "$1" = -m ] && [ "$2" = venv ]; then
  echo "python -m venv $3" >> "$LOG"
  mkdir -p "$3/bin" && cp "$0" "$3/bin/python"
  exit 0
fi
if [ "$1" = -m ] && [ "$2" = pip ]; then
  echo "pip $*" >> "$LOG"
  exit 0
fi
exec {python} "$@"
"""


def _platform() -> tuple[str, str]:
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine().lower()]
    return platform.system().lower(), arch


def _release_files(downloads: Path) -> None:
    """What GitHub serves for the pinned releases: the binaries and their checksum files."""
    os_, arch = _platform()
    kind = downloads / f"kind-{os_}-{arch}"
    kind.write_text(f"#!/bin/sh\necho 'kind {KIND_VERSION} (installed)'\n")
    digest = hashlib.sha256(kind.read_bytes()).hexdigest()
    (downloads / f"{kind.name}.sha256sum").write_text(f"{digest}  {kind.name}\n")

    pulumi_arch = "x64" if arch == "amd64" else arch
    name = f"pulumi-v{PULUMI_VERSION}-{os_}-{pulumi_arch}.tar.gz"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        body = ("#!/bin/sh\n" + STAND_INS["pulumi"]).encode()
        info = tarfile.TarInfo("pulumi/pulumi")
        info.size, info.mode = len(body), 0o755
        tar.addfile(info, io.BytesIO(body))
    (downloads / name).write_bytes(buffer.getvalue())
    digest = hashlib.sha256(buffer.getvalue()).hexdigest()
    other = "0" * 64
    (downloads / f"pulumi-{PULUMI_VERSION}-checksums.txt").write_text(
        f"{other}  pulumi-v{PULUMI_VERSION}-windows-x64.zip\n{digest}  {name}\n"
    )


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    log: list[str]
    project: Path

    def index(self, prefix: str) -> int:
        found = [i for i, line in enumerate(self.log) if line.startswith(prefix)]
        assert found, f"{prefix!r} never ran; log:\n" + "\n".join(self.log)
        return found[0]

    def ran(self, prefix: str) -> bool:
        return any(line.startswith(prefix) for line in self.log)

    @property
    def installs(self) -> list[str]:
        return [
            line
            for line in self.log
            if line.startswith(("pip ", "python -m venv", "curl https://github.com"))
        ]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "scripts").mkdir(parents=True)
    (root / "policy").mkdir()
    for name in (
        "deploy.sh",
        "check.py",
        "resolve_digests.py",
        "caller_role_arn.py",
        "cloud_preflight.py",
        "fleet_nodes.py",
    ):
        shutil.copy(ROOT / "scripts" / name, root / "scripts" / name)
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.local.yaml", "requirements.txt"):
        shutil.copy(ROOT / name, root / name)
    shutil.copy(ROOT / "policy" / "requirements.txt", root / "policy" / "requirements.txt")
    # The image check runs the program's own code over its images: a project where every image
    # has a digest (stand-in digests, in this temporary copy only).
    shutil.copy(ROOT / "scripts" / "check_images.py", root / "scripts" / "check_images.py")
    for part in ("components", "manifests"):
        shutil.copytree(ROOT / part, root / part, ignore=shutil.ignore_patterns("__pycache__"))
    resolve_all_images(root)
    return root


def resolve_all_images(root: Path, *, unresolved: tuple[str, ...] = ()) -> None:
    """Stand-in digests for every image of the project copy, but those in `unresolved`."""
    path = root / "components" / "images.yaml"
    entries = yaml.safe_load(path.read_text())["images"]
    for ref in entries:
        digest = f"sha256:{hashlib.sha256(ref.encode()).hexdigest()}"
        entries[ref] = (
            {"digest": None, "unresolved": "test"}
            if ref in unresolved
            else {"digest": digest, "source": "test"}
        )
    path.write_text(yaml.safe_dump({"images": entries}))


def deploy(
    project: Path, *args: str, fresh: bool = False, answers: str | None = None, **env: str
) -> Run:
    """Run deploy.sh; `fresh`: neither pulumi nor kind is installed."""
    work = project.parent
    bin_dir = work / "bin"
    downloads = work / "downloads"
    if not bin_dir.exists():
        bin_dir.mkdir()
        downloads.mkdir()
        _release_files(downloads)
        for name, body in STAND_INS.items():
            (bin_dir / name).write_text("#!/bin/sh\n" + body)
            (bin_dir / name).chmod(0o755)
        python = bin_dir / "python3"
        python.write_text(PYTHON_STAND_IN.format(python=sys.executable))
        python.chmod(0o755)
    for tool in ("pulumi", "kind"):
        if fresh:
            (bin_dir / tool).unlink(missing_ok=True)
        elif not (bin_dir / tool).exists():
            (bin_dir / tool).write_text("#!/bin/sh\n" + STAND_INS[tool])
            (bin_dir / tool).chmod(0o755)
    inotify = work / "inotify"
    if not inotify.exists():
        # Limits kind's nodes are happy with, unless a test writes lower ones.
        inotify.mkdir()
        (inotify / "max_user_watches").write_text("524288\n")
        (inotify / "max_user_instances").write_text("512\n")
    log = work / "log"
    log.write_text("")
    # Only the stand-ins and the basic system tools: no real cloud CLI, kind or pulumi.
    path = os.pathsep.join([str(bin_dir), "/usr/bin", "/bin"])
    full_env = {
        "PATH": path,
        "HOME": str(work),
        "LOG": str(log),
        "WORK": str(work),
        "DOWNLOADS": str(downloads),
        "PYTHON": str(bin_dir / "python3"),
        "CALLER_ADDRESS": CALLER_ADDRESS,
        "CALLER_ARN": CALLER_ARN,
        "ROLE_ARN": ROLE_ARN,
        "PULUMI_CONFIG_PASSPHRASE": "test-only",
        "OCM_FLEET_INOTIFY_DIR": str(inotify),
        **env,
    }
    if answers is None:
        done = subprocess.run(
            ["bash", str(project / "scripts" / "deploy.sh"), *args],
            env=full_env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
            check=False,
        )
    else:
        # A terminal on stdin, with the answers typed ahead, one per line.
        import pty

        primary, terminal = pty.openpty()
        try:
            os.write(primary, answers.encode())
            with open(terminal, "rb", closefd=False) as stdin:
                done = subprocess.run(
                    ["bash", str(project / "scripts" / "deploy.sh"), *args],
                    env=full_env,
                    capture_output=True,
                    text=True,
                    stdin=stdin,
                    timeout=120,
                    check=False,
                )
        finally:
            os.close(primary)
            os.close(terminal)
    return Run(done.returncode, done.stdout, done.stderr, log.read_text().splitlines(), project)


def write_stack(project: Path, name: str, text: str) -> None:
    (project / f"Pulumi.{name}.yaml").write_text(text)


# --- the local path ------------------------------------------------------------------------------


def test_local_path_end_to_end_on_a_fresh_machine(project):
    run = deploy(project, "local", "--yes", fresh=True)
    assert run.code == 0, run.stderr
    # Checks, then the downloads (a network problem shows before the pip installs), then the
    # Python packages, the stack, the preview with the policy pack, and up.
    order = [
        "docker info",
        f"curl https://github.com/pulumi/pulumi/releases/download/v{PULUMI_VERSION}/",
        f"curl https://github.com/kubernetes-sigs/kind/releases/download/{KIND_VERSION}/",
        "python -m venv .venv",
        "pip -m pip install --quiet --disable-pip-version-check -r requirements.txt",
        "pip -m pip install --quiet --disable-pip-version-check -r policy/requirements.txt",
        "pulumi whoami",
        "pulumi stack init local",
        "pulumi preview --stack local --policy-pack policy",
        "pulumi up --stack local --yes --policy-pack policy",
        "pulumi stack output url --stack local",
    ]
    positions = [run.index(step) for step in order]
    assert positions == sorted(positions), "steps out of order:\n" + "\n".join(run.log)
    kind = project / ".tools" / f"kind-{KIND_VERSION}" / "kind"
    assert kind.exists(), "kind goes inside the project"
    assert (project / ".tools" / f"pulumi-{PULUMI_VERSION}" / "pulumi" / "pulumi").exists()
    assert f"path-kind={kind}" in run.log, "Pulumi's commands must find the installed kind"
    assert run.ran(
        f"curl https://github.com/kubernetes-sigs/kind/releases/download/{KIND_VERSION}/"
    )
    assert not run.ran("aws") and not run.ran("az"), "the local path needs no cloud"
    assert not run.ran("curl https://checkip"), "the local stack's allowlist is already set"
    assert not run.ran("pulumi config set"), "the local stack needs nothing filled in"
    assert "The bookstore: http://172.18.0.90" in run.stdout
    assert (project / ".pulumi-state").is_dir(), "state in the local file backend"


def test_local_path_uses_tools_already_there(project):
    run = deploy(project, "local", "--yes")
    assert run.code == 0, run.stderr
    assert not run.ran("curl"), "nothing to download when pulumi and kind are on PATH"


def test_ci_asks_for_the_pinned_tools_even_with_others_on_path(project):
    run = deploy(project, "local", "--yes", OCM_FLEET_PINNED_TOOLS="1")
    assert run.code == 0, run.stderr
    assert run.ran(f"curl https://github.com/pulumi/pulumi/releases/download/v{PULUMI_VERSION}/")
    assert run.ran(
        f"curl https://github.com/kubernetes-sigs/kind/releases/download/{KIND_VERSION}/"
    )
    kind = project / ".tools" / f"kind-{KIND_VERSION}" / "kind"
    assert f"path-kind={kind}" in run.log


def test_without_terminal_or_yes_the_preview_is_shown_and_nothing_deployed(project):
    run = deploy(project, "local")
    assert run.code == 1
    assert run.ran("pulumi preview --stack local --policy-pack policy")
    assert not run.ran("pulumi up"), "no `up` without an answer"
    assert "rerun with --yes" in run.stderr


def test_arguments_after_the_double_dash_go_to_up(project):
    run = deploy(project, "local", "--yes", "--", "--refresh")
    assert run.code == 0, run.stderr
    assert run.ran("pulumi up --stack local --yes --policy-pack policy --refresh")


# --- credentials and tools before any install ---------------------------------------------


def test_no_argument_and_no_cloud_credentials_offers_local_and_installs_nothing(project):
    run = deploy(project)
    assert run.code == 1
    assert "No AWS or Azure credentials" in run.stdout
    assert "./scripts/deploy.sh local" in run.stdout + run.stderr
    assert run.installs == [], "nothing may be installed before the credential check"
    assert not run.ran("pulumi")


def test_no_argument_and_no_cloud_credentials_with_yes_deploys_local(project):
    run = deploy(project, "--yes")
    assert run.code == 0, run.stderr
    assert run.ran("pulumi up --stack local")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AZ_OK": "1"}, "aws: no working credentials (`aws sts get-caller-identity` fails)"),
        ({"AWS_OK": "1"}, "azure: no Azure session (`az account show` fails); run `az login`"),
    ],
    ids=["aws-missing", "azure-missing"],
)
def test_missing_cloud_credentials_stop_before_any_install(project, env, message):
    run = deploy(project, "dev", **env)
    assert run.code == 1
    assert message in run.stderr
    assert run.installs == [], f"installed before the credential check: {run.installs}"
    assert not (project / ".venv").exists()


def test_docker_not_running_stops_the_local_path_before_any_install(project):
    run = deploy(project, "local", "--yes", DOCKER_DOWN="1")
    assert run.code == 1
    assert "docker: the Docker engine is not running" in run.stderr
    assert run.installs == []


def test_a_checksum_that_does_not_match_installs_nothing(project):
    deploy(project, "local", "--yes", fresh=True)  # writes the release files
    shutil.rmtree(project / ".tools")
    os_, arch = _platform()
    sums = project.parent / "downloads" / f"kind-{os_}-{arch}.sha256sum"
    sums.write_text(f"{'f' * 64}  kind-{os_}-{arch}\n")
    run = deploy(project, "local", "--yes", fresh=True)
    assert run.code == 1
    assert f"checksum mismatch for kind-{os_}-{arch}" in run.stderr
    assert not (project / ".tools" / f"kind-{KIND_VERSION}" / "kind").exists()
    assert not run.ran("pulumi preview") and not run.ran("pulumi up")


# --- the stack file ------------------------------------------------------------------------------


def test_a_yaml_error_is_one_line_with_file_and_line(project):
    write_stack(project, "broken", "config:\n  ocm-fleet:hub:\n    name: main\n   cloud: kind\n")
    run = deploy(project, "broken", "--yes")
    assert run.code == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 2, run.stderr
    assert lines[0].startswith("check: Pulumi.broken.yaml:4:"), lines[0]
    assert (
        lines[1]
        == "error: nothing installed, created or written; fix the problems above and run again"
    )
    assert "Traceback" not in run.stderr
    assert run.installs == []


def test_open_api_servers_are_refused_and_the_callers_address_offered(project):
    write_stack(
        project,
        "open",
        "config:\n  ocm-fleet:hub: {name: main, cloud: azure, region: westeurope}\n"
        "  ocm-fleet:clusters:\n    - {name: app, cloud: azure, region: westeurope}\n"
        "  ocm-fleet:apiAllowedCidrs:\n    - 0.0.0.0/0\n",
    )
    # --yes does not accept an open API: only the explicit flag does.
    run = deploy(project, "open", "--yes", AZ_OK="1")
    assert run.code == 1
    assert "refusing to deploy API servers open to 0.0.0.0/0" in run.stderr
    assert f"{CALLER_ADDRESS}/32" in run.stderr and "--allow-open-api" in run.stderr
    assert run.installs == []

    run = deploy(project, "open", "--yes", "--allow-open-api", AZ_OK="1")
    assert run.code == 0, run.stderr
    assert not run.ran("pulumi config set"), "an accepted open API is left as configured"
    assert run.ran("pulumi up --stack open")


def test_first_run_of_dev_fills_in_the_callers_address_and_eks_admin(project):
    run = deploy(project, "--yes", AWS_OK="1", AZ_OK="1")
    assert run.code == 0, run.stderr
    address = run.index(
        f"pulumi config set --stack dev --path ocm-fleet:apiAllowedCidrs[0] {CALLER_ADDRESS}/32"
    )
    principal = run.index(
        f"pulumi config set --stack dev --path ocm-fleet:eksAdminPrincipals[0] {ROLE_ARN}"
    )
    assert run.index("pulumi stack init dev") < address < run.index("pulumi preview")
    assert principal < run.index("pulumi preview")
    # The credential checks ran before anything was installed.
    first_install = run.index("python -m venv")
    assert run.index("aws sts get-caller-identity") < first_install
    assert run.index("az account show") < first_install


def test_dev_with_admins_and_allowlist_already_set_asks_for_neither(project):
    text = (project / "Pulumi.dev.yaml").read_text()
    text += (
        "  ocm-fleet:apiAllowedCidrs:\n    - 198.51.100.0/24\n"
        f"  ocm-fleet:eksAdminPrincipals:\n    - {ROLE_ARN}\n"
    )
    (project / "Pulumi.dev.yaml").write_text(text)
    run = deploy(project, "dev", "--yes", AWS_OK="1", AZ_OK="1")
    assert run.code == 0, run.stderr
    assert not run.ran("pulumi config set")
    assert not run.ran("curl https://checkip")


def test_an_eks_admin_not_given_stops_the_deploy_before_any_install(project):
    text = (project / "Pulumi.dev.yaml").read_text()
    text += "  ocm-fleet:apiAllowedCidrs:\n    - 198.51.100.0/24\n"
    (project / "Pulumi.dev.yaml").write_text(text)
    run = deploy(project, "dev", AWS_OK="1", AZ_OK="1")  # no terminal, no --yes: no answer
    assert run.code == 1
    assert "set ocm-fleet:eksAdminPrincipals in Pulumi.dev.yaml" in run.stderr, run.stderr
    assert run.installs == [], f"installed before the question: {run.installs}"
    assert not run.ran("pulumi"), "no stack is created or written"


def test_unknown_option_is_refused(project):
    run = deploy(project, "local", "--yse")
    assert run.code == 1
    assert "unknown option --yse" in run.stderr
    assert run.installs == []


@pytest.mark.parametrize(("answer", "deployed"), [("n", False), ("y", True)])
def test_the_question_before_up_decides(project, answer, deployed):
    import pty

    deploy(project, "local", "--yes")  # sets up the stand-ins
    primary, terminal = pty.openpty()
    try:
        os.write(primary, f"{answer}\n".encode())
        with open(terminal, "rb", closefd=False) as stdin:
            env = {
                "PATH": os.pathsep.join([str(project.parent / "bin"), "/usr/bin", "/bin"]),
                "HOME": str(project.parent),
                "LOG": str(project.parent / "log"),
                "WORK": str(project.parent),
                "PYTHON": str(project.parent / "bin" / "python3"),
                "PULUMI_CONFIG_PASSPHRASE": "test-only",
                "OCM_FLEET_INOTIFY_DIR": str(project.parent / "inotify"),
            }
            (project.parent / "log").write_text("")
            done = subprocess.run(
                ["bash", str(project / "scripts" / "deploy.sh"), "local"],
                env=env,
                stdin=stdin,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
    finally:
        os.close(primary)
        os.close(terminal)
    log = (project.parent / "log").read_text()
    assert "Deploy these changes to the stack 'local'?" in done.stderr
    assert ("pulumi up --stack local" in log) is deployed, log
    assert done.returncode == (0 if deployed else 1), done.stderr


# --- images by digest ----------------------------------------------------------------------------


def test_an_image_without_digest_stops_the_deploy_before_the_preview(project):
    resolve_all_images(project, unresolved=("mariadb:11.4.8",))
    run = deploy(project, "local", "--yes")
    assert run.code != 0
    assert "mariadb:11.4.8" in run.stderr and "--allow-unresolved-images" in run.stderr
    assert not run.ran("pulumi preview"), "nothing is previewed or deployed"


def test_allowing_unresolved_images_tells_the_policy_pack_too(project):
    resolve_all_images(project, unresolved=("mariadb:11.4.8",))
    run = deploy(project, "local", "--yes", "--allow-unresolved-images")
    assert run.code == 0, run.stderr
    config = "--policy-pack policy --policy-pack-config policy/allow-unresolved-images.json"
    assert run.ran(f"pulumi preview --stack local {config}"), "\n".join(run.log)
    assert run.ran(f"pulumi up --stack local --yes {config}")
    assert "mariadb:11.4.8" in run.stdout, "the images deployed by tag are listed"


OPEN_STACK = (
    "config:\n  ocm-fleet:hub: {name: main, cloud: azure, region: westeurope}\n"
    "  ocm-fleet:clusters:\n    - {name: app, cloud: azure, region: westeurope}\n"
    "  ocm-fleet:apiAllowedCidrs:\n    - 0.0.0.0/0\n"
)


@pytest.mark.parametrize(("answer", "replaced"), [("y", True), ("n", False)])
def test_an_open_api_is_replaced_by_the_callers_address_only_when_accepted(
    project, answer, replaced
):
    write_stack(project, "open", OPEN_STACK)
    # First answer: the address; second: the question before `up`.
    run = deploy(project, "open", answers=f"{answer}\ny\n", AZ_OK="1")
    assert f"Allow only your address, {CALLER_ADDRESS}/32, instead?" in run.stderr
    setting = (
        f"pulumi config set --stack open --path ocm-fleet:apiAllowedCidrs[0] {CALLER_ADDRESS}/32"
    )
    if replaced:
        assert run.code == 0, run.stderr
        assert run.index("pulumi config rm --stack open ocm-fleet:apiAllowedCidrs") < run.index(
            setting
        )
        assert run.index(setting) < run.index("pulumi preview")
    else:
        assert run.code == 1
        assert "refusing to deploy API servers open to 0.0.0.0/0" in run.stderr
        assert run.installs == [], "refused before anything was installed"


def test_a_file_backend_named_in_advance_gets_its_folder(project, tmp_path):
    state = tmp_path / "state" / "here"
    run = deploy(project, "local", "--yes", PULUMI_BACKEND_URL=f"file://{state}")
    assert run.code == 0, run.stderr
    assert state.is_dir()
    assert not run.ran("pulumi whoami"), "a backend named in PULUMI_BACKEND_URL is used as is"


# --- images pinned on the first run ---------------------------------------------------------------

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there


def test_unresolved_images_are_pinned_from_the_registry_and_the_deploy_goes_on(project, registry):
    index = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}'
    digest = "sha256:" + hashlib.sha256(index).hexdigest()
    Registry.manifests = {
        "/v2/library/mariadb/manifests/11.4.8": index,
        "/v2/open-cluster-management/work/manifests/v1.3.1": index,
    }
    resolve_all_images(
        project, unresolved=("mariadb:11.4.8", "quay.io/open-cluster-management/work:v1.3.1")
    )
    run = deploy(
        project,
        "local",
        "--yes",
        OCM_FLEET_TEST_REGISTRIES=f"registry-1.docker.io={registry} quay.io={registry}",
    )
    assert run.code == 0, run.stderr
    assert f"pinned mariadb:11.4.8: unresolved -> {digest}" in run.stderr
    assert "components/images.yaml now records these digests; review and commit it" in run.stderr
    data = yaml.safe_load((project / "components" / "images.yaml").read_text())["images"]
    assert data["mariadb:11.4.8"]["digest"] == digest
    assert "registry registry-1.docker.io" in data["mariadb:11.4.8"]["source"]
    # Token exchange, then HEAD only: the announced digest, no manifest pulled.
    # The preflight asks once (refused, then with the token); the pin step asks nothing again.
    assert Registry.requests.count("HEAD /v2/library/mariadb/manifests/11.4.8") == 2, (
        Registry.requests
    )
    assert not any(r.startswith("GET /v2/") for r in Registry.requests), Registry.requests
    assert any(r.startswith("GET /token?") for r in Registry.requests), "a pull token exchange"
    # The multi-platform index is asked for, so its digest (not one platform's) is pinned.
    assert Registry.accepts and all(
        "application/vnd.oci.image.index.v1+json" in accept
        and "application/vnd.docker.distribution.manifest.list.v2+json" in accept
        for accept in Registry.accepts
    ), Registry.accepts
    assert run.index("pulumi preview") > run.index("pip "), "the deploy went on"


def test_images_a_registry_cannot_give_stop_the_deploy_before_anything_is_written(
    project, registry
):
    Registry.manifests = {"/v2/library/mariadb/manifests/11.4.8": b"{}"}
    unresolved = (
        "mariadb:11.4.8",
        "quay.io/open-cluster-management/work:v1.3.1",  # 404 at the stand-in
        "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0",  # host unreachable
    )
    resolve_all_images(project, unresolved=unresolved)
    images_before = (project / "components" / "images.yaml").read_text()
    run = deploy(
        project,
        "local",
        "--yes",
        OCM_FLEET_TEST_REGISTRIES=(
            f"registry-1.docker.io={registry} quay.io={registry} registry.k8s.io={UNREACHABLE}"
        ),
    )
    assert run.code == 1
    lines = run.stderr.splitlines()
    assert (
        lines[0]
        == "check: 2 problems with stack 'local', before anything was installed or written:"
    )
    assert "quay.io/open-cluster-management/work:v1.3.1" in lines[1]
    assert "the registry has no such repository or tag (404)" in lines[1], lines[1]
    assert (
        "registry.k8s.io could not be asked" in lines[2]
        and "check your network or proxy" in lines[2]
    )
    assert "--allow-unresolved-images" in lines[1] and "resolve_digests.py" in lines[2]
    assert "mariadb" not in run.stderr, "a resolvable image is no problem"
    assert run.installs == [] and not run.ran("pulumi")
    assert (project / "components" / "images.yaml").read_text() == images_before
    assert not (project / ".venv").exists() and not (project / ".tools").exists()


# --- the run that promotes while the main cluster is lost (--main-lost) ---------------------------

MAIN_LOST_LINE = "--main-lost: PULUMI_K8S_SKIP_UPDATE_UNREACHABLE=true for this preview and up"


def standby_stack(project: Path, *, deployed: bool = True) -> str:
    """Pulumi.dev-standby.yaml with its allowlist and EKS admin set, as after its first run;
    `deployed`: the backend already holds the stack."""
    text = (ROOT / "Pulumi.dev-standby.yaml").read_text()
    text += (
        "  ocm-fleet:apiAllowedCidrs:\n    - 198.51.100.0/24\n"
        f"  ocm-fleet:eksAdminPrincipals:\n    - {ROLE_ARN}\n"
    )
    write_stack(project, "dev-standby", text)
    if deployed:
        (project.parent / "stacks").write_text("dev-standby\n")
    return "dev-standby"


def test_main_lost_exports_the_skip_variable_to_the_preview_and_the_up(project):
    stack = standby_stack(project)
    run = deploy(project, stack, "--main-lost", "--yes", AWS_OK="1", AZ_OK="1")
    assert run.code == 0, run.stderr
    assert run.index("pulumi preview --stack dev-standby") < run.index("env: preview skip=true")
    assert run.index("pulumi up --stack dev-standby") < run.index("env: up skip=true"), run.log
    assert [line for line in run.stdout.splitlines() if MAIN_LOST_LINE in line], run.stdout
    assert "the main cluster, any app cluster lost with it" in run.stdout, run.stdout
    assert not run.ran("pulumi stack init"), "a promotion runs on the stack the backend holds"
    # The cloud preflight's regional queries (quotas, sizes) are skipped, the rest is not.
    assert not [line for line in run.log if line.startswith(("aws ec2", "az vm", "az aks"))], (
        "the cloud preflight must not run with --main-lost:\n" + "\n".join(run.log)
    )
    assert "cloud preflight skipped (--main-lost)" in run.stdout
    assert run.ran("aws sts get-caller-identity") and run.ran("az account show")


def test_an_ordinary_run_of_the_same_stack_skips_nothing(project):
    stack = standby_stack(project)
    run = deploy(project, stack, "--yes", AWS_OK="1", AZ_OK="1")
    assert run.code == 0, run.stderr
    assert run.ran("env: preview skip=unset") and run.ran("env: up skip=unset"), run.log
    assert MAIN_LOST_LINE not in run.stdout
    assert [line for line in run.log if line.startswith(("aws ec2", "az vm"))], (
        "an ordinary run has the cloud preflight:\n" + "\n".join(run.log)
    )


@pytest.mark.parametrize("refresh", ["--refresh", "-r", "--refresh=true"])
def test_main_lost_refuses_a_refresh_before_anything_runs(project, refresh):
    stack = standby_stack(project)
    run = deploy(project, stack, "--main-lost", "--yes", "--", refresh, AWS_OK="1", AZ_OK="1")
    assert run.code == 1
    assert f"--main-lost refuses {refresh}: a refresh reads every cloud resource" in run.stderr
    assert "first ordinary run after the main cluster answers again" in run.stderr
    assert run.installs == [] and not run.ran("pulumi"), run.log


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        # An exported variable left in the shell would make an ordinary run skip silently.
        ((), {"PULUMI_K8S_SKIP_UPDATE_UNREACHABLE": "true"}, "is set in this shell"),
        (("--main-lost",), {"PULUMI_K8S_DELETE_UNREACHABLE": "1"}, "would drop every object"),
    ],
)
def test_the_unreachable_variables_are_refused_outside_their_runs(project, args, env, message):
    stack = standby_stack(project)
    run = deploy(project, stack, *args, "--yes", AWS_OK="1", AZ_OK="1", **env)
    assert run.code == 1 and message in run.stderr, run.stderr
    assert not run.ran("pulumi"), run.log


def test_main_lost_refuses_a_stack_the_backend_does_not_hold(project):
    stack = standby_stack(project, deployed=False)
    run = deploy(project, stack, "--main-lost", "--yes", AWS_OK="1", AZ_OK="1")
    assert run.code == 1
    assert "--main-lost: no stack 'dev-standby' in" in run.stderr, run.stderr
    assert not run.ran("pulumi stack init") and not run.ran("pulumi up"), run.log


def test_main_lost_refuses_a_fleet_without_a_second_home(project):
    text = (project / "Pulumi.dev.yaml").read_text()
    text += (
        "  ocm-fleet:apiAllowedCidrs:\n    - 198.51.100.0/24\n"
        f"  ocm-fleet:eksAdminPrincipals:\n    - {ROLE_ARN}\n"
    )
    (project / "Pulumi.dev.yaml").write_text(text)
    run = deploy(project, "dev", "--main-lost", "--yes", AWS_OK="1", AZ_OK="1")
    assert run.code == 1
    assert "--main-lost is for a fleet with a second home (ocm-fleet:hub.standby)" in run.stderr
    assert run.installs == [] and not run.ran("pulumi"), run.log
