"""ocm-fleet: clusters on AWS, Azure or kind, joined to an OCM hub, running the bookstore."""

import pulumi

from components._evaluation import prepare_evaluation
from components.app._manifests import load_manifests
from components.app.database import Database, DatabaseArgs
from components.app.delivery import (
    DATABASE_SERVICE,
    AppDelivery,
    AppDeliveryArgs,
    workload_manifests,
)
from components.app.rollout import AppRollout, AppRolloutArgs
from components.clusters import build_cluster, kind_load_balancer
from components.clusters.existing import read_kubeconfigs
from components.edge.dns import EntryTarget, PublicName, PublicNameArgs
from components.edge.public_load_balancer import (
    PublicLoadBalancer,
    PublicLoadBalancerArgs,
    azure_dns_label_prefix,
)
from components.lifecycle.previous_run import (
    PreviousRun,
    default_database_storage,
    union_of_egress,
)
from components.observability.agent import MetricsAgent, MetricsAgentArgs
from components.observability.hub import FleetMonitoring, FleetMonitoringArgs
from components.ocm.hub import OcmHub, OcmHubArgs
from components.ocm.managed_cluster import OcmManagedCluster, OcmManagedClusterArgs, StandbyHub
from components.ocm.placement import FleetPlacement, FleetPlacementArgs
from components.pulumi_config import load_fleet_config

prepare_evaluation()
# Everything read from config and local files is checked before the first resource exists.
fleet = load_fleet_config()
local_kubeconfigs = read_kubeconfigs(fleet.all_clusters)
manifests = load_manifests()
for warning in fleet.elastic_ip_warnings():
    pulumi.log.warn(warning)

local_lb = kind_load_balancer(fleet)
previous_run = PreviousRun(fleet)
built = {
    spec.name: build_cluster(
        spec, fleet, local_kubeconfigs, local_load_balancer=local_lb, previous_run=previous_run
    )
    for spec in fleet.clusters
}
apps = {spec.name: built[spec.name] for spec in fleet.active_clusters}
retiring = {spec.name: built[spec.name] for spec in fleet.retiring_clusters}
app_egress = union_of_egress(*[c.egress_cidrs for c in apps.values()])
# Klusterlets call the hub's API from their cluster's egress addresses. Retiring clusters and
# clusters removed from the config keep that access for the run that deletes what their
# agents carried (Pulumi deletes last), or those deletes would wait for an agent locked out.
hub_api_egress = union_of_egress(
    app_egress, *[c.egress_cidrs for c in retiring.values()], previous_run.departing_egress()
)
hub = build_cluster(
    fleet.hub,
    fleet,
    local_kubeconfigs,
    extra_api_cidrs=hub_api_egress,
    local_load_balancer=local_lb,
    previous_run=previous_run,
)
# The second home (hub.standby): built like the main cluster, its API open to the operators
# only. The replica that will live on it reaches the primary from its egress addresses.
# With the standby OCM hub on it (hub.standby.ocmHub), the klusterlets call its API too, from
# the same addresses as the main hub's.
second_home = (
    build_cluster(
        fleet.hub_standby,
        fleet,
        local_kubeconfigs,
        local_load_balancer=local_lb,
        previous_run=previous_run,
        **({"extra_api_cidrs": hub_api_egress} if fleet.standby_ocm_hub else {}),
    )
    if fleet.hub_standby is not None
    else None
)

ocm = OcmHub(
    "ocm-hub",
    OcmHubArgs(
        hub_cluster=hub,
        ocm_version=fleet.ocm_version,
        chart_path=fleet.chart_paths.get("cluster-manager"),
        multiple_hubs=fleet.standby_ocm_hub,
    ),
)
# The standby OCM hub (hub.standby.ocmHub): the same cluster-manager on the second home, which
# every agent moves to by itself when the main cluster is lost (docs/standby-hub.md).
standby_ocm = (
    OcmHub(
        "ocm-standby-hub",
        OcmHubArgs(
            hub_cluster=second_home,
            ocm_version=fleet.ocm_version,
            chart_path=fleet.chart_paths.get("cluster-manager"),
            multiple_hubs=True,
        ),
    )
    if fleet.standby_ocm_hub and second_home is not None
    else None
)
standby_hub = (
    StandbyHub(hub_cluster=second_home, ocm_hub=standby_ocm) if standby_ocm is not None else None
)
database = Database(
    "database",
    DatabaseArgs(
        hub_cluster=hub,
        allowed_cidrs=app_egress,
        protect_data=fleet.protect_data,
        password_rotation=fleet.database_password_rotation,
        storage=default_database_storage(fleet.hub),
        storage_checked=previous_run.database_storage(),
        # With a second home: a replica there, and the primary where database.primary says.
        standby_home=second_home,
        primary=fleet.database_primary,
    ),
)
# The receiver admits the same app clusters, from the same addresses, as everything else.
monitoring = FleetMonitoring(
    "monitoring",
    FleetMonitoringArgs(
        hub_cluster=hub,
        app_clusters=list(apps),
        allowed_cidrs=app_egress,
        chart_paths=fleet.chart_paths,
    ),
)

