"""Runs the whole Pulumi program under mocks and records the resource graph it declares."""

from __future__ import annotations

import base64
import contextvars
import hashlib
import json
import pickle
import runpy
import subprocess
import sys
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import json_format
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks
from pulumi.runtime.stack import run_in_stack
from pulumi.runtime.sync_await import _sync_await

ROOT = Path(__file__).resolve().parent.parent
MAIN = ROOT / "__main__.py"
PROJECT = "ocm-fleet"
SECRET_SIG = rpc._special_secret_sig  # the marker the SDK puts on secret values on the wire
UNKNOWN = rpc.UNKNOWN

FAKE_CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIfake\n-----END CERTIFICATE-----\n")


def fake_kubeconfig(server: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "c",
                    "cluster": {"server": server, "certificate-authority-data": FAKE_CA.decode()},
                }
            ],
            "users": [{"name": "u", "user": {"token": "fake-admin-token"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "c",
        }
    )


MOCK_CALLER_ROLE = "arn:aws:iam::123456789012:role/deployer"
"""The IAM role the mocks answer `aws sts get-caller-identity` with (through an STS session)."""
ORGANIZATION = "organization"
"""The organization a DIY backend reports: stacks are `organization/<project>/<stack>`."""
_DEFAULT = object()

CLUSTER_COMPONENT_TYPES = {
    "ocm-fleet:index:EksCluster",
    "ocm-fleet:index:AksCluster",
    "ocm-fleet:index:ExistingCluster",
    "ocm-fleet:index:KindCluster",
}
COMMAND = "command:local:Command"
# The input that carries an Azure resource's own name, where the program may set it.
AZURE_NAME_INPUTS = {
    "azure-native:resources:ResourceGroup": "resourceGroupName",
    "azure-native:network:VirtualNetwork": "virtualNetworkName",
    "azure-native:network:Subnet": "subnetName",
    "azure-native:network:PublicIPAddress": "publicIpAddressName",
    "azure-native:authorization:RoleAssignment": "roleAssignmentName",
}
CONTROL_PLANE_TYPES = {"aws:eks/cluster:Cluster", "azure-native:containerservice:ManagedCluster"}


def is_kind_cluster_command(res: Registered) -> bool:
    """The command whose create and delete are the kind cluster's."""
    create = res.inputs.get("create")
    return res.type == COMMAND and isinstance(create, str) and "kind create cluster" in create


@dataclass
class Registered:
    """One resource registration as the engine received it."""

    type: str
    name: str
    urn: str
    parent: str
    provider: str
    custom: bool
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    options: dict[str, Any]
    inputs: dict[str, Any]
    """Inputs with secrets unwrapped and unknowns as pulumi.runtime.rpc.UNKNOWN."""
    wire_inputs: dict[str, Any]
    """Inputs as sent on the wire: secret values are wrapped in the secret signature."""

    @property
    def provider_urn(self) -> str:
        return self.provider.rsplit("::", 1)[0] if self.provider else ""

    def __repr__(self) -> str:
        return f"<{self.type} {self.name}>"


@dataclass
class Graph:
    """The program's declared graph: resources in registration order, and stack outputs."""

    resources: list[Registered] = field(default_factory=list)
    stack_outputs: dict[str, Any] = field(default_factory=dict)
    stack_wire_outputs: dict[str, Any] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    reads: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    """Resources read rather than registered (type, name, inputs), e.g. StackReferences."""
    invokes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """Invokes the program made (token, arguments), e.g. the kind address reads."""

    @property
    def by_urn(self) -> dict[str, Registered]:
        return {r.urn: r for r in self.resources}

    def of_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str, type_: str | None = None) -> Registered:
        found = [r for r in self.resources if r.name == name and (type_ is None or r.type == type_)]
        assert len(found) == 1, f"expected one resource named {name!r} ({type_}), found {found}"
        return found[0]

    def direct_deps(self, res: Registered) -> set[str]:
        """What the engine orders `res` after: dependencies, property dependencies, provider."""
        deps = set(res.dependencies)
        for urns in res.property_dependencies.values():
            deps.update(urns)
        if res.provider_urn:
            deps.add(res.provider_urn)
        return deps

    def depends_on(self, res: Registered, target: Registered) -> bool:
        """True when `res` transitively depends on `target`, so destroy deletes `res` first.

        Children of a component count as depended on through the component: the engine waits
        for a component's children when something depends on the component.
        """
        by_urn = self.by_urn
        children: dict[str, list[str]] = {}
        for r in self.resources:
            children.setdefault(r.parent, []).append(r.urn)
        seen: set[str] = set()
        todo = list(self.direct_deps(res))
        while todo:
            urn = todo.pop()
            if urn in seen:
                continue
            seen.add(urn)
            if urn == target.urn:
                return True
            node = by_urn.get(urn)
            if node is None:
                continue
            todo.extend(self.direct_deps(node))
            todo.extend(children.get(urn, []))
        return False

    def descendants(self, res: Registered) -> list[Registered]:
        found, frontier = [], {res.urn}
        while frontier:
            children = [r for r in self.resources if r.parent in frontier]
            found += children
            frontier = {r.urn for r in children}
        return found

    def egress_resources(self, cluster_name: str) -> list[Registered]:
        """The resources a cluster's egress addresses come from: Elastic IPs (EKS), the outbound
        public IP (AKS), the command that creates the kind cluster (its nodes' addresses are
        read once it exists)."""
        return [
            r
            for r in self.descendants(self.cluster_component(cluster_name))
            if r.type in ("aws:ec2/eip:Eip", "azure-native:network:PublicIPAddress")
            or is_kind_cluster_command(r)
        ]

    def cluster_component(self, cluster_name: str) -> Registered:
        found = [
            r
            for r in self.resources
            if r.name == cluster_name and r.type in CLUSTER_COMPONENT_TYPES
        ]
        assert len(found) == 1, f"expected one cluster component {cluster_name!r}, found {found}"
        return found[0]

    def control_plane(self, cluster_name: str) -> Registered:
        """What "the cluster" is for destroy order: EKS or AKS control plane, the command that
        creates a kind cluster, else (an existing cluster) the provider."""
        component = self.cluster_component(cluster_name)
        inside = self.descendants(component)
        planes = [r for r in inside if r.type in CONTROL_PLANE_TYPES or is_kind_cluster_command(r)]
        if not planes:
            planes = [r for r in inside if r.type == "pulumi:providers:kubernetes"]
        assert len(planes) == 1, f"cluster {cluster_name!r} has control planes {planes}"
        return planes[0]

    def kubernetes_provider(self, cluster_name: str) -> Registered:
        component = self.cluster_component(cluster_name)
        found = [r for r in self.descendants(component) if r.type == "pulumi:providers:kubernetes"]
        assert len(found) == 1, f"cluster {cluster_name!r} has Kubernetes providers {found}"
        return found[0]


