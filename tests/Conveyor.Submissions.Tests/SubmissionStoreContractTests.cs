using System.Text;
using Conveyor.Submissions.Postgres;
using Conveyor.Submissions.Sqlite;
using Microsoft.Extensions.Time.Testing;

namespace Conveyor.Submissions.Tests;

/// <summary>One suite every submission store passes; SQLite and PostgreSQL subclass it.</summary>
public abstract class SubmissionStoreContractTests : IAsyncLifetime
{
    private static int _queues;
    private static readonly TimeSpan Lease = TimeSpan.FromMinutes(1);

    protected FakeTimeProvider Time { get; } = new(new DateTimeOffset(2026, 11, 23, 12, 0, 0, TimeSpan.Zero));

    protected ISubmissionStore Store { get; private set; } = null!;

    protected abstract Task<ISubmissionStore> OpenAsync();

    public async Task InitializeAsync() => Store = await OpenAsync();

    public virtual async Task DisposeAsync() => await Store.DisposeAsync();

    private static string Queue() => $"sq{Interlocked.Increment(ref _queues)}";

    private static async IAsyncEnumerable<ChunkBody> Chunks(int count, Func<int, ChunkBody>? body = null)
    {
        for (var i = 0; i < count; i++)
        {
            yield return body?.Invoke(i) ?? ChunkBody.Json(Encoding.UTF8.GetBytes($"{{\"n\":{i}}}"));
        }
        await Task.CompletedTask;
    }

    private Task<Submission> Create(string queue, int chunks, int retries = 10, Dictionary<string, long>? labels = null, string? prefix = null,
        SubmissionCallback? callback = null) =>
        Store.CreateAsync(new NewSubmission
        {
            Queue = queue,
            ChunkSize = 100,
            Labels = labels ?? [],
            MaxChunkRetries = retries,
            Prefix = prefix,
            OnComplete = callback,
            MetadataJson = """{"b": 2, "a": 1}""",
        }, Chunks(chunks, prefix is null ? null : _ => ChunkBody.InObjectStore), CancellationToken.None).AsTask();

    private Task<IReadOnlyList<ReservedChunk>> Reserve(string queue, int max = 1, SubmissionOrder order = SubmissionOrder.Oldest, string? distinct = null, string? owner = null) =>
        Store.ReserveAsync(new ReserveRequest(queue, max, Lease) { Order = order, PreferDistinct = distinct, Owner = owner }, CancellationToken.None).AsTask();

    private Task<ChunkOutcome> Complete(ReservedChunk chunk, string? result = null) =>
        Store.CompleteAsync(new ChunkCompletion(chunk.SubmissionId, chunk.Index, chunk.LeaseToken)
        {
            Result = result is null ? ChunkBody.None : ChunkBody.Json(Encoding.UTF8.GetBytes(result)),
        }, CancellationToken.None).AsTask();

    [Fact]
    public async Task Results_come_back_in_chunk_order_whatever_order_chunks_finish_in()
    {
        var queue = Queue();
        var submission = await Create(queue, 2_500);
        Assert.Equal(2_500, submission.ChunksTotal);
        var reserved = new List<ReservedChunk>();
        while ((await Reserve(queue, 300)) is { Count: > 0 } batch) reserved.AddRange(batch);
        Assert.Equal(2_500, reserved.Count);
        Assert.Equal("{\"n\":7}", Encoding.UTF8.GetString(reserved.Single(c => c.Index == 7).Body.Bytes.Span));
        reserved.Reverse();
        foreach (var chunk in reserved) Assert.True((await Complete(chunk, $"{{\"r\":{chunk.Index}}}")).IsOk);

        var done = await Store.GetAsync(submission.Id, CancellationToken.None);
        Assert.Equal(SubmissionState.Completed, done!.State);
        Assert.Equal(2_500, done.ChunksDone);
        Assert.Equal(250_000, done.OperationsDone);
        Assert.NotNull(done.FinishedAt);
        var index = 0L;
        await foreach (var result in Store.ReadResultsAsync(submission.Id, CancellationToken.None))
        {
            Assert.Equal(index, result.Index);
            Assert.Equal($"{{\"r\":{index}}}", Encoding.UTF8.GetString(result.Result.Bytes.Span));
            index++;
        }
        Assert.Equal(2_500, index);
    }

