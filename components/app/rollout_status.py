"""`pulumi up` waits for the bookstore's rollout and fails naming the clusters it did not reach.

The ManifestWorkReplicaSet's own status holds counts only, and no Pulumi await can say "every
ManifestWork labelled with this revision is Progressing=False, or name the ones that are not".
So a small dynamic resource polls the hub: the PlacementDecisions say which clusters should run
the app, the ManifestWorks the replica set made (found by its label) say which revision each one
carries and how it is doing. It judges each cluster as OCM does (see `judge`), and returns when
every chosen cluster runs the new revision with every Deployment available, or raises once the
rollout has stopped, naming the clusters that failed and those still on the previous version.

Pulumi serializes the provider with dill into the state and runs it in a separate process. A
class from an importable module would be pickled by reference, and that process may not have
this package on its path; so the class is pickled by value (as a class of `__main__` is, see
`_by_value`) and everything it runs is one of its own methods, importing only the standard
library and PyYAML (a dependency of the program) inside them. The kubeconfig is a secret input
and is left out of the outputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic

ROLLOUT_STATUS_TYPE = "pulumi-python:dynamic/ocm-fleet:RolloutStatus"


class RolloutStatusProvider(pulumi.dynamic.ResourceProvider):
    """Polls the hub's API for the rollout's outcome (create and update only; delete is a no-op).

    Inputs: `kubeconfig` (secret) and `context` of the hub; `namespace`, `replicaSet` and
    `placement` names; `revision` (the template digest every work must carry); `canary`;
    `maxFailures`, `progressDeadline` (as configured); `budgetSeconds`, `pollSeconds`.
    """

    # -- judging, without I/O -------------------------------------------------------------------

    @staticmethod
    def seconds(duration: str) -> int:
        """Seconds of a one-unit duration such as "10m" (the config only admits those) or "0"."""
        if duration in ("", "0"):
            return 0
        return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600}[duration[-1]]

    @staticmethod
    def failure_budget(max_failures: Any, total: int) -> int:
        """How many failures OCM tolerates: an int as is, a percentage of all clusters rounded up,
        and 0 for anything out of range (sdk-go rollout.go, calculateRolloutSize with default 0)."""
        import math

        if isinstance(max_failures, str) and max_failures.endswith("%"):
            length = math.ceil(float(max_failures[:-1]) / 100 * total)
        else:
            length = int(max_failures)
        return length if 0 < length <= total else 0

    @staticmethod
    def condition(work: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
        for cond in (work.get("status") or {}).get("conditions") or []:
            if cond.get("type") == kind:
                return cond
        return None

    @staticmethod
    def parse_time(text: str) -> float:
        import datetime

        return (
            datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
            .replace(tzinfo=datetime.UTC)
            .timestamp()
        )

    @staticmethod
    def clock_key(work: Mapping[str, Any]) -> str:
        """Which deadline clock a work runs on: one per ManifestWork and generation."""
        meta = work.get("metadata") or {}
        return f"{meta.get('namespace')}/{meta.get('name')}/{meta.get('generation')}"

    @classmethod
    def judge(
        cls,
        work: Mapping[str, Any],
        revision: str,
        label: str,
        deadline_s: int,
        now: float,
        clocks: dict[str, float],
    ):
        """(state, detail) of one cluster's ManifestWork, the way OCM's rollout sees it, except
        for when its deadline starts.

        manifestworkreplicaset_deploy_reconcile.go, clusterRolloutStatusFunc and
        shouldReturnToApply: until the agent's Applied (True), Progressing and (if present)
        Degraded conditions have observed the work's generation, the cluster is still to apply;
        then Progressing=False is succeeded, Progressing=True with Degraded=True failed,
        otherwise progressing. A work carrying another revision has not been reached yet.

        Progressing or failed for progressDeadline is timed out. OCM counts that from the
        condition's lastTransitionTime (sdk-go rollout.go, determineRolloutStatus), but the agent
        merges its conditions with meta.SetStatusCondition, which keeps the transition time
        while the status stays the same (statuscontroller/availablestatus_controller.go,
        syncManifestWork, over conditions/helpers.go, AggregateManifestConditions): a work that
        was still Progressing=True when a new generation came (a revert of a stuck rollout)
        keeps the old time, and OCM sees it timed out before its new pods could start. The hub
        recovers by itself once Progressing turns False. So here the deadline runs from when
        this wait first saw the agent report the generation (`clocks`, one entry per work and
        generation, added on first sight; a work already reported when the wait starts gets
        the wait's start), or from a later transition of the condition, never from an earlier
        one, which may belong to a previous generation.
        """
        labels = (work.get("metadata") or {}).get("labels") or {}
        if labels.get(label) != revision:
            return "previous", labels.get(label, "unknown")
        generation = (work.get("metadata") or {}).get("generation")
        applied = cls.condition(work, "Applied")
        progressing = cls.condition(work, "Progressing")
        degraded = cls.condition(work, "Degraded")
        if (
            applied is None
            or applied.get("observedGeneration") != generation
            or applied.get("status") != "True"
            or progressing is None
            or progressing.get("observedGeneration") != generation
            or (degraded is not None and degraded.get("observedGeneration") != generation)
        ):
            return "applying", "the work agent has not applied this revision yet"
        if progressing.get("status") == "False":
            return "succeeded", progressing.get("message", "")
        since = clocks.setdefault(cls.clock_key(work), now)
        if progressing.get("lastTransitionTime"):
            since = max(since, cls.parse_time(progressing["lastTransitionTime"]))
        failed = progressing.get("status") == "True" and (degraded or {}).get("status") == "True"
        if now - since >= deadline_s:
            return "timed out", progressing.get("message", "")
        return ("failed" if failed else "progressing"), progressing.get("message", "")

    @staticmethod
    def deployments(work: Mapping[str, Any]) -> dict[str, str]:
        """Deployment name -> "available/replicas", from the WellKnownStatus feedback."""
        found = {}
        for manifest in ((work.get("status") or {}).get("resourceStatus") or {}).get(
            "manifests"
        ) or []:
            meta = manifest.get("resourceMeta") or {}
            if meta.get("kind") != "Deployment":
                continue
            values = {
                v.get("name"): (v.get("fieldValue") or {}).get("integer")
                for v in (manifest.get("statusFeedback") or {}).get("values") or []
            }
            found[meta.get("name", "?")] = (
                f"{values.get('AvailableReplicas') or 0}/{values.get('Replicas') or 0}"
            )
        return dict(sorted(found.items()))

    @staticmethod
    def images(work: Mapping[str, Any]) -> dict[str, str]:
        """Container name -> image, from the work's own template (feedback reads only status)."""
        found = {}
        for obj in ((work.get("spec") or {}).get("workload") or {}).get("manifests") or []:
            pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
            for container in pod.get("containers") or []:
                found[container.get("name", "?")] = container.get("image", "?")
        return dict(sorted(found.items()))

    @classmethod
    def assess(
        cls,
        props: Mapping[str, Any],
        decisions: Sequence[str],
        works: Sequence[Mapping[str, Any]],
        now: float,
        clocks: dict[str, float] | None = None,
    ) -> dict[str, Any]:
        """The rollout's state from stand-alone API answers.

        `clocks` holds when each work's generation was first seen reported (see `judge`); one
        wait passes the same dict to every poll. Returns {"clusters": {name: {...}}, "outcome":
        "complete" | "running" | "stopped", "message": str}.
        """
        clocks = {} if clocks is None else clocks
        revision, label = props["revision"], props["revisionLabel"]
        deadline_s = cls.seconds(props["progressDeadline"])
        by_cluster = {(w.get("metadata") or {}).get("namespace"): w for w in works}
        clusters: dict[str, Any] = {}
        for name in sorted(set(decisions)):
            work = by_cluster.get(name)
            if work is None:
                state, detail = "previous", "no app yet"
                entry = {"revision": "", "images": {}, "deployments": {}}
            else:
                state, detail = cls.judge(work, revision, label, deadline_s, now, clocks)
                labels = (work.get("metadata") or {}).get("labels") or {}
                entry = {
                    "revision": labels.get(label, ""),
                    "images": cls.images(work),
                    "deployments": cls.deployments(work),
                }
            clusters[name] = {**entry, "state": state, "detail": detail}

        canary = set(props.get("canary") or [])
        bad = {"failed", "timed out"}
        failed = [n for n, c in clusters.items() if c["state"] in bad]
        behind = [n for n, c in clusters.items() if c["state"] == "previous"]
        moving = [n for n, c in clusters.items() if c["state"] in ("applying", "progressing")]
        outside = [n for n in failed if n not in canary]
        budget = cls.failure_budget(props["maxFailures"], len(clusters))
        # Canaries tolerate nothing; the rest up to maxFailures (getProgressiveClusters).
        halted = any(n in canary for n in failed) or len(outside) > budget

        if clusters and all(c["state"] == "succeeded" for c in clusters.values()):
            return {
                "clusters": clusters,
                "outcome": "complete",
                "message": f"revision {revision} is available on {', '.join(clusters)}",
            }
        finished = bool(clusters) and not moving and (halted or not behind)
        if not finished:
            return {"clusters": clusters, "outcome": "running", "message": ""}
        return {
            "clusters": clusters,
            "outcome": "stopped",
            "message": cls.describe(revision, clusters, failed, behind, moving, halted),
        }

    @staticmethod
    def describe(revision, clusters, failed, behind, moving, halted) -> str:
        lines = [
            f"the rollout of revision {revision} "
            + ("stopped" if halted else "did not complete")
            + ": OCM holds the clusters not yet reached on the previous version"
        ]
        if failed:
            lines.append(
                "failed: "
                + "; ".join(
                    f"{n} ({clusters[n]['state']}: {clusters[n]['detail'] or 'no detail'}"
                    + (
                        f"; deployments {clusters[n]['deployments']})"
                        if clusters[n]["deployments"]
                        else ")"
                    )
                    for n in failed
                )
            )
        if moving:
            lines.append("still progressing: " + ", ".join(moving))
        if behind:
            lines.append(
                "still on the previous version: "
                + ", ".join(
                    f"{n} ({where})"
                    for n in behind
                    for where in [
                        f"revision {clusters[n]['revision']}"
                        if clusters[n]["revision"]
                        else clusters[n]["detail"]
                    ]
                )
            )
        lines.append(
            "fix the cause and run `pulumi up` again, or revert the change in the stack config "
            "and run `pulumi up` to roll the fleet back"
        )
        return "\n  ".join(lines)

    # -- the hub's API ---------------------------------------------------------------------------

    @staticmethod
    def connection(kubeconfig: str, context: str | None):
        """(server, ssl context, headers) from a kubeconfig: token, client certificate or exec."""
        import base64
        import json
        import os
        import ssl
        import subprocess
        import tempfile

        import yaml

        config = yaml.safe_load(kubeconfig)
        name = context or config.get("current-context")
        ctx = next(c["context"] for c in config["contexts"] if c["name"] == name)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == ctx["user"]) or {}
        server = cluster["server"].rstrip("/")
        # Only the cluster's own CA is trusted when the kubeconfig names one.
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if cluster.get("insecure-skip-tls-verify"):
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE
        elif cluster.get("certificate-authority-data"):
            ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
            tls.load_verify_locations(cadata=ca)
        elif cluster.get("certificate-authority"):
            tls.load_verify_locations(cafile=cluster["certificate-authority"])
        else:
            tls.load_default_certs()
        if user.get("exec"):
            spec = user["exec"]
            env = {**os.environ, **{e["name"]: e["value"] for e in spec.get("env") or []}}
            out = subprocess.run(
                [spec["command"], *(spec.get("args") or [])],
                capture_output=True,
                check=True,
                env=env,
                text=True,
                timeout=60,
            ).stdout
            user = {**user, **{"token": json.loads(out)["status"].get("token")}}
        headers = {"Accept": "application/json"}
        if user.get("token"):
            headers["Authorization"] = f"Bearer {user['token']}"
        cert, key = user.get("client-certificate-data"), user.get("client-key-data")
        if cert and key:
            # ssl reads a client certificate from files only: a private 0600 directory, removed
            # as soon as the context holds the key.
            with tempfile.TemporaryDirectory() as tmp:
                cert_path, key_path = os.path.join(tmp, "c"), os.path.join(tmp, "k")
                for path, data in ((cert_path, cert), (key_path, key)):
                    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
                        f.write(base64.b64decode(data))
                tls.load_cert_chain(cert_path, key_path)
        elif user.get("client-certificate") and user.get("client-key"):
            tls.load_cert_chain(user["client-certificate"], user["client-key"])
        return server, tls, headers

    @staticmethod
    def get_json(connection, path: str) -> dict[str, Any]:
        import json
        import urllib.request

        server, tls, headers = connection
        request = urllib.request.Request(server + path, headers=headers)
        handler = urllib.request.HTTPSHandler(context=tls)
        with urllib.request.build_opener(handler).open(request, timeout=30) as response:
            return json.loads(response.read())

    @classmethod
    def observe(cls, connection, props: Mapping[str, Any]) -> tuple[list[str], list[dict]]:
        """The clusters the Placement chose, and the ManifestWorks the replica set made."""
        import urllib.parse

        namespace = props["namespace"]
        placement = urllib.parse.quote(
            f"cluster.open-cluster-management.io/placement={props['placement']}"
        )
        decisions = cls.get_json(
            connection,
            f"/apis/cluster.open-cluster-management.io/v1beta1/namespaces/{namespace}"
            f"/placementdecisions?labelSelector={placement}",
        )
        chosen = [
            d.get("clusterName")
            for item in decisions.get("items") or []
            for d in (item.get("status") or {}).get("decisions") or []
            if d.get("clusterName")
        ]
        owner = urllib.parse.quote(
            f"work.open-cluster-management.io/manifestworkreplicaset="
            f"{namespace}.{props['replicaSet']}"
        )
        works = cls.get_json(
            connection,
            f"/apis/work.open-cluster-management.io/v1/manifestworks?labelSelector={owner}",
        )
        return chosen, list(works.get("items") or [])

    def wait(self, props: Mapping[str, Any], *, clock=None, sleep=None, observe=None):
        """Poll until the rollout is complete (returns the clusters) or stopped (raises)."""
        import time

        clock = clock or time.time
        sleep = sleep or time.sleep
        if observe is None:
            connection = self.connection(props["kubeconfig"], props.get("context"))

            def observe():
                return self.observe(connection, props)

        start = clock()
        clocks: dict[str, float] = {}
        last: dict[str, Any] = {"clusters": {}, "message": ""}
        while True:
            try:
                decisions, works = observe()
            except Exception as err:  # the hub may be briefly unreachable; retry until budget
                decisions, works, error = None, None, err
            else:
                error = None
                last = self.assess(props, decisions, works, clock(), clocks)
                if last["outcome"] == "complete":
                    return last["clusters"]
                if last["outcome"] == "stopped":
                    raise RuntimeError(last["message"])
            if clock() - start >= props["budgetSeconds"]:
                if error is not None:
                    raise RuntimeError(f"the hub's API could not be read: {error}")
                clusters = last["clusters"]
                bad = [n for n, c in clusters.items() if c["state"] in ("failed", "timed out")]
                behind = [n for n, c in clusters.items() if c["state"] == "previous"]
                moving = [
                    n for n, c in clusters.items() if c["state"] in ("applying", "progressing")
                ]
                message = self.describe(props["revision"], clusters, bad, behind, moving, False)
                if not clusters:
                    message = (
                        "the Placement chose no cluster: are the clusters joined and available?"
                    )
                raise RuntimeError(f"gave up after {props['budgetSeconds']} s: " + message)
            sleep(props["pollSeconds"])

    # -- the dynamic provider interface ----------------------------------------------------------

    def outputs(self, props: Mapping[str, Any], clusters: Mapping[str, Any]) -> dict[str, Any]:
        public = {k: v for k, v in props.items() if k != "kubeconfig"}
        return {**public, "clusters": dict(clusters)}

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]):
        keys = sorted((set(olds) | set(news)) - {"kubeconfig", "clusters", "__provider"})
        changed = [k for k in keys if olds.get(k) != news.get(k)]
        return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=[])

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        clusters = self.wait(props)
        return pulumi.dynamic.CreateResult(
            id_=f"{props['namespace']}/{props['replicaSet']}", outs=self.outputs(props, clusters)
        )

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]):
        return pulumi.dynamic.UpdateResult(outs=self.outputs(news, self.wait(news)))


