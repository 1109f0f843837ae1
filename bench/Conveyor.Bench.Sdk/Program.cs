using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Conveyor.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

// conveyor-bench-sdk: jobs/s end to end through the SDK's worker host (lease in batches, run the handler, ack in
// batches), against a server in its own process. Prints its figures; asserts nothing.
const string Usage = """
    conveyor-bench-sdk: end-to-end jobs/s through the .NET SDK worker host (docs/benchmarks.md, "SDK worker")

      --server URL        measure a running server; otherwise one is started:
                            dotnet src/Conveyor.Cli/bin/{Release|Debug}/net10.0/conveyor.dll serve --port 0 --data <temp dir>
      --conveyor PATH     the conveyor.dll to start instead
      --handler noop|sleep10|all   the handler: returns at once, or awaits Task.Delay(10 ms) (default all)
      --jobs N            jobs per run, enqueued beforehand through the batch endpoint (default 50000)
      --concurrency N     handlers at once (default 100)
      --prefetch N        jobs leased ahead of free handlers (default: the concurrency)
      --lease-ms N        lease per job (default 30000)
    """;

var handlers = new List<string> { "noop", "sleep10" };
var jobs = 50_000;
var concurrency = 100;
int? prefetch = null;
var leaseMs = 30_000;
Uri? server = null;
string? conveyorPath = null;
for (var i = 0; i < args.Length; i++)
{
    string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
    switch (args[i])
    {
        case "--server": server = new Uri(Next()); break;
        case "--conveyor": conveyorPath = Next(); break;
        case "--handler": handlers = Next() is "all" ? ["noop", "sleep10"] : [.. args[i].Split(',')]; break;
        case "--jobs": jobs = int.Parse(Next(), CultureInfo.InvariantCulture); break;
        case "--concurrency": concurrency = int.Parse(Next(), CultureInfo.InvariantCulture); break;
        case "--prefetch": prefetch = int.Parse(Next(), CultureInfo.InvariantCulture); break;
        case "--lease-ms": leaseMs = int.Parse(Next(), CultureInfo.InvariantCulture); break;
        case "-h" or "--help": Console.WriteLine(Usage); return 0;
        default: Console.Error.WriteLine($"conveyor-bench-sdk: unknown option '{args[i]}'. Try --help."); return 2;
    }
}

if (handlers.Any(h => h is not ("noop" or "sleep10")))
{
    Console.Error.WriteLine("conveyor-bench-sdk: --handler is noop, sleep10 or all.");
    return 2;
}

await using var started = server is null ? await StartedServer.StartAsync(conveyorPath) : null;
server ??= started!.Address;
using var client = new ConveyorClient(server);
var runId = DateTime.UtcNow.ToString("HHmmss", CultureInfo.InvariantCulture) + "-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
Console.WriteLine($"# Conveyor SDK worker bench {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, {RuntimeInformation.FrameworkDescription}");
Console.WriteLine($"server:  {(started is null ? server.ToString() : started.Description)}");
Console.WriteLine($"args:    {(args.Length == 0 ? "(defaults)" : string.Join(' ', args))}");
Console.WriteLine();
Console.WriteLine("| handler | concurrency | prefetch | jobs | drained in | throughput |");
Console.WriteLine("|---|---|---|---|---|---|");
foreach (var handler in handlers)
{
    // Warm-up (JIT, connections, SQLite caches) on a queue of its own, then the measured run.
    await RunAsync(client, $"sdk-{handler}-warm-{runId}", handler, Math.Min(jobs, 5_000), concurrency, prefetch ?? concurrency, leaseMs);
    var (seconds, rate) = await RunAsync(client, $"sdk-{handler}-{runId}", handler, jobs, concurrency, prefetch ?? concurrency, leaseMs);
    Console.WriteLine(FormattableString.Invariant(
        $"| {(handler == "noop" ? "no-op" : "await Task.Delay(10 ms)")} | {concurrency} | {prefetch ?? concurrency} | {jobs:#,0} | {seconds:0.00} s | {rate:#,0} jobs/s |"));
}