    [Fact]
    public async Task A_submission_without_chunks_is_completed_at_once()
    {
        var submission = await Create(Queue(), 0);
        Assert.Equal(SubmissionState.Completed, submission.State);
        Assert.Equal(0, submission.ChunksTotal);
        Assert.NotNull(submission.FinishedAt);
    }

    [Fact]
    public async Task A_failing_chunk_stream_leaves_no_submission_behind()
    {
        var queue = Queue();
        await Assert.ThrowsAsync<InvalidOperationException>(() => Store.CreateAsync(new NewSubmission { Queue = queue }, Broken(), CancellationToken.None).AsTask());
        Assert.Empty(await Store.FindAsync(new SubmissionQuery { Queue = queue }, CancellationToken.None));
        Assert.Empty(await Reserve(queue, 10));

        static async IAsyncEnumerable<ChunkBody> Broken()
        {
            for (var i = 0; i < 1_500; i++) yield return ChunkBody.Binary(new byte[] { 1, 2, 3 });
            await Task.CompletedTask;
            throw new InvalidOperationException("the upload broke");
        }
    }

    [Fact]
    public async Task A_chunk_that_exhausts_its_retries_fails_the_submission_and_the_rest_are_skipped()
    {
        var queue = Queue();
        var submission = await Create(queue, 5, retries: 2);
        var chunk = Assert.Single(await Reserve(queue));
        var other = Assert.Single(await Reserve(queue));
        for (var attempt = 1; attempt <= 3; attempt++)
        {
            Assert.Equal(0, chunk.Index);
            Assert.Equal(attempt, chunk.Attempt);
            Assert.True((await Store.FailAsync(new ChunkFailure(chunk.SubmissionId, chunk.Index, chunk.LeaseToken, $"boom {attempt}"), CancellationToken.None)).IsOk);
            // A retried chunk goes first again: the lowest ready index wins.
            if (attempt < 3) chunk = Assert.Single(await Reserve(queue));
        }
        var failed = await Store.GetAsync(submission.Id, CancellationToken.None);
        Assert.Equal(SubmissionState.Failed, failed!.State);
        Assert.Equal(0, failed.FailedChunkIndex);
        Assert.Equal("boom 3", failed.FailedChunkError);
        Assert.Equal(1, failed.ChunksFailed);
        Assert.Empty(await Reserve(queue, 10));
        var late = await Complete(other, "{}");
        Assert.Equal(ChunkOutcomeStatus.Skipped, late.Status);
        Assert.Equal(0, (await Store.GetAsync(submission.Id, CancellationToken.None))!.ChunksDone);
    }

    [Fact]
    public async Task Completing_a_finished_chunk_again_changes_nothing_and_counts_nothing()
    {
        var queue = Queue();
        var submission = await Create(queue, 2);
        var chunk = Assert.Single(await Reserve(queue));
        Assert.True((await Complete(chunk, "1")).IsOk);
        var again = await Complete(chunk, "2");
        Assert.Equal(ChunkOutcomeStatus.AlreadyFinished, again.Status);
        var after = await Store.GetAsync(submission.Id, CancellationToken.None);
        Assert.Equal(1, after!.ChunksDone);
        Assert.Equal(SubmissionState.InProgress, after.State);
        var stale = await Store.CompleteAsync(new ChunkCompletion(submission.Id, 1, "not-a-token"), CancellationToken.None);
        Assert.Equal(ChunkOutcomeStatus.StaleLease, stale.Status);
    }

    [Fact]
    public async Task Cancel_skips_the_remaining_chunks_and_a_second_cancel_reports_the_terminal_state()
    {
        var queue = Queue();
        var submission = await Create(queue, 3);
        var held = Assert.Single(await Reserve(queue));
        var cancelled = await Store.CancelAsync(submission.Id, CancellationToken.None);
        Assert.Equal(CancelStatus.Cancelled, cancelled.Status);
        Assert.Equal(SubmissionState.Cancelled, cancelled.Submission!.State);
        Assert.Empty(await Reserve(queue, 10));
        Assert.Equal(ChunkOutcomeStatus.Skipped, (await Complete(held)).Status);
        var again = await Store.CancelAsync(submission.Id, CancellationToken.None);
        Assert.Equal(CancelStatus.AlreadyTerminal, again.Status);
        Assert.Equal(SubmissionState.Cancelled, again.Submission!.State);
        Assert.Equal(CancelStatus.NotFound, (await Store.CancelAsync(999_999, CancellationToken.None)).Status);
    }

