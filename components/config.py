"""The stack configuration: a typed, validated model of what users write in Pulumi.<stack>.yaml.

The model is plain Python (no Pulumi import), so that `scripts/check.py` runs it on a stack file
before anything is installed; `components/pulumi_config.py` feeds it from `pulumi.Config` inside
the program. Both go through `raw_from_config_values`, so they read the values the same way.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
import tarfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from components.regions import known_regions, nearest_region

NAMESPACE = "ocm-fleet"
"""The config namespace: every key is `ocm-fleet:<key>`."""

CLOUDS = ("aws", "azure", "existing", "kind")

DEFAULT_NODE_SIZE = {"aws": "t3.large", "azure": "Standard_D4s_v5"}
DEFAULT_NODE_COUNT = 2
# kind: worker nodes besides the control plane, which keeps its exclude-from-load-balancers label.
DEFAULT_KIND_WORKERS = 1
DEFAULT_KUBERNETES_VERSION = "1.35"
DEFAULT_OCM_VERSION = "1.3.1"

# Names end up inside cloud resource names with suffixes appended (Pulumi's 8-character
# auto-name suffix, role suffixes such as "-node-role"). IAM role names stop at 64 characters
# and AKS dnsPrefix at 54; an OCM ManagedCluster name is a DNS-1123 label (63).
# kind: the cluster is named "<stack>-<name>" and its node containers "<that>-control-plane",
# which must stay a DNS label too.
MAX_NAME_LENGTH = {"aws": 32, "azure": 40, "existing": 63, "kind": 32}

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_K8S_MINOR = re.compile(r"^1\.(\d{2})$")
_OCM_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_AWS_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
_AZURE_REGION = re.compile(r"^[a-z][a-z0-9]+$")
_HOSTNAME_LABEL = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?$")

CLUSTER_KEYS = frozenset(
    {
        "name",
        "cloud",
        "region",
        "nodeCount",
        "nodeSize",
        "kubernetesVersion",
        "context",
        "kubeconfig",
        "apiServerUrl",
        "egressIps",
        "standby",
        "retire",
        "natGateways",
        "physicalName",
        "upgradePolicy",
        "controlPlaneLogRetentionDays",
        "controlPlaneIdentity",
        "maintenanceWindow",
        "databaseStorage",
        "importLogGroup",
    }
)

TOP_LEVEL_KEYS = frozenset(
    {
        "hub",
        "clusters",
        "apiAllowedCidrs",
        "ocmVersion",
        "protectData",
        "databasePasswordRotation",
        "app",
        "rollout",
        "eksAdminPrincipals",
        "extraRegions",
        "charts",
        "entry",
        "database",
    }
)

ENTRY_DNS_CHOICES = ("none", "trafficManager", "route53")
ENTRY_KEYS = frozenset(
    {
        "dns",
        "relativeName",
        "location",
        "hostedZoneId",
        "recordName",
        "probeIntervalSeconds",
        "failureThreshold",
        "ttlSeconds",
    }
)
# Route 53's API model bounds these (botocore/data/route53/2013-04-01/service-2.json, shapes
# RequestInterval 10-30, "the default value is 30 seconds", and FailureThreshold 1-10); the model
# of azure-mgmt-trafficmanager (models/_models.py, MonitorConfig) names the same settings without
# bounds. The program takes only the ends of Route 53's range, 10 and 30, for both services.
ENTRY_PROBE_INTERVALS = (10, 30)
ENTRY_FAILURES_RANGE = (1, 10)
ENTRY_TTL_RANGE = (0, 3600)
_TM_RELATIVE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_HOSTED_ZONE_ID = re.compile(r"^Z[A-Z0-9]{1,31}$")
DATABASE_PRIMARIES = ("main", "standby")
"""`database.primary`: which home's MariaDB takes the app's writes (docs/data.md)."""
DATABASE_KEYS = frozenset({"primary"})
STANDBY_REFUSED_KEYS = {
    "standby": "the second home is itself the standby",
    "retire": "remove hub.standby to retire the second home",
    "databaseStorage": "the replica's disk is the program's choice (EBS gp3 on aws, zone-redundant "
    "on azure where the region has zones)",
}
"""Cluster keys a `hub.standby` entry cannot take, and why."""
CHART_KEYS = {
    "clusterManager": "cluster-manager",
    "klusterlet": "klusterlet",
    "prometheus": "prometheus",
    "grafana": "grafana",
}
"""`charts` key -> the chart it replaces (its Chart.yaml name)."""
APP_KEYS = frozenset({"imageTags"})
ROLLOUT_KEYS = frozenset(
    {"canary", "maxConcurrency", "minSuccessTime", "progressDeadline", "maxFailures"}
)

# Rollout defaults a careful team starts from: after the canary, a quarter of the other
# clusters at a time, two minutes of soak per step, and a finite deadline. OCM's own
# progressDeadline default, "None", never times a cluster out, so a stuck cluster would hold the
# rollout (and `pulumi up`) forever (sdk-go rollout.go, parseTimeout: "None" or "" is the maximum
# duration).
#
# maxConcurrency is a share of the fleet so that a change takes the same number of steps at any
# size: OCM takes the percentage of the clusters outside the canary, rounded up
# (calculateRolloutSize), so a change is the canary and at most four waves whether the fleet has
# 5 or 500 clusters; one cluster at a time would soak once per cluster (about 200 minutes of
# soak alone at 100 clusters). A quarter, not all: a change that gets past the canary but breaks
# elsewhere stops (maxFailures 0) having reached at most a quarter of the rest. The anchors use
# the same shapes: Azure Kubernetes Fleet Manager's staged update runs go stage by stage, each
# with an optional wait after it, and cap a stage's concurrent upgrades by a count or a
# percentage of its clusters ("25%" is its documented example; a group alone defaults to one at
# a time); Argo CD's progressive sync (ApplicationSet RollingSync) goes step by step, each step
# waiting until its Applications are Healthy, with maxUpdate a count or a percentage of the step
# (default all of it). A canary group then a percentage per wave is the middle of the two.
DEFAULT_MAX_CONCURRENCY: int | str = "25%"
DEFAULT_MIN_SUCCESS_TIME = "2m"
DEFAULT_PROGRESS_DEADLINE = "10m"
DEFAULT_MAX_FAILURES: int | str = 0

# OCM's CRD pattern for maxConcurrency/maxFailures, `^((100|[0-9]{1,2})%|[0-9]+)$`.
_PERCENT = re.compile(r"^(100|[0-9]{1,2})%$")
# A plain Go duration of one unit; OCM's own pattern `^(([0-9])+[h|m|s])|None$` is unanchored at
# the end, so this is the strict part of it.
_DURATION = re.compile(r"^[0-9]+[hms]$")
# OCM reads both rollout durations as Go's time.Duration, int64 nanoseconds, and
# time.ParseDuration refuses a longer one (sdk-go rollout.go, parseTimeout; MinSuccessTime is a
# metav1.Duration): the ManifestWorkReplicaSet would fail on the hub instead.
_MAX_DURATION_SECONDS = (2**63 - 1) // 10**9
_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1}
DURATION_TOO_LONG = "is longer than OCM can hold (Go's time.Duration: at most 2562047h, 292 years)"


def _duration_too_long(duration: str) -> bool:
    """`duration` (digits and one unit) is past Go's time.Duration."""
    digits = duration[:-1].lstrip("0")
    # More than 19 digits is past int64 in any unit, and int() refuses more than 4300.
    if len(digits) > 19:
        return True
    return int(digits or "0") * _UNIT_SECONDS[duration[-1]] > _MAX_DURATION_SECONDS


# An image tag (Docker's grammar), optionally pinned to a digest: "1.1" or "1.1@sha256:<hex>".
_IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(@sha256:[0-9a-f]{64})?$")
CLOUD_ONLY_KEYS = ("nodeCount", "nodeSize", "kubernetesVersion")
AWS_ONLY_KEYS = (
    "natGateways",
    "physicalName",
    "upgradePolicy",
    "controlPlaneLogRetentionDays",
    "importLogGroup",
)
AZURE_ONLY_KEYS = ("controlPlaneIdentity", "maintenanceWindow", "databaseStorage")

UPGRADE_POLICIES = ("STANDARD", "EXTENDED")
"""EKS `upgrade_policy.support_type`. STANDARD: once standard support for the version ends, EKS
upgrades the control plane itself; EXTENDED: the version stays, billed at the extended-support
rate (EKS user guide, "Cluster upgrade policy"). Left unset, EKS chooses EXTENDED."""
DEFAULT_UPGRADE_POLICY = "STANDARD"

LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)  # fmt: skip
"""The retention periods CloudWatch Logs accepts (PutRetentionPolicy, retentionInDays)."""
DEFAULT_LOG_RETENTION_DAYS = 90
"""terraform-aws-eks's default for the control-plane log group (variables.tf,
cloudwatch_log_group_retention_in_days): three months of audit trail, then no more bill."""

