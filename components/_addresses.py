"""Telling an IP address from a DNS name: load balancers report one or the other."""

from __future__ import annotations

import ipaddress


def is_ip(address: str) -> bool:
    """True for an IPv4 or IPv6 address, False for anything else (a DNS name)."""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def is_ipv4(address: str) -> bool:
    """True for an IPv4 address only (an A record's, an HAProxy server's)."""
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        return False
    return True
