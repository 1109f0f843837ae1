using System.Globalization;

namespace Conveyor.Bench;

/// <summary>Command-line settings. Defaults are named so that docs/benchmarks.md can quote them.</summary>
internal sealed record BenchOptions
{
    public const int DefaultJobs = 100_000;
    public const int DefaultBatchSize = 1000;
    public const int DefaultBatchConcurrency = 4;
    public const int DefaultSingleConcurrency = 16;
    public const int DefaultE2eProducers = 4;
    public const int DefaultWorkers = 4;
    public const int DefaultLeaseMax = 100;
    public const double DefaultDurationSeconds = 10;
    public const double DefaultWarmupSeconds = 2;
    public const int DefaultRuns = 3;
    public const double DefaultServerWarmupSeconds = 10;

    public Uri? Server { get; init; }
    public string? ConveyorPath { get; init; }
    public IReadOnlyList<string> Workloads { get; init; } = ["batch", "single", "e2e"];
    public int Jobs { get; init; } = DefaultJobs;
    /// <summary>Null: 1000 for batch, 1 (single enqueues) for e2e.</summary>
    public int? BatchSize { get; init; }
    /// <summary>Null: 4 for batch, 16 for single, 4 producers for e2e.</summary>
    public int? Concurrency { get; init; }
    public int Workers { get; init; } = DefaultWorkers;
    /// <summary>True when --workers was given (w3 otherwise uses one worker, as the peers' W3 does).</summary>
    public bool WorkersSet { get; init; }
    public int LeaseMax { get; init; } = DefaultLeaseMax;
    public bool LeaseMaxSet { get; init; }
    public double DurationSeconds { get; init; } = DefaultDurationSeconds;
    public double WarmupSeconds { get; init; } = DefaultWarmupSeconds;
    /// <summary>e2e only: total enqueue rate limit in jobs/s; 0 = as fast as the producers can go.</summary>
    public double Rate { get; init; }
    public bool KeepData { get; init; }
    /// <summary>"http" (a request per call) or "socket" (a message per call on one WebSocket, /v1/jobs/socket).</summary>
    public string Transport { get; init; } = "http";
    /// <summary>Npgsql connection string: the started server runs `serve --postgres` instead of SQLite.</summary>
    public string? Postgres { get; init; }
    /// <summary>True when --duration was given (w2/w3 otherwise use the issue's 20 s / 30 s).</summary>
    public bool DurationSet { get; init; }
    /// <summary>w1/w2/w3: measured runs against the same server; the table shows each figure's median (as the peers' tables do).</summary>
    public int Runs { get; init; } = DefaultRuns;
    /// <summary>Seconds of mixed load before the first workload, so the server's JIT has tiered its hot paths up.</summary>
    public double ServerWarmupSeconds { get; init; } = DefaultServerWarmupSeconds;

    public const string Usage = """
        conveyor-bench: load generator for the Conveyor HTTP API (docs/benchmarks.md)

          --workload batch|single|e2e|all|w1|w2|w3|peers|memory
                                  what to run (default all; a comma list works too); w1/w2/w3 are the
                                  workloads of issue 8 (the peers' workloads), peers = w1,w2,w3;
                                  memory = the server's RSS holding --jobs waiting jobs (use --jobs 1000000)
          --server URL            target a running server; otherwise one is started:
                                    dotnet src/Conveyor.Cli/bin/{Release|Debug}/net10.0/conveyor.dll serve --port 0 --data <temp dir>
          --conveyor PATH         the conveyor.dll (or conveyor executable) to start instead
          --jobs N                batch: jobs to enqueue (default 100000)
          --batch-size N          batch: jobs per request (default 1000); e2e: > 1 makes producers enqueue batches (default 1)
          --concurrency N         requests in flight: batch 4, single 16, e2e producers 4, w1 enqueue 4, w3 producers 8 (defaults)
          --workers N             e2e, w1, w3: leasing workers (default 4; w3 1, as the peers' W3; w2 always has 1)
          --lease-max N           e2e, w3: max jobs per lease (default e2e 100, w3 1000; w1 and w2 lease 1000)
          --duration S            single and e2e: measured seconds (default 10; w2 20, w3 30)
          --warmup S              seconds of warm-up on a separate queue before measuring (default 2; 0 = none)
          --runs N                w1, w2, w3: measured runs on the same server, each on a fresh queue, round by round
                                  (w1, w2, w3, then w1, w2, w3 again...); the table shows each figure's median, as
                                  ../shared/peers does (default 3)
          --server-warmup S       seconds of mixed load (batches, single enqueues, leases, acks) before the first
                                  workload, so the server runs tiered-up code as a long-running one does (default 10; 0 = none)
          --rate N                e2e: limit the total enqueue rate to N jobs/s (default 0 = unlimited); w2: the fixed rate (default 500)
          --transport http|socket how calls reach the server: an HTTP request each (default), or a message each on
                                  one shared WebSocket, GET /v1/jobs/socket
          --keep-data             keep the started server's data directory
          --postgres CS           start the server with `serve --postgres CS` (Npgsql connection string), in a
                                  schema of its own, dropped at the end (--keep-data keeps it)
          -h, --help
        """;