CONTROL_PLANE_IDENTITIES = ("userAssigned", "systemAssigned")
"""`userAssigned`: an identity of the program's, granted its rights before the cluster exists
(what new clusters get); `systemAssigned`: the identity AKS makes with the cluster, granted its
rights only after (what clusters created before this key have, and keep unless told)."""

DATABASE_STORAGE = ("zoneRedundant", "clusterDefault")
"""`zoneRedundant`: the database disk is zone-redundant (StandardSSD_ZRS), so it attaches in
any zone of the region (what a new hub gets where the region has zones); `clusterDefault`:
the cluster's default class, a zonal disk (what hubs created before this key have)."""

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MAINTENANCE_WINDOW_KEYS = frozenset({"dayOfWeek", "startTime", "durationHours", "utcOffset"})
# AKS's planned-maintenance schedules for auto-upgrades run at least 4 hours (AKS docs, "Use
# Planned Maintenance to schedule and control upgrades", maintenanceWindow.durationHours).
MIN_MAINTENANCE_HOURS = 4
MAX_MAINTENANCE_HOURS = 24
_HH_MM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_UTC_OFFSET = re.compile(r"^[+-](0\d|1[0-4]):[0-5]\d$")

# Instance families without an EKS-optimized AL2023 AMI type (AMD GPUs, FPGAs, Gaudi, video
# transcoders, older NVIDIA GPUs whose drivers the NVIDIA AMI no longer ships, Mac): EKS
# managed node groups cannot boot them with the AMI types components/clusters/eks.py uses.
EKS_UNSUPPORTED_FAMILIES = frozenset(
    {"g4ad", "f1", "f2", "dl1", "dl2q", "vt1", "p2", "g3", "g3s", "mac1", "mac2"}
)

NAT_GATEWAY_MODES = ("single", "perZone")
"""`single`: one NAT gateway and Elastic IP per EKS cluster; `perZone`: one per zone (three)."""
ELASTIC_IPS = {"single": 1, "perZone": 3}
DEFAULT_ELASTIC_IP_QUOTA = 5
"""AWS's default "EC2-VPC Elastic IPs" quota per account and region."""

# EKS cluster names: letters, digits, '-' and '_', starting with a letter or digit, at most 100.
MAX_EKS_CLUSTER_NAME = 100
_EKS_CLUSTER_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9_-]*$")
# IAM principals EKS access entries accept: roles and users (paths allowed), in any partition.
_IAM_PRINCIPAL = re.compile(
    r"^arn:aws(-[a-z]+)*:iam::\d{12}:(role|user)/([\w+=,.@-]+/)*[\w+=,.@-]+$"
)
_STS_SESSION = re.compile(r"^arn:aws(-[a-z]+)*:sts::\d{12}:assumed-role/")
FIND_YOUR_PRINCIPAL = (
    "find your own with `aws sts get-caller-identity --query Arn --output text | "
    "python3 scripts/caller_role_arn.py` and set it with `pulumi config set --path "
    "'ocm-fleet:eksAdminPrincipals[0]' <arn>`"
)


def stack_scoped_name(stack: str, name: str) -> str:
    """`<stack>-<name>`, with the characters a stack name may have but cloud names may not
    (such as '.') turned into '-': the name of cloud resources unique per account and region."""
    return re.sub(r"[^A-Za-z0-9-]", "-", f"{stack}-{name}")


EKS_HUB_REASON = (
    "the hub must run on azure, kind or an existing cluster: EKS does not sign certificate signing "
    "requests with 'client auth' usage (aws/containers-roadmap#1856), so the OCM hub's CSR "
    "registration cannot admit any cluster"
)


EKS_STANDBY_HUB_REASON = (
    "an OCM hub on EKS cannot admit agents in OCM 1.3.1: the csr registration driver needs "
    "client-auth CSRs signed, which EKS does not do (aws/containers-roadmap#1856); a Klusterlet "
    "has one registration driver, and with MultipleHubs on the agent Deployment mounts no grpc "
    "bootstrap config (manifests/klusterlet/management/klusterlet-agent-deployment.yaml); aws_irsa "
    "names one hub cluster ARN. Put the second home on azure (another region), or on an "
    "existing cluster that signs CSRs, or leave ocmHub false"
)
"""Why `hub.standby.ocmHub` is refused on an aws second home (docs/standby-hub.md)."""


class FleetConfigError(Exception):
    """Raised with every configuration problem at once, before any resource is registered."""

    def __init__(self, problems: list[str], *, stack: str = "dev"):
        self.problems = problems
        self.stack_file = f"Pulumi.{stack}.yaml"
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"Invalid ocm-fleet configuration ({len(problems)} problem"
            f"{'' if len(problems) == 1 else 's'}); fix {self.stack_file}:\n{lines}"
        )


@dataclass(frozen=True, kw_only=True)
class MaintenanceWindow:
    """A weekly window for AKS node upgrades (`maintenanceWindow`). Default: Sunday from 02:00
    UTC for 4 hours, the quietest hours of a European or American week and AKS's minimum."""

    day_of_week: str = "Sunday"
    start_time: str = "02:00"
    """HH:MM, in `utc_offset`."""
    duration_hours: int = MIN_MAINTENANCE_HOURS
    utc_offset: str = "+00:00"


@dataclass(frozen=True, kw_only=True)
class ClusterSpec:
    """One cluster of the fleet, as validated from config."""

    name: str
    """DNS-1123 label; the OCM ManagedCluster name and the prefix of every cloud resource."""
    cloud: str
    """`aws` (EKS), `azure` (AKS), `kind` (Docker on this machine) or `existing`."""
    region: str
    """Cloud region; for `existing` and `kind`, a free-form label (default: the cloud)."""
    node_count: int = DEFAULT_NODE_COUNT
    """Nodes in the cluster's node group or pool; on kind, worker nodes."""
    node_size: str = ""
    """Instance type (aws) or VM size (azure)."""
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
    """Kubernetes MAJOR.MINOR."""
    context: str | None = None
    """existing only: kubeconfig context to use."""
    kubeconfig: str | None = None
    """existing only: path to the kubeconfig file."""
    api_server_url: str | None = None
    """existing only: the API server URL other clusters use to reach this one."""
    egress_ips: tuple[str, ...] = ()
    """existing only: the public addresses this cluster's traffic leaves from."""
    standby: bool = False
    """Created, joined and ready, but runs the app only when a serving cluster is lost."""
    retire: bool = False
    """Take the cluster out of the fleet (no OCM membership, app, LB upstream or database
    access) while it and its egress on the hub's API allowlist remain, so that its agent can
    finish deleting what it carried. Remove the entry on a later run to delete the cluster."""
    nat_gateways: str = "single"
    """aws only: `single` (one NAT gateway and Elastic IP) or `perZone` (one per zone)."""
    physical_name: str | None = None
    """aws only: the EKS cluster name set explicitly (`physicalName`), e.g. to keep the name of
    a cluster created before names carried the stack."""
    cloud_name: str = ""
    """aws only: the EKS cluster's name, unique per account and region: `physicalName` if set,
    else `<stack>-<name>`. Other clouds: `name`."""
    upgrade_policy: str = DEFAULT_UPGRADE_POLICY
    """aws only: EKS support type once the version leaves standard support (`upgradePolicy`)."""
    log_retention_days: int = DEFAULT_LOG_RETENTION_DAYS
    """aws only: days the control-plane log group keeps its logs."""
    import_log_group: bool = False
    """aws only: import the control-plane log group EKS made for a cluster from before the
    group was in the program (`importLogGroup`, for one run)."""
    control_plane_identity: str | None = None
    """azure only: `userAssigned` or `systemAssigned`; None: `userAssigned`, refused for a
    system-assigned cluster the stack already has (see `lifecycle.previous_run`)."""
    maintenance_window: MaintenanceWindow = field(default_factory=MaintenanceWindow)
    """azure only: when AKS may upgrade the nodes (node images and patch versions)."""
    database_storage: str | None = None
    """azure hub only: `zoneRedundant` or `clusterDefault` for the database disk; None:
    `zoneRedundant` where the region has zones, refused for a hub the stack already has on
    another disk (see `lifecycle.previous_run`)."""

    def __post_init__(self) -> None:
        if not self.cloud_name:
            object.__setattr__(self, "cloud_name", self.name)


@dataclass(frozen=True, kw_only=True)
class AppSpec:
    """What the app clusters run, beyond the YAML in manifests/."""

    image_tags: Mapping[str, str] = field(default_factory=dict)
    """Container name in manifests/ -> image tag (optionally `tag@sha256:digest`)."""


