"""Renders the HAProxy config of the remote-write receiver: TLS and basic auth in front of the
main cluster's Prometheus, for the app clusters' agents only."""

from __future__ import annotations

from collections.abc import Mapping

from components.observability._prometheus import WRITE_PATH

LISTEN_PORT = 8443
"""TLS port, inside the pod and on the receiver's LoadBalancer."""
CONFIG_DIR = "/usr/local/etc/haproxy"
SECRET_DIR = "/usr/local/etc/haproxy-secret"
"""Where the receiver's Secret is mounted: the certificate and the userlist."""
CERT_FILE = "receiver.pem"
"""Certificate then private key, one PEM file, as HAProxy's `crt` wants it."""
HEALTHZ_PATH = "/healthz"
USERLIST = "agents"


USERS_FILE = "users.cfg"
"""The userlist, one user per app cluster with its password: a file from the receiver's Secret,
loaded as HAProxy's second config file so that no password is in the ConfigMap or in an
environment variable."""


def render_userlist(passwords: Mapping[str, str]) -> str:
    """The userlist file: one user per app cluster (the agent's basic-auth user name).

    ``insecure-password`` means the password is compared as stored, not as a crypt(3) hash:
    the file never leaves the Secret, and hashing each request's password would cost CPU for
    no gain here.
    """
    if not passwords:
        raise ValueError("the receiver needs at least one app cluster")
    users = "\n".join(
        f"    user {name} insecure-password {passwords[name]}" for name in sorted(passwords)
    )
    return f"userlist {USERLIST}\n{users}\n"


def render_receiver_config(*, upstream: str) -> str:
    """``haproxy.cfg`` of the receiver; the userlist comes from a second file (USERS_FILE).

    Only ``POST /api/v1/write`` is forwarded: the agents need nothing else from the hub, and
    Prometheus's query API and UI stay inside the main cluster. ``upstream`` is host:port of the
    main cluster's Prometheus.
    """
    return f"""\
# Remote-write receiver of the fleet's metrics: TLS, basic auth, one user per app cluster.
# Rendered by components/observability/_receiver.py; edit the renderer, not this.
# The userlist `{USERLIST}` is in {SECRET_DIR}/{USERS_FILE}, from a Secret.

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

frontend remote_write
    bind :{LISTEN_PORT} ssl crt {SECRET_DIR}/{CERT_FILE}
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
