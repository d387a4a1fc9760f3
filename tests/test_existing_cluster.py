"""ExistingCluster: a provider from a kubeconfig file and context, and no cloud resources."""

from __future__ import annotations

import base64

import pytest
import yaml
from harness import FAKE_CA, fake_kubeconfig, is_secret, run_program

from components.clusters.existing import (
    ExistingCluster,
    ExistingClusterArgs,
    ExistingClusterError,
    read_kubeconfig,
    read_kubeconfigs,
)
from components.config import ClusterSpec


def spec(**overrides) -> ClusterSpec:
    values = {
        "name": "lab",
        "cloud": "existing",
        "region": "existing",
        "egress_ips": ("198.51.100.20/32",),
    }
    return ClusterSpec(**{**values, **overrides})


def kubeconfig_with_two_contexts(tmp_path):
    doc = yaml.safe_load(fake_kubeconfig("https://first.example.test:6443"))
    doc["clusters"].append(
        {
            "name": "second",
            "cluster": {
                "server": "https://second.example.test:6443",
                "certificate-authority": "ca.pem",
            },
        }
    )
    doc["contexts"].append({"name": "two", "context": {"cluster": "second", "user": "u"}})
    (tmp_path / "ca.pem").write_bytes(b"PEM BYTES")
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
def test_builds_only_a_provider_for_the_context(tmp_path, preview):
    path = kubeconfig_with_two_contexts(tmp_path)
    out = {}

    def program():
        lab = spec(kubeconfig=str(path), context="two")
        cluster = ExistingCluster(
            "lab", ExistingClusterArgs(spec=lab, kubeconfig=read_kubeconfig(lab))
        )
        out["cluster"] = cluster
        cluster.api_server_url.apply(lambda v: out.setdefault("url", v))
        cluster.ca_data.apply(lambda v: out.setdefault("ca", v))
        cluster.egress_cidrs.apply(lambda v: out.setdefault("egress", v))

    graph = run_program({}, preview=preview, program=program)
    types = sorted(r.type for r in graph.resources)
    assert types == ["ocm-fleet:index:ExistingCluster", "pulumi:providers:kubernetes"]
    provider = graph.kubernetes_provider("lab")
    assert provider.inputs["context"] == "two"
    assert provider.inputs["clusterIdentifier"] == "lab"
    assert is_secret(provider.wire_inputs["kubeconfig"]), "the kubeconfig must be a secret"
    # A local file is known in preview too: the hub's bootstrap kubeconfig can be assembled.
    assert out["url"] == "https://second.example.test:6443"
    assert out["ca"] == base64.b64encode(b"PEM BYTES").decode()
    assert out["egress"] == ["198.51.100.20/32"]


def test_api_server_url_overrides_the_kubeconfig(tmp_path):
    path = tmp_path / "config"
    path.write_text(fake_kubeconfig("https://127.0.0.1:6443"))
    out = {}

    def program():
        lab = spec(kubeconfig=str(path), api_server_url="https://hub.example.test:6443")
        cluster = ExistingCluster(
            "lab", ExistingClusterArgs(spec=lab, kubeconfig=read_kubeconfig(lab))
        )
        cluster.api_server_url.apply(lambda v: out.setdefault("url", v))
        cluster.ca_data.apply(lambda v: out.setdefault("ca", v))

    run_program({}, program=program)
    assert out == {"url": "https://hub.example.test:6443", "ca": FAKE_CA.decode()}


def test_missing_kubeconfig_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ExistingClusterError, match=r"cannot read kubeconfig .*nope.*'kubeconfig'"):
        read_kubeconfig(spec(kubeconfig=str(missing)))


def test_unknown_context_lists_the_ones_there(tmp_path):
    path = kubeconfig_with_two_contexts(tmp_path)
    with pytest.raises(
        ExistingClusterError, match=r"context 'kind' is not in .*\(it has: c, two\)"
    ):
        read_kubeconfig(spec(kubeconfig=str(path), context="kind"))


def test_a_cluster_without_a_ca_is_refused(tmp_path):
    doc = yaml.safe_load(fake_kubeconfig("https://lab.example.test:6443"))
    del doc["clusters"][0]["cluster"]["certificate-authority-data"]
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ExistingClusterError, match="no certificate-authority-data"):
        read_kubeconfig(spec(kubeconfig=str(path)))


def test_every_unusable_kubeconfig_is_reported_at_once(tmp_path):
    specs = [
        spec(name="one", kubeconfig=str(tmp_path / "a")),
        spec(name="two", kubeconfig=str(tmp_path / "b")),
    ]
    with pytest.raises(ExistingClusterError) as err:
        read_kubeconfigs(specs)
    assert "'one'" in str(err.value) and "'two'" in str(err.value)


def test_a_bad_kubeconfig_stops_the_program_before_any_resource(large, tmp_path):
    """An unreadable kubeconfig must not leave the clouds half-built: no resource is declared."""
    from harness import Graph

    large["ocm-fleet:clusters"][-1]["kubeconfig"] = str(tmp_path / "missing")
    graph = Graph()
    with pytest.raises(ExistingClusterError, match="cannot read kubeconfig"):
        run_program(large, graph=graph)
    assert graph.resources == [], f"resources were declared before the error: {graph.resources}"