@dataclass(frozen=True, kw_only=True)
class RolloutSpec:
    """How a change to what the clusters run travels through the fleet (OCM Progressive)."""

    canary: tuple[str, ...] = ()
    """Clusters that take every change first; empty means the first serving app cluster."""
    max_concurrency: int | str = DEFAULT_MAX_CONCURRENCY
    """Clusters updated at once after the canary: a count or a percentage such as "25%"."""
    min_success_time: str = DEFAULT_MIN_SUCCESS_TIME
    """Soak time a cluster must stay ready before the next step starts."""
    progress_deadline: str = DEFAULT_PROGRESS_DEADLINE
    """How long a cluster may take to become ready before it counts as failed."""
    max_failures: int | str = DEFAULT_MAX_FAILURES
    """Failed clusters tolerated outside the canary before the rollout stops."""


@dataclass(frozen=True, kw_only=True)
class EntrySpec:
    """The health-checked DNS name in front of the public entries (`entry`)."""

    dns: str = "none"
    """`none` (the entries' addresses are outputs only), `trafficManager` or `route53`."""
    relative_name: str = ""
    """Traffic Manager: the label of `<relativeName>.trafficmanager.net`."""
    location: str = ""
    """Traffic Manager: the Azure region of the resource group that holds the profile."""
    hosted_zone_id: str = ""
    """Route 53: the user's hosted zone."""
    record_name: str = ""
    """Route 53: the name in that zone, e.g. shop.example.com."""
    probe_interval_s: int = 30
    """Seconds between two probes of an entry's health URI."""
    failure_threshold: int = 3
    """Failed probes in a row that take an entry out of the answers (Route 53's
    FailureThreshold; Traffic Manager tolerates one fewer, see components/edge/dns.py)."""
    ttl_s: int = 30
    """How long resolvers may keep an answer."""


@dataclass(frozen=True, kw_only=True)
class FleetConfig:
    """The whole validated stack configuration."""

    hub: ClusterSpec
    """The main cluster: OCM hub, database and public load balancer."""
    clusters: tuple[ClusterSpec, ...]
    """Application clusters; each becomes an OCM ManagedCluster."""
    api_allowed_cidrs: tuple[str, ...]
    """Who may reach the Kubernetes API servers (operators, CI)."""
    ocm_version: str = DEFAULT_OCM_VERSION
    """OCM release, also the Helm chart version of cluster-manager and klusterlet."""
    protect_data: bool = False
    """Protect the database volume against deletion and replacement."""
    database_password_rotation: int = 0
    """Bump to generate a new database password for the app and roll it out."""
    hub_standby: ClusterSpec | None = None
    """The second home (`hub.standby`): a standby main cluster on another cloud or region than
    the hub, holding the database's replica; None: the fleet has one home."""
    database_primary: str = "main"
    """`database.primary`: `main` (the hub's database takes the writes) or `standby` (the second
    home's, promoted); `standby` only with hub.standby."""
    standby_ocm_hub: bool = False
    """`hub.standby.ocmHub`: a second OCM hub (cluster-manager) on the second home, which every
    klusterlet can move to by itself when the main cluster is lost (MultipleHubs).

    Off by default: it changes every klusterlet (two bootstrap kubeconfigs, the MultipleHubs
    gate) and doubles the hub-side objects. Refused when the second home is on aws: EKS signs no
    client-auth CSRs (aws/containers-roadmap#1856), and in OCM 1.3.1 the other registration
    drivers do not help. A Klusterlet has exactly one `registrationConfiguration.registrationDriver`
    (an object, not a list: the Klusterlet CRD of the 1.3.1 chart). With MultipleHubs on, the agent
    Deployment mounts only the `kubeConfigSecrets` and not `/spoke/bootstrap`, where the grpc
    driver reads `--grpc-bootstrap-config=/spoke/bootstrap/config.yaml`
    (manifests/klusterlet/management/klusterlet-agent-deployment.yaml, the `{{if .MultipleHubs}}`
    blocks). And `aws_irsa` takes a single `--hub-cluster-arn`, which names one EKS hub (same
    template). So the standby hub must sign CSRs: AKS in another Azure region (it survives a
    region outage, not an Azure-wide one), kind for the local rehearsal, or an existing cluster
    that signs CSRs. docs/standby-hub.md."""
    entry: EntrySpec = field(default_factory=EntrySpec)
    """The health-checked DNS name in front of the public entries; default none."""
    app: AppSpec = field(default_factory=AppSpec)
    """Image tags of the app's containers."""
    rollout: RolloutSpec = field(default_factory=RolloutSpec)
    """Progressive rollout settings; the canary defaults to the first serving cluster."""
    eks_admin_principals: tuple[str, ...] = ()
    """IAM role or user ARNs with cluster admin on every EKS cluster (required with aws)."""
    chart_paths: Mapping[str, str] = field(default_factory=dict)
    """Chart name (cluster-manager, klusterlet, prometheus, grafana) -> a local chart directory
    or .tgz installed instead of the chart repository's; a chart not named here comes from its
    repository."""
    all_clusters: tuple[ClusterSpec, ...] = field(init=False)

    def __post_init__(self) -> None:
        standby = (self.hub_standby,) if self.hub_standby is not None else ()
        object.__setattr__(self, "all_clusters", (self.hub, *standby, *self.clusters))
        if not self.rollout.canary and self.serving_clusters:
            canary = (self.serving_clusters[0].name,)
            object.__setattr__(self, "rollout", replace(self.rollout, canary=canary))

    @property
    def serving_clusters(self) -> tuple[ClusterSpec, ...]:
        """Active app clusters that run the bookstore unless they are lost."""
        return tuple(c for c in self.active_clusters if not c.standby)

    @property
    def standby_clusters(self) -> tuple[ClusterSpec, ...]:
        """Active app clusters that take over the bookstore from a lost serving cluster."""
        return tuple(c for c in self.active_clusters if c.standby)

    @property
    def active_clusters(self) -> tuple[ClusterSpec, ...]:
        """App clusters in the fleet: OCM members that run the app and serve traffic. Whatever
        places the app on clusters takes this list, and only this list."""
        return tuple(c for c in self.clusters if not c.retire)

    @property
    def retiring_clusters(self) -> tuple[ClusterSpec, ...]:
        """App clusters on their way out (`retire: true`): still built, and still allowed to
        reach the hub's API, but no longer members, app carriers or load-balancer upstreams."""
        return tuple(c for c in self.clusters if c.retire)

    def elastic_ips_by_region(self) -> dict[str, int]:
        """Elastic IPs the fleet's EKS NAT gateways take, per AWS region."""
        counts: dict[str, int] = {}
        for c in self.all_clusters:
            if c.cloud == "aws":
                counts[c.region] = counts.get(c.region, 0) + ELASTIC_IPS[c.nat_gateways]
        return dict(sorted(counts.items()))

    def elastic_ip_warnings(self) -> list[str]:
        """One message per region whose EKS clusters need more Elastic IPs than AWS grants by
        default, naming the region and the count."""
        return [
            f"AWS region {region}: the EKS clusters need {count} Elastic IPs for NAT gateways, "
            f"above the default quota of {DEFAULT_ELASTIC_IP_QUOTA} per region. Raise the "
            "'EC2-VPC Elastic IPs' quota (Service Quotas, L-0263D0A3) before `pulumi up`, or "
            "use natGateways: single"
            for region, count in self.elastic_ips_by_region().items()
            if count > DEFAULT_ELASTIC_IP_QUOTA
        ]


# repr() refuses integers of more than 4300 digits (sys.int_info.default_max_str_digits).
_MAX_SHOWN_INT_BITS = 14_000


def _fmt(value: Any) -> str:
    """A value as a message shows it: quoted like Python, but a null inside it (YAML's `~` or
    an empty entry) as `null`, not Python's None, and an integer too long to print by its size."""
    if value is None:
        return "null"
    if _is_int(value) and value.bit_length() > _MAX_SHOWN_INT_BITS:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    if isinstance(value, list):
        return f"[{', '.join(_fmt(v) for v in value)}]"
    if isinstance(value, Mapping):
        return f"{{{', '.join(f'{_fmt(k)}: {_fmt(v)}' for k, v in value.items())}}}"
    return repr(value)


def _wrong(where: str, value: Any, verb: str, expected: str) -> str:
    """`<where>: <value> <verb> <expected>`; a value that is absent or null, which the user
    wrote as nothing, reads `<where>: missing; it must be <expected>`."""
    if value is None:
        return f"{where}: missing; it {'must' if verb == 'must' else 'must be'} {expected}"
    return f"{where}: {_fmt(value)} {verb} {expected}"


def _key_text(key: Any) -> str:
    """A mapping key in a key path (and its sort order): a YAML key may be a number, a boolean
    or null, and str() refuses integers of more than 4300 digits."""
    return key if isinstance(key, str) else _fmt(key)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _unknown_key(where: str, key: str, known: frozenset[str]) -> str:
    guess = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f"did you mean {guess[0]!r}? " if guess else ""
    return f"{where}: unknown key ({hint}known keys: {', '.join(sorted(known))})"


