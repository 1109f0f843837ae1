using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Conveyor.Bench;

// Load generator for the Conveyor HTTP API (docs/api.md). See docs/benchmarks.md for the workloads.
var options = BenchOptions.Parse(args, Console.Error, out var help);
if (options is null)
{
    if (help)
    {
        Console.WriteLine(BenchOptions.Usage);
        return 0;
    }
    return 2;
}

using var cts = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cts.Cancel();
};

ServerHost? host = null;
try
{
    Uri server;
    string serverDescription;
    if (options.Server is not null)
    {
        server = options.Server;
        serverDescription = server.ToString();
    }
    else
    {
        host = await ServerHost.StartAsync(options.ConveyorPath, options.KeepData, options.Postgres, cts.Token);
        server = host.Url;
        serverDescription = $"{host.Description} (started by the bench)";
    }

    using var http = Http.Create();
    await WaitUntilUpAsync(http, server, cts.Token);
    await using var socket = options.Transport == "socket" ? await JobSocketChannel.ConnectAsync(server, cts.Token) : null;

    var runId = DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture) + "-" + Random.Shared.Next(1000, 9999);
    Console.WriteLine($"# Conveyor bench {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
    Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, {RuntimeInformation.FrameworkDescription}{LoadAverage()}");
    Console.WriteLine($"server:  {serverDescription} at {server}");
    Console.WriteLine($"args:    {(args.Length == 0 ? "(defaults)" : string.Join(' ', args))}");
    Console.WriteLine($"calls:   {(socket is null ? "an HTTP/1.1 request each (keep-alive pool)" : "a message each on one WebSocket, /v1/jobs/socket")}");
    Console.WriteLine($"warm-up: {options.ServerWarmupSeconds} s of mixed load on the server, then {options.WarmupSeconds} s per workload on its own queue; payload {{\"n\": i}}; run id {runId}");
    Console.WriteLine();

    var workloads = new Workloads(new Transport(http, socket), server, options, runId);
    if (options.ServerWarmupSeconds > 0 && options.Workloads.Any(w => w != "memory"))
    {
        await workloads.WarmServerAsync(cts.Token);
    }
    var results = new List<WorkloadResult>();
    var peerResults = new List<PeerResult>();
    var peerRoundsDone = false;
    var store = options.Postgres is not null ? "PostgreSQL"
        : options.Server is not null ? "as configured on the server" : "SQLite (WAL, synchronous=FULL)";
    foreach (var name in options.Workloads)
    {
        if (name == "memory")
        {
            if (host is null) throw new BenchException("--workload memory measures the server this bench starts; leave out --server.");
            await workloads.MemoryAsync(host, cts.Token);
            continue;
        }
        if (name is "w1" or "w2" or "w3")
        {
            // All of them together, where the first one is named: they run round by round, as the peers' runs do.
            if (!peerRoundsDone)
            {
                peerRoundsDone = true;
                peerResults.AddRange(await workloads.PeerRoundsAsync([.. options.Workloads.Where(w => w is "w1" or "w2" or "w3")], store, cts.Token));
            }
            continue;
        }
        results.Add(name switch
        {
            "batch" => await workloads.BatchAsync(cts.Token),
            "single" => await workloads.SingleAsync(cts.Token),
            "e2e" => await workloads.EndToEndAsync(cts.Token),
            _ => throw new BenchException($"unknown workload {name}"),
        });
    }

    Console.WriteLine();
    if (results.Count > 0)
    {
        Console.WriteLine(Table(results));
    }
    if (peerResults.Count > 0)
    {
        Console.WriteLine(PeerTable(peerResults));
    }
    // The client's own cost, to check it stays small next to the server's.
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"client: {GC.GetTotalAllocatedBytes() / 1048576.0:#,0.0} MiB allocated in all, GCs gen0 {GC.CollectionCount(0)}, " +
        $"gen1 {GC.CollectionCount(1)}, gen2 {GC.CollectionCount(2)}, CPU {Environment.CpuUsage.TotalTime.TotalSeconds:0.0} s"));
    return results.Any(r => r.Errors > 0) || peerResults.Any(r => r.Errors > 0) ? 1 : 0;
}
catch (BenchException e)
{
    Console.Error.WriteLine($"conveyor-bench: {e.Message}");
    return 1;
}
catch (OperationCanceledException) when (cts.IsCancellationRequested)
{
    Console.Error.WriteLine("conveyor-bench: cancelled");
    return 130;
}
finally
{
    if (host is not null)
    {
        await host.DisposeAsync();
    }
}

static async Task WaitUntilUpAsync(HttpClient http, Uri server, CancellationToken ct)
{
    var until = DateTime.UtcNow.AddSeconds(15);
    while (true)
    {
        try
        {
            using var response = await http.GetAsync(new Uri(server, "/healthz"), ct);
            return; // any answer means the server is listening; the workloads report wrong answers
        }
        catch (HttpRequestException e) when (DateTime.UtcNow < until)
        {
            _ = e;
            await Task.Delay(200, ct);
        }
        catch (HttpRequestException e)
        {
            throw new BenchException($"cannot reach {server}: {e.Message}");
        }
    }
}

// Other work on the machine skews every figure; say how busy it was when the run started.
static string LoadAverage()
{
    try
    {
        var parts = File.ReadAllText("/proc/loadavg").Split(' ');
        return parts.Length >= 3 ? $", load average {parts[0]} {parts[1]} {parts[2]} at start" : "";
    }
    catch (IOException)
    {
        return "";
    }
    catch (UnauthorizedAccessException)
    {
        return "";
    }
}

static string Table(List<WorkloadResult> results)
{
    var sb = new StringBuilder();
    sb.AppendLine("| workload | concurrency | batch size | jobs | payload | measured | throughput | latency | errors |");
    sb.AppendLine("|---|---|---|---|---|---|---|---|---|");
    foreach (var r in results)
    {
        sb.AppendLine(CultureInfo.InvariantCulture,
            $"| {r.Name} | {r.Concurrency} | {r.BatchSize} | {r.Jobs} | `{{\"n\": i}}` | {r.Duration} | {r.Throughput} | {r.Latency} | {r.Errors} |");
    }
    return sb.ToString();
}

static string PeerTable(List<PeerResult> results)
{
    var sb = new StringBuilder();
    sb.AppendLine("| workload | store | durability | concurrency | batch size | measured | figures | errors |");
    sb.AppendLine("|---|---|---|---|---|---|---|---|");
    foreach (var r in results)
    {
        sb.AppendLine(CultureInfo.InvariantCulture,
            $"| {r.Name} | {r.Store} | fsync on (durable commit before the 2xx) | {r.Concurrency} | {r.BatchSize} | {r.Measured} | {r.Figures} | {r.Errors} |");
    }
    return sb.ToString();
}
