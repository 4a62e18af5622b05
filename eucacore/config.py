"""Per-host configuration: eucalyptus.conf, read with configobj, checked against configspec.ini.

The file keeps the original's shell-style ``KEY="value"`` lines.  Every key the
daemons read is declared in ``configspec.ini`` (type, range, allowed values,
default), so a file may omit any key.  A bad file gives a :class:`ConfigError`
whose text is one line: file, line number, key and what was expected.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import sys
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

import configobj
import validate

DEFAULT_PATH = "/etc/eucalyptus/eucalyptus.conf"
ENV_VAR = "EUCALYPTUS_CONF"

_KEY_LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_MAC = re.compile(r"^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}$")
_MAC_PREFIX = re.compile(r"^[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}$")
_INTERFACE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")

# Which keys each networking mode cannot do without (the original CC's init_config).
_MODE_NEEDS = {
    "STATIC": ("VNET_SUBNET", "VNET_NETMASK", "VNET_BROADCAST", "VNET_ROUTER", "VNET_DNS", "VNET_MACMAP"),
    "MANAGED": ("VNET_SUBNET", "VNET_NETMASK", "VNET_DNS"),
    "MANAGED-NOVLAN": ("VNET_SUBNET", "VNET_NETMASK", "VNET_DNS"),
}


class ConfigError(Exception):
    """A bad configuration, as one line naming file, line, key and what was expected.

    e.g. ``/etc/eucalyptus/eucalyptus.conf:12: CC_PORT: expected an integer from 1 to 65535, got "80x"``
    """

    def __init__(self, path: str, line: int | None = None, key: str | None = None, message: str | None = None):
        self.path, self.line, self.key, self.message = path, line, key, message
        where = f"{path}:{line}" if line else path
        text = f"{where}: {key}: {message}" if key else f"{where}: {message}"
        super().__init__(text if message is not None else path)


class Config(Mapping[str, Any]):
    """Validated, typed, read-only settings of one host, plus the paths derived from them."""

    def __init__(self, values: Mapping[str, Any], path: str):
        self._values = MappingProxyType(dict(values))
        self.path = path

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"<Config {self.path}>"

    def state_dir(self) -> Path:
        """$EUCALYPTUS/var/lib/eucalyptus: databases, keys, images, instances."""
        return Path(self["EUCALYPTUS"], "var/lib/eucalyptus")

    def keys_dir(self) -> Path:
        """Where this host keeps its component keys and certificates."""
        return self.state_dir() / "keys"

    def log_dir(self) -> Path:
        """$EUCALYPTUS/var/log/eucalyptus."""
        return Path(self["EUCALYPTUS"], "var/log/eucalyptus")

    def instance_path(self) -> Path:
        """INSTANCE_PATH, or state_dir/instances when it is empty."""
        return self._dir_or_default("INSTANCE_PATH", "instances")

    def walrus_storage_dir(self) -> Path:
        """WALRUS_STORAGE_DIR, or state_dir/bukkits when it is empty."""
        return self._dir_or_default("WALRUS_STORAGE_DIR", "bukkits")

    def sc_volumes_dir(self) -> Path:
        """SC_VOLUMES_DIR, or state_dir/volumes when it is empty."""
        return self._dir_or_default("SC_VOLUMES_DIR", "volumes")

    def _dir_or_default(self, key: str, name: str) -> Path:
        return Path(self[key]) if self[key] else self.state_dir() / name


# --- check functions named in configspec.ini ----------------------------------


class Invalid(validate.ValidateError):
    """A value a check function rejects, with the words for what it expected."""

    def __init__(self, expected: str):
        super().__init__(expected)
        self.expected = expected


def _int(value: str, expected: str) -> int:
    try:
        return int(str(value).strip(), 10)
    except ValueError:
        raise Invalid(expected) from None


def check_int_range(value: str, min: str | None = None, max: str | None = None) -> int:
    """An integer within [min, max] (either bound may be absent)."""
    lo, hi = (int(min) if min is not None else None), (int(max) if max is not None else None)
    if lo is not None and hi is not None:
        expected = f"an integer from {lo} to {hi}"
    elif lo == 0:
        expected = "a non-negative integer"
    elif lo is not None:
        expected = f"an integer of at least {lo}"
    else:
        expected = "an integer"
    number = _int(value, expected)
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        raise Invalid(expected)
    return number


def check_port(value: str) -> int:
    """A TCP port, 1..65535."""
    return check_int_range(value, "1", "65535")


def check_power_of_two(value: str, min: str, max: str) -> int:
    """A power of two within [min, max]."""
    expected = f"a power of 2 from {min} to {max}"
    number = _int(value, expected)
    if number < int(min) or number > int(max) or number & (number - 1):
        raise Invalid(expected)
    return number


def check_choice(value: str, *options: str) -> str:
    """One of the listed words, exactly."""
    if value not in options:
        raise Invalid("one of " + " ".join(options))
    return value


def check_flag01(value: str) -> bool:
    """0 or 1, as a bool."""
    if value not in ("0", "1"):
        raise Invalid("0 or 1")
    return value == "1"


def check_yes_no(value: str) -> bool:
    """Y or N (either case), as a bool."""
    if value.upper() not in ("Y", "N"):
        raise Invalid("Y or N")
    return value.upper() == "Y"


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def check_ipv4(value: str) -> str:
    """A dotted-quad IPv4 address."""
    if not _is_ipv4(value):
        raise Invalid("an IPv4 address")
    return value


def check_ipv4_or_empty(value: str) -> str:
    """An IPv4 address, or empty for unset."""
    if value and not _is_ipv4(value):
        raise Invalid("an IPv4 address or empty")
    return value


def check_netmask_or_empty(value: str) -> str:
    """A contiguous IPv4 netmask such as 255.255.255.0, or empty."""
    if not value:
        return value
    try:
        ipaddress.IPv4Network(f"0.0.0.0/{value}")
        ok = _is_ipv4(value)
    except ValueError:
        ok = False
    if not ok:
        raise Invalid("an IPv4 netmask such as 255.255.0.0, or empty")
    return value


def _is_host(text: str) -> bool:
    return _is_ipv4(text) or (_HOSTNAME.match(text) is not None and not text.replace(".", "").isdigit())


def check_host(value: str) -> str:
    """A host name or IPv4 address."""
    if not _is_host(value):
        raise Invalid("a host name or IPv4 address")
    return value


def check_host_list(value: str) -> list[str]:
    """Space-separated host or host:port words, as a list of strings."""
    hosts = value.split()
    for word in hosts:
        host, _, port = word.partition(":")
        good_port = not port or (port.isdigit() and 1 <= int(port) <= 65535)
        if not (_is_host(host) and good_port):
            raise Invalid("space-separated host or host:port names")
    return hosts


def check_public_ips(value: str) -> list[str]:
    """Space-separated IPv4 addresses or ranges a.b.c.d-a.b.c.e (low to high), as a list."""
    expected = "space-separated IPv4 addresses or ranges a.b.c.d-a.b.c.e"
    words = value.split()
    for word in words:
        first, dash, last = word.partition("-")
        if not _is_ipv4(first) or (dash and not _is_ipv4(last)):
            raise Invalid(expected)
        if dash and ipaddress.IPv4Address(first) > ipaddress.IPv4Address(last):
            raise Invalid(expected + " with the low address first")
    return words


def check_mac_map(value: str) -> dict[str, str]:
    """Space-separated MAC=IP pairs, as a dict of lower-case MAC to IP."""
    pairs: dict[str, str] = {}
    for word in value.split():
        mac, eq, ip = word.partition("=")
        if not (eq and _MAC.match(mac) and _is_ipv4(ip)):
            raise Invalid("space-separated MAC=IP pairs such as d0:0d:00:00:00:01=10.0.0.5")
        pairs[mac.lower()] = ip
    return pairs


def check_mac_prefix(value: str) -> str:
    """Two hex bytes such as d0:0d, lower-cased."""
    if not _MAC_PREFIX.match(value):
        raise Invalid("two hex bytes such as d0:0d")
    return value.lower()


def check_abs_path(value: str) -> str:
    """An absolute path."""
    if not value.startswith("/"):
        raise Invalid("an absolute path")
    return value


def check_abs_path_or_empty(value: str) -> str:
    """An absolute path, or empty for the default under the state directory."""
    if value and not value.startswith("/"):
        raise Invalid("an absolute path or empty")
    return value


def check_interface(value: str) -> str:
    """A network interface name."""
    if not _INTERFACE.match(value):
        raise Invalid("a network interface name such as eth0")
    return value


def check_user_name(value: str) -> str:
    """A UNIX user name."""
    if not _USER.match(value):
        raise Invalid("a user name")
    return value


def check_domain_name(value: str) -> str:
    """A DNS domain name."""
    if not _HOSTNAME.match(value):
        raise Invalid("a DNS domain name")
    return value


def check_url_path(value: str) -> str:
    """A relative URL path such as axis2/services/EucalyptusNC."""
    if not value or value.startswith("/") or any(c.isspace() for c in value):
        raise Invalid("a URL path such as axis2/services/EucalyptusNC")
    return value


def check_string(value: str) -> str:
    """Any text."""
    return value


CHECKS = {
    "int_range": check_int_range, "port": check_port, "power_of_two": check_power_of_two,
    "choice": check_choice, "flag01": check_flag01, "yes_no": check_yes_no,
    "ipv4": check_ipv4, "ipv4_or_empty": check_ipv4_or_empty, "netmask_or_empty": check_netmask_or_empty,
    "host": check_host, "host_list": check_host_list, "public_ips": check_public_ips,
    "mac_map": check_mac_map, "mac_prefix": check_mac_prefix, "abs_path": check_abs_path,
    "abs_path_or_empty": check_abs_path_or_empty, "interface": check_interface,
    "user_name": check_user_name, "domain_name": check_domain_name, "url_path": check_url_path,
    "string": check_string,
}


# --- reading -----------------------------------------------------------------


def _spec_lines() -> list[str]:
    return resources.files("eucacore").joinpath("configspec.ini").read_text("utf-8").splitlines()


def _spec() -> configobj.ConfigObj:
    return configobj.ConfigObj(_spec_lines(), list_values=False, _inspec=True)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _scan(path: str, lines: list[str], known: Mapping[str, Any]) -> tuple[dict[str, int], list[ConfigError]]:
    """Check the shape of every line (raising on the first bad one).

    Return each key's line number, and the problems of unknown and repeated keys;
    those lines are blanked in ``lines`` so that configobj skips them.
    """
    where: dict[str, int] = {}
    problems: list[ConfigError] = []
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _KEY_LINE.match(line)
        if not match:
            raise ConfigError(path, number, None, f'expected KEY="value", got {stripped!r}')
        key = match.group(1)
        if key in where:
            problems.append(ConfigError(path, number, key, f"set twice (first on line {where[key]})"))
        elif key not in known:
            near = difflib.get_close_matches(key, list(known), n=1)
            hint = f"; did you mean {near[0]}?" if near else ""
            problems.append(ConfigError(path, number, key, f"unknown key{hint}"))
        else:
            where[key] = number
            continue
        lines[number - 1] = ""
    return where, problems


def _validate(path: str, raw: Mapping[str, str], where: Mapping[str, int]) -> tuple[dict[str, Any], list[ConfigError]]:
    """Run the configspec's checks over raw strings (defaults fill the gaps)."""
    cfg = configobj.ConfigObj(dict(raw), configspec=_spec(), list_values=False, interpolation=False)
    result = cfg.validate(validate.Validator(CHECKS), preserve_errors=True)
    problems = []
    if result is not True:
        for key, error in result.items():
            if error is True:
                continue
            expected = error.expected if isinstance(error, Invalid) else str(error)
            got = raw.get(key, cfg.get(key, ""))
            problems.append(ConfigError(path, where.get(key), key, f'expected {expected}, got "{got}"'))
    return {key: cfg[key] for key in cfg.configspec}, problems


