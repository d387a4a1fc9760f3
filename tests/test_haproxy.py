"""The HAProxy configs (public load balancer and each cluster's router) load in real HAProxy.

Golden files live in tests/golden/. After an intended change to the renderer, rewrite them with

    UPDATE_GOLDEN=1 .venv/bin/pytest -q tests/test_haproxy.py

and review the diff like code. The `haproxy -c` tests need the `haproxy` binary (Debian package
`haproxy`) and are skipped without it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from components.edge._haproxy import (
    BACKEND,
    EDGE_PORT,
    ENTRY_HEALTH_PATH,
    FAILOVER_BUDGET_S,
    HEALTHZ_PATH,
    LISTEN_PORT,
    METRICS_PATH,
    METRICS_PORT,
    render_public_lb_config,
)

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
ROUTER_MANIFEST = ROOT / "manifests" / "router.yaml"
UPDATE_GOLDEN = os.environ.get("UPDATE_GOLDEN") == "1"
HAPROXY = shutil.which("haproxy")
needs_haproxy = pytest.mark.skipif(
    HAPROXY is None,
    reason="haproxy binary not found: install the Debian package `haproxy` to check configs",
)

# Fleets mix IPv4 addresses with hostnames; the hostnames do not resolve here, which is the case
# `init-addr last,libc,none` exists for.
FLEETS: dict[str, dict[str, str]] = {
    "1-cluster": {"app-aws": "a1b2c3d4e5f6-0123456789.eu-west-1.elb.amazonaws.com"},
    "2-clusters": {
        "app-azure": "20.61.12.34",
        "app-aws": "a1b2c3d4e5f6-0123456789.eu-west-1.elb.amazonaws.com",
    },
    "5-clusters": {
        "app-aws": "a1b2c3d4e5f6-0123456789.eu-west-1.elb.amazonaws.com",
        "app-aws-us": "k8s-bookstore-router-0f1e2d3c4b.elb.us-east-1.amazonaws.com",
        "app-azure": "20.61.12.34",
        "app-azure-asia": "52.187.1.2",
        "kind-1": "edge.kind-1.example.internal.",
    },
}
ROUTER_NAMESPACE = "bookstore"

# Where each path must go on the router.
ROUTES = {
    "/": "website",
    "/index.html": "website",
    "/shopping": "website",
    "/apis": "website",
    "/shop": "shopui",
    "/shop/": "shopui",
    "/shop/js/app.js": "shopui",
    "/api": "shopapi",
    "/api/books": "shopapi",
    "/api/books/1": "shopapi",
}


# --- helpers: a small reader of HAProxy's config format ---------------------------------------


def sections(text: str) -> dict[tuple[str, str], list[list[str]]]:
    """Map (section keyword, section name) to its lines, each split into tokens."""
    heads = {"global", "defaults", "frontend", "backend", "listen", "resolvers", "peers"}
    result: dict[tuple[str, str], list[list[str]]] = {}
    current: list[list[str]] | None = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        tokens = line.split()
        if tokens[0] in heads and not raw[:1].isspace():
            key = (tokens[0], tokens[1] if len(tokens) > 1 else "")
            assert key not in result, f"section {key} is declared twice"
            current = result.setdefault(key, [])
        else:
            assert current is not None, f"line outside any section: {raw!r}"
            current.append(tokens)
    return result


def named(secs: dict[tuple[str, str], list[list[str]]], kind: str) -> dict[str, list[list[str]]]:
    return {name: lines for (k, name), lines in secs.items() if k == kind}


def seconds(value: str) -> float:
    """An HAProxy duration in seconds; a bare number is milliseconds."""
    match = re.fullmatch(r"(\d+)(us|ms|s|m|h|d)?", value)
    assert match, f"not an HAProxy duration: {value!r}"
    unit = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1e-3}
    return int(match[1]) * unit[match[2]]


def option_value(tokens: list[str], keyword: str) -> str | None:
    """The value after the last occurrence of a keyword in a server or default-server line."""
    value = None
    for i, token in enumerate(tokens[:-1]):
        if token == keyword:
            value = tokens[i + 1]
    return value


def servers(text: str) -> dict[str, dict[str, list[str]]]:
    """backend -> server name -> effective tokens (defaults' and backend's default-server first,
    then the server line, so later tokens win as they do in HAProxy)."""
    secs = sections(text)
    defaults = [t for lines in named(secs, "defaults").values() for t in lines]
    base = [tok for t in defaults if t[0] == "default-server" for tok in t[1:]]
    result: dict[str, dict[str, list[str]]] = {}
    for backend, lines in named(secs, "backend").items():
        own = [tok for t in lines if t[0] == "default-server" for tok in t[1:]]
        result[backend] = {t[1]: [*base, *own, *t[3:]] for t in lines if t[0] == "server"}
        for t in lines:
            if t[0] == "server":
                result[backend][t[1]].insert(0, t[2])  # the address comes first
    return result


def timeout(text: str, backend: str, which: str) -> float:
    """A backend's `timeout <which>`, falling back to the defaults section."""
    secs = sections(text)
    found = None
    for lines in (*named(secs, "defaults").values(), named(secs, "backend")[backend]):
        for t in lines:
            if t[:2] == ["timeout", which]:
                found = seconds(t[2])
    assert found is not None, f"backend {backend} has no `timeout {which}`"
    return found


