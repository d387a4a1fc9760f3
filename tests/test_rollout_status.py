"""The rollout status resource: its judgement of stand-in hub API answers, its polling loop,
its HTTP client against a loopback stand-in of the hub, its serialization, its graph place."""

from __future__ import annotations

import base64
import datetime
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import yaml
from conftest import FLEETS, fleet_graph
from harness import contains_plain, is_secret

from components.app.rollout import REVISION_LABEL
from components.app.rollout_status import (
    ROLLOUT_STATUS_TYPE,
    RolloutStatusProvider,
    _by_value,
    rollout_budget_seconds,
)

NOW = 1_800_000_000.0
PROPS: dict[str, Any] = {
    "kubeconfig": "set per test",
    "namespace": "ocm-fleet",
    "replicaSet": "bookstore",
    "placement": "bookstore",
    "revision": "new1234",
    "revisionLabel": REVISION_LABEL,
    "canary": ["app-a"],
    "maxFailures": 0,
    "progressDeadline": "10m",
    "budgetSeconds": 3600,
    "pollSeconds": 10,
}
CLUSTERS = ["app-a", "app-b", "app-c"]


def stamp(seconds_ago: float, base: float = NOW) -> str:
    moment = datetime.datetime.fromtimestamp(base - seconds_ago, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def work(
    cluster: str,
    revision: str = "new1234",
    *,
    progressing: str | None = "False",
    degraded: str | None = None,
    since: float = 60,
    observed: int = 3,
    available: int = 2,
    base: float = NOW,
) -> dict[str, Any]:
    """A ManifestWork as the hub returns it: generation 3, conditions as the agent sets them."""
    conditions = [
        {"type": "Applied", "status": "True", "observedGeneration": observed},
    ]
    if progressing is not None:
        conditions.append(
            {
                "type": "Progressing",
                "status": progressing,
                "observedGeneration": observed,
                "lastTransitionTime": stamp(since, base),
                "message": "rolling out" if progressing == "True" else "all available",
            }
        )
    if degraded is not None:
        conditions.append({"type": "Degraded", "status": degraded, "observedGeneration": observed})
    return {
        "metadata": {
            "name": f"bookstore-{cluster[-1]}",
            "namespace": cluster,
            "generation": 3,
            "labels": {REVISION_LABEL: revision},
        },
        "spec": {
            "workload": {
                "manifests": [
                    {
                        "kind": "Deployment",
                        "metadata": {"name": "shopapi"},
                        "spec": {
                            "template": {
                                "spec": {"containers": [{"name": "shopapi", "image": "s:1.1"}]}
                            }
                        },
                    }
                ]
            }
        },
        "status": {
            "conditions": conditions,
            "resourceStatus": {
                "manifests": [
                    {
                        "resourceMeta": {"kind": "Deployment", "name": "shopapi"},
                        "statusFeedback": {
                            "values": [
                                {"name": "Replicas", "fieldValue": {"integer": 2}},
                                {"name": "AvailableReplicas", "fieldValue": {"integer": available}},
                            ]
                        },
                    }
                ]
            },
        },
    }


def first_seen_at_transition(works) -> dict[str, float]:
    """Deadline clocks as a wait holds them that saw each work's generation reported when its
    Progressing condition last changed, as on a work's first generation."""
    clocks = {}
    for w in works:
        progressing = RolloutStatusProvider.condition(w, "Progressing")
        if progressing is not None:
            clocks[RolloutStatusProvider.clock_key(w)] = RolloutStatusProvider.parse_time(
                progressing["lastTransitionTime"]
            )
    return clocks


def assess(works, decisions=CLUSTERS, **props):
    clocks = first_seen_at_transition(works)
    return RolloutStatusProvider.assess({**PROPS, **props}, decisions, works, NOW, clocks)


def test_every_cluster_on_the_new_revision_and_not_progressing_is_complete():
    result = assess([work(c) for c in CLUSTERS])
    assert result["outcome"] == "complete"
    assert {c["state"] for c in result["clusters"].values()} == {"succeeded"}
    assert result["clusters"]["app-b"]["images"] == {"shopapi": "s:1.1"}
    assert result["clusters"]["app-b"]["deployments"] == {"shopapi": "2/2"}
    assert result["clusters"]["app-b"]["revision"] == "new1234"


def test_the_canary_still_progressing_keeps_the_rollout_running():
    result = assess([work("app-a", progressing="True", since=30), work("app-b", "old9876")])
    assert result["outcome"] == "running"
    assert result["clusters"]["app-a"]["state"] == "progressing"
    assert result["clusters"]["app-b"]["state"] == "previous"
    assert result["clusters"]["app-c"]["state"] == "previous", "no work yet: nothing reached it"


def test_a_canary_past_its_deadline_stops_the_rollout_and_names_everyone():
    works = [
        work("app-a", progressing="True", since=601, available=1),
        work("app-b", "old9876"),
        work("app-c", "old9876"),
    ]
    result = assess(works, maxFailures=5)
    assert result["outcome"] == "stopped", "canaries tolerate no failure, whatever maxFailures"
    message = result["message"]
    assert "the rollout of revision new1234 stopped" in message
    assert "failed: app-a (timed out: rolling out; deployments {'shopapi': '1/2'})" in message
    assert "still on the previous version: app-b (revision old9876), app-c (revision old9876)" in (
        message
    )
    assert "revert the change" in message


def test_a_degraded_cluster_counts_as_failed_before_its_deadline():
    works = [work("app-a"), work("app-b", progressing="True", degraded="True", since=5)]
    result = assess(works, decisions=["app-a", "app-b", "app-c"])
    assert result["clusters"]["app-b"]["state"] == "failed"
    assert result["outcome"] == "stopped", "one failure beyond maxFailures 0 stops the rollout"
    assert "failed: app-b (failed" in result["message"]
    assert "still on the previous version: app-c (no app yet)" in result["message"]


def test_failures_within_max_failures_let_the_rollout_go_on():
    works = [work("app-a"), work("app-b", progressing="True", since=601), work("app-c", "old9876")]
    assert assess(works, maxFailures=1)["outcome"] == "running"
    assert assess(works, maxFailures="50%")["outcome"] == "running", "50% of 3 rounds up to 2"
    assert assess(works, maxFailures=0)["outcome"] == "stopped"


def test_a_rollout_that_ends_with_a_tolerated_failure_did_not_complete():
    works = [work("app-a"), work("app-b", progressing="True", since=601), work("app-c")]
    result = assess(works, maxFailures=1)
    assert result["outcome"] == "stopped"
    assert "did not complete" in result["message"]
    assert "failed: app-b (timed out" in result["message"]


def test_a_halted_rollout_waits_for_clusters_still_within_their_deadline():
    works = [
        work("app-a"),
        work("app-b", progressing="True", since=601),
        work("app-c", progressing="True", since=10),
    ]
    assert assess(works)["outcome"] == "running", "app-c may still succeed within its deadline"


def test_a_work_the_agent_has_not_caught_up_with_is_still_applying():
    works = [work("app-a", observed=2), work("app-b"), work("app-c")]
    result = assess(works)
    assert result["clusters"]["app-a"]["state"] == "applying"
    assert result["outcome"] == "running"
    no_progressing = [work("app-a", progressing=None), work("app-b"), work("app-c")]
    assert assess(no_progressing)["clusters"]["app-a"]["state"] == "applying"


def test_no_chosen_cluster_is_never_complete():
    assert assess([], decisions=[])["outcome"] == "running"


def test_failure_budget_follows_ocm():
    budget = RolloutStatusProvider.failure_budget
    assert [budget(0, 4), budget(1, 4), budget("25%", 4), budget("30%", 4)] == [0, 1, 1, 2]
    assert budget(9, 4) == 0, "beyond the total, OCM falls back to the default, 0"


def test_budget_covers_every_step():
    # 1 canary step + 4 more clusters one at a time = 5 steps of (10m + 2m), plus 10 minutes.
    budget = rollout_budget_seconds(
        clusters=5, canary=1, max_concurrency=1, progress_deadline="10m", min_success_time="2m"
    )
    assert budget == 5 * 720 + 600
    half = rollout_budget_seconds(
        clusters=5, canary=1, max_concurrency="50%", progress_deadline="10m", min_success_time="0"
    )
    assert half == 3 * 600 + 600


class FakeClock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_wait_polls_until_complete():
    clock = FakeClock()
    answers = iter(
        [
            (CLUSTERS, [work("app-a", progressing="True", since=0)]),
            ConnectionError("hub briefly unreachable"),
            (CLUSTERS, [work("app-a"), work("app-b", progressing="True", since=-20)]),
            (CLUSTERS, [work(c, since=-40) for c in CLUSTERS]),
        ]
    )

    def observe():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    clusters = RolloutStatusProvider().wait(PROPS, clock=clock, sleep=clock.sleep, observe=observe)
    assert set(clusters) == set(CLUSTERS)
    assert clock.now == NOW + 30, "three polls 10 s apart"


def test_wait_raises_the_stopped_message():
    clock = FakeClock()
    works = [work("app-a", progressing="True", degraded="True", since=1)]
    with pytest.raises(RuntimeError, match=r"(?s)stopped.*failed: app-a.*previous version: app-b"):
        RolloutStatusProvider().wait(
            PROPS, clock=clock, sleep=clock.sleep, observe=lambda: (CLUSTERS, works)
        )


def test_wait_gives_up_after_its_budget_naming_where_each_cluster_is():
    clock = FakeClock()
    works = [work("app-a"), work("app-b", progressing="True", since=-10_000)]
    with pytest.raises(RuntimeError) as err:
        RolloutStatusProvider().wait(
            {**PROPS, "budgetSeconds": 60},
            clock=clock,
            sleep=clock.sleep,
            observe=lambda: (CLUSTERS, works),
        )
    message = str(err.value)
    assert message.startswith("gave up after 60 s")
    assert "still progressing: app-b" in message
    assert "still on the previous version: app-c (no app yet)" in message


# --- against a loopback stand-in of the hub's API ------------------------------------------


class StandInHub:
    """Serves PlacementDecisions and ManifestWorks for the label selectors the provider sends."""

    def __init__(self, decisions: list[str], works: list[dict[str, Any]]):
        self.requests: list[tuple[str, dict[str, list[str]], str | None]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlparse(self.path)
                query = parse_qs(url.query)
                hub.requests.append((url.path, query, self.headers.get("Authorization")))
                if url.path.endswith("/placementdecisions"):
                    body = {
                        "items": [
                            {"status": {"decisions": [{"clusterName": c} for c in decisions]}}
                        ]
                    }
                elif url.path == "/apis/work.open-cluster-management.io/v1/manifestworks":
                    body = {"items": works}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StandInHub:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self, token: str = "stand-in-token") -> str:
        host, port = self.server.server_address[:2]
        return yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "hub", "cluster": {"server": f"http://{host}:{port}"}}],
                "users": [{"name": "admin", "user": {"token": token}}],
                "contexts": [{"name": "main", "context": {"cluster": "hub", "user": "admin"}}],
                "current-context": "main",
            }
        )