def rollout_budget_seconds(
    *,
    clusters: int,
    canary: int,
    max_concurrency: int | str,
    progress_deadline: str,
    min_success_time: str,
) -> int:
    """An upper bound of a healthy rollout's length: each step may take up to progressDeadline
    and then soaks minSuccessTime; the canaries are one step, the rest ceil(n / maxConcurrency)
    steps. Plus ten minutes for the agents and the first image pulls."""
    import math

    rest = max(clusters - canary, 0)
    if isinstance(max_concurrency, str):
        per_step = max(1, math.ceil(float(max_concurrency[:-1]) / 100 * rest))
    else:
        per_step = max(1, max_concurrency)
    steps = 1 + math.ceil(rest / per_step)
    seconds = RolloutStatusProvider.seconds
    return steps * (seconds(progress_deadline) + seconds(min_success_time)) + 600


@dataclass(frozen=True, kw_only=True)
class RolloutStatusArgs:
    hub_kubeconfig: pulumi.Input[str]
    """Admin kubeconfig of the main cluster (a secret; never in an output)."""
    hub_context: str | None
    """Its context, for a main cluster of `cloud: existing`."""
    namespace: pulumi.Input[str]
    replica_set: pulumi.Input[str]
    placement: pulumi.Input[str]
    revision: str
    """The template digest every chosen cluster's ManifestWork must carry."""
    revision_label: str
    canary: Sequence[str]
    max_failures: int | str
    progress_deadline: str
    budget_seconds: int
    poll_seconds: int = 10