def is_secret(wire_value: Any) -> bool:
    return isinstance(wire_value, dict) and wire_value.get(rpc._special_sig_key) == SECRET_SIG


def is_unknown(value: Any) -> bool:
    """True for a value the engine does not know yet (preview of a resource not yet created)."""
    return isinstance(value, pulumi.output.Unknown) or value == UNKNOWN


def wire_get(wire: Mapping[str, Any], *path: str) -> Any:
    """Walk a wire-format dict; a secret wrapper anywhere on the path is reported as secret."""
    value: Any = wire
    for key in path:
        if is_secret(value):
            return value
        value = value.get(key) if isinstance(value, dict) else None
    return value


def contains_plain(wire: Any, needle: str) -> bool:
    """True when `needle` occurs in `wire` outside any secret wrapper."""
    if is_secret(wire):
        return False
    if isinstance(wire, dict):
        return any(contains_plain(v, needle) for v in wire.values())
    if isinstance(wire, list):
        return any(contains_plain(v, needle) for v in wire)
    return isinstance(wire, str) and needle in wire


def contains_secret(wire: Any) -> bool:
    """True when a secret wrapper occurs anywhere in `wire`."""
    if is_secret(wire):
        return True
    if isinstance(wire, dict):
        return any(contains_secret(v) for v in wire.values())
    if isinstance(wire, list):
        return any(contains_secret(v) for v in wire)
    return False


def _clean_wire(value: Any) -> Any:
    """Turn protobuf Struct JSON into plain JSON, keeping secret wrappers."""
    return json.loads(json.dumps(value))