def test_create_reads_the_hub_by_label_and_keeps_the_kubeconfig_out_of_its_outputs():
    works = [work(c, since=5, base=time.time()) for c in CLUSTERS]
    with StandInHub(CLUSTERS, works) as hub:
        props = {**PROPS, "kubeconfig": hub.kubeconfig(), "context": "main", "budgetSeconds": 30}
        result = RolloutStatusProvider().create(props)
    assert result.id == "ocm-fleet/bookstore"
    assert "kubeconfig" not in result.outs, "the kubeconfig must not become a plain output"
    assert set(result.outs["clusters"]) == set(CLUSTERS)
    paths = {path: query for path, query, _ in hub.requests}
    decisions = (
        "/apis/cluster.open-cluster-management.io/v1beta1/namespaces/ocm-fleet/placementdecisions"
    )
    assert paths[decisions]["labelSelector"] == [
        "cluster.open-cluster-management.io/placement=bookstore"
    ]
    assert paths["/apis/work.open-cluster-management.io/v1/manifestworks"]["labelSelector"] == [
        "work.open-cluster-management.io/manifestworkreplicaset=ocm-fleet.bookstore"
    ]
    assert {auth for *_, auth in hub.requests} == {"Bearer stand-in-token"}


def test_update_fails_with_the_message_when_the_hub_shows_a_stopped_rollout():
    now = time.time()
    works = [
        work("app-a", progressing="True", degraded="True", since=601, base=now),
        work("app-b", "old9876"),
    ]
    with StandInHub(CLUSTERS, works) as hub:
        props = {**PROPS, "kubeconfig": hub.kubeconfig(), "budgetSeconds": 30}
        with pytest.raises(RuntimeError, match=r"failed: app-a \(failed"):
            RolloutStatusProvider().update("ocm-fleet/bookstore", {}, props)


