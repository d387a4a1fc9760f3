"""Images by digest: the data in components/images.yaml, what the program deploys, the
pre-deploy check, the policy, and the resolver (against a stand-in registry)."""

from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import yaml
from conftest import FLEETS, fleet_graph
from harness import ROOT, Graph
from pulumi_policy import PolicyCustomTimeouts, PolicyResourceOptions, ResourceValidationArgs
from workloads import pod_template, rendered_objects, workloads

sys.path.insert(0, str(ROOT / "policy"))
sys.path.insert(0, str(ROOT / "scripts"))

import check_images
import ocm_fleet_policies as pol

from components import images
from components.observability import _chart_images

KIND_CONTAINER = "command:local:Command"


def deployed_images(graph: Graph) -> dict[str, set[str]]:
    """image reference -> where it is deployed: pods (also inside ManifestWorks), the OCM CRs'
    image pull specs, the OCM charts' image overrides, the images the monitoring charts render
    from their release's values, and the kind load balancer container."""
    found: dict[str, set[str]] = {}
    for workload in workloads(graph):
        spec = pod_template(workload.obj)["spec"]
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            found.setdefault(container["image"], set()).add(str(workload))
    for placed in rendered_objects(graph):
        if placed.kind in ("ClusterManager", "Klusterlet"):
            for key, value in placed.obj["spec"].items():
                if key.endswith("ImagePullSpec"):
                    found.setdefault(value, set()).add(f"{placed} spec.{key}")
    for release in graph.of_type("kubernetes:helm.sh/v3:Release"):
        chart = release.inputs["chart"]
        if chart not in ("cluster-manager", "klusterlet"):
            assert chart in _chart_images.CHART_IMAGES, (
                f"Helm release {release.name}: chart {chart} has no list of the images it renders"
            )
            rendered = _chart_images.rendered_images(chart, release.inputs["values"])
            for path, value in rendered.items():
                found.setdefault(value, set()).add(f"{release.name} values.{path}")
            continue
        overrides = ((release.inputs.get("values") or {}).get("images") or {}).get("overrides")
        assert overrides and overrides.get("operatorImage"), (
            f"Helm release {release.name} must name its operator image (else the chart pulls "
            "its default by tag)"
        )
        for key, value in overrides.items():
            found.setdefault(value, set()).add(f"{release.name} values.images.overrides.{key}")
    for res in graph.of_type(KIND_CONTAINER):
        image = (res.inputs.get("environment") or {}).get("IMAGE")
        if image:
            found.setdefault(image, set()).add(f"{res.name} IMAGE")
    return found


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_every_deployed_image_carries_its_digest_or_is_marked_unresolved(fleet):
    deployed = deployed_images(fleet_graph(fleet, preview=False))
    assert len(deployed) >= 8, sorted(deployed)
    data = images.read()
    for ref, where in sorted(deployed.items()):
        name, _, digest = ref.partition("@")
        entry = images.entry_for(ref, data)
        assert entry, f"{ref} ({sorted(where)}) is not in components/images.yaml"
        if entry.digest:
            assert digest == entry.digest, f"{ref} ({sorted(where)}) must be {entry.pinned}"
        else:
            assert not digest, f"{ref}: a digest that images.yaml does not record"
            assert entry.unresolved, f"{name} has neither digest nor reason"
    # The one digest published upstream is in use.
    assert data["haproxy:3.2-alpine"].pinned in deployed


def test_a_bare_tag_fails_the_check():
    data = images.read()
    ok = {e.pinned for e in data.values()}
    assert [p for p in images.check(ok, data) if "unresolved" not in p] == []
    for bad, why in [
        ("nginx:1.27", "not in images.yaml"),
        ("haproxy:3.2-alpine", "deployed by tag"),
        ("haproxy:3.2-alpine@sha256:" + "0" * 64, "digest differs"),
    ]:
        (problem,) = images.check([bad], data)
        assert problem.startswith(bad) and why in problem, problem
    assert images.check(["example/app:2.0@sha256:" + "b" * 64], data) == [], (
        "an image pinned by digest where it is configured needs no entry"
    )


