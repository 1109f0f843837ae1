using System.Diagnostics;
using Conveyor;
using Conveyor.Storage.Postgres;
using Conveyor.Storage.Sqlite;

// The store alone, in process, without HTTP: how fast the SQLite store inserts, leases and completes,
// so a change to the store can be measured apart from the server. Usage:
//   dotnet run -c Release --project bench/Conveyor.Bench.Store -- [jobs=100000] [batch=1000] [concurrency=1]
//   dotnet run -c Release --project bench/Conveyor.Bench.Store -- latency [rate=500] [seconds=20]
// The second form commits one job at a time at a fixed rate (W2's shape without HTTP) and prints the commit latency
// percentiles, which is where a stall of the writer (a checkpoint, a slow fsync) shows, and when the five slowest commits
// were issued. One untimed second of the same commits (another queue) goes first, so that opening the pool's connections
// and compiling the code are not counted as the store's stalls. With --consume a worker loop in
// the same process leases (up to 1,000, waiting up to 1 s) and completes the jobs meanwhile, W2's worker without HTTP,
// and the enqueue→lease latency is printed as well: the two together say whether a W2 tail is the store's or the server's.
// With --postgres "<connection string>" (anywhere in the arguments) both forms run against the PostgreSQL store in a schema
// of their own, dropped at the end, and also print the CPU the rest of the machine (the database) spent per job.
var postgres = TakeOption(ref args, "--postgres");
var consume = TakeFlag(ref args, "--consume");
var schema = $"store_bench_{DateTime.UtcNow:yyyyMMddHHmmss}_{Random.Shared.Next(10_000)}";
if (args.Length > 0 && args[0] == "latency")
{
    var rate = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 500;
    var seconds = args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 20;
    var dir = Directory.CreateTempSubdirectory("conveyor-store-latency-").FullName;
    try
    {
        await using var store = await OpenStore(dir);
        var count = rate * seconds;
        var latencies = new double[count];
        var issued = new long[count];
        var leasedAfter = new double[count];
        var leasedCount = 0;
        using var stopConsumer = new CancellationTokenSource();
        var consumer = consume ? Task.Run(async () =>
        {
            Task ack = Task.CompletedTask;
            while (leasedCount < count && !stopConsumer.IsCancellationRequested)
            {
                IReadOnlyList<Job> leased;
                try
                {
                    leased = await store.JobLeaseAvailableAsync(
                        new LeaseRequest("latency", 1000, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(1), "store-bench"), stopConsumer.Token);
                }
                catch (OperationCanceledException) { break; }
                var now = Stopwatch.GetTimestamp();
                foreach (var job in leased)
                {
                    // The payload is {"n":i}: i indexes the issue times.
                    var payload = job.PayloadJson!;
                    var n = int.Parse(payload.AsSpan(5, payload.Length - 6), System.Globalization.CultureInfo.InvariantCulture);
                    leasedAfter[n] = Stopwatch.GetElapsedTime(Volatile.Read(ref issued[n]), now).TotalMilliseconds;
                }
                leasedCount += leased.Count;
                // As W2's worker does: the acks of one lease travel while the next lease waits.
                await ack;
                if (leased.Count > 0) ack = store.JobAckManyAsync([.. leased.Select(j => AckRequest.Complete(j.Id, j.Lease!.Token, null))], CancellationToken.None).AsTask();
            }
            await ack;
        }) : Task.CompletedTask;
        var warmUntil = Stopwatch.GetTimestamp() + Stopwatch.Frequency;
        for (var i = 0; Stopwatch.GetTimestamp() < warmUntil; i++)
        {
            await store.JobInsertManyAsync([new NewJob { Queue = "latency-warm-up", PayloadJson = $"{{\"n\":{i}}}" }], CancellationToken.None);
            await Task.Delay(1000 / rate);
        }
        var startedAt = DateTime.UtcNow;
        var start = Stopwatch.GetTimestamp();
        for (var i = 0; i < count; i++)
        {
            var due = start + (long)(i * (double)Stopwatch.Frequency / rate);
            while (Stopwatch.GetTimestamp() < due) await Task.Delay(1);
            var t0 = Stopwatch.GetTimestamp();
            Volatile.Write(ref issued[i], t0);
            await store.JobInsertManyAsync([new NewJob { Queue = "latency", PayloadJson = $"{{\"n\":{i}}}" }], CancellationToken.None);
            latencies[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        }
        if (consume)
        {
            stopConsumer.CancelAfter(TimeSpan.FromSeconds(30));
            await consumer;
        }
        Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"commit latency, {count:N0} single-job commits at {rate}/s{(consume ? ", a worker leasing and completing meanwhile" : "")}: {Percentiles(latencies)}"));
        // When the slowest commits were issued (UTC), to set beside the database's log or a trace of the same minute.
        var slowest = Enumerable.Range(0, count).OrderByDescending(i => latencies[i]).Take(5)
            .Select(i => string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"#{i} at {startedAt + Stopwatch.GetElapsedTime(start, issued[i]):HH:mm:ss.fff} {latencies[i]:0.0} ms"));
        Console.WriteLine($"slowest commits: {string.Join(", ", slowest)}");
        if (consume)
        {
            Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"enqueue→lease latency, {leasedCount:N0} of {count:N0} jobs leased: {Percentiles([.. leasedAfter.Where(ms => ms > 0)])}"));
        }
    }
    finally
    {
        Directory.Delete(dir, recursive: true);
        await DropSchema();
    }
    return;
}
var jobs = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 100_000;
var batch = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 1000;
var concurrency = args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 1;
var directory = Directory.CreateTempSubdirectory("conveyor-store-bench-").FullName;
try
{
    await using var store = await OpenStore(directory);
    Console.WriteLine($"{(postgres is null ? "SQLite store, WAL + synchronous=FULL" : "PostgreSQL store, schema " + schema)}, {jobs:N0} jobs, batch {batch}, concurrency {concurrency}, payload {{\"n\": i}}");

    // An untimed round first, on a queue of its own, and a pause for the background JIT to finish its optimised (tier-1)
    // code: the figures are then the store's steady state, as in a long-running server, not the JIT's work.
    await Round("warm-up", Math.Min(jobs, 50_000), print: false);
    await Task.Delay(TimeSpan.FromSeconds(1));
    await Round("bench", jobs, print: true);

    async Task Round(string queue, int count, bool print)
    {
        var clock = Stopwatch.StartNew();
        var cpu = Cpu();
        var machine = MachineCpu();
        var next = 0;
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            while (true)
            {
                var start = Interlocked.Add(ref next, batch) - batch;
                if (start >= count) return;
                var list = new List<NewJob>(batch);
                for (var i = start; i < Math.Min(start + batch, count); i++) list.Add(new NewJob { Queue = queue, PayloadJson = $"{{\"n\":{i}}}" });
                await store.JobInsertManyAsync(list, CancellationToken.None);
            }
        })));
        var insert = clock.Elapsed;
        // CPU time per job is the steadier figure on a shared machine: wall time also counts other processes' turns.
        if (print) Console.WriteLine($"insert   {count / insert.TotalSeconds,12:N0} jobs/s  ({insert.TotalMilliseconds:N0} ms, {(Cpu() - cpu).TotalMicroseconds / count:N1} µs CPU per job{Others(cpu, machine, count)})");

        clock.Restart();
        cpu = Cpu();
        machine = MachineCpu();
        var done = 0;
        long leaseTicks = 0, ackTicks = 0;
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            while (true)
            {
                var t0 = Stopwatch.GetTimestamp();
                var leased = await store.JobLeaseAvailableAsync(new LeaseRequest(queue, batch, TimeSpan.FromMinutes(5), TimeSpan.Zero, "bench"), CancellationToken.None);
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
        if (print) Console.WriteLine($"process  {done / process.TotalSeconds,12:N0} jobs/s  ({process.TotalMilliseconds:N0} ms, {(Cpu() - cpu).TotalMicroseconds / done:N1} µs CPU per job{Others(cpu, machine, done)}, lease + complete)");
        if (print) Console.WriteLine($"         lease {Stopwatch.GetElapsedTime(0, leaseTicks).TotalMicroseconds / done:N1} µs/job, ack {Stopwatch.GetElapsedTime(0, ackTicks).TotalMicroseconds / done:N1} µs/job (wall, summed over workers)");
    }
    Console.WriteLine($"memory   {GC.GetTotalMemory(false) / 1048576.0:N0} MB managed, {Environment.WorkingSet / 1048576.0:N0} MB working set");
}
finally
{
    Directory.Delete(directory, recursive: true);
    await DropSchema();
}

