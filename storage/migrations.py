"""The evidence database: connection settings, the tracked schema migrations, and time encoding.

The database is one SQLite file in WAL mode, written by one connection (the writer thread of
``storage.records.EvidenceStore``) and read by any number of read-only connections. Every
connection runs with ``foreign_keys=ON``, ``synchronous=NORMAL`` and ``secure_delete=ON`` (deleted
rows are overwritten with zeros in the file, which crypto-shredding in ``key_store`` relies on).

The schema is applied with sqlite-utils ``Migrations`` (set ``MIGRATION_SET``): each migration runs
once, inside a transaction, and is recorded in ``_sqlite_migrations``; applying again is a no-op.

Times are stored as ISO-8601 text in UTC with microseconds and ``+00:00`` (fixed width, so text
order is time order); dates (``delete_after``) as ``YYYY-MM-DD``. ``to_db_time`` refuses naive
datetimes; ``from_db_time`` returns ``tzinfo=UTC``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import stat
import uuid
from pathlib import Path

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

__all__ = [
    "AUDIT_GENESIS_HASH",
    "BUSY_TIMEOUT_MS",
    "MIGRATIONS",
    "MIGRATION_SET",
    "apply_migrations",
    "configure_connection",
    "connect_immutable",
    "from_db_date",
    "from_db_time",
    "keep_to_owner",
    "open_reader",
    "open_writer",
    "to_db_date",
    "to_db_time",
    "unwritable_reason",
]

MIGRATION_SET = "callherald-evidence"
BUSY_TIMEOUT_MS = 5000
AUDIT_GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first audit row."""

MIGRATIONS = Migrations(MIGRATION_SET)


# --------------------------------------------------------------------------------------------------
# Time encoding


