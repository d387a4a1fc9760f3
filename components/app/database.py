"""The bookstore's MariaDB on the main cluster, reachable only from the app clusters' egress IPs."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import pulumi_tls as tls

from components import images
from components._addresses import is_ip
from components.app import replication
from components.clusters._base import FleetCluster
from components.lifecycle.previous_run import (
    CLUSTER_DEFAULT,
    ZONE_REDUNDANT,
    default_database_storage,
    union_of_egress,
)
from components.security import network_policies as netpol
from components.security import pod_security
from components.security.certificates import signed_server_certificate

DATABASE_TYPE = "ocm-fleet:index:Database"

NAMESPACE = "bookstore-data"
# MariaDB 11.4 is a long-term-support series. Its default authentication plugin,
# mysql_native_password, is the one the shopapi's 2019 mysql2 client library can speak.
MARIADB_IMAGE = "mariadb:11.4.8"
SHOPAPI_IMAGE = "devteds/demo-bookstore-shopapi:1.0"
PORT = 3306
DB_NAME = "bookstore"
DB_USER = "appuser"
# Two app users take turns: rotation N sets a new password on DB_USERS[N % 2] only, so the
# user of rotation N-1, which pods not yet restarted still use, keeps working. Rotating again
# before the previous rollout completed would reset the user those pods hold.
DB_USERS = (DB_USER, "appuser2")
MARIADB_UID = 999  # the image's mysql user
CLAIM = {CLUSTER_DEFAULT: "mariadb-data", ZONE_REDUNDANT: "mariadb-data-zrs"}
"""The data claim's name per disk kind. A claim's class cannot change in place, and a claim
of the same name would be deleted before its successor exists, which the pod still mounting it
blocks; a new name lets the new claim come first and the old one go last (docs/day-2.md,
stacks from before the cloud-path changes: moving the database to a zone-redundant disk)."""
ZONE_REDUNDANT_CLASS = "ocm-fleet-zone-redundant"
# Standard SSD like AKS's default class (managed-csi), but ZRS: the disk is replicated over the
# region's three zones and attaches to a node in any of them, where an LRS disk attaches only
# in its own zone (AKS docs, "Use the Azure Disk CSI driver", zone-redundant storage).
# WaitForFirstConsumer: the disk is made once the pod is scheduled, as the built-in classes do.
ZONE_REDUNDANT_SKU = "StandardSSD_ZRS"
GP3_CLASS = "ocm-fleet-gp3"
"""The storage class of the data on an EKS home (hub.standby on aws)."""
SEED_GUARD = Path(__file__).with_name("seed_guard.sh")
"""Shell and SQL that decide whether the database may be seeded; the Job's init container runs
this file's text, and tests/test_seed_guard.py runs the same text against a real MariaDB."""
SEED_DECISION_DIR = "/run/seed-decision"
SEED_DECISION_FILE = f"{SEED_DECISION_DIR}/decision"
GUARD_PASSWORD_DIR = "/run/seed-guard"
# The seed (db/seeds.rb) starts with Book.destroy_all: it may only run on the guard's `seed`.
# Without a decision the step fails before migrating, so nothing is seeded on a guess.
SCHEMA_COMMAND = (
    'decision=$(cat "$SEED_DECISION_FILE") && bundle exec rails db:migrate && '
    'if [ "$decision" = seed ]; then bundle exec rails db:seed; '
    'else echo "schema: the database holds books; not seeding (the seed deletes them)"; fi'
)
CREDENTIALS_DIR = "/run/secrets/mariadb"
"""Where MariaDB and the rotation Job read the passwords, as files."""
ROOT_CLIENT_CONFIG = "root-client.cnf"
"""Secret key: a client option file logging in as root, so no password is in an environment."""
LABELS = {"app.kubernetes.io/name": "mariadb", "app.kubernetes.io/part-of": "bookstore"}
SCHEMA_JOB_LABELS = {
    "app.kubernetes.io/name": "bookstore-schema",
    "app.kubernetes.io/part-of": "bookstore",
}
ROTATION_JOB_LABELS = {
    "app.kubernetes.io/name": "mariadb-password-rotation",
    "app.kubernetes.io/part-of": "bookstore",
}
HOMES = ("main", "standby")
"""The database's homes with a second home: the main cluster, and `hub.standby`."""
SERVER_IDS = {"main": 1, "standby": 2}
"""server_id per home: GTIDs name the server that wrote them, so each home has its own."""
REPLICATION_PASSWORD_KEY = "REPLICATION_PASSWORD"
SCRIPTS_DIR = "/etc/mysql/replication"
"""Where the sidecar finds replication.sh (the ConfigMap)."""
SERVER_OPTIONS_PATH = "/etc/mysql/conf.d/replication.cnf"
"""The image's my.cnf includes /etc/mysql/conf.d/: replication.cnf is read from there."""
TLS_DIR = "/etc/mysql/tls"
TLS_CA, TLS_CERT, TLS_KEY = "ca.pem", "server-cert.pem", "server-key.pem"
REPLICATION_CREDENTIALS_DIR = "/run/secrets/replication"
HOLD_SECONDS = 30
"""How long one `hold` waits before `serve` tries again: bounded, so the sidecar stops on
SIGTERM within the pod's grace period rather than waiting in a step."""
HOME_ROLE_FILE = f"{SEED_DECISION_DIR}/home"
"""Where the schema Job's first step writes `primary` or `replica` for the steps after it."""


def home_guard(login: str, what: str) -> str:
    """Shell that waits until the home's server is the primary (writable: prints `primary`) or
    a replica (its replication threads run: prints `replica`). `login` is the client options.

    With a second home every home runs the Jobs, and only the primary's act: their inputs do
    not depend on `database.primary`, so a promotion creates, deletes or re-runs no Job, on the
    main cluster least of all; and a replica's Job, which would write a transaction of its own
    and split its history from the primary's, does nothing.
    """
    query = (
        "SELECT @@global.read_only, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
        "WHERE VARIABLE_NAME = 'SLAVE_RUNNING'"
    )
    return (
        "while :; do "
        f'state=$(mariadb {login} --batch --skip-column-names --execute="{query}") || state=; '
        'case "$state" in '
        "0*) echo primary; break ;; "
        "*ON) echo replica; break ;; "
        "esac; "
        f'echo "{what}: waiting for this home to be the primary (writable) or a replica" >&2; '
        "sleep 5; done"
    )


