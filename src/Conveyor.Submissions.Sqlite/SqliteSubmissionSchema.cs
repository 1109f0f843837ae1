using Microsoft.Data.Sqlite;

namespace Conveyor.Submissions.Sqlite;

/// <summary>
/// Versioned migrations of <c>submissions.db</c>, applied in order at open, one transaction each. The file is separate from
/// the job store's <c>conveyor.db</c> so the two writers never wait on one SQLite write lock, and so the job store's
/// migrations stay its own.
/// </summary>
internal static class SqliteSubmissionSchema
{
    // Append only: a released migration never changes.
    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE submissions (
            id                INTEGER PRIMARY KEY AUTOINCREMENT,
            queue             TEXT    NOT NULL,
            state             INTEGER NOT NULL,  -- SubmissionState
            chunks_total      INTEGER NOT NULL,
            chunks_done       INTEGER NOT NULL DEFAULT 0,
            chunks_failed     INTEGER NOT NULL DEFAULT 0,
            chunks_ready      INTEGER NOT NULL DEFAULT 0,
            chunks_reserved   INTEGER NOT NULL DEFAULT 0,
            operations_done   INTEGER NOT NULL DEFAULT 0,
            chunk_size        INTEGER NOT NULL,
            max_chunk_retries INTEGER NOT NULL,
            metadata          TEXT,
            labels            TEXT    NOT NULL,  -- JSON object of integers; submission_labels indexes it
            prefix            TEXT,
            callback          TEXT,              -- JSON {queue, kind, payload}
            callback_due      INTEGER NOT NULL DEFAULT 0,
            failed_chunk      INTEGER,
            failed_error      TEXT,
            created_at        INTEGER NOT NULL,  -- unix ms
            updated_at        INTEGER NOT NULL,
            finished_at       INTEGER
        );
        -- Reservation candidates: unfinished submissions of a queue, oldest first.
        CREATE INDEX submissions_active ON submissions (queue, id) WHERE state = 0;
        CREATE INDEX submissions_finished ON submissions (finished_at) WHERE state <> 0;
        CREATE INDEX submissions_prefix ON submissions (prefix, id) WHERE prefix IS NOT NULL;
        CREATE INDEX submissions_callbacks ON submissions (id) WHERE callback_due = 1;

        CREATE TABLE submission_labels (
            key           TEXT    NOT NULL,
            value         INTEGER NOT NULL,
            submission_id INTEGER NOT NULL,
            PRIMARY KEY (key, value, submission_id)
        ) WITHOUT ROWID;
        CREATE INDEX submission_labels_submission ON submission_labels (submission_id, key);

        -- A rowid table: chunk bodies are kilobytes, too large for WITHOUT ROWID b-tree rows.
        CREATE TABLE chunks (
            submission_id    INTEGER NOT NULL,
            idx              INTEGER NOT NULL,
            state            INTEGER NOT NULL,  -- ChunkState
            attempt          INTEGER NOT NULL DEFAULT 0,
            body_kind        INTEGER NOT NULL,  -- BodyKind
            body             BLOB,
            result_kind      INTEGER NOT NULL DEFAULT 0,
            result           BLOB,
            error            TEXT,
            operations       INTEGER,
            lease_token      TEXT,
            lease_owner      TEXT,
            lease_expires_at INTEGER
        );
        CREATE UNIQUE INDEX chunks_key ON chunks (submission_id, idx);
        CREATE INDEX chunks_ready ON chunks (submission_id, idx) WHERE state = 0;
        CREATE INDEX chunks_leases ON chunks (lease_expires_at) WHERE state = 1;
        CREATE INDEX chunks_owner ON chunks (lease_owner) WHERE state = 1 AND lease_owner IS NOT NULL;
        """,
    ];

    public static void Migrate(SqliteConnection connection)
    {
        Exec(connection, "CREATE TABLE IF NOT EXISTS submissions_schema_version (version INTEGER NOT NULL)");
        using var read = connection.CreateCommand();
        read.CommandText = "SELECT coalesce(max(version), 0) FROM submissions_schema_version";
        var current = Convert.ToInt32(read.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        if (current > Migrations.Length)
        {
            throw new InvalidOperationException(
                $"submissions.db is at schema version {current}, newer than this Conveyor knows ({Migrations.Length}). Run a newer Conveyor.");
        }
        for (var version = current + 1; version <= Migrations.Length; version++)
        {
            Exec(connection, "BEGIN IMMEDIATE");
            try
            {
                Exec(connection, Migrations[version - 1]);
                Exec(connection, $"INSERT INTO submissions_schema_version (version) VALUES ({version})");
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