def _check_cidr(key: str, value: Any, problems: list[str]) -> str | None:
    if not isinstance(value, str):
        problems.append(_wrong(key, value, "is not", "a CIDR string such as '203.0.113.0/24'"))
        return None
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as err:
        problems.append(f"{key}: {_fmt(value)} is not a valid CIDR ({err})")
        return None


def _parse_cluster(
    key: str,
    raw: Any,
    problems: list[str],
    *,
    is_hub: bool,
    stack: str,
    extra_regions: Collection[str] = (),
) -> ClusterSpec | None:
    if not isinstance(raw, Mapping):
        problems.append(
            _wrong(key, raw, "must be", "a mapping with at least 'name', 'cloud' and 'region'")
        )
        return None
    before = len(problems)
    for unknown in sorted(set(raw) - CLUSTER_KEYS, key=_key_text):
        problems.append(
            _unknown_key(f"{key}.{_key_text(unknown)}", _key_text(unknown), CLUSTER_KEYS)
        )

    cloud = raw.get("cloud")
    if cloud not in CLOUDS:
        problems.append(_wrong(f"{key}.cloud", cloud, "is not", f"one of {', '.join(CLOUDS)}"))
        cloud = None
    elif is_hub and cloud == "aws":
        problems.append(f"{key}.cloud: 'aws' is not supported for the hub: {EKS_HUB_REASON}")

    name = raw.get("name")
    if not isinstance(name, str) or not _DNS_LABEL.fullmatch(name):
        problems.append(
            _wrong(
                f"{key}.name",
                name,
                "is not",
                "a DNS-1123 label "
                "(lowercase letters, digits and '-', starting and ending with a letter or digit)",
            )
        )
    elif cloud and len(name) > MAX_NAME_LENGTH[cloud]:
        problems.append(
            f"{key}.name: {_fmt(name)} is {len(name)} characters; {cloud} clusters allow at "
            f"most {MAX_NAME_LENGTH[cloud]} (cloud resource names derive from it)"
        )

    region = raw.get("region")
    if cloud in ("aws", "azure"):
        pattern = _AWS_REGION if cloud == "aws" else _AZURE_REGION
        if region is None or region == "":
            problems.append(f"{key}.region: missing; {cloud} clusters need a region")
        elif not isinstance(region, str) or not pattern.fullmatch(region):
            example = "eu-west-1" if cloud == "aws" else "westeurope"
            problems.append(
                f"{key}.region: {_fmt(region)} is not a {cloud} region name (e.g. {example!r})"
            )
        elif region not in known_regions(cloud) and region not in extra_regions:
            nearest = nearest_region(cloud, region)
            hint = f"did you mean {nearest!r}? " if nearest else ""
            problems.append(
                f"{key}.region: {region!r} is not a known {cloud} region ({hint}the list is "
                f"components/regions.yaml; a region newer than it goes in "
                f"{NAMESPACE}:extraRegions)"
            )
    elif region is not None and (not isinstance(region, str) or not region):
        problems.append(f"{key}.region: {_fmt(region)} must be a non-empty string")

    default_count = DEFAULT_KIND_WORKERS if cloud == "kind" else DEFAULT_NODE_COUNT
    node_count = raw.get("nodeCount", default_count)
    if not _is_int(node_count) or node_count < 1:
        problems.append(
            _wrong(f"{key}.nodeCount", node_count, "must be", "an integer of at least 1")
        )
    elif node_count > 100:
        problems.append(f"{key}.nodeCount: {_fmt(node_count)} is above the supported 100")

    node_size = raw.get("nodeSize", DEFAULT_NODE_SIZE.get(cloud or "", ""))
    if not isinstance(node_size, str) or (cloud in DEFAULT_NODE_SIZE and not node_size.strip()):
        problems.append(_wrong(f"{key}.nodeSize", node_size, "must be", "a non-empty string"))

    version = raw.get("kubernetesVersion", DEFAULT_KUBERNETES_VERSION)
    if not isinstance(version, str) or not _K8S_MINOR.fullmatch(version):
        problems.append(
            _wrong(
                f"{key}.kubernetesVersion",
                version,
                "must be",
                f"MAJOR.MINOR, such as '{DEFAULT_KUBERNETES_VERSION}' "
                "(quote it in YAML so 1.30 does not become 1.3)",
            )
        )

    existing_only = ("context", "kubeconfig", "apiServerUrl", "egressIps")
    egress_ips: list[str] = []
    api_server_url = raw.get("apiServerUrl")
    if cloud == "existing":
        for opt in ("context", "kubeconfig"):
            if opt in raw and (not isinstance(raw[opt], str) or not raw[opt]):
                problems.append(_wrong(f"{key}.{opt}", raw[opt], "must be", "a non-empty string"))
        if api_server_url is not None and (
            not isinstance(api_server_url, str) or not api_server_url.startswith("https://")
        ):
            problems.append(f"{key}.apiServerUrl: {_fmt(api_server_url)} must be an https:// URL")
        if is_hub and api_server_url is None:
            problems.append(
                f"{key}.apiServerUrl: missing; an existing hub needs the https:// URL at which "
                "the application clusters reach its API server"
            )
        raw_ips = raw.get("egressIps")
        if not isinstance(raw_ips, list) or not raw_ips:
            problems.append(
                _wrong(
                    f"{key}.egressIps",
                    raw_ips,
                    "must be",
                    "a non-empty list of the public addresses (CIDRs) this cluster's traffic "
                    "leaves from; the database and edge allowlists are built from them",
                )
            )
        else:
            for i, ip in enumerate(raw_ips):
                cidr = _check_cidr(f"{key}.egressIps[{i}]", ip, problems)
                if cidr:
                    egress_ips.append(cidr)
        for opt in CLOUD_ONLY_KEYS:
            if opt in raw:
                problems.append(
                    f"{key}.{opt}: {_fmt(raw[opt])} is only valid with cloud: aws or azure "
                    "(an existing cluster's nodes and version are its own)"
                )
    elif cloud == "kind":
        for opt in ("nodeSize", "kubernetesVersion"):
            if opt in raw:
                problems.append(
                    f"{key}.{opt}: {_fmt(raw[opt])} is not valid with cloud: kind (nodes are "
                    "containers, and their Kubernetes version comes with the pinned kind release)"
                )
        for opt in existing_only:
            if opt in raw:
                problems.append(
                    f"{key}.{opt}: only valid with cloud: existing (a kind cluster's value is "
                    "read from kind and Docker)"
                )
    elif cloud is not None:
        for opt in existing_only:
            if opt in raw:
                problems.append(
                    f"{key}.{opt}: only valid with cloud: existing "
                    f"(a {cloud} cluster's value comes from the cloud)"
                )

    standby = raw.get("standby", False)
    if is_hub and "standby" in raw:
        # The hub's `standby` is the second home, a cluster entry parsed by _parse_hub_standby.
        standby = False
        if not isinstance(raw["standby"], Mapping):
            problems.append(
                _wrong(
                    f"{key}.standby",
                    raw["standby"],
                    "must be",
                    "a cluster entry (name, cloud, region, ...): the second home for the data; "
                    "app clusters are made standbys in their own entries",
                )
            )
    elif not isinstance(standby, bool):
        problems.append(_wrong(f"{key}.standby", standby, "must be", "true or false"))
    retire = raw.get("retire", False)
    if not isinstance(retire, bool):
        problems.append(_wrong(f"{key}.retire", retire, "must be", "true or false"))
    elif is_hub and "retire" in raw:
        problems.append(
            f"{key}.retire: the hub cannot retire; it carries OCM, the database and the load "
            "balancer for the whole fleet"
        )

    nat_gateways = raw.get("natGateways", "single")
    cloud_name = name if isinstance(name, str) else ""
    if cloud == "aws":
        if nat_gateways not in NAT_GATEWAY_MODES:
            problems.append(
                _wrong(
                    f"{key}.natGateways",
                    nat_gateways,
                    "is not",
                    f"one of {', '.join(NAT_GATEWAY_MODES)} (single: one Elastic IP; perZone: one "
                    "per zone, survives the loss of a zone)",
                )
            )
        physical = raw.get("physicalName")
        if physical is not None:
            if not isinstance(physical, str) or not _EKS_CLUSTER_NAME.fullmatch(physical):
                problems.append(
                    f"{key}.physicalName: {_fmt(physical)} is not an EKS cluster name "
                    "(letters, digits, '-' and '_', starting with a letter or digit)"
                )
            cloud_name = physical if isinstance(physical, str) else ""
        elif isinstance(name, str):
            cloud_name = stack_scoped_name(stack, name)
        if len(cloud_name) > MAX_EKS_CLUSTER_NAME:
            where = "physicalName" if physical is not None else "name"
            problems.append(
                f"{key}.{where}: the EKS cluster name {cloud_name!r} (stack {stack!r} and "
                f"cluster name) is {len(cloud_name)} characters; EKS allows at most "
                f"{MAX_EKS_CLUSTER_NAME}. Use a shorter stack or cluster name"
            )
    elif cloud is not None:
        for opt in AWS_ONLY_KEYS:
            if opt in raw:
                problems.append(f"{key}.{opt}: {_fmt(raw[opt])} is only valid with cloud: aws")

    cloud_options = _parse_cloud_options(key, raw, cloud, is_hub, node_size, problems)
    if len(problems) > before:
        return None
    return ClusterSpec(
        **cloud_options,
        name=name,
        cloud=cloud,
        region=region or cloud,
        node_count=node_count,
        node_size=node_size,
        kubernetes_version=version,
        context=raw.get("context"),
        kubeconfig=raw.get("kubeconfig"),
        api_server_url=api_server_url,
        egress_ips=tuple(egress_ips),
        standby=standby,
        retire=retire,
        nat_gateways=nat_gateways if cloud == "aws" else "single",
        physical_name=raw.get("physicalName") if cloud == "aws" else None,
        cloud_name=cloud_name,
    )


