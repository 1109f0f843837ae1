using System.Diagnostics;
using System.Globalization;
using Conveyor.Bench.Floor;

// The floor under each store on this machine, measured the same hour as the workloads: the raw statements a queue cannot
// do without (insert, claim, update by id, a one-row commit), in process, with no HTTP and no job model. Issue 8 states its
// targets against such floors; the machine's speed drifts from day to day, so the ratios are only honest within one hour.
//   dotnet bench/Conveyor.Bench.Floor/bin/Release/net10.0/Conveyor.Bench.Floor.dll [rows=100000] [--postgres "<cs>"] [--concurrency N]
var postgres = Option(ref args, "--postgres");
var concurrencyText = Option(ref args, "--concurrency");
int rows;
int? concurrency;
try
{
    rows = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 100_000;
    concurrency = concurrencyText is null ? null : int.Parse(concurrencyText, CultureInfo.InvariantCulture);
    if (rows < FloorRun.RowsPerTransaction || concurrency < 1) throw new FormatException();
}
catch (FormatException)
{
    Console.Error.WriteLine($"usage: Conveyor.Bench.Floor [rows >= {FloorRun.RowsPerTransaction}] [--postgres \"<Npgsql connection string>\"] [--concurrency N >= 1]");
    return 2;
}

var directory = Directory.CreateTempSubdirectory("conveyor-floor-").FullName;
try
{
    // SQLite has one writer, so more connections only queue on its lock: one loop unless told otherwise.
    await SqliteFloor.RunAsync(Path.Combine(directory, "floor.db"), rows, concurrency ?? 1);
    if (postgres is not null) await PostgresFloor.RunAsync(postgres, rows, concurrency ?? 4);
    return 0;
}
finally
{
    Directory.Delete(directory, recursive: true);
}

static string? Option(ref string[] args, string name)
{
    var at = Array.IndexOf(args, name);
    if (at < 0) return null;
    if (at + 1 >= args.Length)
    {
        Console.Error.WriteLine($"{name} needs a value");
        Environment.Exit(2);
    }
    var value = args[at + 1];
    args = [.. args[..at], .. args[(at + 2)..]];
    return value;
}

namespace Conveyor.Bench.Floor
{
    internal static class FloorRun
    {
        public const int RowsPerTransaction = 1000;

        /// <summary>Runs <paramref name="step"/> on <paramref name="loops"/> loops until it returns 0; prints rows/s and CPU per row.</summary>
        public static async Task<double> MeasureAsync(string label, int loops, Func<int, Task<int>> step)
        {
            var cpu = Cpu();
            var clock = Stopwatch.StartNew();
            var counts = await Task.WhenAll(Enumerable.Range(0, loops).Select(loop => Task.Run(async () =>
            {
                var done = 0;
                for (int n; (n = await step(loop)) > 0;) done += n;
                return done;
            })));
            var elapsed = clock.Elapsed;
            var total = counts.Sum();
            var rate = total / elapsed.TotalSeconds;
            Console.WriteLine($"  {label,-48} {rate,10:N0} rows/s  ({total:N0} rows in {elapsed.TotalMilliseconds:N0} ms, {(Cpu() - cpu).TotalMicroseconds / total:N1} µs CPU per row in this process)");
            return rate;
        }

        /// <summary>One-row commits, one after the other, paced so the disk is not queued: p50 and p99.</summary>
        public static async Task CommitLatencyAsync(string label, Func<int, Task> commitOne)
        {
            const int samples = 400;
            var times = new double[samples];
            for (var i = 0; i < samples; i++)
            {
                var started = Stopwatch.GetTimestamp();
                await commitOne(i);
                times[i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                await Task.Delay(2);
            }
            Array.Sort(times);
            Console.WriteLine($"  {label,-48} p50 {times[samples / 2]:0.00} ms, p99 {times[samples * 99 / 100]:0.00} ms ({samples} commits, 2 ms apart)");
        }

        /// <summary>Hands out the next rows to a loop: 1-based, at most 1,000; an empty range once all rows are taken.</summary>
        public static (int From, int Count) Take(ref int next, int rows)
        {
            var end = Interlocked.Add(ref next, RowsPerTransaction);
            var from = end - RowsPerTransaction + 1;
            return from > rows ? (0, 0) : (from, Math.Min(RowsPerTransaction, rows - from + 1));
        }

        /// <summary>The harmonic combination: rows/s of doing one step and then the other for every row.</summary>
        public static double Combined(double a, double b) => 1 / (1 / a + 1 / b);

        private static TimeSpan Cpu()
        {
            using var self = Process.GetCurrentProcess();
            return self.TotalProcessorTime;
        }
    }
}
