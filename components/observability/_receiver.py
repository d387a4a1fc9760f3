"""Renders the HAProxy config of the remote-write receiver: TLS and basic auth in front of the
main cluster's Prometheus, for the app clusters' agents only."""

from __future__ import annotations

import re
from collections.abc import Iterable

from components.observability._prometheus import WRITE_PATH

LISTEN_PORT = 8443
"""TLS port inside the pod; the receiver's LoadBalancer maps 443 to it."""
CERT_DIR = "/usr/local/etc/haproxy-tls"
CERT_FILE = "receiver.pem"
"""Certificate then private key, one PEM file, as HAProxy's `crt` wants it."""
HEALTHZ_PATH = "/healthz"
USERLIST = "agents"


def password_variable(cluster: str) -> str:
    """The environment variable carrying a cluster's password into the receiver pod."""
    return "AGENT_PASSWORD_" + re.sub(r"[^A-Z0-9]", "_", cluster.upper())


def render_receiver_config(clusters: Iterable[str], *, upstream: str) -> str:
    """``haproxy.cfg`` of the receiver, one user per app cluster.

    Passwords are not in the text: HAProxy expands ``"${VAR}"`` when it loads the config, and
    each variable comes from the receiver's Secret, so the config stays a plain ConfigMap. Only
    ``POST /api/v1/write`` is forwarded: the agents need nothing else from the hub, and
    Prometheus's query API and UI stay inside the main cluster. ``upstream`` is host:port of the
    main cluster's Prometheus.
    """
    names = sorted(set(clusters))
    if not names:
        raise ValueError("the receiver needs at least one app cluster")
    users = "\n".join(
        f'    user {name} insecure-password "${{{password_variable(name)}}}"' for name in names
    )
    return f"""\
# Remote-write receiver of the fleet's metrics: TLS, basic auth, one user per app cluster.
# Rendered by components/observability/_receiver.py; edit the renderer, not this.

global
    log stdout format raw local0
    maxconn 1024
    # Modern clients only: the agents are Prometheus builds with Go's TLS stack.
    ssl-default-bind-options ssl-min-ver TLSv1.2

defaults
    mode http
    log global
    option httplog
    option dontlognull
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 30s

# Passwords are compared as given; they live only in the pod's environment, from a Secret.
userlist {USERLIST}
{users}

frontend remote_write
    bind :{LISTEN_PORT} ssl crt {CERT_DIR}/{CERT_FILE}
    monitor-uri {HEALTHZ_PATH}
    http-request deny deny_status 404 unless {{ path {WRITE_PATH} }} METH_POST
    http-request auth realm ocm-fleet-metrics unless {{ http_auth({USERLIST}) }}
    default_backend prometheus

# Prometheus's Service name resolves at run time; the receiver starts even before it exists.
resolvers cluster-dns
    parse-resolv-conf
    resolve_retries 3
    timeout resolve 2s
    timeout retry 1s
    hold valid 10s

backend prometheus
    server prometheus {upstream} resolvers cluster-dns init-addr last,libc,none
"""
