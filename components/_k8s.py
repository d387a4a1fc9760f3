"""Small helpers for Kubernetes objects the components read back."""

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
