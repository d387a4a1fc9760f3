"""The bookstore's MariaDB on the main cluster, reachable only from the app clusters' egress IPs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import images
from components.clusters._base import FleetCluster
from components.lifecycle.previous_run import CLUSTER_DEFAULT, ZONE_REDUNDANT
from components.security import network_policies as netpol
from components.security import pod_security

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

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(DATABASE_TYPE, name, None, opts)
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
        claim = CLAIM[args.storage]
        volume = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-data",
            metadata={
                # Through the check: no claim is made or replaced before it passes.
                "name": checked.apply(lambda _: claim),
                "namespace": ns,
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
                on_hub,
                pulumi.ResourceOptions(
                    protect=args.protect_data,
                    depends_on=[
                        namespace,
                        *args.hub_cluster.storage_dependencies,
                        *([storage_class] if storage_class else []),
                    ],
                ),
            ),
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
        self.register_outputs({"host": self.endpoint.host})

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
    db_host: pulumi.Input[str], credentials: pulumi.Input[str], user: str = DB_USER
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
    spec = shopapi_job_spec(db_host, credentials, ["sh", "-c", SCHEMA_COMMAND], user)
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
    db_host: pulumi.Input[str], credentials: pulumi.Input[str], user: str = DB_USER
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
                        "command": [
                            "sh",
                            "-c",
                            'password="$(cat "$CREDENTIALS_DIR/MARIADB_PASSWORD")" && '
                            f'printf "{sql}" "$password" "$password" | '
                            f'mariadb {login} -h "$DB_HOST"',
                        ],
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