class FleetMocks(Mocks):
    """Realistic cloud outputs by type token; in preview, what the cloud computes is unknown."""

    def __init__(
        self,
        preview: bool,
        *,
        caller_arn: str = MOCK_CALLER_ROLE,
        previous_outputs: Mapping[str, Any] | None = None,
        kind_host: Mapping[str, str] | None = None,
    ):
        self.preview = preview
        self.kind_host = dict(kind_host or {})
        """What the kind address reads print, by `KIND_CLUSTER` (nodes) or
        `KIND_CLUSTER/NAMESPACE/SERVICE` (a load balancer), in place of the mocks' own: a host
        whose containers have moved since."""
        self.caller_arn = caller_arn
        """The IAM principal behind the STS session the program runs as."""
        self.previous_outputs = dict(previous_outputs or {})
        """The stack's outputs from its last run, as a StackReference to it reads them."""
        # Kubernetes providers of kind clusters (API server on the host's loopback): their
        # load balancers are cloud-provider-kind's proxy containers on the kind network.
        self.kind_providers: set[str] = set()

    def _computed(self, value: Any) -> Any:
        return UNKNOWN if self.preview else value

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict]:
        # Values derive from the type and name, never from registration order: resources
        # register concurrently, and two runs must produce the same inputs downstream.
        n = zlib.crc32(f"{args.typ}::{args.name}".encode()) % 100_000
        state = dict(args.inputs)
        t, name = args.typ, args.name
        c = self._computed
        if t == "pulumi:pulumi:StackReference":
            # A read of state the backend already holds: known in preview as well.
            return (args.resource_id, {**state, "outputs": self.previous_outputs})
        ip = f"198.51.100.{n % 250 + 1}"
        # AWS values derive from the resource name, not the registration counter: resources
        # register concurrently, and two runs must produce the same inputs downstream.
        k = sum((i + 1) * b for i, b in enumerate(name.encode())) if t.startswith("aws:") else n
        if t == "aws:ec2/eip:Eip":
            state.update(
                publicIp=c(f"198.51.100.{k % 250 + 1}"), allocationId=c(f"eipalloc-{k:08x}")
            )
        elif t == "aws:eks/cluster:Cluster":
            state.update(
                name=state.get("name") or name,
                endpoint=c(f"https://{k:08X}.gr7.{name}.eks.amazonaws.com"),
                certificateAuthority=c({"data": FAKE_CA.decode()}),
                arn=c(f"arn:aws:eks:eu-west-1:123456789012:cluster/{name}"),
                identities=c([{"oidcs": [{"issuer": f"https://oidc.eks/{k}"}]}]),
            )
        elif t == "aws:kms/key:Key":
            key_id = f"{k:08x}-0000-4000-8000-{k:012x}"
            state.update(keyId=c(key_id), arn=c(f"arn:aws:kms:eu-west-1:123456789012:key/{key_id}"))
        elif t == "aws:ec2/launchTemplate:LaunchTemplate":
            state.update(latestVersion=c(1), arn=c(f"arn:aws:ec2:::launch-template/lt-{k:08x}"))
        elif t == "aws:eks/nodeGroup:NodeGroup":
            state.update(status=c("ACTIVE"), arn=c(f"arn:aws:eks:::nodegroup/{name}"))
        elif t.startswith("aws:") and t.endswith(("Role", "Key", "Policy")):
            state.update(arn=c(f"arn:aws:iam::123456789012:{name}"), name=state.get("name", name))
        elif t == "azure-native:network:PublicIPAddress":
            state.update(ipAddress=c(ip))
        elif t == "azure-native:containerservice:ManagedCluster":
            state.update(
                # The engine withholds invokes that depend on a resource pending creation
                # (listManagedClusterAdminCredentials on a new cluster); the mock monitor does
                # not, so in preview the name the invoke takes is unknown, to the same effect.
                name=c(state.get("resourceName") or f"{name}{n:06x}"),
                fqdn=c(f"{name}-{n:06x}.hcp.westeurope.azmk8s.io"),
                identity=c({"principalId": f"00000000-0000-0000-0000-{n:012d}", "type": "x"}),
            )
        elif t == "azure-native:managedidentity:UserAssignedIdentity":
            state.update(
                principalId=c(f"55555555-0000-0000-0000-{n:012d}"),
                clientId=c(f"66666666-0000-0000-0000-{n:012d}"),
            )
        elif t == "pulumi:providers:kubernetes" and "https://127.0.0.1:" in str(
            state.get("kubeconfig")
        ):
            self.kind_providers.add(name)
        elif t == "kubernetes:core/v1:Service" and _spec(state).get("type") == "LoadBalancer":
            ingress = {"hostname": f"a{n}.elb.amazonaws.com"} if n % 2 else {"ip": ip}
            # A provider reference is "<urn>::<id>"; the URN ends with the provider's name.
            parts = (args.provider or "").split("::")
            if len(parts) > 3 and parts[3] in self.kind_providers:
                ingress = {"ip": f"172.18.0.{n % 50 + 200}"}
            state["status"] = c({"loadBalancer": {"ingress": [ingress]}})
        elif (
            t == "kubernetes:core/v1:Service"
            and isinstance(state.get("spec"), Mapping)
            and _spec(state).get("type", "ClusterIP") == "ClusterIP"
            and not _spec(state).get("clusterIP")
        ):
            # The API server allocates a cluster IP to a ClusterIP Service without one.
            state["spec"] = {**state["spec"], "clusterIP": c(f"10.0.{n % 250}.{n % 199 + 2}")}
        elif t == "kubernetes:core/v1:Secret" and state.get("type") == (
            "kubernetes.io/service-account-token"
        ):
            token = base64.b64encode(f"sa-token-{n:04d}".encode()).decode()
            state["data"] = c({"token": token, "ca.crt": FAKE_CA.decode()})
        elif t == "random:index/randomPassword:RandomPassword":
            state.update(result=c(f"generated-password-{n:04d}"))
        elif t == "random:index/randomString:RandomString":
            # Lowercase letters and digits, as many as asked (upper and special off).
            alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
            length = int(state.get("length") or 6)
            state.update(result=c("".join(alphabet[(n >> i) % 36] for i in range(length))))
        elif t == "tls:index/privateKey:PrivateKey":
            state.update(
                privateKeyPem=c(
                    f"-----BEGIN PRIVATE KEY-----\nkey-{n:04d}\n-----END PRIVATE KEY-----\n"
                )
            )
        elif t in (
            "tls:index/selfSignedCert:SelfSignedCert",
            "tls:index/locallySignedCert:LocallySignedCert",
        ):
            state.update(
                certPem=c(f"-----BEGIN CERTIFICATE-----\ncert-{n:04d}\n-----END CERTIFICATE-----\n")
            )
        elif t == "tls:index/certRequest:CertRequest":
            state.update(
                certRequestPem=c(
                    f"-----BEGIN CERTIFICATE REQUEST-----\n{n}\n-----END CERTIFICATE REQUEST-----\n"
                )
            )
        elif t == COMMAND:
            state.update(stdout=c(_command_stdout(state, n)), stderr=c(""))
        elif t == "azure-native:trafficmanager:Profile":
            # The service derives the name from the relative name: known once it is created.
            dns = dict(state.get("dnsConfig") or {})
            state["dnsConfig"] = {**dns, "fqdn": c(f"{dns.get('relativeName')}.trafficmanager.net")}
        if t.startswith("azure-native:") and t != "azure-native:containerservice:ManagedCluster":
            # Azure resources output their name: the explicit one, else Pulumi's auto-name,
            # which is known in preview too.
            own = AZURE_NAME_INPUTS.get(t)
            state.setdefault("name", state.get(own) if own else None)
            if not state["name"]:
                state["name"] = f"{name}{n:06x}"
        if t.startswith("aws:") and "arn" not in state:
            state.setdefault("arn", c(f"arn:aws:mock:::{name}"))
        return (f"{name}-id" if not self.preview else None, state)

    def call(self, args: MockCallArgs) -> tuple[dict, list] | dict:
        tok = args.token
        if tok == "aws:index/getAvailabilityZones:getAvailabilityZones":
            region = "eu-west-1"
            return {"names": [f"{region}{z}" for z in "abc"], "zoneIds": ["a", "b", "c"]}
        if tok == "aws:index/getCallerIdentity:getCallerIdentity":
            arn = self.caller_arn
            if ":role/" in arn:
                # A role runs as an STS session, whose ARN drops the role's path.
                account, role = arn.split(":role/")
                role_name = role.rsplit("/", 1)[-1]
                arn = f"{account.replace(':iam::', ':sts::')}:assumed-role/{role_name}/pulumi"
            return {"accountId": "123456789012", "arn": arn, "userId": "AROAEXAMPLE:pulumi"}
        if tok == "aws:iam/getSessionContext:getSessionContext":
            return {"issuerArn": self.caller_arn, "sessionName": "pulumi-session"}
        if tok == "aws:eks/getAddonVersion:getAddonVersion":
            version = mock_addon_version(args.args["addonName"], args.args["kubernetesVersion"])
            return {**args.args, "version": version, "id": args.args["addonName"]}
        if tok == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com"}
        if tok == "azure-native:containerservice:listManagedClusterAdminCredentials":
            server = f"https://{args.args.get('resourceName', 'aks')}.hcp.azmk8s.io:443"
            value = base64.b64encode(fake_kubeconfig(server).encode()).decode()
            return {"kubeconfigs": [{"name": "clusterAdmin", "value": value}]}
        if tok == "azure-native:authorization:getClientConfig":
            return {
                "clientId": "11111111-1111-1111-1111-111111111111",
                "objectId": "22222222-2222-2222-2222-222222222222",
                "subscriptionId": "33333333-3333-3333-3333-333333333333",
                "tenantId": "44444444-4444-4444-4444-444444444444",
            }
        if tok == "command:local:run":
            # pulumi-command's run, as KindCluster reads the kind network's addresses with it.
            script = args.args.get("command") or ""
            env = args.args.get("environment") or {}
            key = "/".join(
                str(env[k]) for k in ("KIND_CLUSTER", "NAMESPACE", "SERVICE") if k in env
            )
            n = zlib.crc32(key.encode()) % 100_000
            if "kind get nodes" in script:
                # One address per node (control plane and one worker).
                stdout = f"172.18.0.{n % 100 + 2}\n172.18.0.{n % 100 + 102}\n"
            elif "docker ps" in script:
                # A load balancer's proxy container.
                stdout = f"172.18.1.{n % 250 + 1}\n"
            else:
                raise NotImplementedError(f"the mocks have no output for the command {script!r}")
            stdout = self.kind_host.get(key, stdout)
            return {"command": script, "environment": env, "stdout": stdout, "stderr": ""}
        raise NotImplementedError(f"the mocks have no answer for invoke {tok}")


