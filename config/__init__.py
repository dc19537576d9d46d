"""callherald configuration: one YAML file -> typed, frozen, validated objects.

Problems are reported all at once, each naming the file, line and key path
(``callherald.yaml:14: carrier.port: expected an integer 1-65535, got 'abc'``). Phone numbers,
DIDs and user names must be quoted in YAML; secrets come from the environment or from files.
"""

from __future__ import annotations

from config.defaults import EMBEDDED_DEFAULT_YAML, default_config
from config.errors import ConfigError, ConfigProblem
from config.loader import HOME_ENV, config_keys, load_config, parse_config
from config.schema import (
    Carrier,
    CarrierCredentials,
    Config,
    HostPort,
    InboundRoute,
    Limits,
    Listen,
    ListenAddress,
    Logging,
    LogLevel,
    Media,
    Network,
    Pbx,
    PbxPeer,
    Registration,
    Routing,
    Secret,
    SipTarget,
    Transport,
    TrunkAccount,
)

__all__ = [
    "EMBEDDED_DEFAULT_YAML",
    "HOME_ENV",
    "Carrier",
    "CarrierCredentials",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "HostPort",
    "InboundRoute",
    "Limits",
    "Listen",
    "ListenAddress",
    "LogLevel",
    "Logging",
    "Media",
    "Network",
    "Pbx",
    "PbxPeer",
    "Registration",
    "Routing",
    "Secret",
    "SipTarget",
    "Transport",
    "TrunkAccount",
    "config_keys",
    "default_config",
    "load_config",
    "parse_config",
]
