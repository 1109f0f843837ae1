using Npgsql;
using RabbitMQ.Client;

namespace Conveyor.Examples.WorkToDo.Tests;

/// <summary>
/// The real PostgreSQL and RabbitMQ: CONVEYOR_TEST_POSTGRES and CONVEYOR_TEST_AMQP (./test.sh starts both and sets them),
/// else the loopback defaults. A missing server fails the tests; they are never skipped.
/// </summary>
internal static class TestServices
{
    private static int _counter;

    public static string Postgres =>
        Environment.GetEnvironmentVariable("CONVEYOR_TEST_POSTGRES") is { Length: > 0 } value
            ? value
            : "Host=127.0.0.1;Port=5432;Username=postgres;Database=postgres";

    public static Uri Amqp { get; } =
        new(Environment.GetEnvironmentVariable("CONVEYOR_TEST_AMQP") is { Length: > 0 } text ? text : "amqp://guest:guest@127.0.0.1:5672/");

    /// <summary>A schema or queue name no other test (in this or a parallel test process) uses.</summary>
    public static string Unique(string prefix) =>
        $"{prefix}_{Environment.ProcessId}_{Interlocked.Increment(ref _counter)}_{Guid.NewGuid().ToString("N")[..6]}";

    public static async Task DropSchemaAsync(string schema)
    {
        await using var connection = new NpgsqlConnection(Postgres);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"DROP SCHEMA IF EXISTS \"{schema}\" CASCADE", connection);
        await command.ExecuteNonQueryAsync();
    }

    public static async Task DeleteRabbitQueueAsync(string queue)
    {
        var factory = new ConnectionFactory { Uri = Amqp };
        await using var connection = await factory.CreateConnectionAsync();
        await using var channel = await connection.CreateChannelAsync();
        await channel.QueueDeleteAsync(queue);
    }

    /// <summary>Polls state outside this process (the database, an HTTP endpoint) until it holds or the time is up.</summary>
    public static async Task<T> Eventually<T>(Func<Task<T?>> probe, string what, int timeoutSeconds = 30)
        where T : class
    {
        var deadline = DateTime.UtcNow.AddSeconds(timeoutSeconds);
        while (true)
        {
            if (await probe() is { } value) return value;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Timed out after {timeoutSeconds} s waiting for: {what}");
            await Task.Delay(50);
        }
    }
}