    /// <summary>Parses <paramref name="args"/>; returns null and writes a message when they are wrong.</summary>
    public static BenchOptions? Parse(string[] args, TextWriter error, out bool help)
    {
        help = false;
        var o = new BenchOptions();
        for (var i = 0; i < args.Length; i++)
        {
            var arg = args[i];
            string? inline = null;
            var eq = arg.IndexOf('=', StringComparison.Ordinal);
            if (arg.StartsWith("--", StringComparison.Ordinal) && eq > 0)
            {
                inline = arg[(eq + 1)..];
                arg = arg[..eq];
            }

            string Value()
            {
                if (inline is not null)
                {
                    return inline;
                }
                if (i + 1 >= args.Length)
                {
                    throw new FormatException($"{arg} needs a value.");
                }
                return args[++i];
            }

            try
            {
                switch (arg)
                {
                    case "-h" or "--help":
                        help = true;
                        return null;
                    case "--server":
                        var url = Value();
                        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
                        {
                            throw new FormatException($"--server '{url}' is not an http:// or https:// URL.");
                        }
                        o = o with { Server = uri };
                        break;
                    case "--conveyor": o = o with { ConveyorPath = Value() }; break;
                    case "--workload": o = o with { Workloads = ParseWorkloads(Value()) }; break;
                    case "--jobs": o = o with { Jobs = PositiveInt(arg, Value()) }; break;
                    case "--batch-size": o = o with { BatchSize = PositiveInt(arg, Value()) }; break;
                    case "--concurrency": o = o with { Concurrency = PositiveInt(arg, Value()) }; break;
                    case "--workers": o = o with { Workers = PositiveInt(arg, Value()), WorkersSet = true }; break;
                    case "--lease-max": o = o with { LeaseMax = PositiveInt(arg, Value()), LeaseMaxSet = true }; break;
                    case "--duration": o = o with { DurationSeconds = Seconds(arg, Value(), allowZero: false), DurationSet = true }; break;
                    case "--warmup": o = o with { WarmupSeconds = Seconds(arg, Value(), allowZero: true) }; break;
                    case "--rate": o = o with { Rate = Seconds(arg, Value(), allowZero: true) }; break;
                    case "--server-warmup": o = o with { ServerWarmupSeconds = Seconds(arg, Value(), allowZero: true) }; break;
                    case "--runs": o = o with { Runs = PositiveInt(arg, Value()) }; break;
                    case "--keep-data": o = o with { KeepData = true }; break;
                    case "--transport":
                        var transport = Value();
                        if (transport is not ("http" or "socket")) throw new FormatException($"--transport must be http or socket, not '{transport}'.");
                        o = o with { Transport = transport };
                        break;
                    case "--postgres": o = o with { Postgres = Value() }; break;
                    default: throw new FormatException($"unknown option '{args[i]}'.");
                }
            }
            catch (FormatException e)
            {
                error.WriteLine($"conveyor-bench: {e.Message} Try --help.");
                return null;
            }
        }
        if (o.BatchSize > 10_000)
        {
            error.WriteLine("conveyor-bench: --batch-size is at most 10000 (the server's batch limit).");
            return null;
        }
        if (o.LeaseMax > 1000)
        {
            error.WriteLine("conveyor-bench: --lease-max is at most 1000 (the server's lease limit).");
            return null;
        }
        return o;
    }

    private static string[] ParseWorkloads(string value)
    {
        var list = new List<string>();
        foreach (var part in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            switch (part)
            {
                case "all": list.AddRange(["batch", "single", "e2e"]); break;
                case "peers": list.AddRange(["w1", "w2", "w3"]); break;
                case "batch" or "single" or "e2e" or "w1" or "w2" or "w3" or "memory": list.Add(part); break;
                default: throw new FormatException($"--workload '{part}' is not one of batch, single, e2e, all, w1, w2, w3, peers, memory.");
            }
        }
        if (list.Count == 0)
        {
            throw new FormatException("--workload is empty.");
        }
        return [.. list.Distinct(StringComparer.Ordinal)];
    }

    private static int PositiveInt(string name, string value) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n > 0
            ? n
            : throw new FormatException($"{name} '{value}' is not a positive whole number.");

    private static double Seconds(string name, string value, bool allowZero) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var s) && (s > 0 || (allowZero && s == 0))
            ? s
            : throw new FormatException($"{name} '{value}' is not a {(allowZero ? "non-negative" : "positive")} number.");
}
