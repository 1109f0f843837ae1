using System.Text;
using Microsoft.Data.Sqlite;

namespace Conveyor.Storage.Sqlite;

/// <summary>A read connection with its prepared statements. WAL lets readers run beside the writer; each sees the last commit.</summary>
internal sealed class SqliteReader : IDisposable
{
    private readonly SqliteConnection _connection;
    private readonly Dictionary<string, SqliteCommand> _commands = new(StringComparer.Ordinal);

    public SqliteReader(string connectionString)
    {
        _connection = new SqliteConnection(connectionString);
        _connection.Open();
        Schema.Exec(_connection, "PRAGMA query_only = 1");
    }

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
        var sql = new StringBuilder($"SELECT {JobsTable.Columns} FROM jobs WHERE 1 = 1");
        if (query.Queue is not null) sql.Append(" AND queue = $queue");
        if (waitingOnly) sql.Append($" AND state = {JobsTable.Waiting}");
        else if (query.State is { } state) sql.Append(" AND state = $state");
        if (query.Kind is not null) sql.Append(" AND kind = $kind");
        if (query.Tag is not null) sql.Append(" AND EXISTS (SELECT 1 FROM json_each(jobs.tags) WHERE value = $tag)");
        if (query.Text is not null) sql.Append(" AND instr(payload, $text) > 0");
        sql.Append(" AND id < $before ORDER BY id DESC LIMIT $limit");
        return sql.ToString();
    }

    public void Dispose()
    {
        foreach (var command in _commands.Values) command.Dispose();
        _connection.Dispose();
    }
}
