using Npgsql;

namespace Conveyor.Storage.Postgres;

/// <summary>
/// Provider errors translated at the store edge: an <see cref="NpgsqlException"/> never reaches an endpoint.
/// Connection trouble becomes <see cref="StoreUnavailableException"/> (HTTP 503); a deadlock or serialization failure
/// aborted the whole transaction, so the operation is simply run again.
/// </summary>
internal static class PgErrors
{
    public static bool IsUnavailable(Exception e) => e switch
    {
        PostgresException p => p.SqlState.StartsWith("08", StringComparison.Ordinal) // connection exception
            || p.SqlState is "57P01" or "57P02" or "57P03" // admin / crash shutdown, cannot connect now
            || p.SqlState is "53300" or "53400" // too many connections, configuration limit
            || p.SqlState is "25006", // read-only transaction: a failover promoted nothing yet
        NpgsqlException => true, // I/O, timeouts, a broken or exhausted pool
        _ => false,
    };

    /// <summary>The transaction was rolled back as a whole; running it again is safe.</summary>
    public static bool IsRetryable(Exception e) => e is PostgresException { SqlState: "40P01" or "40001" };

    public static bool IsUniqueViolation(Exception e) => e is PostgresException { SqlState: "23505" };

    public static StoreUnavailableException Unavailable(Exception e) =>
        new($"PostgreSQL cannot be reached right now ({e.Message.TrimEnd('.')}). Retry later: the server reconnects on its own.", e);
}
