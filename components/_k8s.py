"""Small helpers for Kubernetes objects the components read back, and for Helm releases."""

from __future__ import annotations

from typing import Any


def load_balancer_address(status: Any) -> str:
    """The first ingress address of a LoadBalancer Service's status: an IP or a DNS name."""
    status = status or {}
    ingress = status.get("load_balancer") or status.get("loadBalancer") or {}
    entries = ingress.get("ingress") or []
    if not entries:
        return ""
    first = entries[0]
    return first.get("ip") or first.get("hostname") or ""


def chart_source(chart: str, version: str, repo: str, local_path: str | None) -> dict[str, Any]:
    """Where a helm.v3.Release takes its chart: the pinned version from its repository, or a
    local chart directory or .tgz (config `charts`, for clusters that cannot reach the
    repository). A local chart is what it is, so no version or repository goes with it."""
    if local_path:
        return {"chart": local_path}
    return {"chart": chart, "version": version, "repository_opts": {"repo": repo}}