def _spec(state: Mapping[str, Any]) -> Mapping[str, Any]:
    """A Kubernetes object's spec, or nothing where it is not known yet (preview)."""
    spec = state.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def mock_addon_version(addon: str, kubernetes_version: str) -> str:
    """What the mocks answer for EKS's default version of `addon` on `kubernetes_version`:
    a different build for every add-on and minor, in EKS's own form (v1.35.3-eksbuild.1)."""
    build = zlib.crc32(f"{addon}/{kubernetes_version}".encode()) % 9 + 1
    return f"v{kubernetes_version}.{build}-eksbuild.1"


def _command_stdout(inputs: Mapping[str, Any], n: int) -> str:
    """What the local commands print on a machine with kind and Docker."""
    create = inputs.get("create") or ""
    env = inputs.get("environment") or {}
    if "kind create cluster" in create:
        # `kind get kubeconfig`: the API server on a port of the host's loopback.
        kubeconfig = yaml.safe_load(fake_kubeconfig(f"https://127.0.0.1:{32768 + n % 20000}"))
        kubeconfig["current-context"] = f"kind-{env['KIND_CLUSTER']}"
        kubeconfig["contexts"][0]["name"] = kubeconfig["current-context"]
        return yaml.safe_dump(kubeconfig)
    if "docker run" in create:
        return f"{n:064x}\n"
    raise NotImplementedError(f"the mocks have no output for the command {create!r}")


