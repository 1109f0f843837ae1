using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Conveyor;
using Conveyor.Amqp;
using Conveyor.Server;
using Microsoft.Extensions.DependencyInjection;
using RabbitMQ.Client;

// AMQP ingest throughput: messages in a RabbitMQ queue -> committed Conveyor jobs (SQLite, synchronous=FULL), acked after commit.
//   dotnet run -c Release --project bench/Conveyor.Bench.Amqp -- [--amqp URI] [--messages N] [--prefetch N] [--batch N]
// Two workloads, each on fresh queues and a fresh data directory, with the server in process:
//   backlog  N messages are published first (with confirms), then the server starts and drains them
//   stream   a producer publishes N messages (with confirms) while the server ingests them
var amqp = new Uri(Arg("--amqp") ?? Environment.GetEnvironmentVariable("CONVEYOR_BENCH_AMQP") ?? "amqp://guest:guest@127.0.0.1:5672/");
var messages = int.Parse(Arg("--messages") ?? "100000", CultureInfo.InvariantCulture);
var prefetch = ushort.Parse(Arg("--prefetch") ?? AmqpIngestOptions.DefaultPrefetch.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
var batch = int.Parse(Arg("--batch") ?? AmqpIngestOptions.DefaultBatchSize.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

Console.WriteLine($"# Conveyor AMQP ingest bench {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, {RuntimeInformation.FrameworkDescription}");
Console.WriteLine($"broker:  {amqp.Host}:{amqp.Port}; messages {messages:#,0} of {{\"n\": i}} (persistent, message_id set), prefetch {prefetch}, batch {batch}");
#if DEBUG
Console.WriteLine("warning: a Debug build; run with -c Release for real figures");
#endif
Console.WriteLine();

var factory = new ConnectionFactory { Uri = amqp };
await using var connection = await factory.CreateConnectionAsync();

// A short warm-up so JIT and the first SQLite file creation are not in the figures.
await RunAsync("warm-up", Math.Min(messages, 5000), stream: false, quiet: true);
await RunAsync("backlog", messages, stream: false, quiet: false);
await RunAsync("stream", messages, stream: true, quiet: false);
return 0;

async Task RunAsync(string name, int count, bool stream, bool quiet)
{
    var suffix = $"{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..6]}";
    var rabbitQueue = $"bench-ingest-{suffix}";
    var jobsQueue = $"bench-{suffix}";
    await using (var channel = await connection.CreateChannelAsync())
        await channel.QueueDeclareAsync(rabbitQueue, durable: true, exclusive: false, autoDelete: false);
    var directory = Directory.CreateTempSubdirectory("conveyor-bench-amqp-").FullName;
    try
    {
        double publishSeconds = 0;
        if (!stream) publishSeconds = await PublishAsync(rabbitQueue, count);

        var started = Stopwatch.GetTimestamp();
        await using var server = await ConveyorServer.StartAsync(new ServerOptions
        {
            Port = 0,
            DataDirectory = directory,
            Out = null,
            AmqpUri = amqp,
            Ingest = [new AmqpIngestRoute(rabbitQueue, jobsQueue)],
        });
        var ingest = server.Services.GetRequiredService<AmqpIngest>();
        var store = server.Services.GetRequiredService<IJobStore>();
        await ingest.Ready;
        var publisher = stream ? Task.Run(() => PublishAsync(rabbitQueue, count)) : Task.FromResult(0.0);

        var cpu = Environment.CpuUsage.TotalTime;
        long committed;
        while ((committed = await CountAsync(store, jobsQueue)) < count) await Task.Delay(20);
        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        publishSeconds = stream ? await publisher : publishSeconds;
        var cpuSeconds = (Environment.CpuUsage.TotalTime - cpu).TotalSeconds;
        if (!quiet)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{name,-8} {committed:#,0} jobs committed in {seconds:0.00} s = {committed / seconds:#,0} messages/s ingested " +
                $"(publishing took {publishSeconds:0.00} s = {count / publishSeconds:#,0} msg/s; bench process CPU {cpuSeconds:0.0} s)"));
        }
    }
    finally
    {
        await using (var channel = await connection.CreateChannelAsync()) await channel.QueueDeleteAsync(rabbitQueue);
        try { Directory.Delete(directory, recursive: true); } catch (IOException) { }
    }
}

async Task<double> PublishAsync(string queue, int count)
{
    var started = Stopwatch.GetTimestamp();
    await using var channel = await connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true));
    var window = new List<Task>(500);
    for (var i = 0; i < count; i++)
    {
        var properties = new BasicProperties { ContentType = "application/json", DeliveryMode = DeliveryModes.Persistent, MessageId = $"m{i}", Type = "bench" };
        window.Add(channel.BasicPublishAsync("", queue, true, properties, Encoding.UTF8.GetBytes($"{{\"n\":{i}}}")).AsTask());
        if (window.Count == 500)
        {
            await Task.WhenAll(window);
            window.Clear();
        }
    }
    await Task.WhenAll(window);
    return Stopwatch.GetElapsedTime(started).TotalSeconds;
}

static async Task<long> CountAsync(IJobStore store, string queue)
{
    var queues = await store.QueueListAsync(CancellationToken.None);
    var counts = queues.FirstOrDefault(q => q.Name == queue)?.Counts;
    return counts is null ? 0 : counts.Scheduled + counts.Available + counts.Running + counts.Completed + counts.Dead + counts.Cancelled;
}

string? Arg(string name)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}