def failover_seconds(text: str, backend: str, tokens: list[str]) -> float:
    """inter * fall + timeout check, from the rendered text (HAProxy's defaults: 2s and 3)."""
    inter = seconds(option_value(tokens, "inter") or "2s")
    fall = int(option_value(tokens, "fall") or "3")
    return inter * fall + timeout(text, backend, "check")


def haproxy_check(text: str, tmp_path: Path, env: dict[str, str] | None = None) -> None:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(text)
    run = subprocess.run(
        [HAPROXY or "haproxy", "-c", "-f", str(cfg)],
        capture_output=True,
        text=True,
        # Unresolvable edge names are looked up through libc once at check time; a slow or
        # absent resolver must not stretch the test.
        env={**os.environ, "RES_OPTIONS": "timeout:1 attempts:1", **(env or {})},
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, (
        f"haproxy -c rejected the config (exit {run.returncode}):\n{run.stdout}\n{run.stderr}"
    )


def router_config() -> str:
    objects = [o for o in yaml.safe_load_all(ROUTER_MANIFEST.read_text()) if o]
    found = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "router"]
    assert len(found) == 1, "manifests/router.yaml must hold exactly one ConfigMap `router`"
    return found[0]["data"]["haproxy.cfg"]


def route(text: str, path: str) -> str:
    """The backend the router's frontend picks for a path (acl path / path_beg, use_backend)."""
    (frontend,) = named(sections(text), "frontend").values()
    acls: dict[str, list[tuple[str, str]]] = {}
    for t in frontend:
        if t[0] == "acl":
            assert t[2] in {"path", "path_beg"}, f"this reader does not know acl {t}"
            acls.setdefault(t[1], []).extend((t[2], v) for v in t[3:])
    for t in frontend:
        if t[0] == "use_backend":
            assert t[2] == "if" and len(t) == 4, f"this reader does not know {t}"
            for kind, value in acls[t[3]]:
                if (kind == "path" and path == value) or (
                    kind == "path_beg" and path.startswith(value)
                ):
                    return t[1]
    defaults = [t[1] for t in frontend if t[0] == "default_backend"]
    assert len(defaults) == 1, "the frontend needs exactly one default_backend"
    return defaults[0]


# --- public load balancer ---------------------------------------------------------------------


@needs_haproxy
@pytest.mark.parametrize("fleet", FLEETS, ids=str)
def test_public_config_loads_in_haproxy(fleet: str, tmp_path: Path) -> None:
    haproxy_check(render_public_lb_config(FLEETS[fleet]), tmp_path)


@needs_haproxy
def test_haproxy_check_rejects_a_broken_config(tmp_path: Path) -> None:
    broken = render_public_lb_config(FLEETS["1-cluster"]) + "    no-such-keyword 1\n"
    with pytest.raises(AssertionError, match="haproxy -c rejected"):
        haproxy_check(broken, tmp_path)


@pytest.mark.parametrize("fleet", FLEETS, ids=str)
def test_one_checked_server_per_app_cluster(fleet: str) -> None:
    upstreams = FLEETS[fleet]
    text = render_public_lb_config(upstreams)
    backends = servers(text)
    assert list(backends) == ["app_clusters"], "all app clusters belong in one backend"
    got = backends["app_clusters"]
    assert list(got) == sorted(upstreams), "one server per app cluster, sorted by name"
    for name, tokens in got.items():
        assert tokens[0] == f"{upstreams[name]}:{EDGE_PORT}", f"server {name}: wrong address"
        line = next(x for x in text.splitlines() if x.split()[:2] == ["server", name])
        assert "check" in line.split(), f"server {name} must be health-checked: {line!r}"
    assert text.count("\n    server ") == len(upstreams)