def write_images(path: Path, entries: dict) -> Path:
    path.write_text(yaml.safe_dump({"images": entries}))
    return path


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"digest": "sha256:abc"}, "is not sha256:<64 hex digits>"),
        ({"digest": "sha256:" + "a" * 64}, "needs the source"),
        ({"digest": None}, "say why"),
    ],
)
def test_image_data_refuses_a_malformed_entry(tmp_path, entry, message):
    path = write_images(tmp_path / "images.yaml", {"example/app:1.0": entry})
    with pytest.raises(images.ImageDataError, match=message):
        images.read(path)


@pytest.mark.parametrize("fleet", list(FLEETS))
def test_the_pre_deploy_check_lists_exactly_what_the_program_deploys(fleet, tmp_path):
    graph = fleet_graph(fleet, preview=False)
    stack = {f"ocm-fleet:{k.split(':', 1)[-1]}": v for k, v in FLEETS[fleet]().items()}
    path = tmp_path / "Pulumi.test.yaml"
    path.write_text(yaml.safe_dump({"config": stack}))
    version, clouds = check_images.stack_settings(path)
    assert check_images.program_images(version, clouds) == set(deployed_images(graph))


def run_check(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(root / "scripts" / "check_images.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_pre_deploy_check_refuses_unresolved_images_unless_allowed():
    refused = run_check(ROOT, "--stack-file", str(ROOT / "Pulumi.dev.yaml"))
    unresolved = sorted(ref for ref, e in images.read().items() if not e.digest)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    for ref in unresolved:
        if "cloud-provider-kind" not in ref:  # dev has no kind cluster
            assert ref in refused.stderr, f"{ref} not named:\n{refused.stderr}"
    assert "--allow-unresolved-images" in refused.stderr
    allowed = run_check(ROOT, "--stack-file", str(ROOT / "Pulumi.dev.yaml"), "--allow-unresolved")
    assert allowed.returncode == 0, allowed.stderr
    assert "WARNING" in allowed.stdout and "mariadb:11.4.8" in allowed.stdout


def test_the_pre_deploy_check_passes_once_every_image_is_resolved(tmp_path):
    for part in ("components", "manifests", "scripts"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    resolved = {
        ref: {"digest": "sha256:" + hashlib.sha256(ref.encode()).hexdigest(), "source": "test"}
        for ref in images.read()
    }
    write_images(tmp_path / "components" / "images.yaml", resolved)
    done = run_check(tmp_path, "--stack-file", str(ROOT / "Pulumi.dev.yaml"))
    assert done.returncode == 0, done.stdout + done.stderr
    (tmp_path / "components" / "images.yaml").write_text("images: {broken")
    assert run_check(tmp_path, "--stack-file", str(ROOT / "Pulumi.dev.yaml")).returncode == 2


def _validate(props: dict, config: dict | None) -> list[str]:
    messages: list[str] = []
    opts = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)
    args = ResourceValidationArgs(
        "kubernetes:apps/v1:Deployment", props, "urn:x", "web", opts, None, config
    )
    pol.images_pinned_by_digest.validate(args, lambda message, urn=None: messages.append(message))
    return messages


def test_the_policy_refuses_a_tag_unless_its_flag_is_set():
    pod = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}}
    (message,) = _validate(pod, None)
    assert "'nginx:1.27' by tag" in message
    assert _validate(pod, {"allowUnresolvedImages": True}) == []
    pinned = json.loads(json.dumps(pod).replace("nginx:1.27", "nginx:1.27@sha256:" + "a" * 64))
    assert _validate(pinned, None) == []
    config = json.loads((ROOT / "policy" / "allow-unresolved-images.json").read_text())
    assert config == {"images-pinned-by-digest": {"allowUnresolvedImages": True}}