def _parse_cloud_options(
    key: str, raw: Mapping[str, Any], cloud: str | None, is_hub: bool, size: Any, problems: list
) -> dict[str, Any]:
    """The keys of one cloud's managed services: EKS support and logs, AKS identity, upgrade
    window and database disk. Returns ClusterSpec fields; problems name the key and value."""
    options: dict[str, Any] = {}
    if cloud == "aws":
        policy = raw.get("upgradePolicy", DEFAULT_UPGRADE_POLICY)
        if policy not in UPGRADE_POLICIES:
            problems.append(
                f"{key}.upgradePolicy: {_fmt(policy)} is not one of {', '.join(UPGRADE_POLICIES)} "
                "(STANDARD: EKS upgrades the version when its standard support ends; EXTENDED: "
                "it stays, at the extended-support price)"
            )
        days = raw.get("controlPlaneLogRetentionDays", DEFAULT_LOG_RETENTION_DAYS)
        if not _is_int(days) or days not in LOG_RETENTION_DAYS:
            problems.append(
                f"{key}.controlPlaneLogRetentionDays: {_fmt(days)} is not a retention "
                f"CloudWatch Logs accepts ({', '.join(map(str, LOG_RETENTION_DAYS))})"
            )
        family = size.split(".", 1)[0].strip().lower() if isinstance(size, str) else ""
        if family in EKS_UNSUPPORTED_FAMILIES:
            problems.append(
                f"{key}.nodeSize: {size!r} ({family}) has no EKS-optimized Amazon Linux 2023 "
                "AMI type (standard, ARM, NVIDIA or Neuron), so an EKS managed node group "
                "cannot boot it; choose another instance type"
            )
        adopt = raw.get("importLogGroup", False)
        if not isinstance(adopt, bool):
            problems.append(f"{key}.importLogGroup: {_fmt(adopt)} must be true or false")
        options.update(
            upgrade_policy=policy, log_retention_days=days, import_log_group=adopt is True
        )
    # Other clouds' use of the aws keys is reported with natGateways and physicalName.
    if cloud == "azure":
        identity = raw.get("controlPlaneIdentity")
        if identity is not None and identity not in CONTROL_PLANE_IDENTITIES:
            problems.append(
                f"{key}.controlPlaneIdentity: {_fmt(identity)} is not one of "
                f"{', '.join(CONTROL_PLANE_IDENTITIES)}"
            )
        storage = raw.get("databaseStorage")
        if storage is not None and not is_hub:
            problems.append(
                f"{key}.databaseStorage: only the hub runs the database; set it on {NAMESPACE}:hub"
            )
        elif storage is not None and storage not in DATABASE_STORAGE:
            problems.append(
                f"{key}.databaseStorage: {_fmt(storage)} is not one of "
                f"{', '.join(DATABASE_STORAGE)}"
            )
        options.update(
            control_plane_identity=identity,
            database_storage=storage if is_hub else None,
            maintenance_window=_parse_maintenance_window(
                f"{key}.maintenanceWindow", raw.get("maintenanceWindow"), problems
            ),
        )
    elif cloud is not None:
        for opt in AZURE_ONLY_KEYS:
            if opt in raw:
                problems.append(f"{key}.{opt}: {_fmt(raw[opt])} is only valid with cloud: azure")
    return options


def _parse_maintenance_window(key: str, raw: Any, problems: list[str]) -> MaintenanceWindow:
    default = MaintenanceWindow()
    if raw is None:
        return default
    if not isinstance(raw, Mapping):
        problems.append(
            f"{key}: {_fmt(raw)} must be a mapping such as {{dayOfWeek: Sunday, startTime: "
            "'02:00', durationHours: 4, utcOffset: '+00:00'}"
        )
        return default
    for unknown in sorted(set(raw) - MAINTENANCE_WINDOW_KEYS, key=str):
        problems.append(_unknown_key(f"{key}.{unknown}", str(unknown), MAINTENANCE_WINDOW_KEYS))
    day = raw.get("dayOfWeek", default.day_of_week)
    if day not in WEEKDAYS:
        problems.append(f"{key}.dayOfWeek: {_fmt(day)} is not one of {', '.join(WEEKDAYS)}")
    start = raw.get("startTime", default.start_time)
    if not isinstance(start, str) or not _HH_MM.fullmatch(start):
        problems.append(
            f"{key}.startTime: {_fmt(start)} must be a time HH:MM such as '02:00' (quote it "
            "in YAML)"
        )
    hours = raw.get("durationHours", default.duration_hours)
    if not _is_int(hours) or not MIN_MAINTENANCE_HOURS <= hours <= MAX_MAINTENANCE_HOURS:
        problems.append(
            f"{key}.durationHours: {_fmt(hours)} must be an integer from "
            f"{MIN_MAINTENANCE_HOURS} (AKS's minimum for upgrade windows) to "
            f"{MAX_MAINTENANCE_HOURS}"
        )
    offset = raw.get("utcOffset", default.utc_offset)
    if not isinstance(offset, str) or not _UTC_OFFSET.fullmatch(offset):
        problems.append(f"{key}.utcOffset: {_fmt(offset)} must be an offset such as '+00:00'")
    return MaintenanceWindow(
        day_of_week=day, start_time=start, duration_hours=hours, utc_offset=offset
    )


def _parse_size(key: str, value: Any, problems: list[str], *, minimum: int) -> int | str | None:
    """A count or a percentage, as OCM's maxConcurrency and maxFailures take them."""
    if _is_int(value) and value >= minimum:
        return value
    if isinstance(value, str) and _PERCENT.fullmatch(value) and int(value[:-1]) >= minimum:
        return value
    problems.append(
        _wrong(
            key, value, "must be", f"an integer of at least {minimum} or a percentage such as '25%'"
        )
    )
    return None


def _parse_app(raw: Any, containers: Collection[str] | None, problems: list[str]) -> AppSpec:
    key = f"{NAMESPACE}:app"
    if raw is None:
        return AppSpec()
    if not isinstance(raw, Mapping):
        problems.append(f"{key}: {_fmt(raw)} must be a mapping such as {{imageTags: {{...}}}}")
        return AppSpec()
    for unknown in sorted(set(raw) - APP_KEYS, key=_key_text):
        problems.append(_unknown_key(f"{key}.{_key_text(unknown)}", _key_text(unknown), APP_KEYS))
    tags_raw = raw.get("imageTags", {})
    if not isinstance(tags_raw, Mapping):
        problems.append(
            _wrong(f"{key}.imageTags", tags_raw, "must", "map container names to image tags")
        )
        return AppSpec()
    tags: dict[str, str] = {}
    for name, tag in sorted(tags_raw.items(), key=lambda kv: _key_text(kv[0])):
        where = f"{key}.imageTags.{_key_text(name)}"
        if containers is not None and name not in containers:
            problems.append(
                f"{where}: no container of that name in manifests/ "
                f"(containers: {', '.join(sorted(containers))})"
            )
        elif not isinstance(tag, str) or not _IMAGE_TAG.fullmatch(tag):
            problems.append(
                _wrong(
                    where,
                    tag,
                    "is not",
                    "an image tag such as '1.1' or '1.1@sha256:<64 hex digits>' "
                    "(quote it in YAML so 1.10 stays 1.10)",
                )
            )
        else:
            tags[name] = tag
    return AppSpec(image_tags=tags)