APP_LOGIN = '--host="$DB_HOST" --port="$DB_PORT" --user="$DB_USER"'
WAIT_FOR_ROLE = (
    'MYSQL_PWD="$(cat "$DB_PASSWORD_FILE")" && export MYSQL_PWD && '
    f'role=$({home_guard(APP_LOGIN, "schema")}) && printf %s "$role" > "$HOME_ROLE_FILE"'
)
"""The schema Job's first step with a second home: the primary starts read-only and turns
writable only once the replica follows it (replication.sh `hold`), or once promoted."""
SCHEMA_ON_A_HOME = (
    'if [ "$(cat "$HOME_ROLE_FILE")" = replica ]; then '
    'echo "schema: this home replicates the primary, whose Job migrates"; exit 0; fi && '
    + SCHEMA_COMMAND
)


def home_roles(primary: str) -> dict[str, str]:
    """The `replication.sh serve` role of each home (see replication.py, "Roles in the graph")."""
    if primary == "main":
        return {"main": "primary", "standby": "replica"}
    return {"main": "replica", "standby": "promoted"}


IN_CLUSTER_NAMES = [
    "mariadb",
    f"mariadb.{NAMESPACE}",
    f"mariadb.{NAMESPACE}.svc",
    f"mariadb.{NAMESPACE}.svc.cluster.local",
]
"""Names the server certificate carries besides its load balancer's address."""
FIRST_START_SQL = Path(__file__).with_name("first_start.sql")
"""Run by the image's entrypoint on an empty data directory only: starts the binlog empty."""
FIRST_START_PATH = "/docker-entrypoint-initdb.d/first-start.sql"
REPLICATION_FILES = {
    "replication.cnf": replication.SERVER_OPTIONS.read_text(),
    "replication.sh": replication.SCRIPT.read_text(),
    "first-start.sql": FIRST_START_SQL.read_text(),
}
"""The ConfigMap on each home: the server options and the steps, as tests run them."""


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _Volume:
    claim: k8s.core.v1.PersistentVolumeClaim
    storage: pulumi.Output[str]

    @property
    def metadata(self):
        return self.claim.metadata


@dataclass(frozen=True, kw_only=True)
class ReplicationPod:
    """What one home's MariaDB pod needs to take its part in replication."""

    role: str
    """`replication.sh serve` role: primary, promoted or replica (home_roles)."""
    server_id: int
    peer_host: pulumi.Input[str]
    """The other home's database load balancer address: the primary, for a replica."""
    tls_secret: pulumi.Input[str]
    config_map: pulumi.Input[str]
    certificate: pulumi.Input[str]
    """The server certificate (PEM, public): its digest restarts the pod when it is renewed."""
    password: pulumi.Input[str]
    """The replication password (secret): only its digest reaches the pod template, so a
    rotation restarts the pod and `grant` sets the new one."""


@dataclass(frozen=True, kw_only=True)
class DatabaseEndpoint:
    """How app clusters reach the database on the main cluster."""

    host: pulumi.Output[str]
    """Address of the database's allowlisted LoadBalancer (IP or DNS name)."""
    port: int
    name: str
    user: str
    """The app user of the current password generation (see DB_USERS)."""
    password: pulumi.Output[str]
    """The app user's password (secret)."""
    password_generation: int = 0
    """How many times the password was rotated; pods that read it restart when it changes."""


@dataclass(frozen=True, kw_only=True)
class DatabaseArgs:
    hub_cluster: FleetCluster
    """The main cluster the database runs on."""
    allowed_cidrs: pulumi.Input[Sequence[str]]
    """Who may connect: the app clusters' egress addresses. Never 0.0.0.0/0."""
    protect_data: bool = False
    """Protect the volume claim: Pulumi then refuses to delete or replace it."""
    storage_gb: int = 20
    """Size of the data volume."""
    password_rotation: int = 0
    """Bump to generate a new app password and roll it out (see docs/data.md, "Rotating")."""
    storage: str = CLUSTER_DEFAULT
    """`zoneRedundant` (a StorageClass of the program's, StandardSSD_ZRS) or `clusterDefault`
    (the cluster's default class): `lifecycle.previous_run.default_database_storage`."""
    storage_checked: pulumi.Input[str] | None = None
    """`storage` once checked against the stack's history
    (`lifecycle.previous_run.checked_database_storage`); the volume and its class wait for it."""
    standby_home: FleetCluster | None = None
    """The second home (`hub.standby`): a MariaDB there replicates from the primary, and either
    may be the primary. None: one database, on the main cluster, as before."""
    primary: str = "main"
    """`database.primary`: `main` or `standby`, the home whose MariaDB takes the writes."""


