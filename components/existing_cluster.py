"""A cluster the user already runs (kind, on-premises, another cloud), joined to the fleet as is."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pulumi
import yaml

from components._cluster import FleetCluster
from components.config import ClusterSpec

EXISTING_CLUSTER_TYPE = "ocm-fleet:index:ExistingCluster"


class ExistingClusterError(pulumi.RunError):
    """The kubeconfig of an existing cluster cannot be used."""


@dataclass(frozen=True, kw_only=True)
class ExistingClusterArgs:
    spec: ClusterSpec
    """Validated config; `kubeconfig`, `context`, `apiServerUrl` and `egressIps` come from it."""


def _default_kubeconfig_path() -> Path:
    first = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return Path(first) if first else Path.home() / ".kube" / "config"


class ExistingCluster(FleetCluster):
    """No cloud resources: only a Kubernetes provider from a kubeconfig file and context.

    The kubeconfig is read when the program runs (it is a local file, known in preview too), so
    the API server URL and CA that OCM's bootstrap kubeconfig needs come from it, unless
    `apiServerUrl` names the address other clusters use.
    """

    def __init__(
        self, name: str, args: ExistingClusterArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(EXISTING_CLUSTER_TYPE, name, None, opts)
        self.spec = spec = args.spec
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
        ca_data = cluster.get("certificate-authority-data", "")

        self._finish(
            kubeconfig=text,
            api_server_url=server,
            ca_data=ca_data,
            egress_cidrs=list(spec.egress_ips),
            context=context_name,
        )
