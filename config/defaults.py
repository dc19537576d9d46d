"""The embedded default configuration: everything on the loopback interface.

It makes callherald run out of the box for a first try and for tests: the PBX side listens on
127.0.0.1:5060 and the carrier side on 127.0.0.1:5070 (UDP); calls from the PBX go to a carrier
at 127.0.0.1:5080 and calls from the carrier go to a PBX at 127.0.0.1:5090; both may only come
from 127.0.0.0/8. No credentials, no registration, default limits.
"""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path

from config.schema import (
    Carrier,
    Config,
    Limits,
    Listen,
    ListenAddress,
    Logging,
    LogLevel,
    Media,
    Pbx,
    PbxPeer,
    Routing,
    SipTarget,
    Transport,
)

__all__ = ["EMBEDDED_DEFAULT_YAML", "default_config"]

EMBEDDED_DEFAULT_YAML = """\
# callherald embedded default: everything on the loopback interface.
listen:
  pbx:                  # the PBX sends its calls here
    host: 127.0.0.1
    port: 5060
    transport: udp
  carrier:              # the carrier sends its calls here
    host: 127.0.0.1
    port: 5070
    transport: udp

pbx:
  peers:
    - name: loopback-pbx
      host: 127.0.0.1
      port: 5090
      transport: udp
      allowed_networks: [127.0.0.0/8]
  default_target: "127.0.0.1:5090"   # calls from the carrier go here

carrier:                # calls from the PBX go here
  host: 127.0.0.1
  port: 5080
  transport: udp
  allowed_networks: [127.0.0.0/8]

media:
  rtp_port_min: 20000
  rtp_port_max: 20999
  bind_address: 127.0.0.1
  advertised_address: 127.0.0.1

limits:
  max_concurrent_calls: 500
  rtp_inactivity_timeout_s: 60
  max_message_bytes: 65535

logging:
  level: info

# data_dir is not set: it is $CALLHERALD_HOME, else ./callherald-data.
"""
"""The embedded default as YAML; parsing it with ``CALLHERALD_HOME=home`` gives `default_config(home)`."""


def default_config(home: Path) -> Config:
    """The embedded default configuration, keeping its data under ``home``."""
    loopback = ip_network("127.0.0.0/8")
    return Config(
        listen=Listen(
            pbx=ListenAddress(host="127.0.0.1", port=5060, transport=Transport.UDP),
            carrier=ListenAddress(host="127.0.0.1", port=5070, transport=Transport.UDP),
        ),
        pbx=Pbx(
            peers=(
                PbxPeer(
                    name="loopback-pbx",
                    host="127.0.0.1",
                    port=5090,
                    transport=Transport.UDP,
                    allowed_networks=(loopback,),
                ),
            ),
            trunk_accounts=(),
            default_target=SipTarget(uri="sip:127.0.0.1:5090", host="127.0.0.1", port=5090),
        ),
        carrier=Carrier(
            host="127.0.0.1",
            port=5080,
            transport=Transport.UDP,
            outbound_proxy=None,
            allowed_networks=(loopback,),
            credentials=None,
            registration=None,
        ),
        media=Media(
            rtp_port_min=20000,
            rtp_port_max=20999,
            advertised_address="127.0.0.1",
            bind_address="127.0.0.1",
        ),
        limits=Limits(max_concurrent_calls=500, rtp_inactivity_timeout_s=60.0, max_message_bytes=65535),
        routing=Routing(inbound=(), default_target=None),
        data_dir=home,
        logging=Logging(level=LogLevel.INFO),
    )