def _parse_rollout(raw: Any, clusters: list[ClusterSpec], problems: list[str]) -> RolloutSpec:
    key = f"{NAMESPACE}:rollout"
    if raw is None:
        return RolloutSpec()
    if not isinstance(raw, Mapping):
        problems.append(f"{key}: {_fmt(raw)} must be a mapping (canary, maxConcurrency, ...)")
        return RolloutSpec()
    for unknown in sorted(set(raw) - ROLLOUT_KEYS, key=_key_text):
        problems.append(
            _unknown_key(f"{key}.{_key_text(unknown)}", _key_text(unknown), ROLLOUT_KEYS)
        )

    canary: list[str] = []
    if "canary" in raw:
        serving = {c.name for c in clusters if not c.standby and not c.retire}
        standby = {c.name for c in clusters if c.standby and not c.retire}
        retiring = {c.name for c in clusters if c.retire}
        value = raw["canary"]
        if not isinstance(value, list) or not value:
            problems.append(
                _wrong(f"{key}.canary", value, "must be", "a non-empty list of app cluster names")
            )
        else:
            for i, name in enumerate(value):
                # A list or mapping (`canary: [[app-aws]]`) cannot be looked up in a set.
                if not isinstance(name, str) or name not in serving | standby | retiring:
                    problems.append(
                        _wrong(
                            f"{key}.canary[{i}]",
                            name,
                            "is not",
                            f"an app cluster of {NAMESPACE}:clusters "
                            f"({', '.join(sorted(serving)) or 'none'})",
                        )
                    )
                elif name in retiring:
                    problems.append(
                        f"{key}.canary[{i}]: {name!r} is retiring; it no longer runs the app"
                    )
                elif name in standby:
                    problems.append(
                        f"{key}.canary[{i}]: {name!r} is a standby; it runs the app only when "
                        "a serving cluster is lost, so it cannot take changes first"
                    )
                elif name in canary:
                    problems.append(f"{key}.canary[{i}]: {name!r} is listed twice")
                else:
                    canary.append(name)

    concurrency = _parse_size(
        f"{key}.maxConcurrency",
        raw.get("maxConcurrency", DEFAULT_MAX_CONCURRENCY),
        problems,
        minimum=1,
    )
    failures = _parse_size(
        f"{key}.maxFailures", raw.get("maxFailures", DEFAULT_MAX_FAILURES), problems, minimum=0
    )
    soak = raw.get("minSuccessTime", DEFAULT_MIN_SUCCESS_TIME)
    if not isinstance(soak, str) or not (_DURATION.fullmatch(soak) or soak == "0"):
        problems.append(
            _wrong(
                f"{key}.minSuccessTime", soak, "must be", "a duration such as '2m', '90s' or '0'"
            )
        )
    elif soak != "0" and _duration_too_long(soak):
        problems.append(f"{key}.minSuccessTime: {soak!r} {DURATION_TOO_LONG}")
    deadline = raw.get("progressDeadline", DEFAULT_PROGRESS_DEADLINE)
    if not isinstance(deadline, str) or not _DURATION.fullmatch(deadline):
        problems.append(
            _wrong(
                f"{key}.progressDeadline",
                deadline,
                "must be",
                "a duration such as '10m' ('None' is refused: a cluster that never becomes "
                "ready would hold the rollout and `pulumi up` forever)",
            )
        )
    # Not int(): it refuses more than 4300 digits.
    elif not deadline[:-1].strip("0"):
        problems.append(
            f"{key}.progressDeadline: {deadline!r} would time every cluster out at once"
        )
    elif _duration_too_long(deadline):
        problems.append(f"{key}.progressDeadline: {deadline!r} {DURATION_TOO_LONG}")
    return RolloutSpec(
        canary=tuple(canary),
        max_concurrency=concurrency if concurrency is not None else DEFAULT_MAX_CONCURRENCY,
        min_success_time=soak if isinstance(soak, str) else DEFAULT_MIN_SUCCESS_TIME,
        progress_deadline=deadline if isinstance(deadline, str) else DEFAULT_PROGRESS_DEADLINE,
        max_failures=failures if failures is not None else DEFAULT_MAX_FAILURES,
    )


def _check_standbys(clusters: list[ClusterSpec], problems: list[str]) -> None:
    """Serving clusters must exist, and every standby must sort after every serving cluster.

    The bookstore Placement scores every cluster 0 (prioritizerPolicy mode Exact with no
    prioritizer) and breaks ties by name (placement scheduling/schedule.go,
    pluginScheduler.Schedule step 4), so it picks serving clusters first only if their names
    sort first. See components/app/rollout.py.
    """
    key = f"{NAMESPACE}:clusters"
    # A retiring cluster is out of the Placement's candidates: no ordering applies to it.
    serving = [c for c in clusters if not c.standby and not c.retire]
    if any(not c.retire for c in clusters) and not serving:
        problems.append(f"{key}: every entry is a standby; at least one must serve the app")
        return
    last_serving = max(c.name for c in serving) if serving else ""
    for i, spec in enumerate(clusters):
        if spec.standby and not spec.retire and spec.name < last_serving:
            problems.append(
                f"{key}[{i}].name: standby {spec.name!r} sorts before serving cluster "
                f"{last_serving!r}; OCM's placement breaks ties by name, so a standby's name "
                "must sort after every serving cluster's (e.g. 'standby-...' or 'zz-...')"
            )


def _parse_hub_standby(
    hub_raw: Any, problems: list[str], *, stack: str, extra_regions: Collection[str]
) -> ClusterSpec | None:
    """`hub.standby`: the second home, a cluster entry beside the hub. The kind rule (kind only
    with a kind hub) and unique names are checked with the other clusters."""
    if not isinstance(hub_raw, Mapping) or not isinstance(hub_raw.get("standby"), Mapping):
        return None
    key = f"{NAMESPACE}:hub.standby"
    raw = dict(hub_raw["standby"])
    refused = False
    # Not a cluster key: parsed by standby_ocm_hub_setting.
    raw.pop("ocmHub", None)
    for opt, why in STANDBY_REFUSED_KEYS.items():
        if opt in raw:
            problems.append(f"{key}.{opt}: {_fmt(raw.pop(opt))} is not valid here: {why}")
            refused = True
    spec = _parse_cluster(
        key, raw, problems, is_hub=False, stack=stack, extra_regions=extra_regions
    )
    hub_cloud, hub_region = hub_raw.get("cloud"), hub_raw.get("region") or hub_raw.get("cloud")
    same_place = spec is not None and (spec.cloud, spec.region) == (hub_cloud, hub_region)
    # kind and existing clusters have no region to leave: a kind second home rehearses the
    # procedure on this machine, and an existing one's place is the operator's to know.
    if same_place and spec.cloud in ("aws", "azure"):
        problems.append(
            f"{key}.region: {spec.region!r} on {spec.cloud} is the hub's own cloud and "
            "region; the second home exists to outlive the hub's, so it must be on another "
            "cloud or in another region"
        )
        return None
    return None if refused else spec


def standby_ocm_hub_setting(hub_raw: Any, problems: list[str]) -> bool:
    """`hub.standby.ocmHub`: true puts a second OCM hub on the second home. Refused on an aws
    second home (EKS_STANDBY_HUB_REASON)."""
    if not isinstance(hub_raw, Mapping) or not isinstance(hub_raw.get("standby"), Mapping):
        return False
    raw = hub_raw["standby"]
    key = f"{NAMESPACE}:hub.standby.ocmHub"
    value = raw.get("ocmHub", False)
    if not isinstance(value, bool):
        problems.append(_wrong(key, value, "must be", "true or false"))
        return False
    if value and raw.get("cloud") == "aws":
        problems.append(
            f"{key}: true is not valid with {NAMESPACE}:hub.standby.cloud: 'aws'; "
            f"{EKS_STANDBY_HUB_REASON}"
        )
        return False
    return value


def _parse_admin_principals(
    raw: Any, aws_clusters: list[str], problems: list[str]
) -> tuple[str, ...]:
    key = f"{NAMESPACE}:eksAdminPrincipals"
    # Pulumi.yaml's default is the empty list: as good as unset.
    if raw is None or raw == []:
        if aws_clusters:
            problems.append(
                f"{key}: missing; the fleet has aws clusters ({', '.join(aws_clusters)}), and "
                "every EKS cluster grants cluster admin to exactly the IAM role or user ARNs "
                f"listed here, never to whoever happens to run Pulumi; {FIND_YOUR_PRINCIPAL}"
            )
        return ()
    if not isinstance(raw, list) or not raw:
        problems.append(
            f"{key}: {_fmt(raw)} must be a non-empty list of IAM role or user ARNs such as "
            f"'arn:aws:iam::123456789012:role/platform-admin'; {FIND_YOUR_PRINCIPAL}"
        )
        return ()
    principals: list[str] = []
    for i, arn in enumerate(raw):
        if isinstance(arn, str) and _STS_SESSION.match(arn):
            problems.append(
                f"{key}[{i}]: {arn!r} is an STS session, which EKS access entries refuse and "
                "which changes with every session; give the IAM role ARN instead "
                "(scripts/caller_role_arn.py turns one into the other)"
            )
        elif not isinstance(arn, str) or not _IAM_PRINCIPAL.fullmatch(arn):
            problems.append(
                _wrong(
                    f"{key}[{i}]",
                    arn,
                    "is not",
                    "an IAM role or user ARN such as "
                    "'arn:aws:iam::123456789012:role/platform-admin'",
                )
            )
        elif arn in principals:
            problems.append(f"{key}[{i}]: {arn!r} is listed twice; EKS allows one entry each")
        else:
            principals.append(arn)
    return tuple(principals)


