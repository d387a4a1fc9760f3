"""Server certificates signed by a CA of the graph, kept in state (pulumi-tls)."""

from __future__ import annotations

import pulumi
import pulumi_tls as tls


def signed_server_certificate(
    prefix: str,
    ca_key: tls.PrivateKey,
    ca: tls.SelfSignedCert,
    subject: dict[str, str],
    dns_names: pulumi.Input[list[str]],
    opts: pulumi.ResourceOptions,
    ip_addresses: pulumi.Input[list[str]] | None = None,
) -> tuple[tls.LocallySignedCert, tls.PrivateKey]:
    """A P-256 key and a one-year server certificate for it, signed by `ca`: `<prefix>-key`,
    `<prefix>-csr` and `<prefix>-cert`. The `pulumi up` that runs in its last 30 days renews it."""
    key = tls.PrivateKey(f"{prefix}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=opts)
    request = tls.CertRequest(
        f"{prefix}-csr",
        private_key_pem=key.private_key_pem,
        subject=subject,
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        opts=opts,
    )
    cert = tls.LocallySignedCert(
        f"{prefix}-cert",
        cert_request_pem=request.cert_request_pem,
        ca_private_key_pem=ca_key.private_key_pem,
        ca_cert_pem=ca.cert_pem,
        validity_period_hours=365 * 24,
        early_renewal_hours=30 * 24,
        allowed_uses=["server_auth", "digital_signature", "key_encipherment"],
        opts=opts,
    )
    return cert, key