class _by_value:
    """Makes dill pickle the provider class and its methods by value, as it does for objects of
    `__main__`; anything of an importable module it pickles by reference."""

    def _members(self) -> list[Any]:
        members: list[Any] = [RolloutStatusProvider]
        for value in vars(RolloutStatusProvider).values():
            members.append(getattr(value, "__func__", value))
        return [m for m in members if hasattr(m, "__module__") and callable(m)]

    def __enter__(self) -> None:
        self.saved = [(m, m.__module__) for m in self._members()]
        for member, _ in self.saved:
            member.__module__ = "__main__"

    def __exit__(self, *_: object) -> None:
        for member, module in self.saved:
            member.__module__ = module


class RolloutStatus(pulumi.dynamic.Resource, module="ocm-fleet", name="RolloutStatus"):
    """Created or updated whenever what the clusters run changes; its `clusters` output says,
    per chosen cluster, the revision and images it runs, its state and its Deployments'
    available replicas."""

    clusters: pulumi.Output[dict[str, Any]]

    def __init__(self, name: str, args: RolloutStatusArgs, opts: pulumi.ResourceOptions):
        with _by_value():
            self._register(name, args, opts)

    def _register(self, name: str, args: RolloutStatusArgs, opts: pulumi.ResourceOptions) -> None:
        super().__init__(
            RolloutStatusProvider(),
            name,
            {
                "kubeconfig": pulumi.Output.secret(args.hub_kubeconfig),
                "context": args.hub_context,
                "namespace": args.namespace,
                "replicaSet": args.replica_set,
                "placement": args.placement,
                "revision": args.revision,
                "revisionLabel": args.revision_label,
                "canary": list(args.canary),
                "maxFailures": args.max_failures,
                "progressDeadline": args.progress_deadline,
                "budgetSeconds": args.budget_seconds,
                "pollSeconds": args.poll_seconds,
                "clusters": None,
            },
            pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(additional_secret_outputs=["kubeconfig"])
            ),
        )
