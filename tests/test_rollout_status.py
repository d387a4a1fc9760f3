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


def assess(works, decisions=CLUSTERS, **props):
    return RolloutStatusProvider.assess({**PROPS, **props}, decisions, works, NOW)


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
    works = [work("app-a", progressing="True", since=601, base=now), work("app-b", "old9876")]
    with StandInHub(CLUSTERS, works) as hub:
        props = {**PROPS, "kubeconfig": hub.kubeconfig(), "budgetSeconds": 30}
        with pytest.raises(RuntimeError, match=r"failed: app-a \(timed out"):
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
    (tmp_path / "case.json").write_text(json.dumps([PROPS, CLUSTERS, works, NOW]))
    script = (
        "import base64, json, sys, dill\n"
        "assert not any('rollout' in p for p in sys.path[1:] if 'site-packages' not in p)\n"
        "provider = dill.loads(base64.b64decode(open('provider').read()))\n"
        "props, decisions, works, now = json.load(open('case.json'))\n"
        "print(json.dumps(provider.assess(props, decisions, works, now)))\n"
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
    assert json.loads(done.stdout) == RolloutStatusProvider.assess(PROPS, CLUSTERS, works, NOW)
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