def to_db_time(value: dt.datetime) -> str:
    """Encode an aware datetime as ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``; ValueError if naive."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} refused: pass a timezone-aware time")
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def from_db_time(text: str) -> dt.datetime:
    """Decode a stored time into an aware datetime with ``tzinfo=UTC``; ValueError if it has no offset."""
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"stored time {text!r} has no UTC offset")
    return value.astimezone(dt.UTC)


def to_db_date(value: dt.date) -> str:
    """Encode a calendar date as ``YYYY-MM-DD``."""
    return value.isoformat()


def from_db_date(text: str) -> dt.date:
    """Decode a stored ``YYYY-MM-DD`` date."""
    return dt.date.fromisoformat(text)


# --------------------------------------------------------------------------------------------------
# Connections


def configure_connection(conn: sqlite3.Connection) -> None:
    """Per-connection settings: foreign keys, NORMAL sync, secure delete and a busy timeout."""
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA secure_delete=ON")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def keep_to_owner(path: str | os.PathLike[str]) -> None:
    """Create the database file mode 0600 if it is missing, and take group and other access off it
    and its WAL and WAL index (SQLite gives those the database file's mode): the record holds
    phone numbers, call times and consent decisions (personal data, GDPR Art. 32). A file of
    another owner keeps its mode."""
    database = os.fspath(path)
    os.close(os.open(database, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    for name in (database, database + "-wal", database + "-shm"):
        try:
            mode = stat.S_IMODE(os.stat(name).st_mode)
            if mode & 0o077:
                os.chmod(name, mode & 0o700)
        except (FileNotFoundError, PermissionError):
            continue


def open_writer(path: str | os.PathLike[str]) -> Database:
    """Open (creating if needed, mode 0600) the database for writing: WAL mode, settings,
    migrations applied.

    The returned ``Database`` belongs to the calling thread; use one writer per file.
    """
    keep_to_owner(path)
    conn = sqlite3.connect(os.fspath(path))
    configure_connection(conn)
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        conn.close()
        raise sqlite3.OperationalError(f"{os.fspath(path)}: cannot switch to WAL mode (got {mode!r})")
    db = Database(conn, execute_plugins=False)
    apply_migrations(db)
    return db


def open_reader(path: str | os.PathLike[str]) -> Database:
    """Open an existing database read-only (``mode=ro``); writes through it fail.

    A WAL database needs its ``-shm`` and ``-wal`` files, made if missing, even to be read. In a
    directory this process cannot write (a read-only copy or mount) where they are missing, it is
    opened ``immutable=1`` instead: no ``-wal`` file (or an empty one) means every committed row is
    in the database file, and nothing writes it there (a copy, a snapshot, a volume remounted
    read-only; not a read-only view of a directory that a running callherald writes through another
    path, which has its ``-wal`` and ``-shm`` and is read with them). A non-empty ``-wal`` without
    its ``-shm`` holds rows that cannot be read there: ``sqlite3.OperationalError`` says so.
    """
    database = Path(path).resolve()
    try:
        return _connect_reader(database.as_uri() + "?mode=ro")
    except sqlite3.OperationalError as error:
        unwritable = unwritable_reason(database.parent)
        if unwritable is None:
            raise
        wal = database.with_name(database.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise sqlite3.OperationalError(
                f"{error}: its write-ahead log {wal.name} holds rows that SQLite reads only with write"
                f" access to {database.parent} (copy the data directory somewhere writable and read the copy)"
            ) from error
        return connect_immutable(database)


def connect_immutable(path: str | os.PathLike[str]) -> Database:
    """Open an existing database read-only without its ``-shm`` and ``-wal`` files
    (``immutable=1``): only for a file nothing writes meanwhile, and it sees no row a ``-wal`` holds."""
    return _connect_reader(Path(path).resolve().as_uri() + "?mode=ro&immutable=1")


def _connect_reader(uri: str) -> Database:
    conn = sqlite3.connect(uri, uri=True)
    try:
        configure_connection(conn)
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()  # opens the file now
    except BaseException:
        conn.close()
        raise
    return Database(conn, execute_plugins=False)


def unwritable_reason(directory: Path) -> str | None:
    """Why files cannot be made in ``directory`` (as this user), None when they can."""
    try:
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            return "is on a read-only file system"
    except OSError:
        return None
    if not os.access(directory, os.W_OK):
        return "is not writable by this user"
    return None


def apply_migrations(db: Database) -> None:
    """Apply the pending migrations of ``MIGRATION_SET`` (none, when the schema is current)."""
    MIGRATIONS.apply(db)


# --------------------------------------------------------------------------------------------------
# Migrations. Each statement runs on its own (executescript would commit the migration's transaction).

_SCHEMA_V1 = (
    """
    CREATE TABLE calls (
        id TEXT PRIMARY KEY,
        direction TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
        calling TEXT NOT NULL,
        called TEXT NOT NULL,
        local_line TEXT NOT NULL,
        agent_id TEXT,
        setup_at TEXT NOT NULL,
        ended_at TEXT,
        end_reason TEXT
    ) STRICT
    """,
    "CREATE INDEX calls_calling ON calls (calling)",
    "CREATE INDEX calls_called ON calls (called)",
    "CREATE INDEX calls_setup_at ON calls (setup_at)",
    """
    CREATE TABLE legs (
        id TEXT PRIMARY KEY,
        call_id TEXT NOT NULL REFERENCES calls (id),
        role TEXT NOT NULL CHECK (role IN ('outside', 'pbx')),
        sip_call_id TEXT NOT NULL,
        remote_uri TEXT NOT NULL
    ) STRICT
    """,
    "CREATE INDEX legs_call_id ON legs (call_id)",
    """
    CREATE TABLE announcements_played (
        leg_id TEXT NOT NULL REFERENCES legs (id),
        prompt_id TEXT NOT NULL,
        version TEXT NOT NULL,
        language TEXT NOT NULL,
        audio_sha256 TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        complete INTEGER NOT NULL CHECK (complete IN (0, 1))
    ) STRICT
    """,
    "CREATE INDEX announcements_played_leg_id ON announcements_played (leg_id)",
    """
    CREATE TABLE dtmf_events (
        leg_id TEXT NOT NULL REFERENCES legs (id),
        digit TEXT NOT NULL,
        mechanism TEXT NOT NULL,
        at TEXT NOT NULL,
        counted INTEGER NOT NULL CHECK (counted IN (0, 1))
    ) STRICT
    """,
    "CREATE INDEX dtmf_events_leg_id ON dtmf_events (leg_id)",
    """
    CREATE TABLE purposes (
        id TEXT PRIMARY KEY,
        lawful_basis TEXT NOT NULL
            CHECK (lawful_basis IN ('consent', 'contract', 'legal_obligation', 'legitimate_interest')),
        reference TEXT NOT NULL,
        retention_days INTEGER NOT NULL CHECK (retention_days >= 0)
    ) STRICT
    """,
    """
    CREATE TABLE consent_decisions (
        call_id TEXT NOT NULL REFERENCES calls (id),
        question_id TEXT NOT NULL,
        question_version TEXT NOT NULL,
        purpose_id TEXT NOT NULL,
        decision TEXT NOT NULL CHECK (decision IN ('granted', 'refused', 'no_answer')),
        mechanism TEXT NOT NULL,
        at TEXT NOT NULL
    ) STRICT
    """,
    "CREATE INDEX consent_decisions_call_id ON consent_decisions (call_id)",
    """
    CREATE TABLE call_purposes (
        call_id TEXT NOT NULL REFERENCES calls (id),
        purpose_id TEXT NOT NULL REFERENCES purposes (id),
        delete_after TEXT NOT NULL,
        PRIMARY KEY (call_id, purpose_id)
    ) STRICT
    """,
    """
    CREATE TABLE recordings (
        id TEXT PRIMARY KEY,
        call_id TEXT NOT NULL REFERENCES calls (id),
        file_name TEXT NOT NULL,
        key_id TEXT NOT NULL,
        audio_sha256 TEXT,
        size_bytes INTEGER,
        duration_ms INTEGER,
        first_frame_at TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('recording', 'complete', 'truncated')),
        started_at TEXT NOT NULL,
        finished_at TEXT
    ) STRICT
    """,
    "CREATE INDEX recordings_call_id ON recordings (call_id)",
    """
    CREATE TABLE pauses (
        recording_id TEXT NOT NULL REFERENCES recordings (id),
        reason TEXT NOT NULL CHECK (reason IN ('hold', 'pci', 'api')),
        started_at TEXT NOT NULL,
        ended_at TEXT
    ) STRICT
    """,
    "CREATE INDEX pauses_recording_id ON pauses (recording_id)",
    """
    CREATE TABLE later_events (
        call_id TEXT NOT NULL REFERENCES calls (id),
        kind TEXT NOT NULL
            CHECK (kind IN ('withdrawal', 'objection', 'legal_hold', 'access', 'export', 'erasure')),
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        detail TEXT NOT NULL
    ) STRICT
    """,
    "CREATE INDEX later_events_call_id ON later_events (call_id)",
    # No foreign key to recordings: the segment writer stores the wrapped keys before the
    # recording row exists, and erasure deletes these rows alone (crypto-shredding).
    """
    CREATE TABLE key_store (
        recording_id TEXT NOT NULL,
        recipient_key_id TEXT NOT NULL,
        wrapped_key BLOB NOT NULL,
        PRIMARY KEY (recording_id, recipient_key_id)
    ) STRICT
    """,
    """
    CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    ) STRICT
    """,
)

_AUDIT_TRIGGERS = (
    """
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN
        SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE is forbidden');
    END
    """,
    """
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN
        SELECT RAISE(ABORT, 'audit_log is append-only: DELETE is forbidden');
    END
    """,
)


@MIGRATIONS(name="0001_evidence_schema")
def _evidence_schema(db: Database) -> None:
    for statement in _SCHEMA_V1:
        db.execute(statement)


@MIGRATIONS(name="0002_audit_log_append_only")
def _audit_log_append_only(db: Database) -> None:
    for statement in _AUDIT_TRIGGERS:
        db.execute(statement)


@MIGRATIONS(name="0003_announcement_failure")
def _announcement_failure(db: Database) -> None:
    # Why a prompt stopped when it failed mid-play (NULL: it did not fail).
    db.execute("ALTER TABLE announcements_played ADD COLUMN failure TEXT")


@MIGRATIONS(name="0004_pauses_end_with_their_recording")
def _pauses_end_with_their_recording(db: Database) -> None:
    # A pause row is now written when the pause starts: no end means it still lasts. Older rows
    # of a recording that ended during the pause had no end either; they end with the recording.
    db.execute(
        "UPDATE pauses SET ended_at = ("
        "SELECT max(pauses.started_at, r.finished_at) FROM recordings r WHERE r.id = pauses.recording_id"
        ") WHERE ended_at IS NULL AND EXISTS ("
        "SELECT 1 FROM recordings r WHERE r.id = pauses.recording_id AND r.finished_at IS NOT NULL)"
    )


@MIGRATIONS(name="0005_recording_end_reason")
def _recording_end_reason(db: Database) -> None:
    # Why a recording ended (the call ended, ``disk full``, ``interrupted``); NULL on older rows.
    db.execute("ALTER TABLE recordings ADD COLUMN end_reason TEXT")


@MIGRATIONS(name="0006_not_recorded")
def _not_recorded(db: Database) -> None:
    # A call that was to be recorded but could not be (a full disk, recording switched off), and why.
    db.execute(
        """
        CREATE TABLE not_recorded (
            call_id TEXT NOT NULL REFERENCES calls (id),
            at TEXT NOT NULL,
            reason TEXT NOT NULL
        ) STRICT
        """
    )
    db.execute("CREATE INDEX not_recorded_call_id ON not_recorded (call_id)")


@MIGRATIONS(name="0007_purpose_versions")
def _purpose_versions(db: Database) -> None:
    # A purpose's definition (lawful basis, reference, retention) may change; each definition is a
    # new version of the purpose, and a call's purposes name the version they were recorded under.
    # Rebuilt the SQLite way: the old tables are renamed aside (renaming the parent repoints the old
    # child's key with it), the new ones made and filled, the old ones dropped. Every definition
    # stored so far becomes version 1.
    for statement in (
        "ALTER TABLE call_purposes RENAME TO call_purposes_0001",
        "ALTER TABLE purposes RENAME TO purposes_0001",
        """
        CREATE TABLE purposes (
            id TEXT NOT NULL,
            version INTEGER NOT NULL CHECK (version >= 1),
            lawful_basis TEXT NOT NULL
                CHECK (lawful_basis IN ('consent', 'contract', 'legal_obligation', 'legitimate_interest')),
            reference TEXT NOT NULL,
            retention_days INTEGER NOT NULL CHECK (retention_days >= 0),
            PRIMARY KEY (id, version)
        ) STRICT
        """,
        "INSERT INTO purposes SELECT id, 1, lawful_basis, reference, retention_days FROM purposes_0001",
        """
        CREATE TABLE call_purposes (
            call_id TEXT NOT NULL REFERENCES calls (id),
            purpose_id TEXT NOT NULL,
            purpose_version INTEGER NOT NULL,
            delete_after TEXT NOT NULL,
            PRIMARY KEY (call_id, purpose_id),
            FOREIGN KEY (purpose_id, purpose_version) REFERENCES purposes (id, version)
        ) STRICT
        """,
        "INSERT INTO call_purposes SELECT call_id, purpose_id, 1, delete_after FROM call_purposes_0001",
        "DROP TABLE call_purposes_0001",
        "DROP TABLE purposes_0001",
    ):
        db.execute(statement)


@MIGRATIONS(name="0008_recording_erasure")
def _recording_erasure(db: Database) -> None:
    # When a recording was erased (its wrapped keys destroyed, its file removed), by whom and why;
    # NULL while it is kept.
    for column in ("erased_at", "erased_by", "erasure_reason"):
        db.execute(f"ALTER TABLE recordings ADD COLUMN {column} TEXT")


@MIGRATIONS(name="0009_recording_purposes")
def _recording_purposes(db: Database) -> None:
    # The purposes each recording serves, as it starts: a call's recordings may serve different
    # purposes (after consent is withdrawn mid-call the next recording serves only the others).
    # Each names a purpose stored for its call, in the version the call was recorded under; the
    # unique indexes let the foreign keys say so. Recordings stored before have no rows here.
    for statement in (
        "CREATE UNIQUE INDEX recordings_id_call_id ON recordings (id, call_id)",
        "CREATE UNIQUE INDEX call_purposes_version ON call_purposes (call_id, purpose_id, purpose_version)",
        """
        CREATE TABLE recording_purposes (
            recording_id TEXT NOT NULL,
            call_id TEXT NOT NULL,
            purpose_id TEXT NOT NULL,
            purpose_version INTEGER NOT NULL,
            PRIMARY KEY (recording_id, purpose_id),
            FOREIGN KEY (recording_id, call_id) REFERENCES recordings (id, call_id),
            FOREIGN KEY (call_id, purpose_id, purpose_version)
                REFERENCES call_purposes (call_id, purpose_id, purpose_version)
        ) STRICT
        """,
    ):
        db.execute(statement)


@MIGRATIONS(name="0010_agent_notices")
def _agent_notices(db: Database) -> None:
    # What the agent (a data subject too, GDPR Art. 13) heard to know the call is recorded: the beep
    # on its leg as recording starts, and on outbound calls its copy of the notice. Kept apart from
    # announcements_played, whose ends a recording's first frame must follow: the beep plays as the
    # recording starts. Written whole once it has played (``complete`` 0: cut short or failed).
    db.execute(
        """
        CREATE TABLE agent_notices (
            leg_id TEXT NOT NULL REFERENCES legs (id),
            kind TEXT NOT NULL CHECK (kind IN ('tone', 'prompt')),
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            language TEXT NOT NULL,
            audio_sha256 TEXT NOT NULL,
            started_at TEXT NOT NULL,
            ended_at TEXT NOT NULL,
            complete INTEGER NOT NULL CHECK (complete IN (0, 1)),
            failure TEXT
        ) STRICT
        """
    )
    db.execute("CREATE INDEX agent_notices_leg_id ON agent_notices (leg_id)")


@MIGRATIONS(name="0011_legal_holds")
def _legal_holds(db: Database) -> None:
    # A legal hold keeps a recording from erasure while litigation needs it (GDPR Art. 17(3)(e)):
    # one row per hold, released_* NULL while it is in force; at most one hold in force per
    # recording. later_events is rebuilt (the SQLite way, as in 0007) to admit the release kind.
    for statement in (
        """
        CREATE TABLE legal_holds (
            recording_id TEXT NOT NULL REFERENCES recordings (id),
            held_at TEXT NOT NULL,
            held_by TEXT NOT NULL,
            reason TEXT NOT NULL,
            released_at TEXT,
            released_by TEXT,
            release_reason TEXT,
            CHECK ((released_at IS NULL) = (released_by IS NULL)
                AND (released_at IS NULL) = (release_reason IS NULL))
        ) STRICT
        """,
        "CREATE UNIQUE INDEX legal_holds_in_force ON legal_holds (recording_id) WHERE released_at IS NULL",
        "ALTER TABLE later_events RENAME TO later_events_0001",
        """
        CREATE TABLE later_events (
            call_id TEXT NOT NULL REFERENCES calls (id),
            kind TEXT NOT NULL CHECK (kind IN ('withdrawal', 'objection', 'legal_hold', 'legal_hold_release',
                'access', 'export', 'erasure')),
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            detail TEXT NOT NULL
        ) STRICT
        """,
        "INSERT INTO later_events SELECT call_id, kind, at, actor, detail FROM later_events_0001 "
        "ORDER BY rowid",
        "DROP TABLE later_events_0001",
        "CREATE INDEX later_events_call_id ON later_events (call_id)",
    ):
        db.execute(statement)


@MIGRATIONS(name="0012_agent_notices_written_as_they_start")
def _agent_notices_written_as_they_start(db: Database) -> None:
    # An agent notice is now written as it starts sounding (``ended_at`` NULL) and completed when
    # it stops, so that a crash while it plays keeps that the agent was being told; the next
    # start ends such a row as interrupted. SQLite cannot drop a NOT NULL: the table is rebuilt.
    for statement in (
        "ALTER TABLE agent_notices RENAME TO agent_notices_0010",
        "DROP INDEX agent_notices_leg_id",
        """
        CREATE TABLE agent_notices (
            leg_id TEXT NOT NULL REFERENCES legs (id),
            kind TEXT NOT NULL CHECK (kind IN ('tone', 'prompt')),
            name TEXT NOT NULL,
            version TEXT NOT NULL,
            language TEXT NOT NULL,
            audio_sha256 TEXT NOT NULL,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            complete INTEGER NOT NULL CHECK (complete IN (0, 1)),
            failure TEXT,
            CHECK (ended_at IS NOT NULL OR (complete = 0 AND failure IS NULL))
        ) STRICT
        """,
        "INSERT INTO agent_notices SELECT * FROM agent_notices_0010 ORDER BY rowid",
        "DROP TABLE agent_notices_0010",
        "CREATE INDEX agent_notices_leg_id ON agent_notices (leg_id)",
    ):
        db.execute(statement)


@MIGRATIONS(name="0013_later_events_audited")
def _later_events_audited(db: Database) -> None:
    # Each later event now gets an audit row as it is stored (``later_event``), so that a withdrawal
    # deleted or changed after the recording's manifest was fixed is found. Those stored before get
    # theirs now, marked as written on upgrade: from here on they are as safe from an unseen edit as
    # new ones (what was done to them before cannot be told either way). A legal hold, its release
    # and an erasure have been recorded by their own audit rows from the start.
    from storage.audit import AuditLog  # noqa: PLC0415 - storage.audit imports this module

    upgraded_at = dt.datetime.now(dt.UTC)
    audit = AuditLog(db)
    for call_id, kind, at, actor, detail in db.execute(
        "SELECT call_id, kind, at, actor, detail FROM later_events "
        "WHERE kind NOT IN ('legal_hold', 'legal_hold_release', 'erasure') ORDER BY rowid"
    ).fetchall():
        audit.append(
            at=upgraded_at,
            actor="callherald",
            action="later_event",
            subject=call_id,
            detail={
                "call_id": call_id,
                "kind": kind,
                "at": at,
                "actor": actor,
                "detail": json.loads(detail),
                "audited_on_upgrade": True,
            },
        )


@MIGRATIONS(name="0014_database_id")
def _database_id(db: Database) -> None:
    # A random id of this evidence database, named in (and the first line of) each held evidence
    # file it keeps: two callheralds sharing a held_evidence_dir write in only their own files.
    db.execute("CREATE TABLE database_id (id TEXT NOT NULL)")
    db.execute("INSERT INTO database_id VALUES (?)", [uuid.uuid4().hex])


@MIGRATIONS(name="0015_recording_file_sha256")
def _recording_file_sha256(db: Database) -> None:
    # The SHA-256 of a recording's file as recovery found it after a crash (the proxy cannot
    # decrypt, so no audio SHA-256 can be stored for it): it pins the ciphertext, which anyone can
    # check without a key. '' for every other recording, and for those recovered before.
    db.execute("ALTER TABLE recordings ADD COLUMN file_sha256 TEXT NOT NULL DEFAULT ''")


@MIGRATIONS(name="0016_recording_media_quality")
def _recording_media_quality(db: Database) -> None:
    # What the network cost a recording's audio, per channel, as JSON (``MediaQuality``): how much
    # of the file is silence put in for lost packets, packets too late to place, timestamp jumps
    # and drift corrections. '' when not measured: recordings closed by the recovery after a crash,
    # and those stored before.
    db.execute("ALTER TABLE recordings ADD COLUMN media_quality TEXT NOT NULL DEFAULT ''")


@MIGRATIONS(name="0017_manifest_signatures")
def _manifest_signatures(db: Database) -> None:
    # The signature of each manifest's audit row (``storage.signing``), append-only as the log is.
    db.execute(
        """
        CREATE TABLE manifest_signatures (
            seq INTEGER PRIMARY KEY,
            key_id TEXT NOT NULL,
            signature TEXT NOT NULL
        ) STRICT
        """
    )
    # A recording's manifests, found by subject (``recordings show`` names the latest).
    db.execute("CREATE INDEX audit_log_subject_action ON audit_log (subject, action)")
    for verb in ("UPDATE", "DELETE"):
        db.execute(
            f"""
            CREATE TRIGGER manifest_signatures_no_{verb.lower()} BEFORE {verb} ON manifest_signatures
            BEGIN
                SELECT RAISE(ABORT, 'manifest_signatures is append-only: {verb} is forbidden');
            END
            """
        )


@MIGRATIONS(name="0018_recording_storage")
def _recording_storage(db: Database) -> None:
    # Where a recording's file is kept and whether that storage is write-once (WORM), as
    # ``recording.storage_region`` and ``recording.worm`` said when it started (GDPR Art. 5(1)(f),
    # 32(1); MiFID II Del. Reg. 2017/565 Art. 72(1)(b)). '' and NULL: not known, as for the
    # recordings stored before.
    db.execute("ALTER TABLE recordings ADD COLUMN storage_region TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE recordings ADD COLUMN worm INTEGER CHECK (worm IN (0, 1))")
