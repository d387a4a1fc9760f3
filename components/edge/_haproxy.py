"""Renders the HAProxy configuration of the main cluster's public load balancer."""

from __future__ import annotations

import re
from collections.abc import Mapping

from components._addresses import is_ipv4

# An app cluster's name becomes an HAProxy server name and a Kubernetes resource name.
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# One label of a DNS hostname (RFC 1123; cloud load balancer names are plain ASCII).
_HOSTNAME_LABEL = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?$")

LISTEN_PORT = 8080
"""Port the public load balancer listens on inside its pod: above 1024, so HAProxy runs as the
image's non-root user; the program's LoadBalancer Service maps port 80 to it."""

EDGE_PORT = 80
"""Port of every app cluster's edge (the router's LoadBalancer Service)."""

METRICS_PORT = 8405
"""Port of HAProxy's built-in Prometheus exporter inside the pod: a frontend of its own, scraped
from inside the main cluster and never published by the public Service."""


METRICS_PATH = "/metrics"

HEALTHZ_PATH = "/healthz"
"""Answered by HAProxy itself (``monitor-uri``), for the load balancer pod's own probes."""

ENTRY_HEALTH_PATH = "/entry-healthz"
"""Answered by HAProxy itself on the public port: 200 while at least one app cluster is up, 503
once none is. The health-checked DNS name in front of the entries (components/edge/dns.py)
probes it, so that DNS never sends users to an entry that cannot serve."""

BACKEND = "app_clusters"

# Health-check tuning; render_public_lb_config's docstring explains each value.
CHECK_INTER_S = 2
CHECK_FASTINTER_S = 1
CHECK_DOWNINTER_S = 2
CHECK_FALL = 3
CHECK_RISE = 2
CHECK_TIMEOUT_S = 2
CONNECT_TIMEOUT_S = 1
FAILOVER_BUDGET_S = 10
"""The most seconds a dead app cluster may stay in rotation."""

_RESOLVERS = "cluster-dns"


def failover_bound_seconds() -> int:
    """The simple failover estimate, ``inter * fall + timeout check``, in seconds."""
    return CHECK_INTER_S * CHECK_FALL + CHECK_TIMEOUT_S


def _validate_upstreams(upstreams: Mapping[str, str]) -> None:
    if not upstreams:
        raise ValueError(
            "the fleet has no app clusters: the public load balancer needs at least one upstream"
        )
    for name, address in upstreams.items():
        if not isinstance(name, str) or not _DNS1123_LABEL.match(name):
            raise ValueError(
                f"app cluster name {name!r} is not a DNS-1123 label "
                "(lowercase letters, digits and '-', at most 63 characters, "
                "starting and ending with a letter or digit)"
            )
        if not isinstance(address, str) or not address or any(c.isspace() for c in address):
            raise ValueError(
                f"edge address {address!r} of app cluster {name!r} is empty or contains whitespace"
            )
        if not is_ipv4(address) and not _is_hostname(address):
            raise ValueError(
                f"edge address {address!r} of app cluster {name!r} is neither an IPv4 address "
                f"nor a DNS hostname (give the address alone: the port is always {EDGE_PORT})"
            )


def _is_hostname(address: str) -> bool:
    host = address.removesuffix(".")
    if not host or len(host) > 253:
        return False
    labels = host.split(".")
    # All-numeric dotted names are malformed IPv4 addresses, not hostnames.
    if all(label.isdigit() for label in labels):
        return False
    return all(_HOSTNAME_LABEL.match(label) for label in labels)


