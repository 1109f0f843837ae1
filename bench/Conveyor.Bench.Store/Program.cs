using System.Diagnostics;
using Conveyor;
using Conveyor.Storage.Sqlite;

// The store alone, in process, without HTTP: how fast the SQLite store inserts, leases and completes,
// so a change to the store can be measured apart from the server. Usage:
//   dotnet run -c Release --project bench/Conveyor.Bench.Store -- [jobs=100000] [batch=1000] [concurrency=1]
//   dotnet run -c Release --project bench/Conveyor.Bench.Store -- latency [rate=500] [seconds=20]
// The second form commits one job at a time at a fixed rate (W2's shape without HTTP) and prints the commit latency
// percentiles, which is where a stall of the writer (a checkpoint, a slow fsync) shows.
if (args.Length > 0 && args[0] == "latency")
{
    var rate = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 500;
    var seconds = args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 20;
    var dir = Directory.CreateTempSubdirectory("conveyor-store-latency-").FullName;
    try
    {
        await using var store = SqliteJobStore.Open(new SqliteStoreOptions { Path = Path.Combine(dir, "conveyor.db") });
        var count = rate * seconds;
        var latencies = new double[count];
        var start = Stopwatch.GetTimestamp();
        for (var i = 0; i < count; i++)
        {
            var due = start + (long)(i * (double)Stopwatch.Frequency / rate);
            while (Stopwatch.GetTimestamp() < due) await Task.Delay(1);
            var t0 = Stopwatch.GetTimestamp();
            await store.JobInsertManyAsync([new NewJob { Queue = "latency", PayloadJson = $"{{\"n\":{i}}}" }], CancellationToken.None);
            latencies[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        }
        Array.Sort(latencies);
        Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"commit latency, {count:N0} single-job commits at {rate}/s: p50 {latencies[count / 2]:0.00} ms, p99 {latencies[(int)(count * 0.99)]:0.00} ms, p99.9 {latencies[(int)(count * 0.999)]:0.00} ms, max {latencies[^1]:0.00} ms"));
    }
    finally
    {
        Directory.Delete(dir, recursive: true);
    }
    return;
}
var jobs = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 100_000;
var batch = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 1000;
var concurrency = args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 1;
var directory = Directory.CreateTempSubdirectory("conveyor-store-bench-").FullName;
try
{
    await using var store = SqliteJobStore.Open(new SqliteStoreOptions { Path = Path.Combine(directory, "conveyor.db") });
    Console.WriteLine($"SQLite store, WAL + synchronous=FULL, {jobs:N0} jobs, batch {batch}, concurrency {concurrency}, payload {{\"n\": i}}");

    var self = Process.GetCurrentProcess();
    TimeSpan Cpu() { self.Refresh(); return self.TotalProcessorTime; }
    var clock = Stopwatch.StartNew();
    var cpu = Cpu();
    var next = 0;
    await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
    {
        while (true)
        {
            var start = Interlocked.Add(ref next, batch) - batch;
            if (start >= jobs) return;
            var list = new List<NewJob>(batch);
            for (var i = start; i < Math.Min(start + batch, jobs); i++) list.Add(new NewJob { Queue = "bench", PayloadJson = $"{{\"n\":{i}}}" });
            await store.JobInsertManyAsync(list, CancellationToken.None);
        }
    })));
    var insert = clock.Elapsed;
    // CPU time per job is the steadier figure on a shared machine: wall time also counts other processes' turns.
    Console.WriteLine($"insert   {jobs / insert.TotalSeconds,12:N0} jobs/s  ({insert.TotalMilliseconds:N0} ms, {(Cpu() - cpu).TotalMicroseconds / jobs:N1} µs CPU per job)");

    clock.Restart();
    cpu = Cpu();
    var done = 0;
    long leaseTicks = 0, ackTicks = 0;
    await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
    {
        while (true)
        {
            var t0 = Stopwatch.GetTimestamp();
            var leased = await store.JobLeaseAvailableAsync(new LeaseRequest("bench", batch, TimeSpan.FromMinutes(5), TimeSpan.Zero, "bench"), CancellationToken.None);
            if (leased.Count == 0) return;
            var t1 = Stopwatch.GetTimestamp();
            var acks = leased.Select(j => AckRequest.Complete(j.Id, j.Lease!.Token)).ToList();
            var outcomes = await store.JobAckManyAsync(acks, CancellationToken.None);
            Interlocked.Add(ref leaseTicks, t1 - t0);
            Interlocked.Add(ref ackTicks, Stopwatch.GetTimestamp() - t1);
            if (outcomes.Any(o => !o.IsOk)) throw new InvalidOperationException("an ack failed");
            Interlocked.Add(ref done, leased.Count);
        }
    })));
    var process = clock.Elapsed;
    Console.WriteLine($"process  {done / process.TotalSeconds,12:N0} jobs/s  ({process.TotalMilliseconds:N0} ms, {(Cpu() - cpu).TotalMicroseconds / done:N1} µs CPU per job, lease + complete)");
    Console.WriteLine($"         lease {Stopwatch.GetElapsedTime(0, leaseTicks).TotalMicroseconds / done:N1} µs/job, ack {Stopwatch.GetElapsedTime(0, ackTicks).TotalMicroseconds / done:N1} µs/job (wall, summed over workers)");
    Console.WriteLine($"memory   {GC.GetTotalMemory(false) / 1048576.0:N0} MB managed, {Environment.WorkingSet / 1048576.0:N0} MB working set");
}
finally
{
    Directory.Delete(directory, recursive: true);
}