return 0;

static async Task<(double Seconds, double Rate)> RunAsync(
    ConveyorClient client, string queue, string handler, int jobs, int concurrency, int prefetch, int leaseMs)
{
    // Fill the queue first, so the figure is the worker side alone: lease, handle, ack, as fast as it goes.
    for (var first = 0; first < jobs; first += 10_000)
    {
        await client.EnqueueManyAsync(queue, Enumerable.Range(first, Math.Min(10_000, jobs - first)).Select(n => new Item(n)));
    }

    var handled = 0;
    var allHandled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    var services = new ServiceCollection();
    services.AddConveyor(o => o.BaseAddress = client.BaseAddress);
    services.AddConveyorWorker(o =>
        {
            o.Queue(queue, concurrency: concurrency, prefetch: prefetch, leaseDuration: TimeSpan.FromMilliseconds(leaseMs));
            o.PollWait = TimeSpan.FromSeconds(1);
        })
        .AddHandler<Item>(queue, async (_, _, ct) =>
        {
            if (handler == "sleep10")
            {
                await Task.Delay(10, ct);
            }

            if (Interlocked.Increment(ref handled) == jobs)
            {
                allHandled.TrySetResult();
            }
        });
    await using var provider = services.BuildServiceProvider();
    var worker = provider.GetServices<IHostedService>().Single();

    var start = Stopwatch.GetTimestamp();
    await worker.StartAsync(CancellationToken.None);
    await allHandled.Task.WaitAsync(TimeSpan.FromMinutes(10));

    // Handled is not yet acknowledged: the clock stops when the server counts every job completed.
    while ((await client.ListQueuesAsync()).Single(q => q.Name == queue).Counts.Completed < jobs)
    {
        await Task.Delay(5);
    }

    var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
    using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
    await worker.StopAsync(stop.Token);
    return (seconds, jobs / seconds);
}

internal sealed record Item(int N);

/// <summary>`conveyor serve --port 0` in its own process, found from here upwards; killed (and its data deleted) on dispose.</summary>
internal sealed partial class StartedServer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _data;

    private StartedServer(Process process, string data, Uri address, string description)
    {
        _process = process;
        _data = data;
        Address = address;
        Description = description;
    }

    public Uri Address { get; }

    public string Description { get; }

    public static async Task<StartedServer> StartAsync(string? conveyorPath)
    {
        var dll = conveyorPath ?? Find() ?? throw new InvalidOperationException(
            "could not find src/Conveyor.Cli/bin/{Release,Debug}/net10.0/conveyor.dll; build it (dotnet build -c Release src/Conveyor.Cli) "
            + "or pass --conveyor PATH or --server URL");
        var data = Directory.CreateTempSubdirectory("conveyor-bench-sdk-").FullName;
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { dll, "serve", "--port", "0", "--data", data })
        {
            info.ArgumentList.Add(arg);
        }

        var process = Process.Start(info)!;
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                Console.Error.WriteLine($"server: {e.Data}");
            }
        };
        process.BeginErrorReadLine();
        while (await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60)) is { } line)
        {
            if (Listening().Match(line) is { Success: true } match)
            {
                // Keep draining stdout so the server never blocks on a full pipe.
                _ = process.StandardOutput.ReadToEndAsync();
                return new StartedServer(process, data, new Uri(match.Groups[1].Value), $"dotnet {dll} serve --port 0 --data {data}");
            }
        }

        throw new InvalidOperationException("the server exited before printing 'Conveyor listening on …'");
    }

    private static string? Find()
    {
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
        {
            foreach (var configuration in new[] { "Release", "Debug" })
            {
                var path = Path.Combine(dir.FullName, "src", "Conveyor.Cli", "bin", configuration, "net10.0", "conveyor.dll");
                if (File.Exists(path))
                {
                    return path;
                }
            }
        }

        return null;
    }

    [GeneratedRegex(@"Conveyor listening on (https?://\S+)")]
    private static partial Regex Listening();

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        try
        {
            Directory.Delete(_data, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
