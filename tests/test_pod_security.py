"""Pod security: every namespace the program creates claims a Pod Security level with its
reason, and every pod the program renders passes the standard its namespace claims."""

from __future__ import annotations

import copy
import functools
from typing import Any

import pytest
import yaml
from conftest import FLEETS, dev_config, fleet_graph
from harness import Graph, run_program
from pod_security_standards import check
from workloads import namespaces, pod_template, rendered_objects, workloads

from components.observability.hub import HOST_NAMESPACE as MONITORING_HOST
from components.security.pod_security import PSA_PREFIX, REASON_ANNOTATION

# Where a container runs as root or adds capabilities, and why. Nothing else may.
ROOT_CONTAINERS = {
    # nginx 1.15's master binds port 80 and hands its workers to the nginx user.
    "website": "nginx master as root",
    "shopui": "nginx master as root",
    # ruby:2.6 base image, root-owned files; the schema Job runs the same image.
    "shopapi": "shopapi image runs as root",
    "schema": "shopapi image runs as root",
}
ADDED_CAPABILITIES = {
    "website": {"CHOWN", "NET_BIND_SERVICE", "SETGID", "SETUID"},
    "shopui": {"CHOWN", "NET_BIND_SERVICE", "SETGID", "SETUID"},
}


@functools.cache
def graph_of(fleet: str) -> Graph:
    """Update mode: ManifestWork payloads depend on the database address, unknown in preview.
    "rotated" is the dev fleet after a password rotation, which adds the rotation Job."""
    if fleet == "rotated":
        return run_program({**dev_config(), "ocm-fleet:databasePasswordRotation": "1"})
    return fleet_graph(fleet, preview=False)


def update_graphs():
    return [pytest.param(fleet, id=fleet) for fleet in [*FLEETS, "rotated"]]


def enforced_level(ns: dict[str, Any]) -> str | None:
    return (ns["metadata"].get("labels") or {}).get(f"{PSA_PREFIX}/enforce")


@pytest.mark.parametrize("fleet", update_graphs())
def test_every_namespace_the_program_creates_claims_a_level_with_its_reason(fleet):
    found = namespaces(graph_of(fleet))
    assert found
    for (cluster, name), ns in found.items():
        labels = ns["metadata"].get("labels") or {}
        level = labels.get(f"{PSA_PREFIX}/enforce")
        # Node exporters read the host: their namespace alone may be privileged.
        allowed = ("privileged",) if name == MONITORING_HOST else ("baseline", "restricted")
        assert level in allowed, (
            f"Namespace {name} on {cluster} must enforce {allowed}, has {level!r}"
        )
        for mode in ("audit", "warn"):
            assert labels.get(f"{PSA_PREFIX}/{mode}") == "restricted", (
                f"Namespace {name} on {cluster} must {mode} at restricted"
            )
        reason = (ns["metadata"].get("annotations") or {}).get(REASON_ANNOTATION, "")
        assert len(reason) > 20, f"Namespace {name} on {cluster} must say why it is {level}"


@pytest.mark.parametrize("fleet", update_graphs())
def test_every_rendered_pod_passes_the_standard_its_namespace_claims(fleet):
    graph = graph_of(fleet)
    found = namespaces(graph)
    checked = 0
    for workload in workloads(graph):
        ns = found.get((workload.cluster, workload.namespace))
        assert ns is not None, f"{workload} runs in a namespace the program does not create"
        level = enforced_level(ns)
        problems = check(pod_template(workload.obj), level)
        assert not problems, f"{workload} breaks Pod Security {level}: {problems}"
        checked += 1
    # MariaDB, the schema Job, the public LB, and four Deployments per app cluster.
    assert checked >= 7
    if fleet == "rotated":
        assert "mariadb-password-rotation-1" in {w.name for w in workloads(graph)}


@pytest.mark.parametrize("fleet", update_graphs())
def test_every_pod_and_container_states_its_security_context(fleet):
    for workload in workloads(graph_of(fleet)):
        pod = pod_template(workload.obj)["spec"]
        psc = pod.get("securityContext")
        assert psc, f"{workload}: no pod securityContext"
        assert psc.get("seccompProfile") == {"type": "RuntimeDefault"}, (
            f"{workload}: pod seccompProfile must be RuntimeDefault"
        )
        assert pod.get("automountServiceAccountToken") is False, f"{workload}: token mounted"
        for container in pod["containers"]:
            name = container["name"]
            where = f"{workload} container {name}"
            sc = container.get("securityContext")
            assert sc, f"{where}: no securityContext"
            assert sc.get("allowPrivilegeEscalation") is False, f"{where}: privilege escalation"
            assert sc.get("privileged", False) is False, f"{where}: privileged"
            caps = sc.get("capabilities") or {}
            assert caps.get("drop") == ["ALL"], f"{where}: must drop ALL capabilities"
            added = set(caps.get("add") or [])
            assert added == ADDED_CAPABILITIES.get(name, set()), (
                f"{where}: adds {sorted(added)}; only the capabilities listed with a reason"
            )
            non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
            if name in ROOT_CONTAINERS:
                assert non_root is not True, f"{where}: listed as root, update the exceptions"
            else:
                assert non_root is True, f"{where}: must run as non-root"


@pytest.mark.parametrize("fleet", update_graphs())
def test_secrets_reach_pods_as_files_never_as_environment(fleet):
    for workload in workloads(graph_of(fleet)):
        pod = pod_template(workload.obj)["spec"]
        for container in pod["containers"]:
            for env in container.get("env") or []:
                assert "secretKeyRef" not in (env.get("valueFrom") or {}), (
                    f"{workload} container {container['name']}: env {env['name']} is a secret"
                )
            for source in container.get("envFrom") or []:
                assert "secretRef" not in source, f"{workload}: envFrom a Secret"