    [Fact]
    public async Task Lookups_find_submissions_by_label_state_prefix_and_queue()
    {
        var queue = Queue();
        var a = await Create(queue, 1, labels: new() { ["company_id"] = 42, ["region"] = 1 });
        var b = await Create(queue, 0, labels: new() { ["company_id"] = 42 });
        var c = await Create(queue, 1, labels: new() { ["company_id"] = 7 }, prefix: $"{queue}/in");
        async Task<long[]> Find(SubmissionQuery query) => [.. (await Store.FindAsync(query, CancellationToken.None)).Select(s => s.Id)];

        Assert.Equal([b.Id, a.Id], await Find(new SubmissionQuery { Labels = new Dictionary<string, long> { ["company_id"] = 42 } }));
        Assert.Equal([a.Id], await Find(new SubmissionQuery { Labels = new Dictionary<string, long> { ["company_id"] = 42 }, State = SubmissionState.InProgress }));
        Assert.Equal([a.Id], await Find(new SubmissionQuery { Labels = new Dictionary<string, long> { ["company_id"] = 42, ["region"] = 1 } }));
        Assert.Equal([c.Id], await Find(new SubmissionQuery { Prefix = $"{queue}/in" }));
        Assert.Equal([c.Id, b.Id, a.Id], await Find(new SubmissionQuery { Queue = queue }));
        Assert.Equal([b.Id], await Find(new SubmissionQuery { Queue = queue, State = SubmissionState.Completed }));
        Assert.Equal([b.Id, a.Id], await Find(new SubmissionQuery { Queue = queue, BeforeId = c.Id }));
        var read = await Store.GetAsync(a.Id, CancellationToken.None);
        Assert.Equal(42, read!.Labels["company_id"]);
        Assert.Equal("""{"b": 2, "a": 1}""", read.MetadataJson);
    }

    [Fact]
    public async Task Oldest_and_newest_take_chunks_from_the_oldest_or_newest_submission()
    {
        var queue = Queue();
        var first = await Create(queue, 2);
        await Create(queue, 2);
        var last = await Create(queue, 2);
        Assert.Equal(first.Id, Assert.Single(await Reserve(queue)).SubmissionId);
        Assert.Equal(last.Id, Assert.Single(await Reserve(queue, order: SubmissionOrder.Newest)).SubmissionId);
        // A reservation larger than one submission moves on to the next one in order.
        var many = await Reserve(queue, 3);
        Assert.Equal([(first.Id, 1L), (first.Id + 1, 0L), (first.Id + 1, 1L)], many.Select(c => (c.SubmissionId, c.Index)));
    }

    [Fact]
    public async Task Random_picks_a_different_submission_across_calls()
    {
        var queue = Queue();
        for (var i = 0; i < 30; i++) await Create(queue, 1);
        var picked = new HashSet<long>();
        for (var i = 0; i < 20; i++)
        {
            var chunk = Assert.Single(await Reserve(queue, order: SubmissionOrder.Random));
            picked.Add(chunk.SubmissionId);
            Assert.True((await Store.ReleaseAsync(chunk.SubmissionId, chunk.Index, chunk.LeaseToken, CancellationToken.None)).IsOk);
        }
        Assert.True(picked.Count > 1, $"20 random reservations all took submission {string.Join(",", picked)}");
    }

    [Fact]
    public async Task Prefer_distinct_spreads_reservations_across_label_values()
    {
        var queue = Queue();
        // Company 1 submitted first and a lot: with oldest-first alone it would take every consumer.
        for (var i = 0; i < 4; i++) await Create(queue, 10, labels: new() { ["company_id"] = 1 });
        await Create(queue, 10, labels: new() { ["company_id"] = 2 });
        await Create(queue, 10, labels: new() { ["company_id"] = 3 });

        var oneCall = await Reserve(queue, 3, distinct: "company_id");
        Assert.Equal([1L, 2L, 3L], oneCall.Select(c => c.Labels["company_id"]).Order());

        // Separate consumers, one chunk each: every company has one in flight, so the next three spread again.
        var separate = new List<long>();
        for (var i = 0; i < 3; i++) separate.Add(Assert.Single(await Reserve(queue, distinct: "company_id")).Labels["company_id"]);
        Assert.Equal([1L, 2L, 3L], separate.Order());

        // Composable: with newest-first, company 3 (the newest submission) goes first among equals.
        Assert.Equal(3L, Assert.Single(await Reserve(queue, order: SubmissionOrder.Newest, distinct: "company_id")).Labels["company_id"]);
        // Without prefer-distinct, oldest-first stays with company 1.
        Assert.Equal([1L, 1L, 1L], (await Reserve(queue, 3)).Select(c => c.Labels["company_id"]));
    }