class Database(pulumi.ComponentResource):
    """Creates, on the main cluster:

    - a namespace; the root and app passwords (`random.RandomPassword`, generated once, kept in
      state as secrets) and the Secret holding them;
    - on a hub with zone-redundant storage, a StorageClass of StandardSSD_ZRS disks;
    - the data PersistentVolumeClaim, owned by Pulumi so it can be protected, and a one-replica
      MariaDB StatefulSet that mounts it;
    - a headless Service (the StatefulSet's, used by jobs on the main cluster) and a
      LoadBalancer Service whose
      `loadBalancerSourceRanges` are the app clusters' egress addresses;
    - the schema Job: `rails db:migrate`, and `rails db:seed` only while the database holds no
      book (the seed deletes every book first), decided by an init container's SQL;
    - after a password rotation, a Job that sets the new password on the app user whose turn
      it is (DB_USERS alternate), creating that user on first use.
    """

    endpoint: DatabaseEndpoint
    """What app clusters need to connect (the password is a secret Output)."""
    schema_job: k8s.batch.v1.Job
    """Completes once the schema exists; the app's ManifestWorks wait for it."""
    ready: list[pulumi.Resource]
    """Everything the app must wait for: schema, and the password set on the database."""
    addresses: dict[str, pulumi.Output[str]]
    """Each home's database LoadBalancer address (IP or DNS name), keyed by cluster name: the
    main cluster's, and with a second home its own too. `endpoint.host` is the primary's."""

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(DATABASE_TYPE, name, None, opts)
        if args.standby_home is not None:
            self._two_homes(name, args, args.standby_home)
            self.register_outputs({"host": self.endpoint.host, "addresses": self.addresses})
            return
        on_hub = pulumi.ResourceOptions(parent=self, provider=args.hub_cluster.provider)

        def after(*deps: pulumi.Resource, **extra) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions.merge(
                on_hub, pulumi.ResourceOptions(depends_on=list(deps), **extra)
            )

        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=pod_security.namespace_metadata(NAMESPACE, pod_security.DATABASE, LABELS),
            opts=on_hub,
        )
        ns = namespace.metadata.name
        # Letters and digits only: the password passes through shell and SQL quoting unharmed.
        root_password = random.RandomPassword(
            f"{name}-root-password",
            length=32,
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        app_password = random.RandomPassword(
            f"{name}-app-password",
            length=32,
            special=False,
            keepers={"rotation": str(args.password_rotation)},
            opts=pulumi.ResourceOptions(parent=self),
        )
        credentials = k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata={"name": "mariadb-credentials", "namespace": ns, "labels": LABELS},
            type="Opaque",
            string_data={
                "MARIADB_ROOT_PASSWORD": root_password.result,
                "MARIADB_PASSWORD": app_password.result,
                # The shopapi image reads its password from a file of this name.
                "DB_PASSWORD": app_password.result,
                ROOT_CLIENT_CONFIG: root_password.result.apply(
                    lambda password: f"[client]\nuser=root\npassword={password}\n"
                ),
            },
            opts=on_hub,
        )
        checked = pulumi.Output.from_input(
            args.storage_checked if args.storage_checked is not None else args.storage
        )
        self.storage: pulumi.Output[str] = checked
        """`zoneRedundant` or `clusterDefault`: the disk the data is on."""
        storage_class = (
            self._zone_redundant_class(name, on_hub, checked)
            if args.storage == ZONE_REDUNDANT
            else None
        )
        volume = _data_claim(
            f"{name}-data",
            namespace,
            CLAIM[args.storage],
            checked,
            storage_class,
            args,
            args.hub_cluster,
            on_hub,
        )
        # Headless: the StatefulSet's governing Service, and the one Pulumi does not wait on
        # for endpoints (a selector Service would wait for pods the StatefulSet has yet to make).
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata={"name": "mariadb", "namespace": ns, "labels": LABELS},
            spec={
                "clusterIP": "None",
                "selector": LABELS,
                "ports": [{"name": "mysql", "port": PORT, "targetPort": "mysql"}],
            },
            opts=on_hub,
        )
        # Pods start after their policies: a Job whose egress is not yet allowed would fail.
        policies = netpol.declare(name, database_policies(ns, args.allowed_cidrs), on_hub)
        statefulset = k8s.apps.v1.StatefulSet(
            f"{name}-mariadb",
            metadata={"name": "mariadb", "namespace": ns, "labels": LABELS},
            spec=mariadb_spec(volume.metadata.name, credentials.metadata.name),
            opts=after(service, volume, credentials, *policies),
        )
        public = k8s.core.v1.Service(
            f"{name}-public",
            metadata={"name": "mariadb-public", "namespace": ns, "labels": LABELS},
            spec={
                "type": "LoadBalancer",
                "selector": LABELS,
                # The NetworkPolicy matches the app clusters' egress addresses, so they must
                # reach the pod unchanged (see docs/security.md, "Network policies").
                "externalTrafficPolicy": "Local",
                "ports": [{"name": "mysql", "port": PORT, "targetPort": "mysql"}],
                "loadBalancerSourceRanges": args.allowed_cidrs,
            },
            opts=after(statefulset),
        )
        public_address = args.hub_cluster.load_balancer_address(public)
        proxied = []
        if args.hub_cluster.load_balancers_proxy:
            # MariaDB sees its load balancer's own address (FleetCluster.load_balancers_proxy).
            proxied = netpol.declare(
                name,
                [
                    netpol.policy(
                        "mariadb-from-load-balancer",
                        ns,
                        {"matchLabels": LABELS},
                        ingress=[
                            {
                                "from": public_address.apply(netpol.load_balancer_peers),
                                "ports": netpol.tcp(PORT),
                            }
                        ],
                    )
                ],
                on_hub,
            )
        in_cluster_host = pulumi.Output.concat("mariadb.", ns, ".svc.cluster.local")
        user = app_user(args.password_rotation)
        rotation = []
        if args.password_rotation > 0:
            # Before the schema Job: that Job logs in as this generation's user, whose password
            # only this Job sets. The rotation creates the user if need be, so MariaDB is enough.
            rotation = [
                k8s.batch.v1.Job(
                    f"{name}-password-rotation-{args.password_rotation}",
                    metadata={
                        "name": f"mariadb-password-rotation-{args.password_rotation}",
                        "namespace": ns,
                        "labels": LABELS,
                    },
                    spec=rotation_job_spec(in_cluster_host, credentials.metadata.name, user),
                    opts=after(statefulset, credentials, *policies),
                )
            ]
        self.schema_job = k8s.batch.v1.Job(
            f"{name}-schema",
            metadata={"name": "bookstore-schema", "namespace": ns, "labels": LABELS},
            spec=schema_job_spec(in_cluster_host, credentials.metadata.name, user),
            opts=after(
                statefulset,
                *policies,
                *rotation,
                custom_timeouts=pulumi.CustomTimeouts(create="20m"),
            ),
        )
        # The app clusters connect once these exist.
        self.ready = [self.schema_job, *rotation, *proxied]

        self.endpoint = DatabaseEndpoint(
            host=public_address,
            port=PORT,
            name=DB_NAME,
            user=app_user(args.password_rotation),
            password=pulumi.Output.secret(app_password.result),
            password_generation=args.password_rotation,
        )
        self.addresses = {args.hub_cluster.name: public_address}
        self.register_outputs({"host": self.endpoint.host})

    def _two_homes(self, name: str, args: DatabaseArgs, standby: FleetCluster) -> None:
        """The database on both homes, each able to be the primary (replication.py says how
        the roles are assigned). Every object of a home is made with that home's provider;
        the Secrets go to each cluster directly, never through OCM."""
        clusters = {"main": args.hub_cluster, "standby": standby}
        other = {"main": "standby", "standby": "main"}
        # The main home's objects keep the names they have without a second home.
        prefixes = {"main": name, "standby": f"{name}-{standby.name}"}
        roles = home_roles(args.primary)
        child = pulumi.ResourceOptions(parent=self)
        on = {
            home: pulumi.ResourceOptions(parent=self, provider=cluster.provider)
            for home, cluster in clusters.items()
        }

        def after(home: str, *deps: pulumi.Resource, **extra) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions.merge(
                on[home], pulumi.ResourceOptions(depends_on=list(deps), **extra)
            )

        root_password = random.RandomPassword(
            f"{name}-root-password", length=32, special=False, opts=child
        )
        app_password = random.RandomPassword(
            f"{name}-app-password",
            length=32,
            special=False,
            keepers={"rotation": str(args.password_rotation)},
            opts=child,
        )
        # Letters and digits (replication.sh checks): it goes inside SQL string literals. It
        # rotates with the app's password; each home's `grant` sets the new one at its next
        # start, which the changed Secret's pod-template digest brings about.
        replication_password = random.RandomPassword(
            f"{name}-replication-password",
            length=32,
            special=False,
            keepers={"rotation": str(args.password_rotation)},
            opts=child,
        )
        ca_key = tls.PrivateKey(
            f"{name}-replication-ca-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child
        )
        ca = tls.SelfSignedCert(
            f"{name}-replication-ca",
            private_key_pem=ca_key.private_key_pem,
            is_ca_certificate=True,
            subject={"common_name": "ocm-fleet database CA", "organization": "ocm-fleet"},
            validity_period_hours=10 * 365 * 24,
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            opts=child,
        )
        # Who may connect to each home: the app clusters, and the other home, whose replica
        # reaches this one from its egress addresses when this one is the primary.
        allowed = {
            home: union_of_egress(args.allowed_cidrs, clusters[other[home]].egress_cidrs)
            for home in HOMES
        }
        namespaces, credentials, volumes, services, policies, publics, addresses = (
            {} for _ in range(7)
        )
        for home in HOMES:
            prefix, cluster = prefixes[home], clusters[home]
            namespace = k8s.core.v1.Namespace(
                f"{prefix}-namespace",
                metadata=pod_security.namespace_metadata(NAMESPACE, pod_security.DATABASE, LABELS),
                opts=on[home],
            )
            namespaces[home] = namespace
            ns = namespace.metadata.name
            credentials[home] = k8s.core.v1.Secret(
                f"{prefix}-credentials",
                metadata={"name": "mariadb-credentials", "namespace": ns, "labels": LABELS},
                type="Opaque",
                string_data={
                    "MARIADB_ROOT_PASSWORD": root_password.result,
                    "MARIADB_PASSWORD": app_password.result,
                    "DB_PASSWORD": app_password.result,
                    ROOT_CLIENT_CONFIG: root_password.result.apply(
                        lambda password: f"[client]\nuser=root\npassword={password}\n"
                    ),
                    REPLICATION_PASSWORD_KEY: replication_password.result,
                },
                opts=on[home],
            )
            volumes[home] = self._home_volume(prefix, home, cluster, namespace, args, on[home])
            services[home] = k8s.core.v1.Service(
                f"{prefix}-service",
                metadata={"name": "mariadb", "namespace": ns, "labels": LABELS},
                spec={
                    "clusterIP": "None",
                    "selector": LABELS,
                    "ports": [{"name": "mysql", "port": PORT, "targetPort": "mysql"}],
                },
                opts=on[home],
            )
            policies[home] = netpol.declare(prefix, database_policies(ns, allowed[home]), on[home])
            annotations = {
                # Made before MariaDB, whose certificate names this address: wait for the
                # cloud load balancer's address only, not for pods that do not exist yet.
                "pulumi.com/waitFor": "jsonpath={.status.loadBalancer.ingress[0]}",
            }
            if cluster.cloud == "aws":
                # A Network Load Balancer passes the client address through, so the source
                # ranges and the NetworkPolicy see the clients' egress addresses.
                annotations["service.beta.kubernetes.io/aws-load-balancer-type"] = "nlb"
            publics[home] = k8s.core.v1.Service(
                f"{prefix}-public",
                metadata={
                    "name": "mariadb-public",
                    "namespace": ns,
                    "labels": LABELS,
                    "annotations": annotations,
                },
                spec={
                    "type": "LoadBalancer",
                    "selector": LABELS,
                    "externalTrafficPolicy": "Local",
                    "ports": [{"name": "mysql", "port": PORT, "targetPort": "mysql"}],
                    "loadBalancerSourceRanges": allowed[home],
                },
                opts=after(home, namespace),
            )
            addresses[home] = cluster.load_balancer_address(publics[home])

        statefulsets: dict[str, k8s.apps.v1.StatefulSet] = {}
        proxied: list[pulumi.Resource] = []
        # The replica's home first: on a change of primary, the home giving up the primary
        # restarts read-only (every start is) before the other is promoted, so the two are
        # never writable at once; and the primary's StatefulSet is deleted first on destroy.
        for home in sorted(HOMES, key=lambda h: roles[h] != "replica"):
            prefix, cluster = prefixes[home], clusters[home]
            ns = namespaces[home].metadata.name
            server_pem, key_pem = self._server_certificate(prefix, addresses[home], ca_key, ca)
            tls_secret = k8s.core.v1.Secret(
                f"{prefix}-tls",
                metadata={"name": "mariadb-tls", "namespace": ns, "labels": LABELS},
                type="Opaque",
                string_data={TLS_CA: ca.cert_pem, TLS_CERT: server_pem, TLS_KEY: key_pem},
                opts=on[home],
            )
            options = k8s.core.v1.ConfigMap(
                f"{prefix}-replication",
                metadata={"name": "mariadb-replication", "namespace": ns, "labels": LABELS},
                data=REPLICATION_FILES,
                opts=on[home],
            )
            peer = addresses[other[home]]
            # The replica connects out to the primary's load balancer, by name on AWS.
            outbound = netpol.declare(
                prefix,
                [
                    netpol.policy(
                        "mariadb-replication",
                        ns,
                        {"matchLabels": LABELS},
                        egress=[
                            {"to": peer.apply(netpol.address_peers), "ports": netpol.tcp(PORT)},
                            netpol.dns_rule(),
                        ],
                    )
                ],
                on[home],
            )
            policies[home] = [*policies[home], *outbound]
            replicas = [s for h, s in statefulsets.items() if roles[h] == "replica"]
            statefulsets[home] = k8s.apps.v1.StatefulSet(
                f"{prefix}-mariadb",
                metadata={"name": "mariadb", "namespace": ns, "labels": LABELS},
                spec=replicated_mariadb_spec(
                    volumes[home].metadata.name,
                    credentials[home].metadata.name,
                    ReplicationPod(
                        role=roles[home],
                        server_id=SERVER_IDS[home],
                        peer_host=peer,
                        tls_secret=tls_secret.metadata.name,
                        config_map=options.metadata.name,
                        certificate=server_pem,
                        password=replication_password.result,
                    ),
                ),
                opts=after(
                    home,
                    services[home],
                    volumes[home].claim,
                    credentials[home],
                    tls_secret,
                    options,
                    publics[home],
                    publics[other[home]],
                    *policies[home],
                    *replicas,
                ),
            )
            if cluster.load_balancers_proxy:
                # MariaDB sees its load balancer's own address (FleetCluster.load_balancers_proxy).
                proxied += netpol.declare(
                    prefix,
                    [
                        netpol.policy(
                            "mariadb-from-load-balancer",
                            ns,
                            {"matchLabels": LABELS},
                            ingress=[
                                {
                                    "from": addresses[home].apply(netpol.load_balancer_peers),
                                    "ports": netpol.tcp(PORT),
                                }
                            ],
                        )
                    ],
                    on[home],
                )

        user = app_user(args.password_rotation)
        # The Jobs run on both homes, after both servers exist, and act on the primary only
        # (home_guard): the primary turns writable once the replica follows it (hold).
        rotation: list[pulumi.Resource] = []
        schema_jobs = {}
        for home in HOMES:
            prefix, ns = prefixes[home], namespaces[home].metadata.name
            in_cluster_host = pulumi.Output.concat("mariadb.", ns, ".svc.cluster.local")
            rotated = []
            if args.password_rotation > 0:
                rotated = [
                    k8s.batch.v1.Job(
                        f"{prefix}-password-rotation-{args.password_rotation}",
                        metadata={
                            "name": f"mariadb-password-rotation-{args.password_rotation}",
                            "namespace": ns,
                            "labels": LABELS,
                        },
                        spec=rotation_job_spec(
                            in_cluster_host, credentials[home].metadata.name, user, on_a_home=True
                        ),
                        opts=after(
                            home, *statefulsets.values(), credentials[home], *policies[home]
                        ),
                    )
                ]
            rotation += rotated
            schema_jobs[home] = k8s.batch.v1.Job(
                f"{prefix}-schema",
                metadata={"name": "bookstore-schema", "namespace": ns, "labels": LABELS},
                spec=schema_job_spec(
                    in_cluster_host, credentials[home].metadata.name, user, on_a_home=True
                ),
                opts=after(
                    home,
                    *statefulsets.values(),
                    *policies[home],
                    *rotated,
                    custom_timeouts=pulumi.CustomTimeouts(create="20m"),
                ),
            )
        primary = args.primary
        self.schema_job = schema_jobs[primary]
        self.schema_jobs = schema_jobs
        """Each home's schema Job, by home (main, standby): the primary's migrates."""
        self.ready = [*schema_jobs.values(), *rotation, *proxied]
        self.storage = volumes["main"].storage
        self.addresses = {clusters[home].name: addresses[home] for home in HOMES}
        self.endpoint = DatabaseEndpoint(
            host=addresses[primary],
            port=PORT,
            name=DB_NAME,
            user=user,
            password=pulumi.Output.secret(app_password.result),
            password_generation=args.password_rotation,
        )

    def _home_volume(
        self,
        prefix: str,
        home: str,
        cluster: FleetCluster,
        namespace: k8s.core.v1.Namespace,
        args: DatabaseArgs,
        opts: pulumi.ResourceOptions,
    ) -> _Volume:
        """The data claim of one home. The main home's is the one it has without a second home
        (its disk kind checked against the stack's history); the second home's is on its
        program's choice for its cloud: EBS gp3 on EKS, zone-redundant on AKS where the
        region has zones, else the cluster's default class. Both honour protectData."""
        if home == "main":
            storage = args.storage
            checked = pulumi.Output.from_input(
                args.storage_checked if args.storage_checked is not None else args.storage
            )
        else:
            # A new home of the data, with no history to check: zone-redundant on AKS where the
            # region has zones, as for the hub.
            storage = default_database_storage(cluster.spec)
            checked = pulumi.Output.from_input(storage)
        storage_class = (
            self._zone_redundant_class(prefix, opts, checked) if storage == ZONE_REDUNDANT else None
        )
        if storage_class is None and cluster.cloud == "aws":
            storage_class = self._gp3_class(prefix, opts)
        volume = _data_claim(
            f"{prefix}-data", namespace, CLAIM[storage], checked, storage_class, args, cluster, opts
        )
        return _Volume(claim=volume, storage=checked)

    def _server_certificate(
        self,
        prefix: str,
        address: pulumi.Output[str],
        ca_key: tls.PrivateKey,
        ca: tls.SelfSignedCert,
    ) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        """A home's server certificate (PEM) and its key (PEM, secret). The replica checks the
        primary's certificate against the name it connects to (MASTER_SSL_VERIFY_SERVER_CERT),
        the primary's load balancer address: an IP or a DNS name, named as such. The in-cluster
        names serve the Jobs. Renewed by the `pulumi up` that runs in its last 30 days; the
        pod restarts on the new one (its digest is in the pod template)."""
        cert, key = signed_server_certificate(
            f"{prefix}-server",
            ca_key,
            ca,
            {"common_name": "mariadb", "organization": "ocm-fleet"},
            address.apply(lambda a: [*IN_CLUSTER_NAMES, *([] if is_ip(a) else [a])]),
            pulumi.ResourceOptions(parent=self),
            ip_addresses=address.apply(lambda a: [a] if is_ip(a) else []),
        )
        return cert.cert_pem, pulumi.Output.secret(key.private_key_pem)

    def _gp3_class(self, prefix: str, opts: pulumi.ResourceOptions) -> k8s.storage.v1.StorageClass:
        """EBS gp3 through the EBS CSI driver, for MariaDB on an EKS home: EKS marks no storage
        class as the default on clusters from 1.30, so a claim without one stays Pending."""
        return k8s.storage.v1.StorageClass(
            f"{prefix}-gp3",
            metadata={"name": GP3_CLASS, "labels": LABELS},
            provisioner="ebs.csi.aws.com",
            parameters={"type": "gp3", "encrypted": "true"},
            volume_binding_mode="WaitForFirstConsumer",
            reclaim_policy="Delete",
            allow_volume_expansion=True,
            opts=opts,
        )

    def _zone_redundant_class(
        self, name: str, on_hub: pulumi.ResourceOptions, checked: pulumi.Output[str]
    ) -> k8s.storage.v1.StorageClass:
        return k8s.storage.v1.StorageClass(
            f"{name}-zone-redundant",
            metadata={"name": checked.apply(lambda _: ZONE_REDUNDANT_CLASS), "labels": LABELS},
            provisioner="disk.csi.azure.com",
            parameters={"skuName": ZONE_REDUNDANT_SKU},
            volume_binding_mode="WaitForFirstConsumer",
            # As the built-in classes: the disk goes with its claim, so destroy leaves none.
            reclaim_policy="Delete",
            allow_volume_expansion=True,
            opts=on_hub,
        )