def test_mariadb_reads_its_passwords_from_files():
    graph = graph_of("dev")
    (mariadb,) = [w for w in workloads(graph) if w.kind == "StatefulSet"]
    pod = pod_template(mariadb.obj)["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    for key in ("MARIADB_PASSWORD", "MARIADB_ROOT_PASSWORD"):
        assert key not in env, f"{mariadb}: {key} must come from a file"
        path = env.get(f"{key}_FILE", "")
        directory, _, file = path.rpartition("/")
        assert directory in mounts, f"{mariadb}: {key}_FILE={path!r} is not on a mounted volume"
        volume = next(v for v in pod["volumes"] if v["name"] == mounts[directory]["name"])
        assert {"key": key, "path": file} in volume["secret"]["items"], f"{mariadb}: {key}"


def test_no_namespace_but_the_node_exporters_is_privileged():
    for fleet in [*FLEETS, "rotated"]:
        for obj in rendered_objects(graph_of(fleet)):
            # The node exporters' namespace alone: they read the host (its reason is tested).
            if obj.kind == "Namespace" and obj.name != MONITORING_HOST:
                assert enforced_level(obj.obj) != "privileged", f"{obj} is privileged"


# The checker itself: each published rule, broken once, is reported.
GOOD_RESTRICTED = {
    "metadata": {},
    "spec": {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": "app",
                "image": "example",
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
        "volumes": [{"name": "cache", "emptyDir": {}}],
    },
}


def broken(path: str, value: Any) -> dict[str, Any]:
    pod = copy.deepcopy(GOOD_RESTRICTED)
    *parents, last = path.split(".")
    node: Any = pod
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if isinstance(node, list):
        node.append(value)
    else:
        node[last] = value
    return pod


BASELINE_BREAKS = {
    "host network": ("spec.hostNetwork", True),
    "host PID": ("spec.hostPID", True),
    "host IPC": ("spec.hostIPC", True),
    "host process": ("spec.securityContext.windowsOptions", {"hostProcess": True}),
    "privileged": ("spec.containers.0.securityContext.privileged", True),
    "SYS_ADMIN": ("spec.containers.0.securityContext.capabilities.add", ["SYS_ADMIN"]),
    "hostPath": ("spec.volumes.append", {"name": "h", "hostPath": {"path": "/"}}),
    "hostPort": ("spec.containers.0.ports", [{"containerPort": 80, "hostPort": 80}]),
    "AppArmor off": ("spec.containers.0.securityContext.appArmorProfile", {"type": "Unconfined"}),
    "AppArmor annotation": (
        "metadata.annotations",
        {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"},
    ),
    "SELinux type": ("spec.securityContext.seLinuxOptions", {"type": "spc_t"}),
    "SELinux user": ("spec.containers.0.securityContext.seLinuxOptions", {"user": "root"}),
    "proc mount": ("spec.containers.0.securityContext.procMount", "Unmasked"),
    "seccomp off": ("spec.securityContext.seccompProfile", {"type": "Unconfined"}),
    "unsafe sysctl": ("spec.securityContext.sysctls", [{"name": "kernel.msgmax", "value": "1"}]),
}
RESTRICTED_BREAKS = {
    "nfs volume": ("spec.volumes.append", {"name": "n", "nfs": {"server": "x", "path": "/"}}),
    "escalation": ("spec.containers.0.securityContext.allowPrivilegeEscalation", True),
    "root allowed": ("spec.securityContext.runAsNonRoot", False),
    "uid 0": ("spec.containers.0.securityContext.runAsUser", 0),
    "no seccomp": ("spec.securityContext.seccompProfile", {}),
    "caps kept": ("spec.containers.0.securityContext.capabilities", {"drop": ["NET_RAW"]}),
    "CHOWN": ("spec.containers.0.securityContext.capabilities.add", ["CHOWN"]),
}


def test_the_checker_passes_a_restricted_pod():
    assert check(GOOD_RESTRICTED, "restricted") == []


@pytest.mark.parametrize("rule", sorted(BASELINE_BREAKS))
def test_the_checker_refuses_what_baseline_forbids(rule):
    pod = broken(*BASELINE_BREAKS[rule])
    assert check(pod, "baseline"), f"baseline must refuse {rule}"
    assert check(pod, "restricted"), f"restricted must refuse {rule}"
    assert check(pod, "privileged") == []


@pytest.mark.parametrize("rule", sorted(RESTRICTED_BREAKS))
def test_the_checker_refuses_what_only_restricted_forbids(rule):
    pod = broken(*RESTRICTED_BREAKS[rule])
    assert check(pod, "baseline") == [], f"baseline allows {rule}"
    assert check(pod, "restricted"), f"restricted must refuse {rule}"


@pytest.mark.parametrize("chart", ["cluster-manager", "klusterlet"])
def test_ocm_operator_pods_pass_baseline_as_the_charts_configure_them(shared_reference, chart):
    """The operator namespace the program creates enforces baseline: the chart's pod and
    container security contexts (its values) must pass it; they fall short of restricted only
    for want of a seccomp profile."""
    values = yaml.safe_load((shared_reference / "charts" / chart / "values.yaml").read_text())
    pod = {
        "metadata": {},
        "spec": {
            "securityContext": values.get("podSecurityContext") or {},
            "containers": [{"name": "operator", "securityContext": values["securityContext"]}],
        },
    }
    assert check(pod, "baseline") == [], f"{chart} operator pod"
    assert check(pod, "restricted") == [
        "container operator: seccompProfile must be RuntimeDefault or Localhost"
    ], f"{chart}: the operator namespace could enforce restricted"