# Who reaches the app clusters' edges: the public entry on the main cluster and, with a second
# home, the entry there too. Each edge admits exactly the egress of both.
entry_egress = (
    union_of_egress(hub.egress_cidrs, second_home.egress_cidrs)
    if second_home is not None
    else hub.egress_cidrs
)

# With a second home, each app cluster reaches the database by a stable name that a promotion
# re-points through that cluster's own provider: no hub, no pod restart (AppDelivery). The
# addresses of both homes' databases come with the replica; until the database has them, the
# app keeps the one address.
database_homes = getattr(database, "addresses", None) if second_home is not None else None
database_primary = (
    second_home.name
    if second_home is not None and getattr(fleet, "database_primary", "main") == "standby"
    else hub.name
)
deliveries, managed_clusters, agents = {}, [], []
standby_managed_clusters, standby_agents = [], []
for name, cluster in apps.items():
    membership = OcmManagedCluster(
        f"{name}-ocm",
        OcmManagedClusterArgs(
            cluster=cluster,
            hub_cluster=hub,
            ocm_hub=ocm,
            ocm_version=fleet.ocm_version,
            chart_path=fleet.chart_paths.get("klusterlet"),
            standby_hub=standby_hub,
        ),
    )
    managed_clusters.append(membership.managed_cluster)
    agents += [membership.managed_cluster, membership.klusterlet]
    if membership.standby_managed_cluster is not None:
        standby_managed_clusters.append(membership.standby_managed_cluster)
        standby_agents += [membership.standby_managed_cluster, membership.klusterlet]
    deliveries[name] = AppDelivery(
        f"{name}-app",
        AppDeliveryArgs(
            cluster=cluster,
            objects=manifests,
            database=database.endpoint,
            edge_allowed_cidrs=entry_egress,
            ready_after=database.ready,
            database_homes=database_homes,
            database_primary=database_primary if database_homes is not None else None,
        ),
    )
    MetricsAgent(
        f"{name}-metrics",
        MetricsAgentArgs(
            cluster=cluster, hub_cluster=hub, membership=membership, monitoring=monitoring
        ),
    )

fleet_placement = FleetPlacement(
    "fleet-placement",
    FleetPlacementArgs(hub_provider=hub.provider, ocm_hub=ocm, managed_clusters=managed_clusters),
)
app_manifests = workload_manifests(
    manifests,
    image_tags=fleet.app.image_tags,
    password_generation=fleet.database_password_rotation,
    database_host=DATABASE_SERVICE if database_homes is not None else None,
)
rollout = AppRollout(
    "app-rollout",
    AppRolloutArgs(
        hub_provider=hub.provider,
        ocm_hub=ocm,
        namespace=fleet_placement.namespace,
        binding=fleet_placement.binding,
        serving=[name for name, c in apps.items() if not c.spec.standby],
        standby=[name for name, c in apps.items() if c.spec.standby],
        memberships=agents,
        cluster_parts=[part for d in deliveries.values() for part in d.work_needs],
        manifests=app_manifests,
        rollout=fleet.rollout,
        hub_kubeconfig=hub.kubeconfig,
        hub_context=fleet.hub.context,
        ready_after=database.ready,
        delivered=previous_run.app_revisions(),
        last_strategy=previous_run.last_strategy(),
    ),
)
# The same Placement and replica set on the standby hub, so that whichever hub an agent is on
# delivers the same objects; rolled out All there (rollout.STANDBY_HUB_DELIVERY).
if standby_ocm is not None:
    standby_placement = FleetPlacement(
        "standby-fleet-placement",
        FleetPlacementArgs(
            hub_provider=second_home.provider,
            ocm_hub=standby_ocm,
            managed_clusters=standby_managed_clusters,
        ),
    )
    AppRollout(
        "standby-app-rollout",
        AppRolloutArgs(
            hub_provider=second_home.provider,
            ocm_hub=standby_ocm,
            namespace=standby_placement.namespace,
            binding=standby_placement.binding,
            serving=[name for name, c in apps.items() if not c.spec.standby],
            standby=[name for name, c in apps.items() if c.spec.standby],
            memberships=standby_agents,
            cluster_parts=[part for d in deliveries.values() for part in d.work_needs],
            # The main hub's template, object for object: byte-identical ManifestWorks.
            manifests=app_manifests,
            rollout=fleet.rollout,
            hub_kubeconfig=second_home.kubeconfig,
            hub_context=fleet.hub_standby.context,
            ready_after=database.ready,
            on_standby_hub=True,
        ),
    )