    [Fact]
    public async Task Releasing_a_connections_reservations_hands_them_back_without_counting_an_attempt()
    {
        var queue = Queue();
        var submission = await Create(queue, 3, retries: 0);
        Assert.Equal(3, (await Reserve(queue, 3, owner: "ws-1")).Count);
        Assert.Equal(3, await Store.ReleaseOwnerAsync("ws-1", CancellationToken.None));
        Assert.Equal(0, await Store.ReleaseOwnerAsync("ws-1", CancellationToken.None));
        var again = await Reserve(queue, 3);
        Assert.Equal([1, 1, 1], again.Select(c => c.Attempt));
        var read = await Store.GetAsync(submission.Id, CancellationToken.None);
        Assert.Equal(SubmissionState.InProgress, read!.State);
        Assert.Equal(3, read.ChunksReserved);
        Assert.Equal(0, read.ChunksReady);
    }

    [Fact]
    public async Task An_expired_reservation_counts_as_a_failed_attempt()
    {
        var queue = Queue();
        var submission = await Create(queue, 1, retries: 1);
        var first = Assert.Single(await Reserve(queue));
        Time.Advance(Lease + TimeSpan.FromSeconds(1));
        Assert.Equal(1, await Store.ReclaimExpiredAsync(CancellationToken.None));
        Assert.Equal(ChunkOutcomeStatus.StaleLease, (await Complete(first)).Status);
        var second = Assert.Single(await Reserve(queue));
        Assert.Equal(2, second.Attempt);
        Assert.True((await Store.HeartbeatAsync(second.SubmissionId, second.Index, second.LeaseToken, Lease * 2, CancellationToken.None)).IsOk);
        Time.Advance(Lease + TimeSpan.FromSeconds(1));
        Assert.Equal(0, await Store.ReclaimExpiredAsync(CancellationToken.None));
        Time.Advance(Lease);
        Assert.Equal(1, await Store.ReclaimExpiredAsync(CancellationToken.None));
        var failed = await Store.GetAsync(submission.Id, CancellationToken.None);
        Assert.Equal(SubmissionState.Failed, failed!.State);
        Assert.Equal("lease expired", failed.FailedChunkError);
    }

