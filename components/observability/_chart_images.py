"""The monitoring charts' own images, pinned by digest from components/images.yaml.

The prometheus and grafana charts pull their images by tag unless their values name a digest,
and each chart takes the digest in its own way. Below is every image the pinned chart versions
render with the program's values (read from their templates; disabled components render
none), with the values that pin it. The values always name the repository and the tag, so that
the policy pack sees an unresolved image in the release's values, not only a resolved one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from components import images
from components.observability import _prometheus

DigestField = Literal["digest-only", "digest", "sha", "sha-hex", "tag"]
"""How a chart takes a digest, from its templates:

- `digest-only`: `digest: sha256:<hex>` renders `repository@sha256:<hex>`, the tag dropped
  (prometheus chart: server and config reloader);
- `digest`, `sha`: `sha256:<hex>` renders `registry/repository:tag@sha256:<hex>`
  (prometheus-node-exporter's `digest`, kube-state-metrics' `sha`);
- `sha-hex`: the hex alone renders `registry/repository:tag@sha256:<hex>` (grafana);
- `tag`: the chart has no digest value, so the tag carries it: `tag: <tag>@sha256:<hex>`
  renders `repository:<tag>@sha256:<hex>` (alertmanager 1.42, which labels its pods with the
  chart's appVersion, not the tag).
"""


@dataclass(frozen=True, kw_only=True)
class ChartImage:
    path: tuple[str, ...]
    """The image's mapping in the release's values (a subchart's under the subchart's name)."""
    reference: str
    """registry/repository:tag as the chart version renders it by default: the key in
    components/images.yaml."""
    digest_field: DigestField
    registry_value: bool = False
    """The chart takes the registry as its own value (`registry`), apart from `repository`."""

    @property
    def tag(self) -> str:
        return self.reference.rsplit(":", 1)[1]

    def values(self) -> dict[str, str]:
        """The image's values: repository and tag, and the digest where images.yaml has it."""
        name = self.reference.rsplit(":", 1)[0]
        fields = {"repository": name, "tag": self.tag}
        if self.registry_value:
            registry, _, repository = name.partition("/")
            fields = {"registry": registry, "repository": repository, "tag": self.tag}
        digest = images.digest(self.reference)
        if digest is None:
            return fields
        if self.digest_field == "tag":
            fields["tag"] = f"{self.tag}@{digest}"
        elif self.digest_field == "sha-hex":
            fields["sha"] = digest.removeprefix("sha256:")
        elif self.digest_field == "sha":
            fields["sha"] = digest
        else:
            fields["digest"] = digest
        return fields

    def rendered(self, image: Mapping[str, Any]) -> str:
        """The reference the chart's template renders from the image's values (the chart's
        defaults merged with the release's). An empty tag is the chart's default tag."""
        repository = image.get("repository") or ""
        if self.registry_value:
            repository = f"{image.get('registry') or ''}/{repository}"
        named = f"{repository}:{image.get('tag') or self.tag}"
        if self.digest_field == "digest-only":
            return f"{repository}@{image['digest']}" if image.get("digest") else named
        if self.digest_field == "digest" and image.get("digest"):
            return f"{named}@{image['digest']}"
        if self.digest_field == "sha" and image.get("sha"):
            return f"{named}@{image['sha']}"
        if self.digest_field == "sha-hex" and image.get("sha"):
            return f"{named}@sha256:{image['sha']}"
        return named


PROMETHEUS_IMAGES = (
    # The server is the agents' image: one Prometheus release on hub and app clusters.
    ChartImage(
        path=("server", "image"), reference=_prometheus.AGENT_IMAGE, digest_field="digest-only"
    ),
    ChartImage(
        path=("configmapReload", "prometheus", "image"),
        reference="quay.io/prometheus-operator/prometheus-config-reloader:v0.93.1",
        digest_field="digest-only",
    ),
    # Subchart alertmanager 1.42.0 (the prometheus chart's Chart.lock); its own config reloader
    # and test pod are off by default.
    ChartImage(
        path=("alertmanager", "image"),
        reference="quay.io/prometheus/alertmanager:v0.34.0",
        digest_field="tag",
    ),
    ChartImage(
        path=("kube-state-metrics", "image"),
        reference=_prometheus.KUBE_STATE_METRICS_IMAGE,
        digest_field="sha",
        registry_value=True,
    ),
    ChartImage(
        path=("prometheus-node-exporter", "image"),
        reference=_prometheus.NODE_EXPORTER_IMAGE,
        digest_field="digest",
        registry_value=True,
    ),
)
"""Every image of the prometheus chart with the program's values: the server and its config
reloader, and the alertmanager, kube-state-metrics and node-exporter subcharts (pushgateway
is disabled; kube-rbac-proxy and node-exporter's permission fix are off by default)."""

GRAFANA_IMAGES = (
    ChartImage(
        path=("image",),
        reference="docker.io/grafana/grafana:13.2.0",
        digest_field="sha-hex",
        registry_value=True,
    ),
    # The chart adds its download-dashboards init container whenever `dashboards` is set, even
    # when every dashboard is inline JSON as here.
    ChartImage(
        path=("downloadDashboardsImage",),
        reference="docker.io/curlimages/curl:8.21.0",
        digest_field="sha-hex",
        registry_value=True,
    ),
)
"""Every image of the grafana chart with the program's values: Grafana and the dashboards
download (init-chown needs persistence, the sidecars and the image renderer are off, and the
test pod is disabled by the program)."""

CHART_IMAGES = {"prometheus": PROMETHEUS_IMAGES, "grafana": GRAFANA_IMAGES}
"""Chart name -> the images its release renders."""


def with_images(values: Mapping[str, Any], chart_images: Sequence[ChartImage]) -> dict[str, Any]:
    """A copy of a release's values with every chart image's values merged in."""
    merged = dict(values)
    for image in chart_images:
        *parents, leaf = image.path
        level = merged
        for key in parents:
            level[key] = dict(level.get(key) or {})
            level = level[key]
        level[leaf] = {**(level.get(leaf) or {}), **image.values()}
    return merged


def rendered_images(chart: str, values: Mapping[str, Any]) -> dict[str, str]:
    """values path -> the reference the chart renders there, from a release's values (which
    name every image in full: `with_images`)."""
    found = {}
    for image in CHART_IMAGES.get(chart, ()):
        level: Any = values
        for key in image.path:
            level = (level or {}).get(key) if isinstance(level, Mapping) else None
        found[".".join(image.path)] = image.rendered(level if isinstance(level, Mapping) else {})
    return found
