using Microsoft.Data.Sqlite;

namespace Conveyor.Bench.HttpFloor;

/// <summary>
/// The log as rows of an SQLite table (--sqlite DIR), with Conveyor's SQLite settings (WAL, synchronous = FULL): one
/// transaction per group. Against the file log, it is what SQLite's pages and WAL frames add to a durable append.
/// </summary>
internal sealed class SqliteFloorLog : FloorLog
{
    private readonly SqliteConnection _connection;
    private readonly SqliteCommand _insert;
    private readonly SqliteParameter _record;

    public SqliteFloorLog(string path)
    {
        File.Delete(path);
        _connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ConnectionString);
        _connection.Open();
        using (var setup = _connection.CreateCommand())
        {
            setup.CommandText = """
                PRAGMA journal_mode = WAL;
                PRAGMA synchronous = FULL;
                CREATE TABLE floor_log (id INTEGER PRIMARY KEY, record BLOB NOT NULL);
                """;
            setup.ExecuteNonQuery();
        }
        _insert = _connection.CreateCommand();
        _insert.CommandText = "INSERT INTO floor_log (record) VALUES ($record)";
        _record = _insert.Parameters.Add("$record", SqliteType.Blob);
        _insert.Prepare();
        Start();
    }

    protected override void WriteGroup(List<byte[]> records)
    {
        using var transaction = _connection.BeginTransaction();
        _insert.Transaction = transaction;
        foreach (var record in records)
        {
            _record.Value = record;
            _insert.ExecuteNonQuery();
        }
        transaction.Commit();
    }

    public override void Dispose()
    {
        base.Dispose();
        _insert.Dispose();
        _connection.Dispose();
    }
}