async Task<IJobStore> OpenStore(string dir) => postgres is null
    ? SqliteJobStore.Open(new SqliteStoreOptions { Path = Path.Combine(dir, "conveyor.db") })
    : await PostgresJobStore.OpenAsync(new PostgresStoreOptions { ConnectionString = postgres, Schema = schema });

async Task DropSchema()
{
    if (postgres is null) return;
    await using var connection = new Npgsql.NpgsqlConnection(postgres);
    await connection.OpenAsync();
    await using var drop = new Npgsql.NpgsqlCommand($"DROP SCHEMA IF EXISTS \"{schema}\" CASCADE", connection);
    await drop.ExecuteNonQueryAsync();
}

static TimeSpan Cpu() { using var self = Process.GetCurrentProcess(); return self.TotalProcessorTime; }

// Busy CPU time of the whole machine (user + nice + system + irq + softirq from /proc/stat, in clock ticks of 10 ms).
static TimeSpan MachineCpu()
{
    var fields = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
    long busy = 0;
    foreach (var i in new[] { 1, 2, 3, 6, 7 }) busy += long.Parse(fields[i], System.Globalization.CultureInfo.InvariantCulture);
    return TimeSpan.FromMilliseconds(busy * 10);
}

// The rest of the machine's CPU over a phase: on a quiet machine, that is the database's.
string Others(TimeSpan ownStart, TimeSpan machineStart, int count) => postgres is null ? "" :
    $", others {((MachineCpu() - machineStart) - (Cpu() - ownStart)).TotalMicroseconds / count:N1} µs";

static string Percentiles(double[] milliseconds)
{
    var sorted = milliseconds.Order().ToArray();
    var n = sorted.Length;
    return string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"p50 {sorted[n / 2]:0.00} ms, p99 {sorted[(int)(n * 0.99)]:0.00} ms, p99.9 {sorted[(int)(n * 0.999)]:0.00} ms, max {sorted[^1]:0.00} ms");
}

static bool TakeFlag(ref string[] args, string name)
{
    var at = Array.IndexOf(args, name);
    if (at < 0) return false;
    args = [.. args[..at], .. args[(at + 1)..]];
    return true;
}

static string? TakeOption(ref string[] args, string name)
{
    var at = Array.IndexOf(args, name);
    if (at < 0 || at + 1 >= args.Length) return null;
    var value = args[at + 1];
    args = [.. args[..at], .. args[(at + 2)..]];
    return value;
}