class RecordingMonitor(MockMonitor):
    """A MockMonitor that records every registration's graph edges, options and inputs."""

    def __init__(self, mocks: Mocks, graph: Graph):
        super().__init__(mocks)
        self.graph = graph

    def Invoke(self, request):
        response = super().Invoke(request)
        args = rpc.deserialize_properties(request.args, keep_unknowns=True)
        self.graph.invokes.append((request.tok, _plain(args)))
        return response

    def ReadResource(self, request):
        response = super().ReadResource(request)
        inputs = rpc.deserialize_properties(request.properties, keep_unknowns=True)
        self.graph.reads.append((request.type, request.name, _plain(inputs)))
        return response

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        wire = _clean_wire(json_format.MessageToDict(request.object))
        inputs = rpc.deserialize_properties(request.object, keep_unknowns=True)
        options: dict[str, Any] = {
            "protect": request.protect if request.HasField("protect") else False,
            "retainOnDelete": request.retainOnDelete
            if request.HasField("retainOnDelete")
            else False,
            "deleteBeforeReplace": request.deleteBeforeReplace,
            # Set when the program chose either way; unset, the provider decides.
            "deleteBeforeReplaceDefined": request.deleteBeforeReplaceDefined,
            "ignoreChanges": list(request.ignoreChanges),
            "replaceOnChanges": list(request.replaceOnChanges),
            "additionalSecretOutputs": list(request.additionalSecretOutputs),
            "deletedWith": request.deletedWith,
            "importId": request.importId,
            "customTimeouts": {
                "create": request.customTimeouts.create,
                "update": request.customTimeouts.update,
                "delete": request.customTimeouts.delete,
            },
            "version": request.version,
            "pluginDownloadURL": request.pluginDownloadURL,
            # Alias specs as the engine receives them: {"name": ..., "type": ..., ...}.
            "aliases": [
                json_format.MessageToDict(a.spec) if a.HasField("spec") else {"urn": a.urn}
                for a in request.aliases
            ],
        }
        self.graph.resources.append(
            Registered(
                type=request.type,
                name=request.name,
                urn=response.urn,
                parent=request.parent,
                provider=request.provider,
                custom=request.custom,
                dependencies=list(request.dependencies),
                property_dependencies={
                    k: list(v.urns) for k, v in request.propertyDependencies.items()
                },
                options=options,
                inputs=_plain(inputs),
                wire_inputs=wire,
            )
        )
        return response

    def RegisterResourceOutputs(self, request):
        if request.urn.split("::")[2] == "pulumi:pulumi:Stack":
            self.graph.stack_wire_outputs = _clean_wire(json_format.MessageToDict(request.outputs))
            self.graph.stack_outputs = _plain(
                rpc.deserialize_properties(request.outputs, keep_unknowns=True)
            )
        return super().RegisterResourceOutputs(request)


