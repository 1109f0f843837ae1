using Microsoft.Data.Sqlite;

namespace Conveyor.Storage.Sqlite;

/// <summary>Versioned migrations, applied in order at start inside one transaction each.</summary>
internal static class Schema
{
    // Append only: a released migration never changes.
    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE queues (
            name       TEXT PRIMARY KEY,
            paused     INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL
        ) WITHOUT ROWID;

        CREATE TABLE jobs (
            id              INTEGER PRIMARY KEY AUTOINCREMENT,
            queue           TEXT    NOT NULL,
            kind            TEXT    NOT NULL,
            state           INTEGER NOT NULL,  -- JobsTable.Waiting | Completed | Dead | Cancelled
            priority        INTEGER NOT NULL,
            run_at          INTEGER NOT NULL,  -- unix ms
            attempt         INTEGER NOT NULL,
            max_attempts    INTEGER NOT NULL,
            payload         TEXT,
            result          TEXT,
            errors          TEXT,              -- JSON array
            idempotency_key TEXT,
            partition_key   TEXT,
            tags            TEXT,              -- JSON array
            trace_parent    TEXT,
            created_at      INTEGER NOT NULL,
            updated_at      INTEGER NOT NULL,
            started_at      INTEGER,
            finished_at     INTEGER
        );
        CREATE UNIQUE INDEX jobs_idempotency ON jobs (queue, idempotency_key) WHERE idempotency_key IS NOT NULL;
        CREATE INDEX jobs_queue_state ON jobs (queue, state, id);

