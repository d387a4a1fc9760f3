"""Refuses a deploy whose images are not all pinned by digest, unless told to allow it.

    .venv/bin/python scripts/check_images.py --stack-file Pulumi.dev.yaml [--allow-unresolved]

Lists every image the program deploys for the stack (the app's, MariaDB, HAProxy, the OCM
images of the stack's ocmVersion, the metrics agents', the monitoring charts' own images,
cloud-provider-kind for kind clusters) and checks each
against components/images.yaml. Exit status: 0 when every image has its digest, or with
--allow-unresolved (the unresolved ones are listed as a warning); 1 when some are unresolved or
missing from the data; 2 when the data or the stack file cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from components import images  # noqa: E402

NAMESPACE = "ocm-fleet"


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    template = (obj.get("spec") or {}).get("template") or {}
    pod = template.get("spec") or {}
    return [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]


def program_images(ocm_version: str, clouds: set[str]) -> set[str]:
    """The image references the program deploys for a stack, as it deploys them."""
    from components.app import database
    from components.app._manifests import load_manifests
    from components.clusters import kind
    from components.edge import public_load_balancer
    from components.observability import _chart_images, _prometheus
    from components.ocm import _charts

    refs = {c["image"] for obj in load_manifests() for c in _containers(obj)}
    refs |= {
        images.pinned(database.MARIADB_IMAGE),
        images.pinned(database.SHOPAPI_IMAGE),
        images.pinned(public_load_balancer.HAPROXY_IMAGE),
    }
    refs |= {_charts.image(component, ocm_version) for component in _charts.IMAGE_COMPONENTS}
    # The metrics agent on every app cluster: Prometheus, kube-state-metrics, node-exporter.
    refs |= {images.pinned(image) for image in _prometheus.AGENT_IMAGES}
    # The monitoring charts' own images on the main cluster, as the charts render them.
    refs |= {
        image.rendered(image.values())
        for chart_images in _chart_images.CHART_IMAGES.values()
        for image in chart_images
    }
    if "kind" in clouds:
        refs.add(images.pinned(kind.CLOUD_PROVIDER_KIND_IMAGE))
    return refs


def stack_settings(path: Path) -> tuple[str, set[str]]:
    """The stack's OCM version and clouds, as the program reads them."""
    from components.config import DEFAULT_OCM_VERSION

    config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    version = str(config.get(f"{NAMESPACE}:ocmVersion", DEFAULT_OCM_VERSION))
    clusters = [config.get(f"{NAMESPACE}:hub") or {}, *(config.get(f"{NAMESPACE}:clusters") or [])]
    return version, {c.get("cloud", "") for c in clusters if isinstance(c, dict)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack-file", type=Path, required=True)
    parser.add_argument("--allow-unresolved", action="store_true")
    args = parser.parse_args(argv)
    try:
        version, clouds = stack_settings(args.stack_file)
        images._data.cache_clear()
        images._data()
    except (OSError, yaml.YAMLError, images.ImageDataError) as err:
        print(f"check_images: {err}", file=sys.stderr)
        return 2
    problems = images.check(program_images(version, clouds))
    if not problems:
        print("check_images: every image is pinned by digest")
        return 0
    listing = "\n".join(f"  {p}" for p in problems)
    if args.allow_unresolved:
        print(f"check_images: WARNING, deploying images by tag (allowed):\n{listing}")
        return 0
    print(
        "check_images: these images are not pinned by digest:\n"
        f"{listing}\n"
        "Resolve them on a machine with registry access (scripts/resolve_digests.py) and commit\n"
        "components/images.yaml, or deploy by tag on purpose with --allow-unresolved-images.",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