@pytest.mark.parametrize("fleet", FLEETS, ids=str)
def test_simple_failover_bound_is_within_the_budget(fleet: str) -> None:
    """inter * fall + timeout check; bench/failover.py measures the real worst cases."""
    text = render_public_lb_config(FLEETS[fleet])
    for backend, by_name in servers(text).items():
        for name, tokens in by_name.items():
            budget = failover_seconds(text, backend, tokens)
            assert budget <= FAILOVER_BUDGET_S, (
                f"server {name}: inter * fall + timeout check = {budget}s > {FAILOVER_BUDGET_S}s"
            )
            assert int(option_value(tokens, "rise") or "2") >= 2, (
                f"server {name}: one lucky check must not bring a flapping cluster back"
            )


@pytest.mark.parametrize("health_path", ["/api/books", "/status"])
def test_health_check_is_get_of_the_health_path_expecting_200(health_path: str) -> None:
    text = render_public_lb_config(FLEETS["2-clusters"], health_path=health_path)
    backend = named(sections(text), "backend")["app_clusters"]
    assert ["option", "httpchk"] in backend
    assert ["http-check", "send", "meth", "GET", "uri", health_path] in backend
    assert ["http-check", "expect", "status", "200"] in backend
    assert ["balance", "roundrobin"] in backend


def test_hostnames_reresolve_at_runtime_and_never_block_loading() -> None:
    text = render_public_lb_config(FLEETS["5-clusters"])
    secs = sections(text)
    for name, tokens in servers(text)["app_clusters"].items():
        resolvers = option_value(tokens, "resolvers")
        assert resolvers is not None, f"server {name} has no resolvers"
        assert ["parse-resolv-conf"] in named(secs, "resolvers")[resolvers]
        assert option_value(tokens, "init-addr") == "last,libc,none", f"server {name}"
        assert option_value(tokens, "resolve-prefer") == "ipv4", f"server {name}"


def test_listens_unprivileged_logs_to_stdout_and_answers_its_own_probe() -> None:
    secs = sections(render_public_lb_config(FLEETS["1-cluster"]))
    frontend = named(secs, "frontend")["public"]
    assert ["bind", f":{LISTEN_PORT}"] in frontend and LISTEN_PORT > 1024
    assert ["monitor-uri", HEALTHZ_PATH] in frontend
    assert ["log", "stdout", "format", "raw", "local0"] in secs[("global", "")]
    defaults = secs[("defaults", "")]
    for which in ("connect", "client", "server", "check", "http-request"):
        assert any(t[:2] == ["timeout", which] for t in defaults), f"no `timeout {which}`"


def test_entry_health_is_on_the_public_port_and_fails_without_a_server_up() -> None:
    secs = sections(render_public_lb_config(FLEETS["2-clusters"]))
    frontend = named(secs, "frontend")["public"]
    returns = [t for t in frontend if t[:2] == ["http-request", "return"]]
    failing = [t for t in returns if option_value(t, "status") == "503"]
    assert len(failing) == 1, f"public frontend: one 503 rule for the entry health, got {returns}"
    condition = " ".join(failing[0][failing[0].index("if") + 1 :])
    assert condition == f"{{ path {ENTRY_HEALTH_PATH} }} {{ nbsrv({BACKEND}) lt 1 }}", condition
    assert BACKEND in named(secs, "backend"), f"backend {BACKEND} is not rendered"
    # The 503 rule must come before the 200 one: HAProxy stops at the first matching return.
    ok = [t for t in returns if option_value(t, "status") == "200"]
    assert len(ok) == 1 and returns.index(failing[0]) < returns.index(ok[0]), returns
    assert ENTRY_HEALTH_PATH != HEALTHZ_PATH, "the pods' probe must not fail with the backends"


def test_exporter_has_a_frontend_of_its_own_off_the_public_port() -> None:
    secs = sections(render_public_lb_config(FLEETS["2-clusters"]))
    frontends = named(secs, "frontend")
    assert set(frontends) == {"public", "metrics"}
    exporter = frontends["metrics"]
    assert ["bind", f":{METRICS_PORT}"] in exporter and METRICS_PORT != LISTEN_PORT
    assert [
        "http-request", "use-service", "prometheus-exporter", "if", "{", "path", METRICS_PATH, "}"
    ] in exporter  # fmt: skip
    assert not any("prometheus-exporter" in t for line in frontends["public"] for t in line), (
        "the public frontend must not serve the exporter"
    )


