"""A cluster the user already runs (kind, on-premises, another cloud), joined to the fleet as is."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pulumi
import yaml

from components.clusters._base import FleetCluster
from components.config import ClusterSpec

EXISTING_CLUSTER_TYPE = "ocm-fleet:index:ExistingCluster"


class ExistingClusterError(pulumi.RunError):
    """The kubeconfig of an existing cluster cannot be used."""


@dataclass(frozen=True, kw_only=True)
class LocalKubeconfig:
    """What the program needs from an existing cluster's kubeconfig file."""

    text: str
    """The whole file (secret once in the program)."""
    context: str
    """The context the provider uses."""
    server: str
    """https:// URL of the API server as other clusters reach it."""
    ca_data: str
    """Base64 PEM of the API server's CA."""


@dataclass(frozen=True, kw_only=True)
class ExistingClusterArgs:
    spec: ClusterSpec
    """Validated config of a `cloud: existing` cluster."""
    kubeconfig: LocalKubeconfig
    """Its kubeconfig, read up front by `read_kubeconfigs` (before any resource exists)."""


def _default_kubeconfig_path() -> Path:
    first = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return Path(first) if first else Path.home() / ".kube" / "config"


def _read_ca_file(ca_path: str | None, base: Path, where: str) -> str:
    """The base64 CA of a kubeconfig that names its CA by file (`certificate-authority`)."""
    if not ca_path:
        raise ExistingClusterError(
            f"{where}: the kubeconfig's cluster has no certificate-authority-data or "
            "certificate-authority; OCM's bootstrap kubeconfig needs the CA to trust this cluster"
        )
    file = Path(ca_path).expanduser()
    file = file if file.is_absolute() else base / file
    try:
        return base64.b64encode(file.read_bytes()).decode()
    except OSError as err:
        raise ExistingClusterError(
            f"{where}: cannot read the CA file {str(file)!r} ({err.strerror})"
        ) from err


def read_kubeconfig(spec: ClusterSpec) -> LocalKubeconfig:
    """Read and check the kubeconfig of an existing cluster; errors name the file and the key."""
    path = Path(spec.kubeconfig).expanduser() if spec.kubeconfig else _default_kubeconfig_path()
    where = f"ocm-fleet cluster {spec.name!r} (cloud: existing)"
    try:
        text = path.read_text()
        doc = yaml.safe_load(text) or {}
    except OSError as err:
        raise ExistingClusterError(
            f"{where}: cannot read kubeconfig {str(path)!r} ({err.strerror}); set "
            "'kubeconfig' to the file's path"
        ) from err
    except yaml.YAMLError as err:
        raise ExistingClusterError(f"{where}: {str(path)!r} is not YAML ({err})") from err

    context_name = spec.context or doc.get("current-context")
    contexts = {c.get("name"): c.get("context", {}) for c in doc.get("contexts") or []}
    if context_name not in contexts:
        raise ExistingClusterError(
            f"{where}: context {context_name!r} is not in {str(path)!r} "
            f"(it has: {', '.join(sorted(map(str, contexts))) or 'none'}); set 'context'"
        )
    cluster_name = contexts[context_name].get("cluster")
    clusters = {c.get("name"): c.get("cluster", {}) for c in doc.get("clusters") or []}
    cluster = clusters.get(cluster_name) or {}
    server = spec.api_server_url or cluster.get("server", "")
    if not server.startswith("https://"):
        raise ExistingClusterError(
            f"{where}: context {context_name!r} has no https:// server in {str(path)!r}; "
            "set 'apiServerUrl'"
        )
    ca_data = cluster.get("certificate-authority-data") or _read_ca_file(
        cluster.get("certificate-authority"), path.parent, where
    )
    return LocalKubeconfig(text=text, context=context_name, server=server, ca_data=ca_data)


def read_kubeconfigs(specs: Iterable[ClusterSpec]) -> dict[str, LocalKubeconfig]:
    """The kubeconfigs of every existing cluster, or one error listing every unusable one."""
    found: dict[str, LocalKubeconfig] = {}
    problems: list[str] = []
    for spec in specs:
        if spec.cloud != "existing":
            continue
        try:
            found[spec.name] = read_kubeconfig(spec)
        except ExistingClusterError as err:
            problems.append(str(err))
    if problems:
        raise ExistingClusterError("\n".join(problems))
    return found


class ExistingCluster(FleetCluster):
    """No cloud resources: only a Kubernetes provider from a kubeconfig file and context.

    The kubeconfig is a local file, read before any resource is declared and known in preview
    too, so the API server URL and CA that OCM's bootstrap kubeconfig needs come from it, unless
    `apiServerUrl` names the address other clusters use.
    """

    def __init__(
        self, name: str, args: ExistingClusterArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(EXISTING_CLUSTER_TYPE, name, None, opts)
        self.spec = args.spec
        local = args.kubeconfig
        self._finish(
            kubeconfig=local.text,
            api_server_url=local.server,
            ca_data=local.ca_data,
            egress_cidrs=list(args.spec.egress_ips),
            context=local.context,
        )