def _parse_extra_regions(raw: Any, problems: list[str]) -> frozenset[str]:
    key = f"{NAMESPACE}:extraRegions"
    if raw is None:
        return frozenset()
    if not isinstance(raw, list):
        problems.append(f"{key}: {_fmt(raw)} must be a list of region names")
        return frozenset()
    regions = set()
    for i, region in enumerate(raw):
        if not isinstance(region, str) or not (
            _AWS_REGION.fullmatch(region) or _AZURE_REGION.fullmatch(region)
        ):
            problems.append(
                f"{key}[{i}]: {_fmt(region)} is not an aws or azure region name (such as "
                "'eu-west-1' or 'westeurope')"
            )
        else:
            regions.add(region)
    return frozenset(regions)


def _parse_database(
    raw: Any, hub_standby: ClusterSpec | None, standby_raw: Any, problems: list[str]
) -> str:
    """`database`: which home holds the primary (`primary`, main or standby)."""
    key = f"{NAMESPACE}:database"
    if raw is None:
        return "main"
    if not isinstance(raw, Mapping):
        problems.append(_wrong(key, raw, "must be", "a mapping such as {primary: main}"))
        return "main"
    for unknown in sorted(set(raw) - DATABASE_KEYS, key=_key_text):
        problems.append(
            _unknown_key(f"{key}.{_key_text(unknown)}", _key_text(unknown), DATABASE_KEYS)
        )
    primary = raw.get("primary", "main")
    if primary not in DATABASE_PRIMARIES:
        problems.append(
            _wrong(f"{key}.primary", primary, "is not", "one of " + ", ".join(DATABASE_PRIMARIES))
        )
        return "main"
    # A standby entry with problems of its own is reported at its keys; only its absence is
    # this key's problem.
    if primary == "standby" and hub_standby is None and standby_raw is None:
        problems.append(
            f"{key}.primary: 'standby' needs a second home: set {NAMESPACE}:hub.standby "
            "(the standby main cluster that holds the replica)"
        )
        return "main"
    return primary


def _parse_entry(raw: Any, hub: ClusterSpec | None, problems: list[str]) -> EntrySpec:
    """`entry`: which health-checked DNS name, if any, fronts the public entries."""
    key = f"{NAMESPACE}:entry"
    if raw is None:
        return EntrySpec()
    if not isinstance(raw, Mapping):
        problems.append(_wrong(key, raw, "must be", "a mapping such as {dns: none}"))
        return EntrySpec()
    for unknown in sorted(set(raw) - ENTRY_KEYS, key=_key_text):
        problems.append(_unknown_key(f"{key}.{_key_text(unknown)}", _key_text(unknown), ENTRY_KEYS))
    dns = raw.get("dns", "none")
    if dns not in ENTRY_DNS_CHOICES:
        problems.append(
            _wrong(f"{key}.dns", dns, "is not", "one of " + ", ".join(ENTRY_DNS_CHOICES))
        )
        return EntrySpec()
    own = {
        "trafficManager": {"relativeName", "location"},
        "route53": {"hostedZoneId", "recordName"},
    }
    for choice, keys in own.items():
        for name in sorted(keys & set(raw)):
            if dns != choice:
                problems.append(f"{key}.{name}: only for dns: {choice}, and dns is {dns!r}")

    def number(name: str, default: int, allowed: str, ok) -> int:
        value = raw.get(name, default)
        if not _is_int(value) or not ok(value):
            problems.append(_wrong(f"{key}.{name}", value, "must be", allowed))
            return default
        return value

    low, high = ENTRY_FAILURES_RANGE
    spec = EntrySpec(
        dns=dns,
        probe_interval_s=number(
            "probeIntervalSeconds", 30, "10 or 30", lambda v: v in ENTRY_PROBE_INTERVALS
        ),
        failure_threshold=number(
            "failureThreshold", 3, f"an integer from {low} to {high}", lambda v: low <= v <= high
        ),
        ttl_s=number(
            "ttlSeconds",
            30,
            f"an integer from {ENTRY_TTL_RANGE[0]} to {ENTRY_TTL_RANGE[1]}",
            lambda v: ENTRY_TTL_RANGE[0] <= v <= ENTRY_TTL_RANGE[1],
        ),
    )
    if dns == "trafficManager":
        label = raw.get("relativeName")
        if not isinstance(label, str) or not _TM_RELATIVE_NAME.match(label):
            problems.append(
                _wrong(
                    f"{key}.relativeName",
                    label,
                    "must be",
                    "a DNS label (lowercase letters, digits, '-'), the <name> of "
                    "<name>.trafficmanager.net",
                )
            )
        location = raw.get("location")
        if location is None and hub is not None and hub.cloud == "azure":
            location = hub.region
        if not isinstance(location, str) or not _AZURE_REGION.match(location):
            problems.append(
                _wrong(
                    f"{key}.location",
                    location,
                    "must be",
                    "an Azure region such as westeurope (the default, the hub's region, "
                    "exists only with an azure hub)",
                )
            )
        return replace(spec, relative_name=str(label), location=str(location))
    if dns == "route53":
        zone = raw.get("hostedZoneId")
        if not isinstance(zone, str) or not _HOSTED_ZONE_ID.match(zone):
            problems.append(
                _wrong(f"{key}.hostedZoneId", zone, "must be", "a hosted zone ID such as Z0123ABC")
            )
        record = raw.get("recordName")
        labels = record.removesuffix(".").split(".") if isinstance(record, str) else []
        if len(labels) < 2 or not all(_HOSTNAME_LABEL.match(label) for label in labels):
            problems.append(
                _wrong(
                    f"{key}.recordName",
                    record,
                    "must be",
                    "a DNS name in the hosted zone such as shop.example.com",
                )
            )
        return replace(spec, hosted_zone_id=str(zone), record_name=str(record))
    return spec