def test_diff_ignores_the_kubeconfig_and_reruns_on_a_new_revision():
    provider = RolloutStatusProvider()
    olds = {k: v for k, v in PROPS.items() if k != "kubeconfig"}
    assert not provider.diff("id", olds, {**PROPS, "kubeconfig": "a new token"}).changes
    assert provider.diff("id", olds, {**PROPS, "revision": "other"}).changes
    assert provider.diff("id", olds, {**PROPS, "canary": ["app-b"]}).changes


def test_client_certificate_kubeconfig_loads(tmp_path):
    """An AKS admin kubeconfig logs in with a client certificate, read from data."""
    key = tmp_path / "k.pem"
    cert = tmp_path / "c.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=t",
         "-keyout", str(key), "-out", str(cert), "-days", "1"],
        capture_output=True, check=False, timeout=60,
    )  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"openssl could not make a test certificate: {made.stderr[-200:]!r}")
    kubeconfig = yaml.safe_dump(
        {
            "clusters": [
                {
                    "name": "c",
                    "cluster": {
                        "server": "https://hub.example.test:443",
                        "certificate-authority-data": base64.b64encode(cert.read_bytes()).decode(),
                    },
                }
            ],
            "users": [
                {
                    "name": "u",
                    "user": {
                        "client-certificate-data": base64.b64encode(cert.read_bytes()).decode(),
                        "client-key-data": base64.b64encode(key.read_bytes()).decode(),
                    },
                }
            ],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x",
        }
    )
    server, tls, headers = RolloutStatusProvider.connection(kubeconfig, None)
    assert server == "https://hub.example.test:443"
    assert "Authorization" not in headers
    assert tls.cert_store_stats()["x509_ca"] == 1