def _data_claim(
    resource_name: str,
    namespace: k8s.core.v1.Namespace,
    claim: str,
    checked: pulumi.Output[str],
    storage_class: k8s.storage.v1.StorageClass | None,
    args: DatabaseArgs,
    cluster: FleetCluster,
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.PersistentVolumeClaim:
    """A home's data claim, Pulumi-owned so that `protectData` protects it."""
    return k8s.core.v1.PersistentVolumeClaim(
        resource_name,
        metadata={
            # Through the check: no claim is made or replaced before it passes.
            "name": checked.apply(lambda _: claim),
            "namespace": namespace.metadata.name,
            "labels": LABELS,
            # Storage classes that bind on first use leave the claim Pending until the
            # StatefulSet's pod exists; the StatefulSet's own readiness covers the volume.
            "annotations": {"pulumi.com/skipAwait": "true"},
        },
        spec={
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": f"{args.storage_gb}Gi"}},
            # Left out for the cluster's default class, as claims made before had it.
            **(
                {"storageClassName": storage_class.metadata.name}
                if storage_class is not None
                else {}
            ),
        },
        opts=pulumi.ResourceOptions.merge(
            opts,
            pulumi.ResourceOptions(
                protect=args.protect_data,
                depends_on=[
                    namespace,
                    *cluster.storage_dependencies,
                    *([storage_class] if storage_class else []),
                ],
            ),
        ),
    )


def app_user(password_generation: int) -> str:
    """The database user whose password is generation `password_generation`."""
    return DB_USERS[password_generation % len(DB_USERS)]


def database_policies(
    namespace: pulumi.Input[str], app_egress: pulumi.Input[Sequence[str]]
) -> list[dict]:
    """MariaDB takes connections from the app clusters' egress addresses and from the schema
    and rotation Jobs; the Jobs reach MariaDB and DNS; nothing else moves."""
    jobs = {
        "matchExpressions": [
            {
                "key": "app.kubernetes.io/name",
                "operator": "In",
                "values": [
                    SCHEMA_JOB_LABELS["app.kubernetes.io/name"],
                    ROTATION_JOB_LABELS["app.kubernetes.io/name"],
                ],
            }
        ],
        "matchLabels": {"app.kubernetes.io/part-of": "bookstore"},
    }
    return [
        netpol.default_deny(namespace),
        netpol.policy(
            "mariadb-clients",
            namespace,
            {"matchLabels": LABELS},
            ingress=[
                {
                    "from": pulumi.Output.from_input(app_egress).apply(netpol.cidr_peers),
                    "ports": netpol.tcp(PORT),
                },
                {"from": [{"podSelector": jobs}], "ports": netpol.tcp(PORT)},
            ],
        ),
        netpol.policy(
            "database-jobs",
            namespace,
            jobs,
            egress=[
                {"to": [{"podSelector": {"matchLabels": LABELS}}], "ports": netpol.tcp(PORT)},
                netpol.dns_rule(),
            ],
        ),
    ]


def _restricted_pod(uid: int) -> dict:
    # fsGroup gives the image's user the data volume and the credential files.
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _credentials_mount() -> dict:
    return {"name": "credentials", "mountPath": CREDENTIALS_DIR, "readOnly": True}


def _credentials_volume(credentials: pulumi.Input[str], keys: list[str]) -> dict:
    return {
        "name": "credentials",
        "secret": {
            "secretName": credentials,
            "items": [{"key": key, "path": key} for key in keys],
            # 0440: the owner and the pod's fsGroup (the image's mysql group) may read.
            "defaultMode": 0o440,
        },
    }


def mariadb_spec(claim: pulumi.Input[str], credentials: pulumi.Input[str]) -> dict:
    # The image reads each *_FILE variable's file (docker-entrypoint.sh, file_env): the
    # passwords stay out of the container's environment, which `kubectl describe` and crash
    # reporters show.
    env = [
        {"name": "MARIADB_DATABASE", "value": DB_NAME},
        {"name": "MARIADB_USER", "value": DB_USER},
        # Upgrades the system tables when the image moves to a newer patch release.
        {"name": "MARIADB_AUTO_UPGRADE", "value": "1"},
    ] + [
        {"name": f"{key}_FILE", "value": f"{CREDENTIALS_DIR}/{key}"}
        for key in ("MARIADB_PASSWORD", "MARIADB_ROOT_PASSWORD")
    ]
    return {
        "serviceName": "mariadb",
        "replicas": 1,
        "selector": {"matchLabels": LABELS},
        "template": {
            "metadata": {"labels": LABELS},
            "spec": {
                "automountServiceAccountToken": False,
                "securityContext": _restricted_pod(MARIADB_UID),
                "terminationGracePeriodSeconds": 60,
                "containers": [
                    {
                        "name": "mariadb",
                        "image": images.pinned(MARIADB_IMAGE),
                        "imagePullPolicy": "IfNotPresent",
                        "env": env,
                        "ports": [{"name": "mysql", "containerPort": PORT}],
                        "readinessProbe": {
                            "exec": {
                                "command": ["healthcheck.sh", "--connect", "--innodb_initialized"]
                            },
                            "periodSeconds": 10,
                            "timeoutSeconds": 5,
                        },
                        "livenessProbe": {
                            "tcpSocket": {"port": "mysql"},
                            "initialDelaySeconds": 60,
                            "periodSeconds": 20,
                        },
                        "resources": {
                            "requests": {"cpu": "250m", "memory": "512Mi"},
                            "limits": {"memory": "1Gi"},
                        },
                        "securityContext": pod_security.restricted_container(MARIADB_UID),
                        "volumeMounts": [
                            {"name": "data", "mountPath": "/var/lib/mysql"},
                            {"name": "run", "mountPath": "/run/mysqld"},
                            {"name": "tmp", "mountPath": "/tmp"},
                            _credentials_mount(),
                        ],
                    }
                ],
                "volumes": [
                    {"name": "data", "persistentVolumeClaim": {"claimName": claim}},
                    {"name": "run", "emptyDir": {}},
                    {"name": "tmp", "emptyDir": {}},
                    _credentials_volume(credentials, ["MARIADB_PASSWORD", "MARIADB_ROOT_PASSWORD"]),
                ],
            },
        },
    }


def replicated_mariadb_spec(
    claim: pulumi.Input[str], credentials: pulumi.Input[str], pod: ReplicationPod
) -> dict:
    """mariadb_spec on a home of a fleet with a second home: the server with replication.cnf,
    its server_id and its TLS files, and a sidecar that runs `replication.sh serve ROLE`.

    The mechanism: every server starts read-only (replication.cnf); the sidecar waits for
    its server, takes the role's steps (grant, then hold, promote, seed and replicate, or
    rejoin), and watches the server's start time, taking them again after every restart of
    the server, since a container restart does not restart the pod. It never re-clones: a
    rejoin that finds a diverged history (exit 4) is said in its log and leaves the server
    read-only, for the operator (docs/data.md).
    """
    spec = mariadb_spec(claim, credentials)
    template = spec["template"]
    template["metadata"] = {
        "labels": LABELS,
        # A new certificate, password, role script or option file restarts the pod: the
        # server reads them only at start, and the sidecar takes its role at each start.
        "annotations": {
            "ocm-fleet/replication-files": _digest("".join(sorted(REPLICATION_FILES.values()))),
            "ocm-fleet/server-certificate": pulumi.Output.from_input(pod.certificate).apply(
                _digest
            ),
            "ocm-fleet/replication-password": pulumi.Output.from_input(pod.password).apply(_digest),
        },
    }
    pod_spec = template["spec"]
    server = pod_spec["containers"][0]
    server["args"] = [
        "mariadbd",
        f"--server-id={pod.server_id}",
        f"--ssl-ca={TLS_DIR}/{TLS_CA}",
        f"--ssl-cert={TLS_DIR}/{TLS_CERT}",
        f"--ssl-key={TLS_DIR}/{TLS_KEY}",
    ]
    server["volumeMounts"] += [
        {
            "name": "replication",
            "mountPath": SERVER_OPTIONS_PATH,
            "subPath": "replication.cnf",
            "readOnly": True,
        },
        {
            "name": "replication",
            "mountPath": FIRST_START_PATH,
            "subPath": "first-start.sql",
            "readOnly": True,
        },
        {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
    ]
    sidecar = {
        "name": "replication",
        "image": images.pinned(MARIADB_IMAGE),
        "imagePullPolicy": "IfNotPresent",
        "command": ["bash", f"{SCRIPTS_DIR}/replication.sh", "serve", pod.role],
        "env": [
            {
                "name": "LOCAL_DEFAULTS",
                "value": f"{REPLICATION_CREDENTIALS_DIR}/{ROOT_CLIENT_CONFIG}",
            },
            {"name": "PEER_HOST", "value": pod.peer_host},
            {"name": "PEER_PORT", "value": str(PORT)},
            {"name": "TLS_CA", "value": f"{TLS_DIR}/{TLS_CA}"},
            {"name": "REPLICATION_USER", "value": replication.REPLICATION_USER},
            {
                "name": "REPLICATION_PASSWORD_FILE",
                "value": f"{REPLICATION_CREDENTIALS_DIR}/{REPLICATION_PASSWORD_KEY}",
            },
            {"name": "DATABASES", "value": DB_NAME},
            {"name": "HOLD_SECONDS", "value": str(HOLD_SECONDS)},
        ],
        "resources": {
            "requests": {"cpu": "20m", "memory": "32Mi"},
            "limits": {"memory": "256Mi"},
        },
        "securityContext": pod_security.restricted_container(MARIADB_UID),
        "volumeMounts": [
            {"name": "run", "mountPath": "/run/mysqld"},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "replication", "mountPath": SCRIPTS_DIR, "readOnly": True},
            {"name": "tls-ca", "mountPath": TLS_DIR, "readOnly": True},
            {
                "name": "replication-credentials",
                "mountPath": REPLICATION_CREDENTIALS_DIR,
                "readOnly": True,
            },
        ],
    }
    pod_spec["containers"].append(sidecar)
    pod_spec["volumes"] += [
        {"name": "replication", "configMap": {"name": pod.config_map, "defaultMode": 0o444}},
        {
            "name": "tls",
            "secret": {
                "secretName": pod.tls_secret,
                "items": [{"key": k, "path": k} for k in (TLS_CA, TLS_CERT, TLS_KEY)],
                "defaultMode": 0o440,
            },
        },
        {
            "name": "tls-ca",
            "secret": {
                "secretName": pod.tls_secret,
                "items": [{"key": TLS_CA, "path": TLS_CA}],
                "defaultMode": 0o440,
            },
        },
        _credentials_volume(credentials, [ROOT_CLIENT_CONFIG, REPLICATION_PASSWORD_KEY])
        | {"name": "replication-credentials"},
    ]
    return spec


def shopapi_job_spec(
    db_host: pulumi.Input[str],
    credentials: pulumi.Input[str],
    command: list[str],
    user: str = DB_USER,
) -> dict:
    """A Job running the shopapi image against the database, configured as the app is.

    `user` must be the app user whose password the credentials Secret holds now (`app_user`).
    """
    return {
        "backoffLimit": 10,
        "activeDeadlineSeconds": 1200,
        "template": {
            "metadata": {"labels": SCHEMA_JOB_LABELS},
            "spec": {
                "restartPolicy": "OnFailure",
                "automountServiceAccountToken": False,
                # The shopapi image runs as root (its files are root-owned): the namespace is
                # baseline for this reason. It gets no capability and no way to gain one.
                "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [
                    {
                        "name": "schema",
                        "image": images.pinned(SHOPAPI_IMAGE),
                        "imagePullPolicy": "IfNotPresent",
                        "command": command,
                        "env": [
                            {"name": "RAILS_ENV", "value": "production"},
                            {"name": "RAILS_LOG_TO_STDOUT", "value": "1"},
                            {"name": "DB_HOST", "value": db_host},
                            {"name": "DB_PORT", "value": str(PORT)},
                            {"name": "DB_NAME", "value": DB_NAME},
                            {"name": "DB_USER", "value": user},
                        ],
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "256Mi"},
                            "limits": {"memory": "512Mi"},
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "volumeMounts": [
                            {
                                "name": "secret",
                                "mountPath": "/app/config/app_secret",
                                "readOnly": True,
                            }
                        ],
                    }
                ],
                "volumes": [
                    {
                        "name": "secret",
                        "secret": {
                            "secretName": credentials,
                            "items": [{"key": "DB_PASSWORD", "path": "DB_PASSWORD"}],
                            # 0400: readable by the container's user (root) only.
                            "defaultMode": 0o400,
                        },
                    }
                ],
            },
        },
    }