def _plain(value: Any) -> Any:
    if is_secret(value):
        return _plain(value["value"])
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class _LogCapture:
    def __init__(self, graph: Graph):
        self.graph = graph

    def _add(self, msg: str, *args: Any, **_: Any) -> None:
        self.graph.logs.append(msg % args if args else msg)

    debug = info = warning = error = _add


def config_values(config: Mapping[str, Any]) -> dict[str, str]:
    """Stack config as the engine passes it: `ocm-fleet:key` -> string (JSON for structures)."""
    out = {}
    for key, value in config.items():
        full = key if ":" in key else f"{PROJECT}:{key}"
        out[full] = value if isinstance(value, str) else json.dumps(value)
    return out


def _has_aws_cluster(config: Mapping[str, Any]) -> bool:
    clusters = config.get(f"{PROJECT}:clusters", config.get("clusters"))
    if isinstance(clusters, str):
        try:
            clusters = json.loads(clusters)
        except ValueError:
            return False
    hub = config.get(f"{PROJECT}:hub", config.get("hub"))
    standby = hub.get("standby") if isinstance(hub, Mapping) else None
    if isinstance(standby, Mapping) and standby.get("cloud") == "aws":
        return True
    return isinstance(clusters, list) and any(
        isinstance(c, Mapping) and c.get("cloud") == "aws" for c in clusters
    )


def with_admin_principals(config: Mapping[str, Any], principals: Any = _DEFAULT) -> dict:
    """`config` with `eksAdminPrincipals` set where the fleet has aws clusters and the config
    does not say: the mock caller's role, as `scripts/deploy.sh` writes on a first run.
    `principals=None` leaves the key out."""
    out = dict(config)
    key = f"{PROJECT}:eksAdminPrincipals"
    if principals is None or key in out or "eksAdminPrincipals" in out:
        return out
    if principals is _DEFAULT:
        if not _has_aws_cluster(out):
            return out
        principals = [MOCK_CALLER_ROLE]
    out[key] = principals
    return out