def _cross_check(path: str, values: Mapping[str, Any], where: Mapping[str, int]) -> None:
    """Checks that involve more than one key."""
    mode = values["VNET_MODE"]
    missing = [key for key in _MODE_NEEDS.get(mode, ()) if not values[key]]
    if missing:
        raise ConfigError(path, where.get("VNET_MODE"), "VNET_MODE",
                          f"expected {_and(missing)} to be set in {mode} mode")
    if values["VNET_SUBNET"] and values["VNET_NETMASK"]:
        try:
            ipaddress.IPv4Network(f"{values['VNET_SUBNET']}/{values['VNET_NETMASK']}")
        except ValueError:
            raise ConfigError(path, where.get("VNET_SUBNET"), "VNET_SUBNET",
                              f"expected a network address for netmask {values['VNET_NETMASK']}, "
                              f'got "{values["VNET_SUBNET"]}"') from None


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _build(path: str, lines: list[str], numbered: bool = True) -> Config:
    known = _spec()
    lines = list(lines)
    where, problems = _scan(path, lines, known)
    if not numbered:
        where = {}
    try:
        parsed = configobj.ConfigObj(lines, list_values=False, interpolation=False, raise_errors=True)
    except configobj.ConfigObjError as error:
        line = getattr(error, "line_number", None)
        raise ConfigError(path, line, None, f'expected KEY="value", got {error.line.strip()!r}') from None
    raw = {key: _unquote(value) for key, value in parsed.items()}
    values, bad_values = _validate(path, raw, where)
    problems += bad_values
    if problems:
        raise min(problems, key=lambda problem: problem.line or 0)
    _cross_check(path, values, where)
    return Config(values, path)


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate eucalyptus.conf; raise ConfigError (one line) on the first problem.

    path None means $EUCALYPTUS_CONF, else /etc/eucalyptus/eucalyptus.conf.
    """
    name = os.fspath(path) if path is not None else os.environ.get(ENV_VAR) or DEFAULT_PATH
    try:
        text = Path(name).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise ConfigError(name, None, None, f"cannot read configuration file: {reason}") from None
    return _build(name, text.splitlines())


def _as_text(value: Any, check: str) -> str:
    if isinstance(value, bool) and check.startswith("yes_no"):
        return "Y" if value else "N"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dict):
        return " ".join(f"{mac}={ip}" for mac, ip in value.items())
    if isinstance(value, (list, tuple)):
        return " ".join(str(item) for item in value)
    return str(value)


def default_config(**overrides: Any) -> Config:
    """All defaults with overrides applied and validated, for tests and tools.

    Overrides may be typed (ints, bools, lists, a MAC->IP dict) or file text.
    """
    spec = _spec()
    lines = [f'{key}="{_as_text(value, spec.get(key, ""))}"' for key, value in overrides.items()]
    return _build("<default_config>", lines, numbered=False)


def load_or_exit(path: str | os.PathLike[str] | None = None) -> Config:
    """load_config for a daemon's main: on ConfigError print one line and exit 1."""
    try:
        return load_config(path)
    except ConfigError as error:
        _exit(error)


def _exit(error: ConfigError) -> NoReturn:
    print(f"eucalyptus: {error}", file=sys.stderr)
    sys.exit(1)


def split_hostport(text: str, default_port: int) -> tuple[str, int]:
    """``host`` or ``host:port`` (as in NODES or a registration) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and host and not host.endswith(":"):
        return host.strip("[]"), int(port)
    return text.strip("[]"), default_port