def schema_job_spec(
    db_host: pulumi.Input[str],
    credentials: pulumi.Input[str],
    user: str = DB_USER,
    *,
    on_a_home: bool = False,
) -> dict:
    """The schema Job: `rails db:migrate`, and `rails db:seed` only on a database without books.

    An init container on the MariaDB image runs SEED_GUARD, which asks the database whether it
    holds any book and writes `seed` or `keep` to a volume shared with the schema container.
    So a re-run of the Job (a new image, a replacement, a manual delete and `up`) migrates and
    keeps the catalogue; only the very first run, on an empty database, seeds it.
    """
    # The Secret holds the password of the current generation only, so both containers log in
    # as that generation's user. A rotation that changes the user changes this spec, and the
    # Job runs again: safe, because the guard keeps every book.
    command = SCHEMA_ON_A_HOME if on_a_home else SCHEMA_COMMAND
    spec = shopapi_job_spec(db_host, credentials, ["sh", "-c", command], user)
    pod = spec["template"]["spec"]
    schema = pod["containers"][0]
    decision_mount = {"name": "seed-decision", "mountPath": SEED_DECISION_DIR}
    schema["env"].append({"name": "SEED_DECISION_FILE", "value": SEED_DECISION_FILE})
    schema["volumeMounts"].append({**decision_mount, "readOnly": True})
    pod["initContainers"] = [
        {
            "name": "seed-guard",
            "image": images.pinned(MARIADB_IMAGE),
            "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", SEED_GUARD.read_text()],
            "env": [
                {"name": "DB_HOST", "value": db_host},
                {"name": "DB_PORT", "value": str(PORT)},
                {"name": "DB_NAME", "value": DB_NAME},
                {"name": "DB_USER", "value": user},
                {"name": "DB_PASSWORD_FILE", "value": f"{GUARD_PASSWORD_DIR}/DB_PASSWORD"},
                {"name": "SEED_DECISION_FILE", "value": SEED_DECISION_FILE},
            ],
            "resources": {
                "requests": {"cpu": "50m", "memory": "64Mi"},
                "limits": {"memory": "128Mi"},
            },
            "securityContext": pod_security.restricted_container(MARIADB_UID),
            "volumeMounts": [
                decision_mount,
                {"name": "seed-guard-password", "mountPath": GUARD_PASSWORD_DIR, "readOnly": True},
            ],
        }
    ]
    if on_a_home:
        guard = pod["initContainers"][0]
        home_env = {"name": "HOME_ROLE_FILE", "value": HOME_ROLE_FILE}
        pod["initContainers"].insert(
            0,
            {
                **guard,
                "name": "home-role",
                "command": ["sh", "-c", WAIT_FOR_ROLE],
                "env": [
                    *(e for e in guard["env"] if e["name"] != "SEED_DECISION_FILE"),
                    home_env,
                ],
            },
        )
        schema["env"].append(home_env)
    pod["volumes"] += [
        {"name": "seed-decision", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
        {
            "name": "seed-guard-password",
            "secret": {
                "secretName": credentials,
                "items": [{"key": "DB_PASSWORD", "path": "DB_PASSWORD"}],
                # 0440 with the pod's fsGroup: the guard's user (the image's mysql group) reads.
                "defaultMode": 0o440,
            },
        },
    ]
    # The guard runs as the MariaDB image's user; the decision volume and its password file
    # are given to that group. The schema container (root) reads them either way.
    pod["securityContext"] = {**pod.get("securityContext", {}), "fsGroup": MARIADB_UID}
    return spec


def rotation_job_spec(
    db_host: pulumi.Input[str],
    credentials: pulumi.Input[str],
    user: str = DB_USER,
    *,
    on_a_home: bool = False,
) -> dict:
    """Gives `user` the current generated password, as root, creating the user (with the app's
    privileges) if this is its first turn.

    Neither password is on a command line (visible in the process list) or in the environment:
    the client logs in as root with the mounted option file, and the new password is read from
    its mounted file and piped in by the shell's printf builtin.
    """
    sql = (
        f"CREATE USER IF NOT EXISTS '{user}'@'%%' IDENTIFIED BY '%s';\\n"
        f"ALTER USER '{user}'@'%%' IDENTIFIED BY '%s';\\n"
        f"GRANT ALL PRIVILEGES ON {DB_NAME}.* TO '{user}'@'%%';\\n"
    )
    login = f'--defaults-extra-file="$CREDENTIALS_DIR/{ROOT_CLIENT_CONFIG}"'
    rotate = (
        'password="$(cat "$CREDENTIALS_DIR/MARIADB_PASSWORD")" && '
        f'printf "{sql}" "$password" "$password" | '
        f'mariadb {login} -h "$DB_HOST"'
    )
    if on_a_home:
        # Root may write on a read-only server: only the primary's Job may (home_guard).
        guard = home_guard(f'{login} -h "$DB_HOST"', "rotation")
        rotate = (
            f'role=$({guard}) && if [ "$role" = replica ]; then '
            'echo "rotation: this home replicates the primary, whose Job sets it"; exit 0; fi && '
            + rotate
        )
    return {
        "backoffLimit": 6,
        "template": {
            "metadata": {"labels": ROTATION_JOB_LABELS},
            "spec": {
                "restartPolicy": "OnFailure",
                "automountServiceAccountToken": False,
                "securityContext": _restricted_pod(MARIADB_UID),
                "containers": [
                    {
                        "name": "rotate",
                        "image": images.pinned(MARIADB_IMAGE),
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c", rotate],
                        "env": [
                            {"name": "DB_HOST", "value": db_host},
                            {"name": "CREDENTIALS_DIR", "value": CREDENTIALS_DIR},
                        ],
                        "resources": {
                            "requests": {"cpu": "50m", "memory": "64Mi"},
                            "limits": {"memory": "128Mi"},
                        },
                        "securityContext": pod_security.restricted_container(MARIADB_UID),
                        "volumeMounts": [_credentials_mount()],
                    }
                ],
                "volumes": [
                    _credentials_volume(credentials, ["MARIADB_PASSWORD", ROOT_CLIENT_CONFIG])
                ],
            },
        },
    }