    [Fact]
    public async Task The_next_lease_expiry_is_the_earliest_reservation_s_and_follows_heartbeats_and_finishes()
    {
        var queue = Queue();
        Assert.Null(await Store.NextLeaseExpiryAsync(CancellationToken.None));
        await Create(queue, 2);
        var start = Time.GetUtcNow();
        var first = Assert.Single(await Reserve(queue));
        Time.Advance(TimeSpan.FromSeconds(10));
        var second = Assert.Single(await Reserve(queue));
        Assert.Equal(start + Lease, await Store.NextLeaseExpiryAsync(CancellationToken.None));

        Assert.True((await Store.HeartbeatAsync(first.SubmissionId, first.Index, first.LeaseToken, Lease * 2, CancellationToken.None)).IsOk);
        Assert.Equal(start + TimeSpan.FromSeconds(10) + Lease, await Store.NextLeaseExpiryAsync(CancellationToken.None));
        Assert.True((await Complete(second)).IsOk);
        Assert.Equal(start + TimeSpan.FromSeconds(10) + Lease * 2, await Store.NextLeaseExpiryAsync(CancellationToken.None));
        Assert.True((await Complete(first)).IsOk);
        Assert.Null(await Store.NextLeaseExpiryAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Object_store_chunks_are_handed_out_by_key_and_their_results_stay_there()
    {
        var queue = Queue();
        var submission = await Create(queue, 2, prefix: $"{queue}/batch");
        var chunks = await Reserve(queue, 2);
        Assert.Equal([$"{queue}/batch/0-in.bin", $"{queue}/batch/1-in.bin"], chunks.Select(c => c.InputKey));
        foreach (var chunk in chunks)
        {
            await Store.CompleteAsync(new ChunkCompletion(chunk.SubmissionId, chunk.Index, chunk.LeaseToken) { Result = ChunkBody.InObjectStore, Operations = 7 }, CancellationToken.None);
        }
        var results = new List<string?>();
        await foreach (var result in Store.ReadResultsAsync(submission.Id, CancellationToken.None)) results.Add(result.OutputKey);
        Assert.Equal([$"{queue}/batch/0-out.bin", $"{queue}/batch/1-out.bin"], results);
        Assert.Equal(14, (await Store.GetAsync(submission.Id, CancellationToken.None))!.OperationsDone);
    }

    [Fact]
    public async Task A_callback_is_due_once_the_submission_completes_or_fails_until_it_is_recorded_as_enqueued()
    {
        var queue = Queue();
        var callback = new SubmissionCallback("done", "report", """{"to":"ops"}""");
        var completes = await Create(queue, 1, callback: callback);
        var fails = await Create(queue, 1, retries: 0, callback: callback);
        var cancelled = await Create(queue, 1, callback: callback);
        async Task<long[]> Due() => [.. (await Store.CallbacksDueAsync(100, CancellationToken.None)).Where(s => s.Queue == queue).Select(s => s.Id)];
        Assert.Empty(await Due());

        Assert.True((await Complete(Assert.Single(await Reserve(queue)))).IsOk);
        var failing = Assert.Single(await Reserve(queue));
        await Store.FailAsync(new ChunkFailure(failing.SubmissionId, failing.Index, failing.LeaseToken, "no"), CancellationToken.None);
        await Store.CancelAsync(cancelled.Id, CancellationToken.None);
        Assert.Equal([completes.Id, fails.Id], await Due());
        var due = (await Store.CallbacksDueAsync(100, CancellationToken.None)).First(s => s.Id == completes.Id);
        Assert.Equal(callback, due.OnComplete);

        await Store.CallbackDoneAsync(completes.Id, CancellationToken.None);
        Assert.Equal([fails.Id], await Due());
    }

    [Fact]
    public async Task Retention_deletes_finished_submissions_older_than_the_cutoff_with_their_chunks()
    {
        var queue = Queue();
        var finished = await Create(queue, 1);
        var running = await Create(queue, 1);
        Assert.True((await Complete(Assert.Single(await Reserve(queue)))).IsOk);
        await Store.CancelAsync(running.Id, CancellationToken.None);
        var young = await Create(queue, 0);
        Time.Advance(TimeSpan.FromHours(2));
        var fresh = await Create(queue, 0);
        var unfinished = await Create(queue, 1);

        var deleted = await Store.DeleteFinishedAsync(Time.GetUtcNow() - TimeSpan.FromHours(1), 100, CancellationToken.None);
        Assert.True(deleted >= 3);
        Assert.Null(await Store.GetAsync(finished.Id, CancellationToken.None));
        Assert.Null(await Store.GetAsync(running.Id, CancellationToken.None));
        Assert.Null(await Store.GetAsync(young.Id, CancellationToken.None));
        Assert.NotNull(await Store.GetAsync(fresh.Id, CancellationToken.None));
        Assert.NotNull(await Store.GetAsync(unfinished.Id, CancellationToken.None));
        var results = 0;
        await foreach (var _ in Store.ReadResultsAsync(finished.Id, CancellationToken.None)) results++;
        Assert.Equal(0, results);
    }
}

public sealed class SqliteSubmissionStoreTests : SubmissionStoreContractTests
{
    private readonly string _directory = Directory.CreateTempSubdirectory("conveyor-submissions-").FullName;

    protected override Task<ISubmissionStore> OpenAsync() =>
        Task.FromResult<ISubmissionStore>(SqliteSubmissionStore.Open(new SqliteSubmissionStoreOptions { Path = Path.Combine(_directory, "submissions.db"), TimeProvider = Time }));

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }
}

public sealed class PostgresSubmissionStoreTests : SubmissionStoreContractTests
{
    private readonly string _schema = TestPostgres.UniqueSchema("submissions");

    protected override async Task<ISubmissionStore> OpenAsync() => await PostgresSubmissionStore.OpenAsync(new PostgresSubmissionStoreOptions
    {
        ConnectionString = TestPostgres.ConnectionString,
        Schema = _schema,
        TimeProvider = Time,
    });

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await TestPostgres.DropSchemaAsync(_schema);
    }
}
