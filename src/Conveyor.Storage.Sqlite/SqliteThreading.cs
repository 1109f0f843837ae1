using SQLitePCL;

namespace Conveyor.Storage.Sqlite;

/// <summary>
/// Puts the process's SQLite library in multi-thread mode before its first connection opens.
/// The bundled library defaults to serialized mode, which locks a connection's mutex in every call (each bind, step and
/// column read). Conveyor never uses one connection from two threads at once (the writer connection belongs to its loop,
/// a reader is rented by one caller at a time), so the lock buys nothing: without it the store's lease + complete ran
/// 9 % faster (bench/Conveyor.Bench.Store, docs/benchmarks.md).
/// </summary>
public static class SqliteThreading
{
    private const int ConfigMultiThread = 2; // SQLITE_CONFIG_MULTITHREAD
    private static readonly Lazy<bool> Applied = new(Apply);

    /// <summary>
    /// True when the library runs in multi-thread mode. Calls after the first return the first answer. SQLite accepts the
    /// setting only before it initializes (its first connection); if another component opened one first, the library
    /// stays serialized, which is correct, only slower.
    /// </summary>
    public static bool PreferMultiThread() => Applied.Value;

    private static bool Apply()
    {
        Batteries_V2.Init();
        return raw.sqlite3_config(ConfigMultiThread) == raw.SQLITE_OK;
    }
}
