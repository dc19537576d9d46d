"""The embedded default configuration: everything on the loopback interface.

It makes callherald run out of the box for a first try and for tests: the PBX side listens on
127.0.0.1:5060 and the carrier side on 127.0.0.1:5070 (UDP); calls from the PBX go to a carrier
at 127.0.0.1:5080 and calls from the carrier go to a PBX at 127.0.0.1:5090; both may only come
from 127.0.0.0/8. No credentials, no registration, default limits.

Its recording policy is the product's out-of-the-box behaviour, used by every file that gives
none of ``purposes``, ``consent_questions`` and ``policies``: every call, in either direction,
hears the embedded Dutch notice (prompt set ``default``) after callherald answers, is recorded as
evidence of what was agreed (lawful basis contract, kept 365 days: long enough to settle most
disputes about an agreement, short by default as privacy by default asks; a business sets what its
contracts need) and, only when the caller presses 1 within 6 seconds, also for staff training
(consent, kept 90 days). If the notice cannot be played the call connects unrecorded.

It names no recording recipients, so recordings are encrypted to a development key pair that
callherald generates under ``data_dir/keys`` (and warns about loudly): fine for a first try, not
for real calls.
"""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path

from config.schema import (
    EMBEDDED_PROMPT_SET_ID,
    AnnouncementMode,
    Announcements,
    CallDirection,
    Carrier,
    Config,
    ConsentQuestion,
    FailureBehaviour,
    LawfulBasis,
    Limits,
    Listen,
    ListenAddress,
    Logging,
    LogLevel,
    Media,
    Pbx,
    PbxPeer,
    Policy,
    PolicyMatch,
    Purpose,
    Recording,
    Routing,
    SipTarget,
    Transport,
)

__all__ = [
    "DEFAULT_CONSENT_QUESTIONS",
    "DEFAULT_POLICIES",
    "DEFAULT_PURPOSES",
    "EMBEDDED_DEFAULT_YAML",
    "default_config",
]

DEFAULT_PURPOSES: tuple[Purpose, ...] = (
    Purpose(
        id="evidence",
        lawful_basis=LawfulBasis.CONTRACT,
        reference="GDPR Art. 6(1)(b): proof of what was agreed in the call",
        retention_days=365,
    ),
    Purpose(
        id="training",
        lawful_basis=LawfulBasis.CONSENT,
        reference="GDPR Art. 6(1)(a): the caller pressed the yes key",
        retention_days=90,
    ),
)
"""The embedded default purposes: ``evidence`` (contract, 365 days) and ``training`` (consent, 90 days)."""

DEFAULT_CONSENT_QUESTIONS: tuple[ConsentQuestion, ...] = (
    ConsentQuestion(
        id="training-consent",
        version="1",
        purpose="training",
        prompt_set=EMBEDDED_PROMPT_SET_ID,
        yes_digit="1",
        timeout_s=6.0,
    ),
)
"""The embedded default consent question: ``training-consent``, press 1 within 6 seconds."""

DEFAULT_POLICIES: tuple[Policy, ...] = (
    Policy(
        name="default",
        match=PolicyMatch(direction=CallDirection.ANY, called=(), calling=()),
        record=True,
        notice=EMBEDDED_PROMPT_SET_ID,
        language="nl",
        purposes=("evidence", "training"),
        questions=("training-consent",),
        mode=AnnouncementMode.ANSWER,
        on_failure=FailureBehaviour.CONNECT_UNRECORDED,
        withdrawal_digit=None,
        pci_pause_code=None,
    ),
)
"""The embedded default policy: one catch-all for every call (see the module docstring)."""

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
  max_new_calls_per_s: 0          # 0: no limit on new calls a second
  overload_lag_ms: 250            # new calls get 503 while the event loop runs this late
  rtp_inactivity_timeout_s: 60
  ring_timeout_s: 180
  no_response_timeout_s: 32
  notice_hold_timeout_s: 30
  max_message_bytes: 65535

announcements:
  default_language: nl
  # No prompt sets: the id "default" names the announcement embedded in callherald.

purposes:
  - id: evidence
    lawful_basis: contract
    reference: "GDPR Art. 6(1)(b): proof of what was agreed in the call"
    retention_days: 365
  - id: training
    lawful_basis: consent
    reference: "GDPR Art. 6(1)(a): the caller pressed the yes key"
    retention_days: 90

consent_questions:
  - id: training-consent
    version: 1
    purpose: training
    prompt_set: default
    yes_digit: "1"
    timeout_s: 6

policies:               # first match wins; the last one must match every call
  - name: default
    match: {direction: any}
    record: true
    notice: default
    language: nl
    purposes: [evidence, training]
    questions: [training-consent]
    mode: answer
    on_failure: connect_unrecorded

recording:
  recipients: []        # none: a development key pair is made under data_dir/keys
  min_free_mb: 200      # no new recordings while the data directory has less free space (MiB)
  max_write_delay_s: 5  # no new recordings while the disk is this far behind the audio
  enabled: true
  # storage_region: "EU, ..."  # where data_dir is kept, stored with each recording (not stated)
  worm: false           # data_dir/recordings is not on write-once (WORM) storage

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
        limits=Limits(
            max_concurrent_calls=500,
            max_new_calls_per_s=0.0,
            overload_lag_ms=250,
            rtp_inactivity_timeout_s=60.0,
            max_message_bytes=65535,
            ring_timeout_s=180.0,
            no_response_timeout_s=32.0,
            notice_hold_timeout_s=30.0,
        ),
        routing=Routing(inbound=(), default_target=None),
        announcements=Announcements(prompt_sets=(), default_language="nl"),
        purposes=DEFAULT_PURPOSES,
        consent_questions=DEFAULT_CONSENT_QUESTIONS,
        policies=DEFAULT_POLICIES,
        recording=Recording(recipients=(), min_free_mb=200, max_write_delay_s=5, enabled=True),
        data_dir=home,
        logging=Logging(level=LogLevel.INFO),
    )
