"""Fetches the upstream reference data the schema and render tests read, pinned and checked.

    python3 scripts/fetch_reference.py                  # into .reference/ (where tests look)
    python3 scripts/fetch_reference.py --dest DIR       # elsewhere (then OCM_FLEET_REFERENCE=DIR)
    python3 scripts/fetch_reference.py --check DIR      # verify a copy against the sums only

The data: OCM 1.3.1's CRDs and its cluster-manager and klusterlet charts, and the monitoring
charts (prometheus 29.27.0 with its four subcharts, grafana 12.11.1, and the values of the
charts the program reads). Each file is fetched from its repository at a pinned commit
(SOURCES below), never from a branch, and must match the SHA-256 recorded for it in
scripts/reference.sha256 (computed from the reference copy the project is developed against).
The two addon CRDs carry operator template placeholders upstream; they get the same stand-in
values as that copy, so that they parse as YAML. Nothing is written unless every file matches:
the files are fetched into a temporary directory first, and moved into place only then.

`--base-url` fetches from a mirror laid out like raw.githubusercontent.com
(`<owner>/<repo>/<commit>/<path>`): an http(s):// or file:// URL. `--write-sums DIR` recomputes
scripts/reference.sha256 from a reference copy (maintainers, after moving a pin).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUMS = ROOT / "scripts" / "reference.sha256"
DEFAULT_DEST = ROOT / ".reference"
DEFAULT_BASE_URL = "https://raw.githubusercontent.com"

OCM = ("open-cluster-management-io/ocm", "805fa6103d8bc1761dbc9cb4e420def42703ec53")
"""Tag v1.3.1."""
PROMETHEUS_COMMUNITY = (
    "prometheus-community/helm-charts",
    "cf408a290aec489277a94450bb3511432477a53a",
)
"""prometheus 29.27.0 and, at the same commit, the subcharts its Chart.yaml accepts."""
GRAFANA_COMMUNITY = ("grafana-community/helm-charts", "3386a1156177c6bcd7fdb1ad4c6b1dda094296e0")
"""grafana 12.11.1."""

MANAGED_CLUSTER_CRDS = (
    "0000_01_work.open-cluster-management.io_appliedmanifestworks.crd.yaml",
    "0000_02_clusters.open-cluster-management.io_clusterclaims.crd.yaml",
    "clusterproperties.crd.yaml",
)
"""The CRDs the klusterlet operator installs (manifests/klusterlet/managed/); the others are
the hub operator's (manifests/cluster-manager/hub/crds/)."""

SUBSTITUTIONS = {
    "{{ .AddonAPIServiceCABundle }}": "Cg==",
    "{{ .ClusterManagerNamespace }}": "open-cluster-management-hub",
}
"""Operator template placeholders in the addon CRDs (the hub operator fills them in when it
applies them) -> the stand-in values the reference copy has, so that the files parse."""
SUBSTITUTED = (
    "ocm-v1.3.1/crds/0000_00_addon.open-cluster-management.io_clustermanagementaddons.crd.yaml",
    "ocm-v1.3.1/crds/0000_01_addon.open-cluster-management.io_managedclusteraddons.crd.yaml",
)


@dataclass(frozen=True)
class Source:
    repo: str
    commit: str
    path: str

    def url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/{self.repo}/{self.commit}/{self.path}"


def source_of(dest: str) -> Source:
    """Where a file of the reference data comes from, by its path in the data."""
    parts = dest.split("/")
    if dest.startswith("ocm-v1.3.1/crds/") and len(parts) == 3:
        folder = (
            "manifests/klusterlet/managed"
            if parts[2] in MANAGED_CLUSTER_CRDS
            else "manifests/cluster-manager/hub/crds"
        )
        return Source(*OCM, f"{folder}/{parts[2]}")
    if dest.startswith("ocm-v1.3.1/charts/") and parts[2] in ("cluster-manager", "klusterlet"):
        chart = parts[2]
        return Source(*OCM, "/".join(["deploy", chart, "chart", chart, *parts[3:]]))
    if dest.startswith("observability/charts-full/grafana/"):
        return Source(*GRAFANA_COMMUNITY, "/".join(["charts", "grafana", *parts[3:]]))
    if dest.startswith("observability/charts-full/prometheus/charts/") and len(parts) > 5:
        # A subchart, unpacked under the chart as `helm dependency build` would put it.
        return Source(*PROMETHEUS_COMMUNITY, "/".join(["charts", *parts[4:]]))
    if dest.startswith("observability/charts-full/prometheus/"):
        return Source(*PROMETHEUS_COMMUNITY, "/".join(["charts", "prometheus", *parts[3:]]))
    if dest.startswith("observability/charts/") and len(parts) > 3:
        repo = GRAFANA_COMMUNITY if parts[2] == "grafana" else PROMETHEUS_COMMUNITY
        return Source(*repo, "/".join(["charts", *parts[2:]]))
    raise ValueError(f"{dest}: no upstream source is known for this path")


