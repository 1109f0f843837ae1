using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Conveyor.Storage.Sqlite;

namespace Conveyor.Storage.Tests;

internal static class SqliteLibrarySetup
{
    /// <summary>As the server does at start: before any test of this assembly opens a SQLite connection.</summary>
    [ModuleInitializer]
    internal static void Configure() => SqliteLibrary.Configure();
}

/// <summary>
/// Multi-thread mode takes SQLite's per-connection lock away; it is safe only while no connection is used by two threads
/// at once. These tests hold the store to that with every kind of call running concurrently.
/// </summary>
public sealed class SqliteLibraryTests : IAsyncLifetime
{
    private static readonly CancellationToken None = CancellationToken.None;
    private readonly string _directory = Directory.CreateTempSubdirectory("conveyor-threads-").FullName;
    private SqliteJobStore _store = null!;

    public Task InitializeAsync()
    {
        _store = SqliteJobStore.Open(new SqliteStoreOptions { Path = Path.Combine(_directory, "conveyor.db") });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public void The_bundled_library_takes_multi_thread_mode_and_no_memory_statistics_before_its_first_connection() =>
        Assert.True(SqliteLibrary.Configure());

    [Theory]
    [InlineData("plain")]
    [InlineData("")]
    [InlineData("äöü ✓ 日本語 🚚")]
    [InlineData(null)]
    public void A_raw_statement_binds_and_reads_back_text_numbers_and_nulls_through_the_native_calls(string? text)
    {
        using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(_directory, "raw.db")};Pooling=False");
        connection.Open();
        // Past the 512-byte stack buffer as well: a long value is encoded into a pooled array.
        var longText = text is null ? null : string.Concat(Enumerable.Repeat(text + "|", 400));
        using var statement = new RawStatement(connection, "SELECT ?1, ?2, ?3, ?4");
        statement.Bind(1, text).Bind(2, longText).Bind(3, long.MaxValue).Bind(4, -7);
        for (var round = 0; round < 2; round++) // a reset statement binds and steps again
        {
            Assert.True(statement.StepRow());
            var row = statement.Row;
            Assert.Equal(text is null, row.IsDBNull(0));
            Assert.Equal(text is null, row.IsDBNull(1));
            if (text is not null)
            {
                Assert.Equal(text, row.GetString(0));
                Assert.Equal(longText, row.GetString(1));
            }
            Assert.Equal(long.MaxValue, row.GetInt64(2));
            Assert.Equal(-7, row.GetInt32(3));
            Assert.False(statement.StepRow());
            statement.Reset();
        }
    }

    [Fact]
    public async Task Concurrent_producers_workers_and_readers_finish_every_job_exactly_once()
    {
        const int producers = 6, perProducer = 400, workers = 4, total = producers * perProducer;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var completed = new ConcurrentDictionary<long, int>();
        var inserted = new ConcurrentBag<long>();

        var producing = Enumerable.Range(0, producers).Select(p => Task.Run(async () =>
        {
            var i = 0;
            while (i < perProducer)
            {
                // Mostly single inserts, now and then a small batch, as HTTP producers send them.
                var size = i % 50 == 0 ? 10 : 1;
                var jobs = Enumerable.Range(i, size)
                    .Select(n => new NewJob { Queue = "threads", PayloadJson = $$"""{"p":{{p}},"n":{{n}}}""", Tags = ["t"] }).ToList();
                i += size;
                foreach (var job in await _store.JobInsertManyAsync(jobs, timeout.Token)) inserted.Add(job.Id);
            }
        })).ToArray();

        var working = Enumerable.Range(0, workers).Select(w => Task.Run(async () =>
        {
            while (completed.Count < total)
            {
                var leased = await _store.JobLeaseAvailableAsync(
                    new LeaseRequest("threads", 1 + w * 7, TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(200), $"w{w}"), timeout.Token);
                if (leased.Count == 0) continue;
                var outcomes = await _store.JobAckManyAsync(
                    [.. leased.Select(j => new AckRequest { Id = j.Id, LeaseToken = j.Lease!.Token, ResultJson = """{"ok":true}""" })], timeout.Token);
                foreach (var outcome in outcomes)
                {
                    Assert.Equal(OutcomeStatus.Ok, outcome.Status);
                    completed.AddOrUpdate(outcome.Id, 1, (_, n) => n + 1);
                }
            }
        })).ToArray();

        // Readers on their own connections meanwhile: single reads, searches, counts.
        using var stopReading = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
        var reads = 0;
        var reading = Enumerable.Range(0, 3).Select(r => Task.Run(async () =>
        {
            while (!stopReading.IsCancellationRequested)
            {
                if (inserted.TryPeek(out var id)) Assert.NotNull(await _store.JobGetAsync(id, None));
                await _store.JobSearchAsync(new JobQuery { Queue = "threads", Tag = r == 0 ? "t" : null, Limit = 20 }, None);
                await _store.StatsAsync(None);
                Interlocked.Increment(ref reads);
            }
        })).ToArray();

        await Task.WhenAll(producing);
        await Task.WhenAll(working);
        await stopReading.CancelAsync();
        await Task.WhenAll(reading);

        Assert.Equal(total, inserted.Count);
        Assert.Equal(total, completed.Count);
        Assert.All(completed.Values, n => Assert.Equal(1, n));
        Assert.True(reads > 0);
        var queue = Assert.Single(await _store.QueueListAsync(None), q => q.Name == "threads");
        Assert.Equal(total, queue.Counts.Completed);
        Assert.Equal(0, queue.Counts.Available + queue.Counts.Running);
    }
}
