using System.Buffers;
using System.Text;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Conveyor.Storage.Sqlite;

/// <summary>
/// A statement prepared once on a connection and bound by index through the native library directly. Used for the per-job
/// hot paths: Microsoft.Data.Sqlite binds parameters by name on every execution, which measured here at about twice the
/// cost of the insert itself (bench/Conveyor.Bench.Store); the lease reads its rows back the same way. Calls go through
/// <see cref="SqliteNative"/> with the statement's pointer, held alive by one reference taken here.
/// </summary>
internal sealed unsafe class RawStatement : IDisposable
{
    private const int StackEncodeLimit = 512;
    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _statement;
    private readonly nint _handle;
    private bool _referenced;

    public RawStatement(SqliteConnection connection, string sql)
    {
        _db = connection.Handle!;
        Check(raw.sqlite3_prepare_v2(_db, sql, out _statement));
        _statement.DangerousAddRef(ref _referenced);
        _handle = _statement.DangerousGetHandle();
    }

    public RawStatement Bind(int index, long value)
    {
        Check(SqliteNative.sqlite3_bind_int64(_handle, index, value));
        return this;
    }

    public RawStatement Bind(int index, string? value)
    {
        if (value is null)
        {
            Check(SqliteNative.sqlite3_bind_null(_handle, index));
            return this;
        }
        var length = Encoding.UTF8.GetMaxByteCount(value.Length);
        byte[]? rented = null;
        Span<byte> buffer = length <= StackEncodeLimit ? stackalloc byte[StackEncodeLimit] : (rented = ArrayPool<byte>.Shared.Rent(length));
        try
        {
            var written = Encoding.UTF8.GetBytes(value, buffer);
            fixed (byte* text = buffer)
            {
                Check(SqliteNative.sqlite3_bind_text(_handle, index, text, written, SqliteNative.Transient));
            }
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
        return this;
    }

    /// <summary>Steps to the next row, if any; the caller reads it through <see cref="Row"/> and finally calls <see cref="Reset"/>.</summary>
    public bool StepRow()
    {
        var result = SqliteNative.sqlite3_step(_handle);
        if (result == raw.SQLITE_ROW) return true;
        if (result == raw.SQLITE_DONE) return false;
        SqliteNative.sqlite3_reset(_handle);
        throw Error(result);
    }

    public RawRow Row => new(_handle);

    public void Reset() => SqliteNative.sqlite3_reset(_handle);

    /// <summary>Runs a statement that returns no rows, then resets it for the next use.</summary>
    public void Execute()
    {
        var result = SqliteNative.sqlite3_step(_handle);
        SqliteNative.sqlite3_reset(_handle);
        if (result != raw.SQLITE_DONE) throw Error(result);
    }

    private void Check(int result)
    {
        if (result != raw.SQLITE_OK) throw Error(result);
    }

    private SqliteException Error(int result) => new(raw.sqlite3_errmsg(_db).utf8_to_string(), result);

    public void Dispose()
    {
        if (_referenced)
        {
            _referenced = false;
            _statement.DangerousRelease();
        }
        _statement.Dispose();
    }
}
