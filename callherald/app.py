"""Builds the running proxy from a configuration: the only place that knows every package."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import os
import secrets
import signal
import stat
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from functools import partial
from pathlib import Path

from announcements import PromptLibrary
from callherald.announcing import LibraryPrompts, LoggingRecordSink, policy_resolver, prepare_prompts
from callherald.auditing import (
    FileReport,
    KeptReport,
    file_report,
    file_report_text,
    kept_report,
    kept_report_text,
    manifest_report_line,
    report_text,
)
from callherald.evidence import (
    NO_RECIPIENT_KEY,
    PurposeFacts,
    RecordSinks,
    StorageRecords,
    define_purposes,
    recover_open_recordings,
)
from callherald.layout import DataLayout, ensure_development_key, own_data_dir
from config import Config, SipTarget, risky_keys
from proxy.aio.control import ControlServer
from proxy.aio.media import RtpPortProbe
from proxy.aio.service import ListenSpec, ProxyService
from proxy.b2bua.core import B2bua
from proxy.b2bua.settings import (
    Address,
    B2buaSettings,
    CarrierSettings,
    RegistrationSettings,
    Side,
    TrunkAccount,
)
from proxy.sip import ParserLimits
from proxy.sip.transaction import TimerConfig
from storage.crypto import FULL_DISK_ERRNOS, StorageError
from storage.keys import load_public_key
from storage.manifests import ManifestReport
from storage.records import EvidenceFullError, EvidenceStore
from storage.signing import ManifestSigner, ensure_signing_key, load_signing_key, public_key_path

__all__ = [
    "b2bua_settings",
    "build_service",
    "ephemeral_overlap",
    "ephemeral_ports",
    "held_evidence_dir_problem",
    "manifest_signer",
    "manifest_signing_key_path",
    "open_storage",
    "readable_signing_key",
    "run_forever",
    "signing_key_problem",
    "writable_recipient_files",
]

_LOG = logging.getLogger("callherald")


def _target_address(target: SipTarget) -> Address:
    return target.host, target.port or 5060


def b2bua_settings(config: Config, *, user_agent: str = "callherald") -> B2buaSettings:
    """Translate the YAML configuration into what the call logic needs."""
    carrier = config.carrier
    next_hop: Address = (
        (carrier.outbound_proxy.host, carrier.outbound_proxy.port)
        if carrier.outbound_proxy is not None
        else (carrier.host, carrier.port)
    )
    credentials = carrier.credentials
    registration = None
    if carrier.registration is not None and carrier.registration.enabled:
        registration = RegistrationSettings(
            interval_s=carrier.registration.interval_s,
            retry_min_s=carrier.registration.retry_min_s,
            retry_max_s=carrier.registration.retry_max_s,
        )
    pbx_networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for peer in config.pbx.peers:
        pbx_networks.extend(peer.allowed_networks)
    return B2buaSettings(
        local_address={
            Side.PBX: (config.listen.pbx.host, config.listen.pbx.port),
            Side.CARRIER: (config.listen.carrier.host, config.listen.carrier.port),
        },
        transport={
            Side.PBX: str(config.listen.pbx.transport),
            Side.CARRIER: str(config.listen.carrier.transport),
        },
        media_address=config.media.advertised_address,
        rtp_port_min=config.media.rtp_port_min,
        rtp_port_max=config.media.rtp_port_max,
        pbx_networks=tuple(pbx_networks),
        pbx_default_target=_target_address(config.pbx.default_target),
        trunk_accounts=tuple(
            TrunkAccount(username=a.username, password=a.password.value, realm=a.realm)
            for a in config.pbx.trunk_accounts
        ),
        carrier=CarrierSettings(
            host=carrier.host,
            port=carrier.port,
            next_hop=next_hop,
            allowed_networks=carrier.allowed_networks,
            username=credentials.username if credentials else None,
            auth_username=credentials.auth_username if credentials else None,
            password=credentials.password.value if credentials else None,
            realm=credentials.realm if credentials else None,
            registration=registration,
        ),
        inbound_routes={route.did: _target_address(route.target) for route in config.routing.inbound},
        fallback_inbound_target=(
            _target_address(config.routing.default_target) if config.routing.default_target else None
        ),
        max_concurrent_calls=config.limits.max_concurrent_calls,
        max_new_calls_per_s=config.limits.max_new_calls_per_s,
        overload_lag_s=config.limits.overload_lag_ms / 1000,
        rtp_inactivity_timeout_s=config.limits.rtp_inactivity_timeout_s,
        ring_timeout_s=config.limits.ring_timeout_s,
        notice_hold_timeout_s=config.limits.notice_hold_timeout_s,
        user_agent=user_agent,
    )


def open_storage(config: Config) -> StorageRecords:
    """The evidence database and the recording files under ``data_dir``, with the evidence the last
    run kept in a file as it stopped on a full disk written into it, recovered after a crash,
    with the configured purposes stored as the definitions new calls are recorded under. What of
    that the full disk cannot take is logged as an error and left for the next start: a full disk
    stops new recordings, never calls. On a disk too full to open the database at all, all of that
    waits for the next start, and the calls' evidence for the database to open (``wait_for_space``).
    A broken audit chain is logged as an error before it
    returns; evidence that no longer matches its manifests and audit rows, a kept recording without
    its file or wrapped keys, and a file that no longer has the SHA-256 its recovery pinned, as an
    error once the check, queued on the reader thread, is done (``callherald audit verify``).

    Without configured recipients a development key pair is made (once) under ``data_dir/keys``:
    recordings are then readable by anyone who can read that directory, which the log says loudly.
    """
    layout = DataLayout(config.data_dir)
    layout.make_root()
    held_dir_problem = held_evidence_dir_problem(config)
    if held_dir_problem is not None:
        _LOG.warning("recording.held_evidence_dir: %s", held_dir_problem)
    evidence = EvidenceStore(
        layout.evidence_db,
        held_dir=config.recording.held_evidence_dir,
        wait_for_space=True,
        manifest_signer=manifest_signer(config),
    )
    if evidence.waiting_for_space:
        _LOG.error(
            "%s: cannot open the evidence database: the disk holding it is full. callherald takes"
            " calls, unrecorded; their evidence waits in memory and is written as soon as the"
            " database can be opened (kept in a file at a stop before that); the evidence an"
            " earlier run kept in files, the recordings a crash left open and the start-up checks"
            " wait for a start with free space under data_dir",
            layout.evidence_db,
        )
    else:
        _check_evidence(layout, evidence)
    recipients = tuple(load_public_key(path) for path in config.recording.recipients)
    for warning in writable_recipient_files(config):
        _LOG.warning("recording.recipients: %s", warning)
    no_recipients_reason = NO_RECIPIENT_KEY
    if not recipients:
        try:
            key, made = ensure_development_key(layout)
        except OSError as error:
            if error.errno not in FULL_DISK_ERRNOS:
                raise
            # A first start on a full disk: no key to encrypt to, so no recording (calls go on).
            no_recipients_reason = (
                "no development key: the disk was too full to make it at start-up (a start with"
                " free space under data_dir makes it)"
            )
            _LOG.error(
                "%s: cannot make the development key pair: the disk holding it is full. callherald"
                " takes calls, unrecorded, until a start with free space under data_dir makes it",
                layout.keys_dir,
            )
        else:
            recipients = (key,)
            _LOG.warning(
                "*** DEVELOPMENT KEY: recordings are encrypted to %s, whose passphrase lies next to it. "
                "Anyone who can read %s can play them. Configure recording.recipients for real use. ***",
                layout.development_key.private,
                layout.keys_dir,
            )
            if made:
                _LOG.warning("made a new development key pair under %s", layout.keys_dir)
    purposes = {
        purpose.id: PurposeFacts(
            lawful_basis=str(purpose.lawful_basis),
            reference=purpose.reference or "",
            retention_days=purpose.retention_days,
        )
        for purpose in config.purposes
    }
    try:
        for line in define_purposes(evidence, purposes):
            _LOG.warning("%s", line)
    except EvidenceFullError as error:
        _LOG.error(
            "%s: the configured purposes are not stored: until a start with free space under"
            " data_dir stores them, calls are recorded under the definitions stored last",
            error,
        )
    return StorageRecords(
        layout,
        evidence,
        recipients=recipients,
        purposes=purposes,
        min_free_mb=config.recording.min_free_mb,
        max_write_delay_s=config.recording.max_write_delay_s,
        recording_enabled=config.recording.enabled,
        no_recipients_reason=no_recipients_reason,
        storage_region=config.recording.storage_region or "",
        worm=config.recording.worm,
    )


def _check_evidence(layout: DataLayout, evidence: EvidenceStore) -> None:
    """What a start does with an evidence database it could open: write the evidence an earlier run
    kept in files, recover what a crash left open, and check the audit chain, manifests and files."""
    # Before recovery: a call the last run ended while the disk was full has its end in there.
    evidence.import_held_evidence().result()
    # A full disk stops new recordings, never calls: what start-up cannot write now is left for the
    # next start, and calls connect unrecorded meanwhile.
    try:
        for line in recover_open_recordings(layout, evidence):
            _LOG.warning("%s", line)
    except EvidenceFullError as error:
        _LOG.error(
            "%s: the recordings and calls the last run left open are not closed yet: they stay open"
            " until a start with free space under data_dir closes them (callherald starts; calls"
            " connect unrecorded while the disk is full)",
            error,
        )
    audit = evidence.audit_verify()
    if not audit.ok:  # someone with write access to the file changed it: say so, keep recording
        _LOG.error("%s (callherald audit verify)", report_text(audit))
    # The evidence against the manifests and audit rows fixed with it: every recording's rows are
    # read, long on a large database, so on the reader thread while calls are taken.
    evidence.submit_verify_manifests().add_done_callback(_log_manifest_check)
    # So are the kept recordings' files and wrapped keys, and the files pinned at a recovery.
    evidence.submit_read(partial(kept_report, layout)).add_done_callback(_log_kept_check)
    evidence.submit_read(partial(file_report, layout)).add_done_callback(_log_file_check)


def writable_recipient_files(config: Config) -> list[str]:
    """One warning per ``recording.recipients`` file anyone may change, or replace (its directory
    writable by all, not sticky): whoever swaps in a key of their own reads every recording made
    after. (Group write is left alone: with a group per user, as most systems make, it is the
    owner's alone.)"""
    warnings: list[str] = []
    for path in config.recording.recipients:
        try:
            mode = path.stat().st_mode
            directory = path.parent.stat().st_mode
        except OSError:
            continue  # the loader said why already
        if mode & stat.S_IWOTH:
            warnings.append(
                f"public key file {os.fspath(path)!r} is writable by anyone (mode "
                f"{stat.S_IMODE(mode):04o}): whoever changes it can read the recordings made after; chmod 644"
            )
        elif directory & stat.S_IWOTH and not directory & stat.S_ISVTX:
            warnings.append(
                f"public key file {os.fspath(path)!r} is in a directory anyone may write to (mode "
                f"{stat.S_IMODE(directory):04o}): whoever replaces it can read the recordings made after"
            )
    return warnings


def manifest_signing_key_path(config: Config) -> Path:
    """Where the manifest signing key is: ``recording.manifest_signing_key``, else
    ``data_dir/keys/manifest-signing.key``."""
    return config.recording.manifest_signing_key or DataLayout(config.data_dir).manifest_signing_key


def signing_key_problem(config: Config) -> str | None:
    """Why ``serve`` would stop on the manifest signing key: a file there that cannot be read or
    holds no Ed25519 private key. None when it is one, or when there is none yet (the first start
    makes it)."""
    path = manifest_signing_key_path(config)
    if not os.path.lexists(path):
        return None
    try:
        load_signing_key(path)
    except StorageError as error:
        return str(error)
    return None


def readable_signing_key(config: Config) -> str | None:
    """A warning when others than its owner may read the manifest signing key: whoever reads it can
    sign the manifests of evidence they forged. None when only its owner may, or there is none."""
    path = manifest_signing_key_path(config)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    if not mode & 0o077:
        return None
    return (
        f"manifest signing key {os.fspath(path)!r} may be read by others than its owner (mode {mode:04o}):"
        " whoever reads it can sign the manifests of forged evidence; chmod 600"
    )


def manifest_signer(config: Config) -> ManifestSigner | None:
    """The key that signs each recording's manifest (``manifest_signing_key_path``), made on the
    first start that finds none; None, and manifests unsigned, when a full disk leaves no room to
    make it. StorageError for a file that is no signing key."""
    path = manifest_signing_key_path(config)
    try:
        signer, made = ensure_signing_key(path)
    except OSError as error:
        if error.errno not in FULL_DISK_ERRNOS:
            reason = error.strerror or error
            raise StorageError(f"{path}: cannot make the manifest signing key: {reason}") from error
        _LOG.error(
            "%s: cannot make the manifest signing key: the disk holding it is full. Manifests are"
            " written unsigned until a start with free space makes it",
            path,
        )
        return None
    readable = readable_signing_key(config)
    if readable is not None:
        _LOG.warning("recording.manifest_signing_key: %s", readable)
    if made:
        _LOG.warning(
            "made the manifest signing key %s (key id %s): keep a copy of %s away from this machine"
            " and check the audit log with `callherald audit verify --trust` that copy",
            path,
            signer.key_id,
            public_key_path(path),
        )
    return signer


def held_evidence_dir_problem(config: Config) -> str | None:
    """Why ``recording.held_evidence_dir`` cannot take the evidence a stop on a full disk keeps (it
    is no directory, say its disk is not mounted), None when it can or is not set: ``data_dir``
    takes it instead, so callherald runs on (see ``EvidenceStore``)."""
    held_dir = config.recording.held_evidence_dir
    if held_dir is None or held_dir.is_dir():
        return None
    return (
        f"{os.fspath(held_dir)!r} is not a directory (is its disk mounted?): evidence that a stop on a"
        f" full disk keeps goes to data_dir ({os.fspath(config.data_dir)}) instead, and the files"
        " kept in it earlier wait there for a start that sees it"
    )


def _log_manifest_check(check: Future[ManifestReport]) -> None:
    """Log what the start-up manifest check found: an error naming each change, as ``callherald
    audit verify`` does (callherald keeps recording)."""
    try:
        report = check.result()
    except Exception as error:
        _LOG.error("the evidence could not be checked against its manifests: %s", error)
        return
    if report.ok:
        _LOG.info("%s", manifest_report_line(report))
    else:
        _LOG.error("%s (callherald audit verify)", manifest_report_line(report))


def _log_kept_check(check: Future[KeptReport]) -> None:
    """Log whether every kept recording has its file and its wrapped keys (an error naming each
    that lacks any), as ``callherald audit verify`` says it."""
    try:
        report = check.result()
    except Exception as error:
        _LOG.error("the kept recordings' files and keys could not be checked: %s", error)
        return
    text = "; ".join(line.strip() for line in kept_report_text(report).splitlines())
    if report.ok:
        _LOG.info("%s", text)
    else:
        _LOG.error("%s (callherald audit verify)", text)


def _log_file_check(check: Future[FileReport]) -> None:
    """Log whether each file whose SHA-256 a recovery pinned still has it (an error naming each
    that does not), as ``callherald audit verify`` says it; nothing when none was recovered."""
    try:
        report = check.result()
    except Exception as error:
        _LOG.error("the recovered recordings' files could not be checked: %s", error)
        return
    if not report.checked:
        return
    text = "; ".join(line.strip() for line in file_report_text(report).splitlines())
    if report.ok:
        _LOG.info("%s", text)
    else:
        _LOG.error("%s (callherald audit verify)", text)


def build_service(
    config: Config,
    *,
    user_agent: str = "callherald",
    prompts: LibraryPrompts | None = None,
    storage: StorageRecords | None = None,
) -> ProxyService:
    """The proxy service for ``config``, not yet started; ``prompts`` holds the prepared announcements
    and ``storage`` (when given) keeps the evidence and the recordings."""
    listen = {
        Side.PBX: ListenSpec(
            host=config.listen.pbx.host,
            port=config.listen.pbx.port,
            transport=str(config.listen.pbx.transport),
        ),
        Side.CARRIER: ListenSpec(
            host=config.listen.carrier.host,
            port=config.listen.carrier.port,
            transport=str(config.listen.carrier.transport),
        ),
    }
    port_probe = RtpPortProbe(config.media.bind_address)
    core = B2bua(
        b2bua_settings(config, user_agent=user_agent),
        policy_for=policy_resolver(config),
        prompt_ready=prompts.ready if prompts is not None else (lambda _prompt_id, _language: False),
        port_usable=port_probe,
        first_port_pair=first_rtp_pair(config.media.rtp_port_min, config.media.rtp_port_max),
        timers=TimerConfig(timer_b_s=config.limits.no_response_timeout_s),
    )
    return ProxyService(
        core,
        listen=listen,
        media_bind_address=config.media.bind_address,
        constant_ssrc=config.media.constant_ssrc,
        port_probe=port_probe,
        rtp_inactivity_timeout_s=config.limits.rtp_inactivity_timeout_s,
        limits=ParserLimits(max_message_bytes=config.limits.max_message_bytes),
        logger=_LOG,
        prompts=prompts,
        records=RecordSinks(LoggingRecordSink(), storage) if storage is not None else LoggingRecordSink(),
        recordings=storage,
    )


def first_rtp_pair(rtp_min: int, rtp_max: int) -> int:
    """A random pair of the RTP range for a new run's first call: parties of the last run's calls
    may still be sending to the ports it used first (a crash, a restart)."""
    pairs = len(range(rtp_min + rtp_min % 2, rtp_max, 2))
    return secrets.randbelow(pairs) if pairs else 0


def ephemeral_ports(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> range | None:
    """The ports the kernel hands to sockets bound to port 0, None when it does not say."""
    try:
        low, high = (int(value) for value in Path(path).read_text(encoding="ascii").split())
    except (OSError, ValueError):
        return None
    return range(low, high + 1)


def ephemeral_overlap(rtp_min: int, rtp_max: int, ephemeral: range | None) -> str | None:
    """A warning when the RTP ports overlap the kernel's ephemeral ports: any program's socket
    bound to port 0 may take one of them, and the call handed that port fails."""
    if ephemeral is None or rtp_max < ephemeral.start or rtp_min >= ephemeral.stop:
        return None
    return (
        f"media.rtp_port_min..rtp_port_max ({rtp_min}-{rtp_max}) overlaps the ports the kernel hands"
        f" out to other programs ({ephemeral.start}-{ephemeral.stop - 1},"
        " net.ipv4.ip_local_port_range): a call given a port taken that way fails; choose ports"
        " outside it, or reserve them (net.ipv4.ip_local_reserved_ports)"
    )


def set_aside_startup_objects() -> int:
    """Move everything made so far (modules, configuration, the service) out of the collector's
    view; return how many objects that is.

    They live as long as the process, yet a full collection would walk them all while the loop
    waits: as 200 calls ended together, one stalled the relay for 30-75 ms, and for 11-19 ms with
    them set aside. Garbage is collected first, so none of it is kept for good.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


async def run_forever(
    config: Config, *, on_ready: Callable[[ProxyService], Awaitable[None]] | None = None
) -> None:
    """Own the data directory, start the proxy, run until SIGINT or SIGTERM (SIGHUP is logged and
    ignored), then end calls and close. Raises DataDirInUseError, before anything under the data
    directory is read or written, when another callherald runs on it: recovery would end that
    one's live recordings as crashed."""
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, _ignore_hangup)
    layout = DataLayout(config.data_dir)
    layout.make_root()  # before the prompt cache makes it with default modes
    with own_data_dir(layout):
        await _run_with_data_dir(layout, config, on_ready)


def _ignore_hangup() -> None:
    """SIGHUP, sent when the terminal that started callherald closes, or by a log rotation, would
    end the process and drop every call; the configuration is read only at start, so there is
    nothing to reload either."""
    _LOG.warning(
        "SIGHUP ignored: calls go on; the configuration is read only at start (SIGTERM or SIGINT"
        " stops callherald, ending its calls)"
    )


async def _run_with_data_dir(
    layout: DataLayout, config: Config, on_ready: Callable[[ProxyService], Awaitable[None]] | None
) -> None:
    library = PromptLibrary(layout.announcements_cache)
    await asyncio.to_thread(prepare_prompts, config, library)  # ffmpeg on a cache miss: off the loop
    storage = await asyncio.to_thread(open_storage, config)
    service = build_service(config, prompts=LibraryPrompts(library), storage=storage)
    await service.start()
    control = ControlServer(layout.control_socket, service)
    try:
        await control.start()
    except BaseException:  # no control socket, no pausing by API: do not run without it
        await service.stop()
        await asyncio.to_thread(storage.close)
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    _LOG.info("start-up objects set aside from the garbage collector: %d", set_aside_startup_objects())
    for side, listen in ((Side.PBX, config.listen.pbx), (Side.CARRIER, config.listen.carrier)):
        host, port = service.local_address(side)
        _LOG.info("listening for the %s side on %s:%d (%s)", side, host, port, listen.transport)
    _LOG.info(
        "RTP ports %d-%d on %s; announcements ready: %s",
        config.media.rtp_port_min,
        config.media.rtp_port_max,
        config.media.bind_address,
        ", ".join(library.prompt_ids) or "none",
    )
    _LOG.info("control socket at %s (callherald calls list|pause|resume)", control.path)
    overlap = ephemeral_overlap(config.media.rtp_port_min, config.media.rtp_port_max, ephemeral_ports())
    if overlap is not None:
        _LOG.warning(overlap)
    for key, problem in risky_keys(config):
        _LOG.warning("%s: %s", key, problem)
    if on_ready is not None:
        await on_ready(service)
    try:
        await stop.wait()
    finally:
        _LOG.info("stopping: ending calls")
        await control.stop()
        await service.stop()
        await asyncio.to_thread(storage.close)