def run_program(
    config: Mapping[str, Any],
    *,
    preview: bool = False,
    stack: str = "dev",
    program: Callable[[], Any] | None = None,
    graph: Graph | None = None,
    admin_principals: Any = _DEFAULT,
    caller_arn: str = MOCK_CALLER_ROLE,
    previous_outputs: Mapping[str, Any] | None = None,
    kind_host: Mapping[str, str] | None = None,
) -> Graph:
    """Run `__main__.py` (or `program`) once under mocks, in a fresh Pulumi runtime context.

    Raises whatever the program raises (e.g. a FleetConfigError); pass `graph` to inspect
    what was registered before the raise. `admin_principals` sets `eksAdminPrincipals` when
    the config lacks it (default: the mock caller's role if the fleet has aws; None: unset);
    `caller_arn` is who runs the program; `previous_outputs` are the stack's last outputs;
    `kind_host` what the kind address reads find (FleetMocks.kind_host).
    """
    graph = Graph() if graph is None else graph
    config = with_admin_principals(config, admin_principals)

    def _run() -> None:
        mocks = FleetMocks(
            preview, caller_arn=caller_arn, previous_outputs=previous_outputs, kind_host=kind_host
        )
        monitor = RecordingMonitor(mocks, graph)
        pulumi.runtime.mocks.set_mocks(
            mocks,
            project=PROJECT,
            stack=stack,
            preview=preview,
            organization=ORGANIZATION,
            monitor=monitor,
            logger=_LogCapture(graph),  # type: ignore[arg-type]
        )
        pulumi.runtime.set_all_config(config_values(config))
        pulumi.runtime.settings.ROOT.set(None)  # run_in_stack makes the one root Stack
        body = program or (lambda: runpy.run_path(str(MAIN), run_name="__main__"))
        _sync_await(run_in_stack(body))

    # pulumi.dynamic's serialize_provider (pulumi/dynamic/dynamic.py) wraps
    # pickle._Pickler._batch_setitems in a sorting wrapper on every dynamic resource and never
    # unwraps it: one `pulumi up` runs the program once, but the thousands of runs in one test
    # process would nest the wrappers past the recursion limit. Each run starts from the same.
    saved = (pickle._Pickler._batch_setitems, pickle._Pickler.save_dict)
    try:
        contextvars.Context().run(_run)
    finally:
        pickle._Pickler._batch_setitems, pickle._Pickler.save_dict = saved
    return graph


def failure_of(code: str) -> str | None:
    """The error `code` (Python, run with tests/ importable) fails with, or None, from a
    fresh interpreter.

    A run that fails inside an apply leaves work pending in the SDK's process-wide state,
    which the next run in the same process would pick up and fail with; a process of its
    own keeps that state away from every other test.
    """
    wrapper = (
        "import sys\n"
        f"sys.path[:0] = [{str(ROOT / 'tests')!r}, {str(ROOT)!r}]\n"
        "try:\n"
        + "".join(f"    {line}\n" for line in code.strip().splitlines())
        + "except BaseException as err:\n"
        "    print('FAILED:', type(err).__name__ + ':', err)\n"
        "else:\n"
        "    print('SUCCEEDED')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", wrapper], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    verdicts = [
        line for line in done.stdout.splitlines() if line.startswith(("FAILED:", "SUCCEEDED"))
    ]
    assert verdicts, (
        f"the isolated run reported nothing: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    )
    verdict = verdicts[-1]
    return None if verdict == "SUCCEEDED" else verdict.removeprefix("FAILED: ")


def load_stack_config(path: Path) -> dict[str, Any]:
    """The `config:` block of a Pulumi.<stack>.yaml, with structured values kept as data."""
    data = yaml.safe_load(path.read_text())
    return dict(data.get("config") or {})


def input_digest(res: Registered) -> str:
    """A digest of a resource's inputs, unknowns as one marker (they compare by identity)."""

    def comparable(value: Any) -> Any:
        if is_unknown(value):
            return "<unknown>"
        if isinstance(value, dict):
            return {k: comparable(v) for k, v in value.items()}
        if isinstance(value, list):
            return [comparable(v) for v in value]
        return value

    text = json.dumps(comparable(res.inputs), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class GraphChanges:
    """What differs between two recorded graphs of the same program, by URN."""

    before: Graph
    after: Graph
    added: set[str]
    removed: set[str]
    changed: set[str]
    """In both graphs, with other inputs (by `input_digest`)."""

    def resource(self, urn: str) -> Registered:
        """The resource as the later graph has it, or the earlier one for a removed one."""
        return self.after.by_urn.get(urn) or self.before.by_urn[urn]


def graph_changes(before: Graph, after: Graph) -> GraphChanges:
    """The resources an `up` from `before` to `after` would create, delete or update."""
    old, new = before.by_urn, after.by_urn
    return GraphChanges(
        before=before,
        after=after,
        added=set(new) - set(old),
        removed=set(old) - set(new),
        changed={u for u in set(old) & set(new) if input_digest(old[u]) != input_digest(new[u])},
    )
