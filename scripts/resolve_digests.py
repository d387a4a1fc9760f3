"""Resolves every image in components/images.yaml to the digest its tag points to now.

    python3 scripts/resolve_digests.py              # every image; rewrites components/images.yaml
    python3 scripts/resolve_digests.py --check      # exit 1 if a recorded digest is stale
    python3 scripts/resolve_digests.py --only-unresolved

Needs HTTPS access to the registries (Docker Hub, quay.io, registry.k8s.io) and nothing else:
it speaks the registry HTTP API (the OCI distribution spec) with anonymous pull tokens. For each
`repository:tag` it asks, with a HEAD request, for the digest of the manifest the tag names (the
multi-platform index where there is one), as the registry announces it; a registry that
announces none is asked for the manifest itself, whose SHA-256 is the digest. It records the
digest with the registry and the date as its source. Review the diff and commit it: the
committed file is the record of what runs. The same digest can be read by hand with
`crane digest <image>` or `docker buildx imagetools inspect <image>`.

`--registry HOST=URL` sends a registry's requests elsewhere (a mirror, or a stand-in in tests).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from components import images  # noqa: E402

ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
DOCKER_HUB = "registry-1.docker.io"
TIMEOUT = 30


class ResolveError(Exception):
    pass


def split_reference(reference: str) -> tuple[str, str, str]:
    """registry host, repository, tag: `mariadb:11.4.8` is docker.io's library/mariadb."""
    name, _, tag = reference.rpartition(":")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, repository = first, rest
    else:
        host, repository = DOCKER_HUB, name
    if host in ("docker.io", DOCKER_HUB) and "/" not in repository:
        repository = f"library/{repository}"
    return ("registry-1.docker.io" if host == "docker.io" else host), repository, tag


def _bearer_token(challenge: str, repository: str, timeout: float) -> str:
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    if "realm" not in params:
        raise ResolveError(f"unexpected authentication challenge: {challenge}")
    query = {"scope": params.get("scope") or f"repository:{repository}:pull"}
    if "service" in params:
        query["service"] = params["service"]
    url = f"{params['realm']}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body = json.load(response)
    return body.get("token") or body.get("access_token") or ""


def _request(
    url: str, method: str, headers: dict[str, str], repository: str, timeout: float
) -> tuple[bytes, str | None]:
    """(body, announced digest) of one registry request, after a Bearer token where asked."""
    for _attempt in range(2):
        request = urllib.request.Request(url, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.read(), response.headers.get("Docker-Content-Digest")
        except urllib.error.HTTPError as err:
            challenge = err.headers.get("WWW-Authenticate", "")
            if (
                err.code == 401
                and challenge.lower().startswith("bearer")
                and "Authorization" not in headers
            ):
                headers["Authorization"] = f"Bearer {_bearer_token(challenge, repository, timeout)}"
                continue
            raise ResolveError(f"{url} answered {err.code} {err.reason}") from err
    raise ResolveError(f"{url} refused the pull token")


def fetch_digest(
    reference: str, endpoints: dict[str, str], *, timeout: float = TIMEOUT
) -> tuple[str, str]:
    """(digest, registry host) of the manifest `reference`'s tag points to.

    A HEAD request first: registries announce the digest in `Docker-Content-Digest`, and Docker
    Hub does not count HEAD requests against its pull rate limit. Where no digest is announced,
    the manifest is fetched and its bytes hashed; a GET whose announced digest differs from the
    bytes is refused. (A wrong announced digest cannot slip through either way: the container
    runtime checks the manifest it pulls against the digest it was given.)
    """
    host, repository, tag = split_reference(reference)
    base = endpoints.get(host, f"https://{host}")
    url = f"{base}/v2/{repository}/manifests/{tag}"
    headers = {"Accept": ACCEPT}
    try:
        _, announced = _request(url, "HEAD", headers, repository, timeout)
        if announced and images.DIGEST.fullmatch(announced):
            return announced, host
        body, announced = _request(url, "GET", headers, repository, timeout)
    except ResolveError as err:
        raise ResolveError(f"{reference}: {err}") from err
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    if announced and announced != digest:
        raise ResolveError(
            f"{reference}: the registry announces {announced}, the bytes are {digest}"
        )
    return digest, host


def describe_failure(err: Exception) -> str:
    """What went wrong reaching a registry, in words that say what to check."""
    reason = getattr(err, "reason", None)
    if isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError):
        if isinstance(reason, OSError) and "Name or service not known" in str(reason):
            return "the registry's host name does not resolve: check your network, DNS or proxy"
        if isinstance(reason, (TimeoutError, ConnectionError, OSError)):
            return f"the registry cannot be reached ({reason}): check your network or proxy"
    if isinstance(err, TimeoutError):
        return "the registry did not answer in time: check your network or proxy"
    if " answered 404 " in str(err):
        return (
            "the registry has no such repository or tag (404): check the reference in "
            "components/images.yaml"
        )
    return str(err)


def record(resolved: dict[str, tuple[str, str]], images_file: Path | None = None) -> list[str]:
    """Writes resolved (digest, host) pairs into the images file; returns one line per change."""
    path = images_file or images.IMAGES_FILE
    data = images.read(path)
    today = datetime.date.today().isoformat()
    changed = []
    for reference, (digest, host) in sorted(resolved.items()):
        entry = data.get(reference)
        if entry is None or digest == entry.digest:
            continue
        changed.append(f"{reference}: {entry.digest or 'unresolved'} -> {digest}")
        source = f"registry {host}, resolved {today} by scripts/resolve_digests.py"
        data[reference] = images.ImageEntry(reference, digest, source, None)
    if changed:
        path.write_text(render(path, data))
    return changed


def render(path: Path, data: dict[str, images.ImageEntry]) -> str:
    """The images file with its leading comment kept and the entries rewritten, sorted."""
    header = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    entries = {}
    for reference, entry in sorted(data.items()):
        fields: dict[str, str | None] = {"digest": entry.digest}
        if entry.digest:
            fields["source"] = entry.source
        else:
            fields["unresolved"] = entry.unresolved
        entries[reference] = fields
    body = yaml.safe_dump({"images": entries}, sort_keys=False, width=100)
    return "\n".join(header) + "\n" + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images-file", type=Path, default=images.IMAGES_FILE)
    parser.add_argument("--only-unresolved", action="store_true")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    parser.add_argument("--registry", action="append", default=[], metavar="HOST=URL")
    args = parser.parse_args(argv)
    endpoints = dict(item.split("=", 1) for item in args.registry)
    data = images.read(args.images_file)
    resolved, failed = {}, []
    for reference, entry in sorted(data.items()):
        if args.only_unresolved and entry.digest:
            continue
        try:
            resolved[reference] = fetch_digest(reference, endpoints)
        except (ResolveError, urllib.error.URLError, OSError, ValueError) as err:
            failed.append(f"{reference}: {describe_failure(err)}")
    changed = [
        f"{reference}: {data[reference].digest or 'unresolved'} -> {digest}"
        for reference, (digest, _host) in sorted(resolved.items())
        if digest != data[reference].digest
    ]
    for line in changed:
        print(line)
    for line in failed:
        print(f"FAILED {line}", file=sys.stderr)
    if args.check:
        return 1 if changed or failed else 0
    if changed:
        record(resolved, args.images_file)
        print(f"{args.images_file}: {len(changed)} digest(s) updated; review and commit")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
