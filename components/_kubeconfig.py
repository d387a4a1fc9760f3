"""Render kubeconfig files from a cluster's address, CA and credentials, deterministically."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from components import _yaml

EXEC_API_VERSION = "client.authentication.k8s.io/v1beta1"
"""The exec credential API every supported kubectl and client-go understands."""


def _render(*, name: str, server: str, ca_data: str, user: Mapping[str, Any]) -> str:
    if not server.startswith("https://"):
        raise ValueError(f"kubeconfig {name!r}: server {server!r} must be an https:// URL")
    if not ca_data:
        raise ValueError(f"kubeconfig {name!r}: the certificate authority data is empty")
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name, "cluster": {"server": server, "certificate-authority-data": ca_data}}
        ],
        "users": [{"name": name, "user": dict(user)}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
        "preferences": {},
    }
    # Sorted keys and block style: the same inputs always give the same text, so the secret
    # holding it does not show a diff on every preview.
    return _yaml.safe_dump(config, sort_keys=True, default_flow_style=False)


def exec_kubeconfig(
    *,
    name: str,
    server: str,
    ca_data: str,
    command: str,
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
) -> str:
    """A kubeconfig whose user runs `command args...` for a short-lived credential.

    `name` names the cluster, user and context alike. `env` is passed to the command, sorted
    by variable name.
    """
    exec_: dict[str, Any] = {
        "apiVersion": EXEC_API_VERSION,
        "command": command,
        "args": list(args),
        # Pulumi and CI run without a terminal: a credential plugin must fail, never prompt.
        "interactiveMode": "Never",
        "provideClusterInfo": False,
    }
    if env:
        exec_["env"] = [{"name": k, "value": env[k]} for k in sorted(env)]
    return _render(name=name, server=server, ca_data=ca_data, user={"exec": exec_})


def token_kubeconfig(*, name: str, server: str, ca_data: str, token: str) -> str:
    """A kubeconfig whose user presents a static bearer token (e.g. a ServiceAccount token)."""
    if not token:
        raise ValueError(f"kubeconfig {name!r}: the token is empty")
    return _render(name=name, server=server, ca_data=ca_data, user={"token": token})
