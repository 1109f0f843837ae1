using System.Buffers;
using System.Text;
using System.Text.Json;
using Microsoft.Data.Sqlite;

namespace Conveyor.Storage.Sqlite;

/// <summary>Turns a <see cref="JobsTable.Columns"/> row into a <see cref="Job"/>, laying the live lease over it.</summary>
internal static class RowMapper
{
    public static Job ToJob(SqliteDataReader r, LiveView? live, long nowMs) => ToJob(new ReaderRow(r), live, nowMs);

    /// <summary>The same mapping over any row source; generic over a struct so each source gets its own compiled copy.</summary>
    public static Job ToJob<TRow>(TRow r, LiveView? live, long nowMs) where TRow : struct, IRow
    {
        var storedState = r.GetInt32(3);
        var runAtMs = r.GetInt64(6);
        var attempt = r.GetInt32(7);
        long? startedMs = r.IsDBNull(17) ? null : r.GetInt64(17);
        JobState state;
        JobLease? lease = null;
        string? progress = null;
        if (storedState != JobsTable.Waiting)
        {
            state = (JobState)storedState;
        }
        else if (live is { } view)
        {
            // The live index is ahead of the row for leases and lease expiry, never behind it.
            attempt = Math.Max(attempt, view.Attempt);
            runAtMs = view.RunAtMs;
            if (view.State == JobState.Running && view.LeaseToken is not null)
            {
                state = JobState.Running;
                lease = new JobLease(view.LeaseToken, view.LeaseOwner, FromMs(view.LeaseExpiresMs));
                startedMs = view.StartedMs;
                progress = view.ProgressJson;
            }
            else
            {
                state = runAtMs > nowMs ? JobState.Scheduled : JobState.Available;
            }
        }
        else
        {
            state = runAtMs > nowMs ? JobState.Scheduled : JobState.Available;
        }

        return new Job
        {
            Id = r.GetInt64(0),
            Queue = r.GetString(1),
            Kind = r.GetString(2),
            State = state,
            PayloadJson = r.IsDBNull(4) ? null : r.GetString(4),
            Priority = r.GetInt32(5),
            RunAt = FromMs(runAtMs),
            Attempt = attempt,
            MaxAttempts = r.GetInt32(8),
            IdempotencyKey = r.IsDBNull(9) ? null : r.GetString(9),
            PartitionKey = r.IsDBNull(10) ? null : r.GetString(10),
            Tags = r.IsDBNull(11) ? [] : ParseTags(r.GetString(11)),
            ResultJson = r.IsDBNull(12) ? null : r.GetString(12),
            ErrorsJson = r.IsDBNull(13) ? null : r.GetString(13),
            TraceParent = r.IsDBNull(14) ? null : r.GetString(14),
            CreatedAt = FromMs(r.GetInt64(15)),
            UpdatedAt = FromMs(r.GetInt64(16)),
            StartedAt = startedMs is { } s ? FromMs(s) : null,
            FinishedAt = r.IsDBNull(18) ? null : FromMs(r.GetInt64(18)),
            DestinationsJson = r.IsDBNull(19) ? null : r.GetString(19),
            Lease = lease,
            ProgressJson = progress,
        };
    }

    public static DateTimeOffset FromMs(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms);

    public static string[] ParseTags(string json)
    {
        var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(json));
        var tags = new List<string>();
        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.String) tags.Add(reader.GetString()!);
        }
        return [.. tags];
    }

    public static string? TagsToJson(IReadOnlyList<string> tags) => tags.Count == 0 ? null : StoredJson.StringArray(tags);

    /// <summary>One entry of the <c>errors</c> array.</summary>
    public static string ErrorEntry(int attempt, long atMs, string message, string? stack) =>
        StoredJson.ErrorEntry(attempt, FromMs(atMs), message, stack);

    public static string IdsToJson(IEnumerable<long> ids)
    {
        var sb = new StringBuilder("[");
        foreach (var id in ids)
        {
            if (sb.Length > 1) sb.Append(',');
            sb.Append(id);
        }
        return sb.Append(']').ToString();
    }
}

/// <summary>The four reads <see cref="RowMapper"/> needs, over Microsoft.Data.Sqlite or a raw SQLitePCL statement.</summary>
internal interface IRow
{
    bool IsDBNull(int column);
    int GetInt32(int column);
    long GetInt64(int column);
    string GetString(int column);
}

internal readonly struct ReaderRow(SqliteDataReader reader) : IRow
{
    public bool IsDBNull(int column) => reader.IsDBNull(column);
    public int GetInt32(int column) => reader.GetInt32(column);
    public long GetInt64(int column) => reader.GetInt64(column);
    public string GetString(int column) => reader.GetString(column);
}

/// <summary>A row of a <see cref="RawStatement"/>, read through its statement pointer.</summary>
internal readonly unsafe struct RawRow(nint statement) : IRow
{
    public bool IsDBNull(int column) => SqliteNative.sqlite3_column_type(statement, column) == SQLitePCL.raw.SQLITE_NULL;
    public int GetInt32(int column) => SqliteNative.sqlite3_column_int(statement, column);
    public long GetInt64(int column) => SqliteNative.sqlite3_column_int64(statement, column);

    public string GetString(int column)
    {
        // Text first, then its length: the length is of the UTF-8 text the first call produced.
        var text = SqliteNative.sqlite3_column_text(statement, column);
        if (text is null) throw new InvalidOperationException($"Column {column} holds no text (NULL, or SQLite ran out of memory).");
        return System.Text.Encoding.UTF8.GetString(text, SqliteNative.sqlite3_column_bytes(statement, column));
    }
}
