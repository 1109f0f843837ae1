using Npgsql;

namespace Conveyor.Storage.Postgres.Tests;

/// <summary>
/// The real PostgreSQL the tests use: CONVEYOR_TEST_POSTGRES (an Npgsql connection string; ./test.sh starts a server and
/// sets it), or a server on this machine's default port. A missing server fails the tests; they are never skipped.
/// </summary>
internal static class TestPostgres
{
    public const string Variable = "CONVEYOR_TEST_POSTGRES";
    public const string LoopbackDefault = "Host=127.0.0.1;Port=5432;Username=postgres;Database=postgres";
    private static int _counter;

    public static string ConnectionString =>
        Environment.GetEnvironmentVariable(Variable) is { Length: > 0 } value ? value : LoopbackDefault;

    /// <summary>A schema name no other test (in this or a parallel test process) uses.</summary>
    public static string UniqueSchema(string prefix) => $"{prefix}_{Environment.ProcessId}_{Interlocked.Increment(ref _counter)}";

    public static async Task<T> ScalarAsync<T>(string connectionString, string sql, params (string Name, object Value)[] parameters)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var (name, value) in parameters) command.Parameters.AddWithValue(name, value);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    public static async Task DropSchemaAsync(string schema, string? connectionString = null)
    {
        await using var connection = new NpgsqlConnection(connectionString ?? ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"DROP SCHEMA IF EXISTS \"{schema}\" CASCADE", connection);
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>Polls a condition until it holds or the deadline passes (then fails with <paramref name="what"/>).</summary>
    public static async Task Eventually(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Timed out after {timeout} waiting for: {what}");
            await Task.Delay(50);
        }
    }
}