def read_sums(path: Path) -> dict[str, str]:
    """path in the data -> SHA-256, from a `sha256sum`-format file (comments allowed)."""
    sums = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name:
            raise ValueError(f"{path}:{number}: not '<sha256>  <path>': {line!r}")
        sums[name] = digest
    return sums


def substitute(dest: str, data: bytes) -> bytes:
    """The file as the reference copy has it: placeholders replaced where the README says."""
    if dest not in SUBSTITUTED:
        return data
    text = data.decode()
    for placeholder, value in SUBSTITUTIONS.items():
        text = text.replace(placeholder, value)
    return text.encode()


def fetch(source: Source, base_url: str) -> bytes:
    request = urllib.request.Request(source.url(base_url), headers={"User-Agent": "ocm-fleet"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read()


def fetch_all(sums: dict[str, str], base_url: str, into: Path) -> list[str]:
    """Fetch every file into `into`; the problems, one per file that failed or did not match."""

    def one(dest: str) -> str | None:
        source = source_of(dest)
        try:
            data = substitute(dest, fetch(source, base_url))
        except (urllib.error.URLError, OSError, ValueError) as err:
            return f"{dest}: cannot fetch {source.url(base_url)}: {err}"
        digest = hashlib.sha256(data).hexdigest()
        if digest != sums[dest]:
            return f"{dest}: SHA-256 {digest} from {source.url(base_url)}, expected {sums[dest]}"
        target = into / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return None

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, sorted(sums)))
    return [r for r in results if r]


def check(sums: dict[str, str], root: Path) -> list[str]:
    problems = []
    for dest, expected in sorted(sums.items()):
        path = root / dest
        if not path.is_file():
            problems.append(f"{dest}: missing under {root}")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != expected:
            problems.append(f"{dest}: SHA-256 differs from {expected}")
    return problems


def write_sums(root: Path, out: Path) -> int:
    """Record the SHA-256 of every file of a reference copy that has an upstream source."""
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        dest = path.relative_to(root).as_posix()
        try:
            source_of(dest)
        except ValueError:
            continue  # the copy's own notes (README.md, SOURCES) and the Go sources
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {dest}")
    header = (
        "# SHA-256 of every file scripts/fetch_reference.py fetches, as the reference copy has\n"
        "# it (sha256sum format). Regenerate: python3 scripts/fetch_reference.py --write-sums DIR\n"
    )
    out.write_text(header + "\n".join(lines) + "\n")
    return len(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--check", type=Path, metavar="DIR", help="only verify a copy")
    action.add_argument(
        "--write-sums", type=Path, metavar="DIR", help="recompute the sums from a copy"
    )
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="default: .reference/")
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL, help=f"default: {DEFAULT_BASE_URL}")
    parser.add_argument("--sums", type=Path, default=SUMS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.write_sums:
        if not args.write_sums.is_dir():
            parser.error(f"--write-sums: {args.write_sums} is not a directory")
        count = write_sums(args.write_sums, args.sums)
        print(f"wrote the SHA-256 of {count} files to {args.sums}")
        return 0
    try:
        sums = read_sums(args.sums)
        for dest in sums:
            source_of(dest)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.check:
        problems = check(sums, args.check)
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        if not problems:
            print(f"{args.check}: all {len(sums)} files match")
        return 1 if problems else 0

    dest: Path = args.dest
    if dest.exists() and not check(sums, dest):
        print(f"{dest}: all {len(sums)} files already present and matching")
        return 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Fetched beside the destination, so that the final rename stays on one filesystem.
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        problems = fetch_all(sums, args.base_url, staging)
        if problems:
            for problem in problems:
                print(f"error: {problem}", file=sys.stderr)
            print(
                f"error: {len(problems)} of {len(sums)} files failed; nothing written to {dest}",
                file=sys.stderr,
            )
            return 1
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"fetched {len(sums)} files into {dest}, each matching its SHA-256")
    return 0


if __name__ == "__main__":
    sys.exit(main())