def render_public_lb_config(
    upstreams: Mapping[str, str], *, health_path: str = "/api/books"
) -> str:
    """Return the ``haproxy.cfg`` of the public load balancer on the main cluster.

    ``upstreams`` maps each app cluster's name to its edge address (an IPv4 address or a DNS
    hostname such as an AWS load balancer name), always on port 80. The result has one
    ``server`` per app cluster in a single ``roundrobin`` backend, sorted by cluster name so the
    text (and therefore the ConfigMap) does not change when the mapping's order does.

    Every server is health-checked with ``GET <health_path>`` expecting status 200. The default,
    ``/api/books``, crosses the whole path of a cluster (edge, router, shopapi, database), so a
    cluster is taken out when any part of it fails.

    Failover budget: about 10 s from a cluster's death to its removal. A dead cluster shows up
    in one of three ways, and each check ends accordingly:

    - its edge no longer answers (nodes or cloud LB gone): the TCP connect times out after
      ``timeout connect`` 1 s (a cross-cloud handshake takes well under a second);
    - the edge accepts but nothing behind it answers: the check gives up after ``timeout check``
      2 s (a healthy ``/api/books`` answers in well under a second; 2 s rather than 1 s leaves
      room for a busy Rails so that load alone does not push clusters out one after another);
    - something answers with an error (the router's 503 when shopapi is unready because the
      database is unreachable): at once.

    Checks run every ``inter`` 2 s while a server is up and every ``fastinter`` 1 s once one has
    failed; ``fall`` 3 consecutive failures mark it DOWN. ``fall`` is 3 rather than 1 so that one
    lost packet does not drop a healthy cluster. Worst cases, counting from the death (at most
    one ``inter`` before the next check) and adding each check's duration: unreachable edge
    2 + 1 + 1 + 1 + 1 + 1 = 7 s; silent backend 2 + 2 + 1 + 2 + 1 + 2 = 10 s; error answers about
    4 s. The simple bound ``inter * fall + timeout check`` = 8 s is what the tests check against
    the 10 s budget. A recovered cluster returns after ``rise`` 2 good checks ``downinter`` 2 s
    apart (about 4 s): quick, yet one lucky answer from a flapping cluster is not enough.

    Requests caught between a death and its DOWN mark are retried once on another cluster
    (``retries 1`` with ``option redispatch``): those that cannot connect, and, for GET and HEAD
    only, those that get no answer, a garbled one, or a 502, 503 or 504 (``retry-on``; a POST or
    PUT is never sent twice). Users thus see no error while a cluster is on its way out.
    ``on-marked-down shutdown-sessions`` is deliberately not set: it also kills a request that
    is being retried elsewhere when its first cluster is marked DOWN (seen when the config is
    run against a dying stand-in cluster), and plain HTTP requests to a dead cluster end by
    themselves within the timeouts.

    Hostnames are resolved at runtime through the pod's nameservers (``parse-resolv-conf``) and
    re-resolved while HAProxy runs, so a cloud load balancer whose IPs change keeps working.
    ``init-addr last,libc,none`` lets the config load even when a name does not resolve yet; such
    a server simply waits, out of rotation, until DNS answers. ``resolve-prefer ipv4`` because the
    edges are reached over IPv4.

    The public frontend also answers ``ENTRY_HEALTH_PATH`` itself: 503 while ``nbsrv`` of the
    backend (its servers that are UP) is below 1, else 200. A DNS name in front of the entries
    probes it; a dead last cluster fails it within the budget above, after which it takes the
    DNS service's own probes to move users (docs/public-entry.md).

    Raises ``ValueError`` when the fleet is empty, when a cluster name is not a DNS-1123 label,
    or when an address is empty, contains whitespace, or is neither an IPv4 address nor a
    hostname.
    """
    _validate_upstreams(upstreams)
    if not health_path.startswith("/") or any(c.isspace() for c in health_path):
        raise ValueError(f"health_path {health_path!r} must be an absolute path without spaces")

    servers = "\n".join(
        f"    server {name} {upstreams[name]}:{EDGE_PORT} check" for name in sorted(upstreams)
    )
    return f"""\
# Public load balancer of the bookstore fleet: one server per app cluster edge.
# Rendered by components/edge/_haproxy.py (render_public_lb_config); edit the renderer, not this.

global
    # Container logging: everything to stdout, nothing written to disk.
    log stdout format raw local0
    # Without a limit HAProxy sizes itself from the container's file-descriptor limit, which can
    # be huge; this bounds its memory.
    maxconn 4096

defaults
    mode http
    log global
    option httplog
    option dontlognull
    option forwardfor
    # A request that fails on a cluster is retried once on another, which covers the seconds
    # between a cluster's death and its DOWN mark (the backend limits it to GET and HEAD).
    retries 1
    option redispatch
    retry-on conn-failure empty-response junk-response 502 503 504
    # Cross-cloud handshakes take well under a second; fail fast and retry elsewhere.
    timeout connect {CONNECT_TIMEOUT_S}s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout queue 5s
    # Read timeout of a health check; part of the failover budget (see the renderer).
    timeout check {CHECK_TIMEOUT_S}s

resolvers {_RESOLVERS}
    parse-resolv-conf
    resolve_retries 3
    timeout resolve 2s
    timeout retry 1s
    hold valid 10s
    # A cloud load balancer's address that left DNS keeps serving for a while.
    hold obsolete 30s

# The built-in Prometheus exporter (per server: state, checks, requests, response codes and
# times). A separate frontend on its own port, so the public Service, which maps only port 80
# to {LISTEN_PORT}, never exposes it; the main cluster's Prometheus scrapes the pods directly.
frontend metrics
    bind :{METRICS_PORT}
    no log
    http-request use-service prometheus-exporter if {{ path {METRICS_PATH} }}
    http-request deny

frontend public
    bind :{LISTEN_PORT}
    monitor-uri {HEALTHZ_PATH}
    # The entry's own health, for the DNS health checks in front of it: it fails as soon as no
    # app cluster is up. {HEALTHZ_PATH} stays 200 then, because it is the pods' liveness and
    # readiness probe and an entry without clusters is not a broken pod.
    http-request return status 503 content-type text/plain string "no app cluster is up" \
if {{ path {ENTRY_HEALTH_PATH} }} {{ nbsrv({BACKEND}) lt 1 }}
    http-request return status 200 content-type text/plain string "ok" \
if {{ path {ENTRY_HEALTH_PATH} }}
    default_backend {BACKEND}

backend {BACKEND}
    balance roundrobin
    # The failure drill (scripts/drill.py) asks which cluster answered; nobody else is told.
    http-request set-var(txn.drill) req.hdr(x-ocm-fleet-drill)
    http-response set-header X-Served-By %s if {{ var(txn.drill) -m found }}
    option httpchk
    http-check send meth GET uri {health_path}
    http-check expect status 200
    # Only a request that is safe to send twice is retried after it reached a cluster.
    http-request disable-l7-retry unless METH_GET
    # A dead cluster is out within about {FAILOVER_BUDGET_S}s (worst cases: see the renderer):
    # inter {CHECK_INTER_S}s * fall {CHECK_FALL} + timeout check {CHECK_TIMEOUT_S}s = \
{failover_bound_seconds()}s.
    default-server inter {CHECK_INTER_S}s fastinter {CHECK_FASTINTER_S}s \
downinter {CHECK_DOWNINTER_S}s fall {CHECK_FALL} rise {CHECK_RISE}
    # Hostnames re-resolve at runtime; a name that does not resolve yet does not stop the load.
    default-server resolvers {_RESOLVERS} init-addr last,libc,none resolve-prefer ipv4
{servers}
"""
