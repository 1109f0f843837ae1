using Microsoft.Data.Sqlite;

namespace Conveyor.Bench.Floor;

/// <summary>SQLite in WAL mode with synchronous=FULL (fsync at every commit), as the store runs it.</summary>
internal static class SqliteFloor
{
    public static async Task RunAsync(string path, int rows, int loops)
    {
        Console.WriteLine($"SQLite {SqliteVersion(path)} (WAL, synchronous=FULL), {rows:N0} rows, {FloorRun.RowsPerTransaction:N0} per transaction, {loops} connection(s)");
        using (var setup = Open(path))
        {
            Exec(setup, "PRAGMA journal_mode = WAL");
            Exec(setup, """
                CREATE TABLE bare (id INTEGER PRIMARY KEY, queue TEXT NOT NULL, state INTEGER NOT NULL, payload TEXT);
                CREATE TABLE indexed (id INTEGER PRIMARY KEY, queue TEXT NOT NULL, state INTEGER NOT NULL, payload TEXT);
                CREATE INDEX indexed_queue_state ON indexed (queue, state, id);
                """);
        }
        var connections = Enumerable.Range(0, loops).Select(_ => Open(path)).ToArray();
        try
        {
            foreach (var table in new[] { "bare", "indexed" })
            {
                var label = table == "bare" ? "primary key only" : "+ index (queue, state, id)";
                var next = 0;
                await MeasureAsync($"insert, {label}", connections, "INSERT INTO " + table + " (queue, state, payload) VALUES ('bench', 0, $value)",
                    n => "{\"n\":" + n + "}", () => FloorRun.Take(ref next, rows));
            }
            foreach (var table in new[] { "bare", "indexed" })
            {
                var label = table == "bare" ? "primary key only" : "moving its index entry";
                var next = 0;
                await MeasureAsync($"update by id, {label}", connections, "UPDATE " + table + " SET state = 3 WHERE id = $value",
                    id => id, () => FloorRun.Take(ref next, rows));
            }
            using var single = connections[0].CreateCommand();
            single.CommandText = "INSERT INTO bare (queue, state, payload) VALUES ('latency', 0, '{}')";
            await FloorRun.CommitLatencyAsync("one-row commit", _ =>
            {
                single.ExecuteNonQuery();
                return Task.CompletedTask;
            });
        }
        finally
        {
            foreach (var connection in connections) connection.Dispose();
        }
    }

    /// <summary>Runs <paramref name="sql"/> (one parameter, <c>$value</c>) for every row, 1,000 per transaction on each connection.</summary>
    private static async Task MeasureAsync(string label, SqliteConnection[] connections, string sql, Func<int, object> value, Func<(int From, int Count)> take)
    {
        var commands = connections.Select(connection =>
        {
            var command = connection.CreateCommand();
            command.CommandText = sql;
            command.Parameters.Add(new SqliteParameter("$value", null));
            command.Prepare();
            return command;
        }).ToArray();
        await FloorRun.MeasureAsync(label, connections.Length, loop =>
        {
            var (from, count) = take();
            if (count == 0) return Task.FromResult(0);
            var connection = connections[loop];
            Exec(connection, "BEGIN IMMEDIATE");
            for (var id = from; id < from + count; id++)
            {
                commands[loop].Parameters[0].Value = value(id);
                commands[loop].ExecuteNonQuery();
            }
            Exec(connection, "COMMIT");
            return Task.FromResult(count);
        });
        foreach (var command in commands) command.Dispose();
    }

    private static SqliteConnection Open(string path)
    {
        var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        connection.Open();
        Exec(connection, "PRAGMA synchronous = FULL");
        Exec(connection, "PRAGMA busy_timeout = 10000");
        return connection;
    }

    private static string SqliteVersion(string path)
    {
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT sqlite_version()";
        return (string)command.ExecuteScalar()!;
    }

    private static void Exec(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }
}
