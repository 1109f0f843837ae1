using Npgsql;

namespace Conveyor.Submissions.Tests;

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

    public static async Task DropSchemaAsync(string schema)
    {
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"DROP SCHEMA IF EXISTS \"{schema}\" CASCADE", connection);
        await command.ExecuteNonQueryAsync();
    }
}
