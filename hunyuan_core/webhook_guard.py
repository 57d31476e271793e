"""Which addresses a webhook may reach: public ones, plus the networks an operator allows.

A webhook URL is chosen by whoever submits a job, so without this gate the
service would POST wherever it is told: to loopback admin ports, the cloud
metadata service (169.254.169.254), the private network. The same gate,
`resolve`, runs twice: when the job is submitted (so a bad URL is a 422) and
again when each attempt connects, on the addresses actually connected to (so a
name that resolved to a public address at submission and to a private one later,
DNS rebinding, is still refused). Addresses are judged after resolution, so
every spelling of an address (`0x7f000001`, `2130706433`, `0177.0.0.1`,
`127.1`, `[::ffff:7f00:1]`, `localhost`) is judged as the address it is.
"""

import ipaddress
import socket
from urllib.parse import urlsplit

# NAT64's well-known prefix carries an IPv4 address in its last 32 bits (RFC 6052).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class AddressNotAllowed(Exception):
    """The webhook's host is, or resolves to, an address that may not be connected to."""


class HostUnresolvable(Exception):
    """The webhook's host does not resolve to any address."""


def parse_networks(name, text):
    """The networks of an allowlist setting: comma-separated CIDRs or single addresses.

    Raises ValueError naming the setting `name` for an entry that is neither.
    """
    networks = []
    for entry in text.split(","):
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{name} must list IP networks such as 127.0.0.0/8 or ::1, not {entry!r}") from None
    return tuple(networks)


def _is_public(address):
    """True for an address on the public internet: not loopback, private, link-local, CGNAT,
    multicast, reserved or unspecified."""
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_loopback or address.is_link_local
        or address.is_unspecified or address.is_private
    )


def _embedded_ipv4(address):
    """The IPv4 addresses an IPv6 address carries to another host (6to4, Teredo, NAT64)."""
    if address.version != 6:
        return []
    found = []
    if address.sixtofour:
        found.append(address.sixtofour)
    if address.teredo:
        found.extend(address.teredo)
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def allowed(address, networks=()):
    """True when `address` (an ipaddress object) may be connected to, given the allowed `networks`."""
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:a.b.c.d is the IPv4 host a.b.c.d
    if any(address.version == net.version and address in net for net in networks):
        return True
    embedded = _embedded_ipv4(address)
    if address.version == 6 and address in _NAT64:
        return all(allowed(inner, networks) for inner in embedded)
    return _is_public(address) and all(allowed(inner, networks) for inner in embedded)


def resolve(host, port, networks=()):
    """Resolve `host` once and vet every address it resolves to.

    Returns the getaddrinfo entries (family, type, proto, canonname, sockaddr) to
    connect to: the caller must connect to these very addresses, never resolve
    again. Raises HostUnresolvable, or AddressNotAllowed if any address is not
    allowed (one forbidden answer among public ones refuses the host: a resolver
    that mixes them is not to be trusted).
    """
    try:
        entries = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise HostUnresolvable(f"{host!r} does not resolve: {exc}") from None
    if not entries:
        raise HostUnresolvable(f"{host!r} resolves to no address")
    for entry in entries:
        text = entry[4][0].split("%", 1)[0]  # an IPv6 zone (fe80::1%eth0) is no part of the address
        if not allowed(ipaddress.ip_address(text), networks):
            raise AddressNotAllowed(f"{host!r} resolves to {text}, which is not a public address")
    return entries


def check_url(url, networks=()):
    """Vet a webhook URL's host as `resolve` does (at submission); returns nothing, raises like it."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if not parts.hostname:
        raise HostUnresolvable("the URL has no host")
    resolve(parts.hostname, port, networks)