# --- serialized as Pulumi stores it ------------------------------------------------------------


def test_the_serialized_provider_runs_where_this_package_is_not_importable(tmp_path):
    from pulumi.dynamic.dynamic import serialize_provider

    with _by_value():
        blob = serialize_provider(RolloutStatusProvider())
    (tmp_path / "provider").write_text(blob)
    works = [work("app-a", progressing="True", since=601), work("app-b", "old9876")]
    clocks = first_seen_at_transition(works)
    (tmp_path / "case.json").write_text(json.dumps([PROPS, CLUSTERS, works, NOW, clocks]))
    script = (
        "import base64, json, sys, dill\n"
        "assert not any('rollout' in p for p in sys.path[1:] if 'site-packages' not in p)\n"
        "provider = dill.loads(base64.b64decode(open('provider').read()))\n"
        "props, decisions, works, now, clocks = json.load(open('case.json'))\n"
        "print(json.dumps(provider.assess(props, decisions, works, now, clocks)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    expected = RolloutStatusProvider.assess(PROPS, CLUSTERS, works, NOW, dict(clocks))
    assert expected["outcome"] == "stopped", expected
    assert json.loads(done.stdout) == expected
    assert RolloutStatusProvider.__module__ == "components.app.rollout_status", "restored"


# --- on the graph ----------------------------------------------------------------------------


@pytest.mark.parametrize("fleet", list(FLEETS))
@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
def test_status_waits_for_the_replica_set_and_keeps_the_kubeconfig_secret(fleet, preview):
    graph = fleet_graph(fleet, preview)
    (status,) = graph.of_type(ROLLOUT_STATUS_TYPE)
    replica_set = graph.named("app-rollout-replica-set")
    assert graph.depends_on(status, replica_set), f"{status} must come after {replica_set}"
    assert is_secret(status.wire_inputs["kubeconfig"]), f"{status}: kubeconfig must be secret"
    assert status.inputs["revision"] == replica_set.inputs["metadata"]["labels"][REVISION_LABEL]
    assert status.inputs["progressDeadline"] != "None"
    if not preview:
        kubeconfig = status.inputs["kubeconfig"]
        assert kubeconfig and not contains_plain(graph.stack_wire_outputs, kubeconfig)
        app = graph.stack_outputs["app"]
        assert app["revision"] == status.inputs["revision"]
        assert app["images"]["shopapi"].startswith("devteds/demo-bookstore-shopapi:")


def test_provider_module_has_no_side_effects_on_import():
    source = Path(__file__).resolve().parents[1] / "components" / "app" / "rollout_status.py"
    done = subprocess.run(
        [sys.executable, "-c", "import components.app.rollout_status"],
        cwd=source.parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


# --- one rollback, judged by the program and by OCM's own rollout logic, replayed ------------
#
# A replay in Python of how OCM 1.3.1's ManifestWorkReplicaSet controller judges clusters in a
# Progressive rollout with a mandatory decision group (what replica_set_spec renders):
# work/hub/controllers/manifestworkreplicasetcontroller/manifestworkreplicaset_deploy_reconcile.go
# (deployReconciler.reconcile: a work whose spec differs from the template is left out of the
# existing statuses; clusterRolloutStatusFunc, shouldReturnToApply), then sdk-go
# pkg/apis/cluster/v1alpha1/rollout.go (getProgressiveClusters, progressivePerGroup,
# progressivePerCluster, determineRolloutStatus, calculateRecheckTime, calculateRolloutSize).
# Each function below is named after the one it replays.

TO_APPLY, PROGRESSING, SUCCEEDED, FAILED, TIME_OUT = (
    "ToApply",
    "Progressing",
    "Succeeded",
    "Failed",
    "TimeOut",
)


def ocm_condition_ready(cond, generation, require_true):  # isConditionReady
    if cond is None or cond.get("observedGeneration") != generation:
        return False
    return not require_true or cond.get("status") == "True"


def ocm_cluster_rollout_status(w):  # clusterRolloutStatusFunc -> [status, lastTransitionTime]
    find = RolloutStatusProvider.condition
    applied, progressing, degraded = find(w, "Applied"), find(w, "Progressing"), find(w, "Degraded")
    generation = w["metadata"]["generation"]
    if (
        not ocm_condition_ready(applied, generation, True)
        or not ocm_condition_ready(progressing, generation, False)
        or (degraded is not None and degraded.get("observedGeneration") != generation)
    ):  # shouldReturnToApply
        return [TO_APPLY, None]
    stamp_of = RolloutStatusProvider.parse_time
    if progressing["status"] == "True" and (degraded or {}).get("status") == "True":
        return [FAILED, stamp_of(degraded["lastTransitionTime"])]
    if progressing["status"] == "False":
        return [SUCCEEDED, stamp_of(progressing["lastTransitionTime"])]
    return [PROGRESSING, stamp_of(progressing["lastTransitionTime"])]


def ocm_determine_rollout_status(entry, min_success, timeout, now, rollout, timed_out):
    """determineRolloutStatus: entry is [cluster, status, lastTransitionTime], changed in place."""
    _, status, since = entry
    if status == TO_APPLY:
        rollout.append(entry)
    elif status == SUCCEEDED:
        # calculateRecheckTime: from lastTransitionTime, or from now without one.
        if now < (now if since is None else since) + min_success:
            rollout.append(entry)
    elif status != TIME_OUT:
        if now < (now if since is None else since) + timeout:
            rollout.append(entry)
        else:
            entry[1] = TIME_OUT
            timed_out.append(entry)


def ocm_rollout_size(threshold, total, default):  # calculateRolloutSize
    return RolloutStatusProvider.failure_budget(threshold, total) or default


def ocm_progressive(decisions, canary, works, revision, spec, now):
    """getProgressiveClusters: {"rollout": [...], "timed out": [...]} of cluster names."""
    seconds = RolloutStatusProvider.seconds
    min_success, timeout = seconds(spec["minSuccessTime"]), seconds(spec["progressDeadline"])
    # reconcile: only works whose spec equals the template have a status; here the revision
    # label is the template's digest, so equal labels are equal specs.
    current = [
        [w["metadata"]["namespace"], *ocm_cluster_rollout_status(w)]
        for w in works
        if w["metadata"]["labels"][REVISION_LABEL] == revision
        and w["metadata"]["namespace"] in decisions
    ]
    max_failures = ocm_rollout_size(spec["maxFailures"], len(decisions), 0)

    def names(entries):
        return [e[0] for e in entries]

    # progressivePerGroup for the mandatory group, over every cluster's status (not only the
    # group's); getProgressiveClusters stops there if anything is to roll out or timed out.
    rollout, timed_out, existing = [], [], set()
    for entry in [list(e) for e in current]:
        if entry[1] != TO_APPLY:
            ocm_determine_rollout_status(entry, min_success, timeout, now, rollout, timed_out)
            existing.add(entry[0])
    for cluster in sorted(c for c in decisions if c in canary and c not in existing):
        rollout.append([cluster, TO_APPLY, None])
    if rollout or timed_out:
        return {"rollout": names(rollout), "timed out": names(timed_out)}

    # progressivePerCluster over the rest, maxConcurrency at a time.
    rest = sorted(c for c in decisions if c not in canary)
    size = ocm_rollout_size(spec["maxConcurrency"], len(rest), len(rest))
    rollout, timed_out, seen, failures, breach = [], [], set(), 0, False
    for entry in sorted((list(e) for e in current), key=lambda e: e[0]):
        seen.add(entry[0])
        if not breach or entry[1] != TO_APPLY:
            ocm_determine_rollout_status(entry, min_success, timeout, now, rollout, timed_out)
        if entry[1] in (TIME_OUT, FAILED):
            failures += 1
            breach = failures > max_failures
        if len(rollout) >= size:
            return {"rollout": names(rollout), "timed out": names(timed_out)}
    if not breach:
        for cluster in rest:
            if cluster not in seen and len(rollout) < size:
                rollout.append([cluster, TO_APPLY, None])
    return {"rollout": names(rollout), "timed out": names(timed_out)}


OLD, NEW = "old9876", "new1234"
SPEC = {"maxConcurrency": 1, "minSuccessTime": "2m", "progressDeadline": "10m", "maxFailures": 0}


def agent_work(cluster, revision, generation, *, applied, progressing, since):
    """A ManifestWork as the hub stores it: `applied` is the generation the agent has applied,
    `progressing` the Progressing status it reports, `since` its lastTransitionTime."""
    return {
        "metadata": {
            "name": "bookstore",
            "namespace": cluster,
            "generation": generation,
            "labels": {REVISION_LABEL: revision},
        },
        "status": {
            "conditions": [
                {"type": "Applied", "status": "True", "observedGeneration": applied},
                {
                    "type": "Progressing",
                    "status": progressing,
                    "observedGeneration": applied,
                    "lastTransitionTime": stamp(0, since),
                    "message": "rolling out" if progressing == "True" else "all available",
                },
            ]
        },
    }


def hub_at(t: float) -> list[dict[str, Any]]:
    """The hub's ManifestWorks at time t (seconds from NOW) of this story.

    app-a is the canary. app-b has run OLD for an hour. app-c was chosen by the Placement just
    before NEW was shipped (a standby taking over) and has no work yet. At 0 NEW is shipped;
    the canary's new pods never become ready. At 700 the change is reverted: the controller
    puts OLD back on the canary at 710 and the agent applies it at 720, reporting Progressing
    still True while the new pods start, with the transition time of 10 that
    meta.SetStatusCondition kept; at 800 the pods are ready and Progressing turns False.
    """
    settled = agent_work("app-b", OLD, 1, applied=1, progressing="False", since=NOW - 3600)
    works = [settled]
    if t < 10:
        works.append(agent_work("app-a", OLD, 1, applied=1, progressing="False", since=NOW - 3600))
    elif t < 710:
        works.append(agent_work("app-a", NEW, 2, applied=2, progressing="True", since=NOW + 10))
    elif t < 720:
        works.append(agent_work("app-a", OLD, 3, applied=2, progressing="True", since=NOW + 10))
    elif t < 800:
        works.append(agent_work("app-a", OLD, 3, applied=3, progressing="True", since=NOW + 10))
    else:
        works.append(agent_work("app-a", OLD, 3, applied=3, progressing="False", since=NOW + 800))
    # The hub hands app-c its work once the canary has soaked (800 + 2m), at 930; ready at 940.
    if t >= 930:
        works.append(
            agent_work("app-c", OLD, 1, applied=1, progressing=str(t < 940), since=NOW + 940)
        )
    return works


class Recording(RolloutStatusProvider):
    """The provider, noting at every poll its judgement beside OCM's, replayed."""

    def __init__(self) -> None:
        self.polls: list[dict[str, Any]] = []

    def assess(self, props, decisions, works, now, clocks=None):
        result = super().assess(props, decisions, works, now, clocks)
        ocm = ocm_progressive(decisions, props["canary"], works, props["revision"], SPEC, now)
        self.polls.append({"t": now - NOW, "program": result, "ocm": ocm})
        return result


def story_wait(revision: str, start: float) -> tuple[Recording, Any]:
    clock = FakeClock()
    clock.now = NOW + start
    provider = Recording()
    props = {**PROPS, "revision": revision, "canary": ["app-a"], "budgetSeconds": 3600}
    try:
        result = provider.wait(
            props,
            clock=clock,
            sleep=clock.sleep,
            observe=lambda: (CLUSTERS, hub_at(clock.now - NOW)),
        )
    except RuntimeError as err:
        result = err
    return provider, result


def at(provider: Recording, t: float) -> dict[str, Any]:
    [poll] = [p for p in provider.polls if p["t"] == t]
    return poll


def test_a_rollback_after_a_timed_out_canary_completes_while_ocm_recovers_by_itself():
    # 1. NEW: the canary times out, OCM and the program agree, and `up` fails, as it must.
    shipped, outcome = story_wait(NEW, 0)
    assert isinstance(outcome, RuntimeError), f"NEW's rollout must fail `up`, got {outcome}"
    assert "failed: app-a (timed out" in str(outcome), outcome
    last = shipped.polls[-1]
    assert last["t"] == 610, "the deadline ran from the agent's report of generation 2, at 10"
    assert last["ocm"] == {"rollout": [], "timed out": ["app-a"]}, (
        f"OCM must see the canary timed out and hold app-c at t={last['t']}: {last['ocm']}"
    )
    assert all(p["ocm"]["rollout"] in ([], ["app-a"]) for p in shipped.polls), (
        "OCM hands app-b and app-c nothing while the canary is not ready"
    )

    # 2. The revert, OLD, from 700: the program must wait it out and succeed.
    reverted, outcome = story_wait(OLD, 700)
    assert not isinstance(outcome, Exception), f"the rollback must not fail `up`: {outcome}"
    assert {name: c["state"] for name, c in outcome.items()} == dict.fromkeys(
        CLUSTERS, "succeeded"
    ), outcome
    states = {p["t"]: p["program"]["clusters"]["app-a"]["state"] for p in reverted.polls}
    assert states[700] == "previous" and states[710] == "applying", states
    # 3. Progressing stays True with the transition time of 10, 710 s old at 720.
    for t in (720, 750, 790):
        poll = at(reverted, t)
        assert poll["ocm"] == {"rollout": [], "timed out": ["app-a"]}, (
            f"OCM judges the reverted canary by its kept transition time at t={t}: {poll['ocm']}"
        )
        assert poll["program"]["clusters"]["app-a"]["state"] == "progressing", (
            f"the program must give the reverted canary its deadline at t={t}: {poll['program']}"
        )
        assert poll["program"]["outcome"] == "running", poll["program"]
    # 4. Progressing turns False: OCM recovers, soaks the canary, and only then goes on.
    assert at(reverted, 800)["ocm"] == {"rollout": ["app-a"], "timed out": []}
    assert at(reverted, 910)["ocm"] == {"rollout": ["app-a"], "timed out": []}, "still soaking"
    assert at(reverted, 920)["ocm"] == {"rollout": ["app-c"], "timed out": []}, (
        "after the soak OCM gives app-c the rolled-back revision"
    )
    assert at(reverted, 800)["program"]["outcome"] == "running", "app-c has no app yet"
    assert reverted.polls[-1]["t"] == 940, "complete as soon as app-c is ready"


def test_ocm_replay_follows_the_mandatory_group_and_the_failure_budget():
    """The replay's own checks, on cases its source states outright."""
    fresh = ocm_progressive(CLUSTERS, ["app-a"], [], OLD, SPEC, NOW)
    assert fresh == {"rollout": ["app-a"], "timed out": []}, "canaries first"
    ready = [
        agent_work(c, OLD, 1, applied=1, progressing="False", since=NOW - 3600)
        for c in ("app-a", "app-b")
    ]
    assert ocm_progressive(CLUSTERS, ["app-a"], ready, OLD, SPEC, NOW)["rollout"] == ["app-c"]
    half = {**SPEC, "maxConcurrency": "100%"}
    assert ocm_progressive(CLUSTERS, ["app-a"], ready[:1], OLD, half, NOW)["rollout"] == [
        "app-b",
        "app-c",
    ], "a percentage of the clusters after the canaries"
    soaking = agent_work("app-b", OLD, 1, applied=1, progressing="False", since=NOW - 60)
    assert ocm_progressive(CLUSTERS, ["app-a"], [ready[0], soaking], OLD, SPEC, NOW) == {
        "rollout": ["app-b"],
        "timed out": [],
    }, "a cluster within minSuccessTime holds its slot"
    stuck = agent_work("app-b", OLD, 1, applied=1, progressing="True", since=NOW - 601)
    for budget in (0, 1):
        # The mandatory group's pass judges every cluster, so a timed-out one after the
        # canaries ends the pass there, whatever maxFailures says.
        assert ocm_progressive(
            CLUSTERS, ["app-a"], [ready[0], stuck], OLD, {**SPEC, "maxFailures": budget}, NOW
        ) == {"rollout": [], "timed out": ["app-b"]}, f"maxFailures {budget}"
