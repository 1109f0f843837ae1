using System.Runtime.InteropServices;

namespace Conveyor.Storage.Sqlite;

/// <summary>
/// The few SQLite calls of the per-job hot paths, bound to the same native library SQLitePCL loads (e_sqlite3) but taking
/// the raw statement pointer. SQLitePCL's own bindings take a <c>SafeHandle</c>, which the runtime reference-counts
/// around every call (an interlocked increment and decrement); with some sixty calls per job that was 4.8 % of the
/// server's CPU in W1. <see cref="RawStatement"/> holds one reference on its statement for its whole life instead.
/// </summary>
internal static unsafe partial class SqliteNative
{
    private const string Library = "e_sqlite3";

    // Resolve "e_sqlite3" exactly as SQLitePCL's provider does, so both bind to the one library already loaded (a statement
    // pointer is only meaningful to the library that made it), whatever probing the host applies to the provider.
    static SqliteNative() => NativeLibrary.SetDllImportResolver(typeof(SqliteNative).Assembly, (name, _, searchPath) =>
        name == Library && NativeLibrary.TryLoad(name, typeof(SQLitePCL.SQLite3Provider_e_sqlite3).Assembly, searchPath, out var handle)
            ? handle
            : 0);

    /// <summary>SQLITE_TRANSIENT: SQLite copies the bound bytes before the call returns.</summary>
    public static readonly nint Transient = -1;

    [LibraryImport(Library)] public static partial int sqlite3_step(nint statement);
    [LibraryImport(Library)] public static partial int sqlite3_reset(nint statement);
    [LibraryImport(Library)] public static partial int sqlite3_bind_int64(nint statement, int index, long value);
    [LibraryImport(Library)] public static partial int sqlite3_bind_null(nint statement, int index);
    [LibraryImport(Library)] public static partial int sqlite3_bind_text(nint statement, int index, byte* text, int length, nint destructor);
    [LibraryImport(Library)] public static partial int sqlite3_column_type(nint statement, int column);
    [LibraryImport(Library)] public static partial int sqlite3_column_int(nint statement, int column);
    [LibraryImport(Library)] public static partial long sqlite3_column_int64(nint statement, int column);
    [LibraryImport(Library)] public static partial byte* sqlite3_column_text(nint statement, int column);
    [LibraryImport(Library)] public static partial int sqlite3_column_bytes(nint statement, int column);
}
