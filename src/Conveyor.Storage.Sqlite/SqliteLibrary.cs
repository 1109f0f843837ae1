using SQLitePCL;

namespace Conveyor.Storage.Sqlite;

/// <summary>
/// Process-wide settings of the SQLite library, which it accepts only before it initializes (its first connection):
/// <list type="bullet">
/// <item>Multi-thread mode. The bundled library defaults to serialized mode, which locks a connection's mutex in every
/// call (each bind, step and column read). Conveyor never uses one connection from two threads at once (the writer
/// connection belongs to its loop, a reader is rented by one caller at a time), so the lock buys nothing.</item>
/// <item>No memory statistics: otherwise every allocation inside SQLite updates global counters under a global mutex.
/// Conveyor reads none of them (nor sets a soft heap limit, which needs them).</item>
/// </list>
/// Measured alternated through HTTP (W1): processing +11 % with multi-thread mode, +4 % more without the statistics
/// (docs/benchmarks.md, "The SQLite library's own locks").
/// </summary>
public static class SqliteLibrary
{
    private const int ConfigMultiThread = 2; // SQLITE_CONFIG_MULTITHREAD
    private const int ConfigMemStatus = 9; // SQLITE_CONFIG_MEMSTATUS
    private static readonly Lazy<bool> Applied = new(Apply);

    /// <summary>
    /// Applies the settings once; true when the library took them. If another component opened a connection first, SQLite
    /// refuses them and keeps its defaults, which are correct, only slower.
    /// </summary>
    public static bool Configure() => Applied.Value;

    private static bool Apply()
    {
        Batteries_V2.Init();
        return raw.sqlite3_config(ConfigMultiThread) == raw.SQLITE_OK
            && raw.sqlite3_config(ConfigMemStatus, 0) == raw.SQLITE_OK;
    }
}
