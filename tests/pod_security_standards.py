"""The Pod Security Standards' baseline and restricted profiles, as checks on a pod.

Written from the published standard (kubernetes.io/docs/concepts/security/pod-security-standards,
the profile tables of Kubernetes 1.33), control by control, so that a rendered pod can be
checked against the level its namespace enforces without a cluster. Each function returns the
violations as sentences; an empty list means the pod passes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

LEVELS = ("privileged", "baseline", "restricted")

# Baseline, "Capabilities": adding any capability beyond these is forbidden.
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
}
# Baseline, "Sysctls": the safe set.
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
# Baseline, "SELinux": allowed types (user and role must be unset).
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
# Restricted, "Volume Types": the only volume sources allowed.
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def _containers(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(field) or []


def check(pod: dict[str, Any], level: str) -> list[str]:
    """Violations of `level` by a pod (`{"metadata": ..., "spec": ...}`, e.g. a template)."""
    if level not in LEVELS:
        return [f"unknown Pod Security level {level!r}"]
    if level == "privileged":
        return []
    problems = baseline(pod)
    if level == "restricted":
        problems += restricted(pod)
    return problems


def baseline(pod: dict[str, Any]) -> list[str]:
    spec = pod["spec"]
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    psc = spec.get("securityContext") or {}
    problems = []
    # HostProcess
    if (psc.get("windowsOptions") or {}).get("hostProcess"):
        problems.append("pod: windowsOptions.hostProcess must not be true")
    # Host Namespaces
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            problems.append(f"pod: {field} must not be true")
    # HostPath Volumes
    for volume in spec.get("volumes") or []:
        if "hostPath" in volume:
            problems.append(f"volume {volume['name']}: hostPath volumes are forbidden")
    # AppArmor (annotations, and the field since 1.30)
    for key, value in annotations.items():
        if key.startswith(APPARMOR_ANNOTATION) and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            problems.append(f"annotation {key}: AppArmor profile {value!r} is not allowed")
    # SELinux, Seccomp, Sysctls at pod level
    problems += _selinux("pod", psc)
    problems += _apparmor("pod", psc)
    if (psc.get("seccompProfile") or {}).get("type") == "Unconfined":
        problems.append("pod: seccompProfile Unconfined is forbidden")
    for sysctl in psc.get("sysctls") or []:
        if sysctl["name"] not in SAFE_SYSCTLS:
            problems.append(f"pod: sysctl {sysctl['name']} is not in the safe set")
    for container in _containers(spec):
        where = f"container {container['name']}"
        sc = container.get("securityContext") or {}
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            problems.append(f"{where}: windowsOptions.hostProcess must not be true")
        # Privileged Containers
        if sc.get("privileged"):
            problems.append(f"{where}: privileged must not be true")
        # Capabilities
        extra = set((sc.get("capabilities") or {}).get("add") or []) - BASELINE_CAPABILITIES
        if extra:
            problems.append(f"{where}: adds capabilities {sorted(extra)} beyond baseline's list")
        # Host Ports
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"{where}: hostPort {port['hostPort']} is forbidden")
        problems += _selinux(where, sc)
        problems += _apparmor(where, sc)
        # /proc Mount Type
        if sc.get("procMount", "Default") != "Default":
            problems.append(f"{where}: procMount must be Default")
        if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
            problems.append(f"{where}: seccompProfile Unconfined is forbidden")
    return problems


def _selinux(where: str, sc: dict[str, Any]) -> list[str]:
    options = sc.get("seLinuxOptions") or {}
    problems = []
    if options.get("type", "") not in SELINUX_TYPES:
        problems.append(f"{where}: SELinux type {options['type']!r} is not allowed")
    for field in ("user", "role"):
        if options.get(field):
            problems.append(f"{where}: SELinux {field} must not be set")
    return problems


def _apparmor(where: str, sc: dict[str, Any]) -> list[str]:
    kind = (sc.get("appArmorProfile") or {}).get("type")
    if kind not in (None, "RuntimeDefault", "Localhost"):
        return [f"{where}: appArmorProfile {kind} is forbidden"]
    return []


def restricted(pod: dict[str, Any]) -> list[str]:
    spec = pod["spec"]
    psc = spec.get("securityContext") or {}
    problems = []
    # Volume Types
    for volume in spec.get("volumes") or []:
        sources = set(volume) - {"name"}
        if not sources <= RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']}: type {sorted(sources)} is not allowed")
    # Running as Non-root user: runAsUser 0 is forbidden at pod level
    if psc.get("runAsUser") == 0:
        problems.append("pod: runAsUser must not be 0")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    for container in _containers(spec):
        where = f"container {container['name']}"
        sc = container.get("securityContext") or {}
        # Privilege Escalation
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation must be false")
        # Running as Non-root: the container's setting wins over the pod's
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if non_root is not True:
            problems.append(f"{where}: runAsNonRoot must be true (pod or container)")
        if sc.get("runAsUser") == 0:
            problems.append(f"{where}: runAsUser must not be 0")
        # Seccomp: RuntimeDefault or Localhost, on the pod or on every container
        seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{where}: seccompProfile must be RuntimeDefault or Localhost")
        # Capabilities: drop ALL, add at most NET_BIND_SERVICE
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{where}: capabilities must drop ALL")
        extra = set(caps.get("add") or []) - {"NET_BIND_SERVICE"}
        if extra:
            problems.append(f"{where}: adds capabilities {sorted(extra)}; only NET_BIND_SERVICE")
    return problems