upstreams = {name: d.edge_address for name, d in deliveries.items()}


def entry_dns_label(spec):
    # A name in front of two entries points at both by DNS names when it can; an AKS entry's
    # public IP gets one from a DNS label (components/edge/dns.py, _choose_form).
    if fleet.entry.dns == "none" or second_home is None or spec.cloud != "azure":
        return {}
    prefix = azure_dns_label_prefix(pulumi.get_project(), pulumi.get_stack(), spec.name)
    return {"cloud": spec.cloud, "dns_label_prefix": prefix, "region": spec.region}


entry = PublicLoadBalancer(
    "public-lb",
    PublicLoadBalancerArgs(
        hub_provider=hub.provider, upstreams=upstreams, **entry_dns_label(fleet.hub)
    ),
)
# The second home's entry: the same HAProxy in front of the same app clusters, so that users
# still reach them when the main cluster is lost (docs/public-entry.md).
second_entry = (
    PublicLoadBalancer(
        f"{second_home.name}-entry",
        PublicLoadBalancerArgs(
            hub_provider=second_home.provider,
            upstreams=upstreams,
            cloud=second_home.cloud,
            **entry_dns_label(fleet.hub_standby),
        ),
    )
    if second_home is not None
    else None
)

# The entries a health-checked name fronts, first preferred.
entry_components = [entry, *filter(None, [second_entry])]
entries = [e.url for e in entry_components]
entry_targets = [
    EntryTarget(name=name, url=component.url, cloud=spec.cloud, dns_name=component.dns_name)
    for name, component, spec in [
        ("public-lb", entry, fleet.hub),
        *([(f"{second_home.name}-entry", second_entry, fleet.hub_standby)] if second_entry else []),
    ]
]

public_name = (
    PublicName(
        "public-name",
        PublicNameArgs(
            spec=fleet.entry,
            entries=entry_targets,
            stack=pulumi.get_stack(),
            # Removed before the entries it points at: DNS never answers with a deleted address.
            entry_resources=entry_components,
        ),
    )
    if fleet.entry.dns != "none"
    else None
)


def describe(cluster):
    # cloudName, logGroup, nodeSize, firstPoolSize, azureName, kubernetesVersion,
    # controlPlaneIdentity: what later runs check a change against and build on (see
    # PreviousRun).
    return {
        "cloud": cluster.cloud,
        "region": cluster.region,
        "apiServerUrl": cluster.api_server_url,
        "egressIps": cluster.egress_cidrs,
        **(
            {"cloudName": cluster.cluster_name, "logGroup": cluster.log_group_name}
            if cluster.cloud == "aws"
            else {}
        ),
        **(
            {
                "nodeSize": cluster.node_size,
                "firstPoolSize": cluster.first_pool_size,
                "azureName": cluster.cluster_name,
                "kubernetesVersion": cluster.spec.kubernetes_version,
                "controlPlaneIdentity": cluster.control_plane_identity,
            }
            if cluster.cloud == "azure"
            else {}
        ),
    }


pulumi.export("url", entry.url)
if second_entry is not None:
    pulumi.export("entryUrls", entries)
if public_name is not None:
    pulumi.export("publicName", public_name.name)
    pulumi.export("publicNameUrl", public_name.name.apply(lambda host: f"http://{host}"))
pulumi.export("hub", {"name": hub.name, **describe(hub), "databaseStorage": database.storage})
pulumi.export(
    "clusters",
    {
        name: {**describe(cluster), "edgeAddress": deliveries[name].edge_address}
        for name, cluster in apps.items()
    },
)
if second_home is not None:
    # Keyed by name like `clusters`, so later runs check the cluster as they check those.
    pulumi.export("hubStandby", {second_home.name: describe(second_home)})
if standby_ocm is not None:
    # What the main-lost drill reads: the hub the agents move to, and where to reach it.
    pulumi.export(
        "standbyHub", {"name": second_home.name, "apiServerUrl": second_home.api_server_url}
    )
pulumi.export("retiringClusters", {name: describe(c) for name, c in retiring.items()})
pulumi.export("databaseHost", database.endpoint.host)
if second_home is not None:
    # Both homes' database addresses; `databaseHost` is the primary's.
    pulumi.export("databaseHosts", database.addresses)
pulumi.export("grafana", monitoring.grafana_access)
pulumi.export("grafanaAdminPassword", monitoring.grafana_admin_password)
pulumi.export("metricsReceiver", monitoring.receiver_address)
pulumi.export(
    "app",
    {
        "revision": rollout.revision,
        "images": rollout.images,
        "strategy": rollout.strategy_type,
        "clusters": rollout.status.clusters,
    },
)
pulumi.export(
    "kubeconfigs",
    pulumi.Output.secret(
        {c.name: c.kubeconfig for c in [hub, *filter(None, [second_home]), *built.values()]}
    ),
)