def test_the_policy_on_the_real_graph_refuses_exactly_the_unresolved_images():
    from test_policy_on_graph import UNPINNED, pack_run

    run = pack_run("dev", False)
    reported = {
        UNPINNED.search(v.message).group(1)
        for v in run.violations
        if v.policy == "images-pinned-by-digest"
    }
    deployed = deployed_images(fleet_graph("dev", preview=False))
    assert reported == {ref for ref in deployed if "@" not in ref}
    assert reported, "the dev fleet has unresolved images; the policy must name them"


# The resolver against a stand-in registry ------------------------------------------------------


class Registry(http.server.BaseHTTPRequestHandler):
    """Answers /v2/<repo>/manifests/<tag> after a Bearer token from /token, like Docker Hub."""

    manifests: ClassVar[dict[str, bytes]] = {}
    announce: ClassVar[dict[str, str]] = {}

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        host = f"http://{self.server.server_address[0]}:{self.server.server_address[1]}"
        if self.path.startswith("/token"):
            body = json.dumps({"token": "t0ken"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)
            return
        if self.headers.get("Authorization") != "Bearer t0ken":
            self.send_response(401)
            challenge = f'Bearer realm="{host}/token",service="stand-in"'
            self.send_header("WWW-Authenticate", challenge)
            self.end_headers()
            return
        body = self.manifests.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        digest = self.announce.get(self.path, "sha256:" + hashlib.sha256(body).hexdigest())
        self.send_header("Docker-Content-Digest", digest)
        self.send_header("Content-Type", "application/vnd.oci.image.index.v1+json")
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def registry() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        Registry.manifests, Registry.announce = {}, {}


def test_the_resolver_records_the_digest_of_the_bytes_the_registry_serves(tmp_path, registry):
    index = b'{"schemaVersion":2,"manifests":[]}'
    digest = "sha256:" + hashlib.sha256(index).hexdigest()
    Registry.manifests = {
        "/v2/library/mariadb/manifests/11.4.8": index,
        "/v2/open-cluster-management/work/manifests/v1.3.1": index + b" ",
    }
    path = tmp_path / "images.yaml"
    path.write_text(
        "# kept header\n"
        + yaml.safe_dump(
            {
                "images": {
                    "mariadb:11.4.8": {"digest": None, "unresolved": "not yet"},
                    "quay.io/open-cluster-management/work:v1.3.1": {
                        "digest": None,
                        "unresolved": "not yet",
                    },
                }
            }
        )
    )
    mirrors = [
        "--registry",
        f"registry-1.docker.io={registry}",
        "--registry",
        f"quay.io={registry}",
    ]
    script = [
        sys.executable,
        str(ROOT / "scripts" / "resolve_digests.py"),
        "--images-file",
        str(path),
    ]
    stale = subprocess.run(
        [*script, *mirrors, "--check"], capture_output=True, text=True, timeout=60
    )
    assert stale.returncode == 1 and path.read_text().startswith("# kept header")
    assert "sha256:" not in path.read_text(), "--check changes nothing"
    done = subprocess.run([*script, *mirrors], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    data = images.read(path)
    assert data["mariadb:11.4.8"].digest == digest
    assert "resolve_digests.py" in data["mariadb:11.4.8"].source
    work = data["quay.io/open-cluster-management/work:v1.3.1"].digest
    assert work == "sha256:" + hashlib.sha256(index + b" ").hexdigest()
    assert path.read_text().startswith("# kept header\n")
    again = subprocess.run(
        [*script, *mirrors, "--check"], capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0, again.stdout + again.stderr


def test_the_resolver_refuses_a_registry_whose_digest_does_not_match_its_bytes(tmp_path, registry):
    Registry.manifests = {"/v2/library/mariadb/manifests/11.4.8": b"{}"}
    Registry.announce = {"/v2/library/mariadb/manifests/11.4.8": "sha256:" + "f" * 64}
    path = write_images(
        tmp_path / "images.yaml", {"mariadb:11.4.8": {"digest": None, "unresolved": "not yet"}}
    )
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "resolve_digests.py"),
            "--images-file",
            str(path),
            "--registry",
            f"registry-1.docker.io={registry}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "the registry announces" in done.stderr, done.stderr
    assert images.read(path)["mariadb:11.4.8"].digest is None