        CREATE TABLE job_events (
            job_id  INTEGER NOT NULL,
            at      INTEGER NOT NULL,
            type    TEXT    NOT NULL,
            state   INTEGER NOT NULL,  -- JobState after the event
            attempt INTEGER NOT NULL,
            message TEXT
        );
        CREATE INDEX job_events_job ON job_events (job_id);
        """,
        """
        ALTER TABLE queues ADD COLUMN max_running INTEGER;
        ALTER TABLE queues ADD COLUMN rate_per_second REAL;
        ALTER TABLE queues ADD COLUMN retention_ms INTEGER;
        -- Retention walks finished jobs by age without touching waiting ones.
        CREATE INDEX jobs_finished ON jobs (queue, finished_at) WHERE state <> 0;
        CREATE TABLE schedules (
            name           TEXT PRIMARY KEY,
            cron           TEXT    NOT NULL,
            time_zone      TEXT    NOT NULL,
            queue          TEXT    NOT NULL,
            kind           TEXT    NOT NULL,
            payload        TEXT,
            priority       INTEGER NOT NULL,
            max_attempts   INTEGER NOT NULL,
            tags           TEXT,
            paused         INTEGER NOT NULL,
            created_at     INTEGER NOT NULL,
            updated_at     INTEGER NOT NULL,
            last_fired_for INTEGER
        ) WITHOUT ROWID;
        """,
        """
        -- Push delivery: a job's destinations, a queue's push mode and default destinations (JSON arrays).
        ALTER TABLE jobs ADD COLUMN destinations TEXT;
        ALTER TABLE queues ADD COLUMN push INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE queues ADD COLUMN destinations TEXT;
        """,
        """
        -- AUTOINCREMENT rewrote sqlite_sequence's page in every insert commit: a third of what a single-job enqueue wrote to
        -- the WAL. Ids stay never-reused through id_reservations instead: the writer reserves them in blocks, in the same
        -- transaction as the insert that crosses a block's end, and starts after the reservation (see SqliteWriter).
        -- SQLite cannot drop AUTOINCREMENT in place, so the table is rebuilt once.
        CREATE TABLE id_reservations (
            name             TEXT PRIMARY KEY,
            reserved_through INTEGER NOT NULL
        ) WITHOUT ROWID;
        INSERT INTO id_reservations (name, reserved_through)
        SELECT 'jobs', max(coalesce((SELECT max(id) FROM jobs), 0), coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'jobs'), 0));

        CREATE TABLE jobs_rebuilt (
            id              INTEGER PRIMARY KEY,
            queue           TEXT    NOT NULL,
            kind            TEXT    NOT NULL,
            state           INTEGER NOT NULL,  -- JobsTable.Waiting | Completed | Dead | Cancelled
            priority        INTEGER NOT NULL,
            run_at          INTEGER NOT NULL,  -- unix ms
            attempt         INTEGER NOT NULL,
            max_attempts    INTEGER NOT NULL,
            payload         TEXT,
            result          TEXT,
            errors          TEXT,              -- JSON array
            idempotency_key TEXT,
            partition_key   TEXT,
            tags            TEXT,              -- JSON array
            trace_parent    TEXT,
            created_at      INTEGER NOT NULL,
            updated_at      INTEGER NOT NULL,
            started_at      INTEGER,
            finished_at     INTEGER,
            destinations    TEXT
        );
        INSERT INTO jobs_rebuilt (id, queue, kind, state, priority, run_at, attempt, max_attempts, payload, result, errors,
                                  idempotency_key, partition_key, tags, trace_parent, created_at, updated_at, started_at,
                                  finished_at, destinations)
        SELECT id, queue, kind, state, priority, run_at, attempt, max_attempts, payload, result, errors,
               idempotency_key, partition_key, tags, trace_parent, created_at, updated_at, started_at, finished_at, destinations
        FROM jobs;
        DROP TABLE jobs;
        ALTER TABLE jobs_rebuilt RENAME TO jobs;
        CREATE UNIQUE INDEX jobs_idempotency ON jobs (queue, idempotency_key) WHERE idempotency_key IS NOT NULL;
        CREATE INDEX jobs_queue_state ON jobs (queue, state, id);
        CREATE INDEX jobs_finished ON jobs (queue, finished_at) WHERE state <> 0;
        """,
    ];

    public static int LatestVersion => Migrations.Length;

    /// <summary>
    /// Migrates to the latest version, or only up to <paramref name="targetVersion"/> (tests build a database as an older
    /// release left it); <paramref name="starting"/> is told each version before it runs on an existing database.
    /// </summary>
    public static void Migrate(SqliteConnection connection, Action<int>? starting = null, int? targetVersion = null)
    {
        Exec(connection, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
        using var read = connection.CreateCommand();
        read.CommandText = "SELECT coalesce(max(version), 0) FROM schema_version";
        var current = Convert.ToInt32(read.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        if (current > Migrations.Length)
        {
            throw new InvalidOperationException(
                $"The database is at schema version {current}, newer than this Conveyor knows ({Migrations.Length}). Run a newer Conveyor.");
        }
        for (var version = current + 1; version <= (targetVersion ?? Migrations.Length); version++)
        {
            // A new database runs every migration on empty tables: only an existing one's upgrade is worth telling.
            if (current > 0) starting?.Invoke(version);
            Exec(connection, "BEGIN IMMEDIATE");
            try
            {
                Exec(connection, Migrations[version - 1]);
                Exec(connection, $"INSERT INTO schema_version (version) VALUES ({version})");
                Exec(connection, "COMMIT");
            }
            catch
            {
                Exec(connection, "ROLLBACK");
                throw;
            }
        }
    }

    internal static void Exec(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }
}

/// <summary>The stored <c>jobs.state</c> values. Running is never stored: leases live in memory (see SqliteJobStore).</summary>
internal static class JobsTable
{
    public const int Waiting = 0;
    public const int Completed = (int)JobState.Completed;
    public const int Dead = (int)JobState.Dead;
    public const int Cancelled = (int)JobState.Cancelled;

    public const string Columns =
        "id, queue, kind, state, payload, priority, run_at, attempt, max_attempts, idempotency_key, partition_key, " +
        "tags, result, errors, trace_parent, created_at, updated_at, started_at, finished_at, destinations";
}