def parse_fleet_config(
    raw: Mapping[str, Any], *, stack: str = "dev", containers: Collection[str] | None = None
) -> FleetConfig:
    """Validate raw config values (keys without the namespace) into a FleetConfig.

    `containers` are the container names of manifests/, which `app.imageTags` may name (not
    checked when None). Every problem is collected and raised at once in a FleetConfigError.
    """
    problems: list[str] = []
    for unknown in sorted(set(raw) - TOP_LEVEL_KEYS):
        problems.append(_unknown_key(f"{NAMESPACE}:{unknown}", unknown, TOP_LEVEL_KEYS))

    extra_regions = _parse_extra_regions(raw.get("extraRegions"), problems)
    hub_raw = raw.get("hub")
    if hub_raw is None:
        problems.append(f"{NAMESPACE}:hub: missing; set the main cluster (name, cloud, region)")
        hub = None
    else:
        hub = _parse_cluster(
            f"{NAMESPACE}:hub",
            hub_raw,
            problems,
            is_hub=True,
            stack=stack,
            extra_regions=extra_regions,
        )

    hub_standby = _parse_hub_standby(hub_raw, problems, stack=stack, extra_regions=extra_regions)
    standby_ocm_hub = standby_ocm_hub_setting(hub_raw, problems)

    clusters: list[ClusterSpec] = []
    clusters_raw = raw.get("clusters")
    key = f"{NAMESPACE}:clusters"
    if not isinstance(clusters_raw, list):
        problems.append(
            _wrong(
                key,
                clusters_raw,
                "must be",
                "a list of application clusters (each with name, cloud and region)",
            )
        )
    elif not clusters_raw:
        problems.append(f"{key}: the list is empty; the fleet needs at least one app cluster")
    else:
        for i, item in enumerate(clusters_raw):
            spec = _parse_cluster(
                f"{key}[{i}]",
                item,
                problems,
                is_hub=False,
                stack=stack,
                extra_regions=extra_regions,
            )
            if spec:
                clusters.append(spec)

    if clusters and len(clusters) == len(clusters_raw) and all(c.retire for c in clusters):
        problems.append(
            f"{key}: every cluster has retire: true; the fleet needs at least one active app "
            "cluster (to remove the whole fleet, run `pulumi destroy`)"
        )

    names: dict[str, str] = {}
    raw_names = [(f"{NAMESPACE}:hub.name", hub_raw)]
    standby_raw = hub_raw.get("standby") if isinstance(hub_raw, Mapping) else None
    if isinstance(standby_raw, Mapping):
        raw_names.append((f"{NAMESPACE}:hub.standby.name", standby_raw))
    if isinstance(clusters_raw, list):
        raw_names += [(f"{key}[{i}].name", c) for i, c in enumerate(clusters_raw)]
    for where, item in raw_names:
        name = item.get("name") if isinstance(item, Mapping) else None
        if not isinstance(name, str):
            continue
        if name in names:
            problems.append(
                f"{where}: {name!r} is already used by {names[name]}; cluster names are unique"
            )
        else:
            names[name] = where

    clouds_by_key = {
        where.removesuffix(".name"): item.get("cloud")
        for where, item in raw_names
        if isinstance(item, Mapping) and item.get("cloud") in CLOUDS
    }
    on_kind = sorted(k for k, c in clouds_by_key.items() if c == "kind")
    elsewhere = sorted(k for k, c in clouds_by_key.items() if c != "kind")
    if on_kind and elsewhere:
        problems.append(
            f"{', '.join(f'{k}.cloud' for k in on_kind)}: 'kind' cannot be mixed with other "
            f"clouds ({', '.join(elsewhere)}): kind clusters reach each other only on this "
            "machine's Docker network, where no cloud cluster can reach them"
        )

    cidrs: list[str] = []
    cidrs_raw = raw.get("apiAllowedCidrs")
    key = f"{NAMESPACE}:apiAllowedCidrs"
    if not isinstance(cidrs_raw, list) or not cidrs_raw:
        problems.append(
            _wrong(
                key,
                cidrs_raw,
                "must be",
                "a non-empty list of CIDRs that may reach the Kubernetes API servers (your "
                "workstation's and CI's public addresses)",
            )
        )
    else:
        for i, value in enumerate(cidrs_raw):
            cidr = _check_cidr(f"{key}[{i}]", value, problems)
            if cidr:
                cidrs.append(cidr)

    ocm_version = raw.get("ocmVersion", DEFAULT_OCM_VERSION)
    if not isinstance(ocm_version, str) or not _OCM_VERSION.fullmatch(ocm_version):
        problems.append(
            _wrong(
                f"{NAMESPACE}:ocmVersion",
                ocm_version,
                "must be",
                f"an OCM release such as '{DEFAULT_OCM_VERSION}' (no leading 'v')",
            )
        )

    protect_data = raw.get("protectData", False)
    if not isinstance(protect_data, bool):
        problems.append(
            _wrong(f"{NAMESPACE}:protectData", protect_data, "must be", "true or false")
        )

    rotation = raw.get("databasePasswordRotation", 0)
    if not _is_int(rotation) or rotation < 0:
        problems.append(
            _wrong(
                f"{NAMESPACE}:databasePasswordRotation",
                rotation,
                "must be",
                "an integer of at least 0 (raise it by one to rotate the app's database password)",
            )
        )

    if isinstance(clusters_raw, list) and len(clusters) == len(clusters_raw):
        _check_standbys(clusters, problems)
    app = _parse_app(raw.get("app"), containers, problems)
    rollout = _parse_rollout(raw.get("rollout"), clusters, problems)
    aws_clusters = [
        # a name that is not text is reported at its own key; here the entry's key stands in
        c["name"] if isinstance(c.get("name"), str) else f"{NAMESPACE}:clusters[{i}]"
        for i, c in enumerate(clusters_raw if isinstance(clusters_raw, list) else [])
        if isinstance(c, Mapping) and c.get("cloud") == "aws"
    ]
    if isinstance(standby_raw, Mapping) and standby_raw.get("cloud") == "aws":
        name = standby_raw.get("name")
        aws_clusters.insert(0, name if isinstance(name, str) else f"{NAMESPACE}:hub.standby")
    entry = _parse_entry(raw.get("entry"), hub, problems)
    database_primary = _parse_database(raw.get("database"), hub_standby, standby_raw, problems)
    admins = _parse_admin_principals(raw.get("eksAdminPrincipals"), aws_clusters, problems)
    chart_paths = _parse_charts(raw.get("charts"), problems)

    if problems:
        raise FleetConfigError(problems, stack=stack)
    assert hub is not None
    return FleetConfig(
        hub=hub,
        clusters=tuple(clusters),
        api_allowed_cidrs=tuple(cidrs),
        ocm_version=ocm_version,
        protect_data=protect_data,
        database_password_rotation=rotation,
        hub_standby=hub_standby,
        database_primary=database_primary,
        standby_ocm_hub=standby_ocm_hub,
        entry=entry,
        app=app,
        rollout=rollout,
        eks_admin_principals=admins,
        chart_paths=chart_paths,
    )


def _chart_name(path: Path) -> str | None:
    """The `name` in a chart directory's or .tgz's Chart.yaml, or None when it has none."""
    try:
        if path.is_dir():
            text = (path / "Chart.yaml").read_text()
        else:
            with tarfile.open(path) as archive:
                # A packaged chart holds <name>/Chart.yaml (helm package); subcharts sit deeper.
                top = [m for m in archive.getmembers() if m.name.count("/") == 1]
                member = next((m for m in top if m.name.endswith("/Chart.yaml")), None)
                extracted = archive.extractfile(member) if member else None
                if extracted is None:
                    return None
                text = extracted.read().decode()
        chart = yaml.safe_load(text)
    except (OSError, tarfile.TarError, UnicodeDecodeError, yaml.YAMLError):
        return None
    name = chart.get("name") if isinstance(chart, dict) else None
    return name if isinstance(name, str) else None


def _parse_charts(raw: Any, problems: list[str]) -> dict[str, str]:
    """`charts`: local chart paths, checked to be the chart they replace. A relative path is
    relative to the project directory, where Pulumi runs the program and the provider reads it."""
    key = f"{NAMESPACE}:charts"
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.append(
            f"{key}: {_fmt(raw)} must be a mapping of chart to a local chart directory or .tgz, "
            "such as {clusterManager: charts/cluster-manager-1.3.1.tgz}"
        )
        return {}
    paths = {}
    for name, value in sorted(raw.items()):
        where = f"{key}.{name}"
        if name not in CHART_KEYS:
            problems.append(_unknown_key(where, str(name), frozenset(CHART_KEYS)))
            continue
        chart = CHART_KEYS[name]
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{where}: {_fmt(value)} must be the path of a chart directory or .tgz")
            continue
        path = Path(value).expanduser()
        if not path.exists():
            problems.append(
                f"{where}: {value!r} does not exist (relative to the project directory)"
            )
            continue
        if path.is_file() and not value.endswith((".tgz", ".tar.gz")):
            problems.append(f"{where}: {value!r} is a file but not a .tgz packaged chart")
            continue
        found = _chart_name(path)
        if found != chart:
            what = f"is the chart {found!r}" if found else "holds no readable Chart.yaml"
            problems.append(f"{where}: {value!r} {what}; it must be the {chart!r} chart")
            continue
        paths[chart] = value
    return paths


# Keys whose values are structures: Pulumi holds them as JSON text.
STRUCTURED_KEYS = (
    "hub",
    "entry",
    "database",
    "clusters",
    "apiAllowedCidrs",
    "eksAdminPrincipals",
    "app",
    "rollout",
    "extraRegions",
    "charts",
)


def raw_from_config_values(values: Mapping[str, str]) -> dict[str, Any]:
    """The raw model input from the stack's `ocm-fleet:` values as Pulumi holds them (keys without
    the namespace, each value the text Pulumi gives the program: JSON for structures, plain text
    for scalars). Both the program and the offline check read the stack through this."""
    raw: dict[str, Any] = {key: value for key, value in values.items() if key not in TOP_LEVEL_KEYS}
    for key in STRUCTURED_KEYS:
        text = values.get(key)
        if text is None:
            continue
        try:
            raw[key] = json.loads(text)
        except ValueError:
            # A bare YAML scalar arrives as its plain text. Validate that text, so the error
            # names it and says what the key expects, with the others.
            raw[key] = text
    if (ocm_version := values.get("ocmVersion")) is not None:
        raw["ocmVersion"] = ocm_version
    if (protect := values.get("protectData")) is not None:
        raw["protectData"] = {"true": True, "false": False}.get(protect.lower(), protect)
    if (rotation := values.get("databasePasswordRotation")) is not None:
        # isdigit() alone admits "²", which int() rejects with a ValueError
        digits = rotation.isascii() and rotation.isdigit()
        raw["databasePasswordRotation"] = int(rotation) if digits else rotation
    return raw


def fleet_config_from_values(values: Mapping[str, str], *, stack: str) -> FleetConfig:
    """The validated config of a stack from its `ocm-fleet:` values (see raw_from_config_values),
    with app.imageTags checked against the containers of manifests/."""
    from components.app._manifests import container_names, load_manifests

    return parse_fleet_config(
        raw_from_config_values(values), stack=stack, containers=container_names(load_manifests())
    )
