using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Conveyor.Storage.Sqlite;

/// <summary>
/// A statement prepared once on a connection and bound by index through SQLitePCL directly. Used for the per-job hot
/// paths: Microsoft.Data.Sqlite binds parameters by name on every execution, which measured here at about twice the
/// cost of the insert itself (bench/Conveyor.Bench.Store); the lease reads its rows back the same way.
/// </summary>
internal sealed class RawStatement : IDisposable
{
    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _statement;

    public RawStatement(SqliteConnection connection, string sql)
    {
        _db = connection.Handle!;
        Check(raw.sqlite3_prepare_v2(_db, sql, out _statement));
    }

    public RawStatement Bind(int index, long value)
    {
        Check(raw.sqlite3_bind_int64(_statement, index, value));
        return this;
    }

    public RawStatement Bind(int index, string? value)
    {
        Check(value is null ? raw.sqlite3_bind_null(_statement, index) : raw.sqlite3_bind_text(_statement, index, value));
        return this;
    }

    /// <summary>Steps to the first row, if any; the caller reads it through <see cref="Row"/> and then calls <see cref="Reset"/>.</summary>
    public bool StepRow()
    {
        var result = raw.sqlite3_step(_statement);
        if (result == raw.SQLITE_ROW) return true;
        if (result == raw.SQLITE_DONE) return false;
        raw.sqlite3_reset(_statement);
        throw Error(result);
    }

    public RawRow Row => new(_statement);

    public void Reset() => raw.sqlite3_reset(_statement);

    /// <summary>Runs a statement that returns no rows, then resets it for the next use.</summary>
    public void Execute()
    {
        var result = raw.sqlite3_step(_statement);
        raw.sqlite3_reset(_statement);
        if (result != raw.SQLITE_DONE) throw Error(result);
    }

    private void Check(int result)
    {
        if (result != raw.SQLITE_OK) throw Error(result);
    }

    private SqliteException Error(int result) => new(raw.sqlite3_errmsg(_db).utf8_to_string(), result);

    public void Dispose() => _statement.Dispose();
}