def test_public_config_matches_golden_file() -> None:
    golden = GOLDEN / "haproxy-public-2-clusters.cfg"
    text = render_public_lb_config(FLEETS["2-clusters"])
    if UPDATE_GOLDEN:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"{golden} is missing: run with UPDATE_GOLDEN=1 to create it"
    assert text == golden.read_text(), (
        f"the rendered config differs from {golden.name}; if intended, regenerate with "
        "UPDATE_GOLDEN=1 and review the diff"
    )


def test_output_does_not_depend_on_mapping_order() -> None:
    fleet = FLEETS["5-clusters"]
    reordered = dict(reversed(list(fleet.items())))
    assert list(reordered) != list(fleet)
    assert render_public_lb_config(reordered) == render_public_lb_config(fleet)


def test_empty_fleet_is_refused() -> None:
    with pytest.raises(ValueError, match="the fleet has no app clusters"):
        render_public_lb_config({})


@pytest.mark.parametrize(
    "name", ["App-AWS", "app_aws", "-app", "app-", "app.aws", "", "a" * 64, "app aws"]
)
def test_cluster_name_must_be_a_dns1123_label(name: str) -> None:
    with pytest.raises(ValueError, match=rf"app cluster name {re.escape(repr(name))} is not"):
        render_public_lb_config({"app-ok": "10.0.0.1", name: "10.0.0.2"})


@pytest.mark.parametrize("address", ["", " ", "10.0.0.1 ", "lb.example.com\n", "a b"])
def test_empty_or_whitespace_address_is_refused(address: str) -> None:
    with pytest.raises(
        ValueError, match=r"of app cluster 'app-aws' is empty or contains whitespace"
    ):
        render_public_lb_config({"app-aws": address})


@pytest.mark.parametrize(
    "address", ["lb.example.com:80", "10.0.0.256", "2001:db8::1", "http://lb.example.com", "-lb"]
)
def test_address_must_be_an_ipv4_address_or_a_hostname(address: str) -> None:
    with pytest.raises(ValueError, match=rf"{re.escape(repr(address))} of app cluster 'app-aws'"):
        render_public_lb_config({"app-aws": address})


def test_health_path_must_be_absolute() -> None:
    with pytest.raises(ValueError, match="health_path 'api/books'"):
        render_public_lb_config({"app-aws": "10.0.0.1"}, health_path="api/books")


# --- router (manifests/router.yaml) -----------------------------------------------------------


@needs_haproxy
def test_router_config_loads_in_haproxy(tmp_path: Path) -> None:
    haproxy_check(router_config(), tmp_path, env={"POD_NAMESPACE": ROUTER_NAMESPACE})


@pytest.mark.parametrize(("path", "backend"), ROUTES.items())
def test_router_routes_by_path(path: str, backend: str) -> None:
    assert route(router_config(), path) == backend, f"router: {path} must go to {backend}"


def test_router_servers_are_checked_and_fail_over_within_budget() -> None:
    text = router_config()
    backends = servers(text)
    assert set(backends) == set(ROUTES.values())
    for backend, by_name in backends.items():
        assert len(by_name) == 1, f"router backend {backend}: one server (its Service)"
        for name, tokens in by_name.items():
            line = next(x for x in text.splitlines() if x.split()[:2] == ["server", name])
            assert "check" in line.split(), f"router server {name} must be health-checked"
            budget = failover_seconds(text, backend, tokens)
            assert budget <= FAILOVER_BUDGET_S, f"router server {name}: {budget}s"


def test_router_resolves_fully_qualified_service_names_at_runtime() -> None:
    text = router_config()
    secs = sections(text)
    for backend, by_name in servers(text).items():
        for name, tokens in by_name.items():
            host = tokens[0].strip('"').rsplit(":", 1)[0]
            # HAProxy's resolver ignores resolv.conf's search list: short names never resolve.
            assert host == f"{name}.${{POD_NAMESPACE}}.svc.cluster.local", f"{backend}/{name}"
            resolvers = option_value(tokens, "resolvers")
            assert resolvers and ["parse-resolv-conf"] in named(secs, "resolvers")[resolvers]
            assert option_value(tokens, "init-addr") == "last,libc,none", f"{backend}/{name}"


def test_router_health_checks_reach_the_database() -> None:
    backend = named(sections(router_config()), "backend")["shopapi"]
    assert ["http-check", "send", "meth", "GET", "uri", "/api/books"] in backend
    assert ["http-check", "expect", "status", "200"] in backend


def test_router_listens_on_8080_and_answers_healthz() -> None:
    secs = sections(router_config())
    (frontend,) = named(secs, "frontend").values()
    assert ["bind", ":8080"] in frontend
    assert ["monitor-uri", "/healthz"] in frontend
    assert ["log", "stdout", "format", "raw", "local0"] in secs[("global", "")]
