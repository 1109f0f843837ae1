using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Conveyor.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

// Push delivery throughput: N jobs with an http destination, enqueued in batches, delivered by the server's dispatcher to
// a webhook receiver in the same process (an empty 200 handler), durable completes included.
//   dotnet run -c Release --project bench/Conveyor.Bench.Delivery -- [--jobs N] [--concurrency N] [--partitions N] [--postgres CONNSTR]
// Figures: deliveries/s from the first enqueue to the last job completed, and the receiver's own requests/s.
var jobs = int.Parse(Arg("--jobs") ?? "50000", CultureInfo.InvariantCulture);
var concurrency = int.Parse(Arg("--concurrency") ?? "64", CultureInfo.InvariantCulture);
var partitions = int.Parse(Arg("--partitions") ?? "0", CultureInfo.InvariantCulture);
var postgres = Arg("--postgres");

Console.WriteLine($"# Conveyor push delivery bench {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, {RuntimeInformation.FrameworkDescription}");
Console.WriteLine($"store:   {(postgres is null ? "SQLite (WAL, synchronous=FULL)" : "PostgreSQL (fsync on)")}; jobs {jobs:#,0}; " +
                  $"delivery concurrency {concurrency}; partition keys {(partitions == 0 ? "none" : partitions.ToString(CultureInfo.InvariantCulture))}");
#if DEBUG
Console.WriteLine("warning: a Debug build; run with -c Release for real figures");
#endif

// The receiver: Kestrel with one empty handler, counting requests.
long received = 0;
// No appsettings.json and no watching of the working directory (a watcher there turns each write under it into file
// events to read; the server does the same, see docs/benchmarks.md).
var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
{
    ContentRootPath = AppContext.BaseDirectory,
    Args = ["--hostBuilder:reloadConfigOnChange=false"],
});
builder.Logging.ClearProviders();
builder.WebHost.UseUrls("http://127.0.0.1:0");
var receiver = builder.Build();
receiver.MapPost("/hook", () =>
{
    Interlocked.Increment(ref received);
    return Results.Ok();
});
await receiver.StartAsync();
var hookUrl = receiver.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/hook";

var directory = Directory.CreateTempSubdirectory("conveyor-bench-delivery-").FullName;
var schema = $"bench_push_{Environment.ProcessId}";
await using var server = await ConveyorServer.StartAsync(new ServerOptions
{
    Port = 0,
    DataDirectory = directory,
    Out = null,
    DeliveryConcurrency = concurrency,
    PostgresConnectionString = postgres,
    PostgresSchema = schema,
});
using var http = new HttpClient { BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromMinutes(5) };

await RunAsync("warm-up", Math.Min(2000, jobs), quiet: true);
await RunAsync("webhook", jobs, quiet: false);
try { Directory.Delete(directory, recursive: true); } catch (IOException) { }
await receiver.StopAsync();
return 0;

async Task RunAsync(string name, int count, bool quiet)
{
    var queue = $"push-{name}-{Guid.NewGuid().ToString("N")[..6]}";
    var before = Interlocked.Read(ref received);
    var clock = Stopwatch.StartNew();
    const int batchSize = 1000;
    for (var start = 0; start < count; start += batchSize)
    {
        var batch = new JsonArray();
        for (var i = start; i < Math.Min(count, start + batchSize); i++)
        {
            var job = new JsonObject
            {
                ["payload"] = new JsonObject { ["n"] = i },
                ["destination"] = new JsonObject { ["type"] = "http", ["url"] = hookUrl },
            };
            if (partitions > 0) job["partition_key"] = $"p{i % partitions}";
            batch.Add(job);
        }
        using var response = await http.PostAsJsonAsync($"/v1/queues/{queue}/jobs/batch", batch);
        response.EnsureSuccessStatusCode();
    }
    var enqueued = clock.Elapsed;
    // Done when the store says every job completed (each delivery is acknowledged durably).
    while (true)
    {
        var queues = await http.GetFromJsonAsync<JsonArray>("/v1/queues");
        var counts = queues!.Single(q => (string)q!["name"]! == queue)!["counts"]!;
        if ((long)counts["completed"]! >= count) break;
        if ((long)counts["dead"]! > 0) throw new InvalidOperationException($"{counts["dead"]} deliveries died");
        await Task.Delay(20);
    }
    var total = clock.Elapsed;
    if (quiet) return;
    var requests = Interlocked.Read(ref received) - before;
    Console.WriteLine();
    Console.WriteLine("| workload | jobs | enqueue s | total s | deliveries/s | webhook requests |");
    Console.WriteLine("|---|---:|---:|---:|---:|---:|");
    Console.WriteLine($"| {name} | {count:#,0} | {enqueued.TotalSeconds:0.00} | {total.TotalSeconds:0.00} | {count / total.TotalSeconds:#,0} | {requests:#,0} |");
}

string? Arg(string name)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}
