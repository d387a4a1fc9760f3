"""Pod Security Admission levels of the namespaces the program creates, each with its reason."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

Level = Literal["privileged", "baseline", "restricted"]

PSA_PREFIX = "pod-security.kubernetes.io"
REASON_ANNOTATION = "ocm-fleet.io/pod-security-reason"
"""Why a namespace enforces the level it does, readable on the cluster (`kubectl describe ns`)."""

# The levels, each with the reason that decides it. A namespace below `restricted` still warns
# and audits at `restricted`, so every departure from it stays visible.
APP = (
    "baseline",
    "website and shopui (nginx 1.15 images of 2019) start their master as root and add CHOWN, "
    "NET_BIND_SERVICE, SETGID and SETUID; shopapi (ruby:2.6 image) runs as root. Restricted "
    "forbids both. The router alone would pass restricted.",
)
DATABASE = (
    "baseline",
    "The schema Job runs the shopapi image, which runs as root. MariaDB and the password "
    "rotation Job pass restricted.",
)
PUBLIC_ENTRY = ("restricted", "HAProxy runs as its image's non-root user with no capabilities.")
OCM_OPERATOR = (
    "baseline",
    "The OCM charts' operator pods run as non-root with every capability dropped, but the "
    "charts' values (1.3.1) give them no seccomp profile, which restricted requires.",
)
NO_PODS = ("restricted", "No pods run here: it holds OCM placement objects only.")


def namespace_metadata(
    name: str, level_and_reason: tuple[Level, str], labels: Mapping[str, str] | None = None
) -> dict:
    """Namespace metadata enforcing `level`, auditing and warning at restricted, with the reason.

    No `*-version` label: the level follows the cluster's Kubernetes version, so an upgrade
    applies the standard as that version defines it.
    """
    level, reason = level_and_reason
    return {
        "name": name,
        "labels": {
            **dict(labels or {}),
            f"{PSA_PREFIX}/enforce": level,
            f"{PSA_PREFIX}/audit": "restricted",
            f"{PSA_PREFIX}/warn": "restricted",
        },
        "annotations": {REASON_ANNOTATION: reason},
    }


def locked_down_container() -> dict[str, object]:
    """A container security context that leaves the user, and the seccomp profile, to the pod:
    no privilege escalation, every capability dropped, a read-only root filesystem."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def restricted_container(uid: int, *, read_only_root: bool = True) -> dict[str, object]:
    """A container security context that passes the `restricted` Pod Security Standard: a
    non-root user and group, no privilege escalation, every capability dropped, the runtime's
    default seccomp profile."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": read_only_root,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
