using System.Text;
using Microsoft.Data.Sqlite;

namespace Conveyor.Storage.Sqlite;

/// <summary>A read connection with its prepared statements. WAL lets readers run beside the writer; each sees the last commit.</summary>
internal sealed class SqliteReader : IDisposable
{
    private readonly SqliteConnection _connection;
    private readonly Dictionary<string, SqliteCommand> _commands = new(StringComparer.Ordinal);

    private RawStatement? _byIdRaw;

    public SqliteReader(string connectionString)
    {
        _connection = new SqliteConnection(connectionString);
        _connection.Open();
        Schema.Exec(_connection, "PRAGMA query_only = 1");
    }

    /// <summary>The by-id read bound through SQLitePCL: the lease reads each leased row with it, in lease order.</summary>
    public RawStatement ByIdsRaw => _byIdRaw ??= new RawStatement(_connection, $"SELECT {JobsTable.Columns} FROM jobs WHERE id IN (SELECT value FROM json_each(?1))");

    /// <summary>A prepared command, cached by its text (search builds a handful of shapes).</summary>
    public SqliteCommand Command(string sql)
    {
        if (!_commands.TryGetValue(sql, out var command))
        {
            command = _connection.CreateCommand();
            command.CommandText = sql;
            _commands[sql] = command;
        }
        command.Parameters.Clear();
        return command;
    }

    public const string ById = $"SELECT {JobsTable.Columns} FROM jobs WHERE id = $id";
    public const string ByIds = $"SELECT {JobsTable.Columns} FROM jobs WHERE id IN (SELECT value FROM json_each($ids)) ORDER BY id";
    public const string StateById = "SELECT state FROM jobs WHERE id = $id";
    public const string EventsById = "SELECT at, type, state, attempt, message FROM job_events WHERE job_id = $id ORDER BY rowid";

    public static string Search(JobQuery query, bool waitingOnly)
    {
        if (query.Queue is not null && !waitingOnly && query.State is null)
        {
            // One queue, every state: walk the (queue, state, id) index once per stored state and merge, instead of
            // sorting the whole queue (10 s → milliseconds on a 10,000,000-job queue; docs/benchmarks.md).
            var branches = new[] { JobsTable.Waiting, JobsTable.Completed, JobsTable.Dead, JobsTable.Cancelled }
                .Select(state => $"SELECT * FROM ({Select(query, $"{state}")})");
            return $"SELECT * FROM ({string.Join(" UNION ALL ", branches)}) ORDER BY id DESC LIMIT $limit";
        }
        return Select(query, waitingOnly ? $"{JobsTable.Waiting}" : query.State is null ? null : "$state");
    }

    private static string Select(JobQuery query, string? state)
    {
        var sql = new StringBuilder($"SELECT {JobsTable.Columns} FROM jobs WHERE 1 = 1");
        if (query.Queue is not null) sql.Append(" AND queue = $queue");
        if (state is not null) sql.Append(" AND state = ").Append(state);
        if (query.Kind is not null) sql.Append(" AND kind = $kind");
        if (query.Tag is not null) sql.Append(" AND EXISTS (SELECT 1 FROM json_each(jobs.tags) WHERE value = $tag)");
        if (query.Text is not null) sql.Append(" AND instr(payload, $text) > 0");
        sql.Append(" AND id < $before ORDER BY id DESC LIMIT $limit");
        return sql.ToString();
    }

    public void Dispose()
    {
        _byIdRaw?.Dispose();
        foreach (var command in _commands.Values) command.Dispose();
        _connection.Dispose();
    }
}
