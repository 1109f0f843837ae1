using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Conveyor.Client.Tests;

/// <summary>
/// Submissions through the SDK against a real server (SQLite, directory object store): streamed submit, chunk
/// workers, waiting with progress, results in order, cancel, lookups, object-store bodies. Every wait is bounded.
/// </summary>
public sealed class SubmissionTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private ConveyorClient Client => server.Client;

    [Theory]
    [InlineData(ChunkWorkerTransport.WebSocket)]
    [InlineData(ChunkWorkerTransport.Http)]
    public async Task Chunks_streamed_from_an_async_enumerable_are_worked_and_read_back_in_order_with_progress(ChunkWorkerTransport transport)
    {
        var queue = ServerFixture.UniqueQueue("sums");
        const int Count = 40;
        var produced = 0;
        async IAsyncEnumerable<Numbers> Produce([EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            for (var i = 0; i < Count; i++)
            {
                await Task.Yield();
                Interlocked.Increment(ref produced);
                yield return new Numbers([i, i, 1]);
            }
        }

        var submitted = await Client.SubmitAsync(
            queue,
            Produce(),
            SubmissionTestJson.Default.Numbers,
            new SubmissionOptions { ChunkSize = 3, Labels = new Dictionary<string, long> { ["company_id"] = 42 }, Metadata = Json("""{"file":"a.csv"}""") },
            Limits.Token);
        Assert.Equal((Count, "in_progress", Count), (produced, submitted.State, (int)submitted.ChunksTotal));
        Assert.Equal(42, submitted.Labels["company_id"]);
        Assert.Equal("a.csv", submitted.Metadata!.Value.GetProperty("file").GetString());

        using var host = WorkerHost(s => s.AddConveyorChunkWorker<Numbers, Sum>(
            queue,
            (numbers, chunk, _) => Task.FromResult(new Sum(chunk.Index, numbers!.Values.Sum())),
            SubmissionTestJson.Default.Numbers,
            SubmissionTestJson.Default.Sum,
            o => { o.Concurrency = 4; o.PollWait = TimeSpan.FromMilliseconds(200); o.Transport = transport; }));
        await host.StartAsync(Limits.Token);

        var seen = new SynchronousProgress();
        var done = await Client.WaitForSubmissionAsync(submitted.Id, Limits.Wait, seen, TimeSpan.FromMilliseconds(50), Limits.Token);

        Assert.Equal(("completed", Count, Count * 3L), (done.State, (int)done.ChunksDone, done.OperationsDone));
        Assert.NotEmpty(seen.Reports);
        Assert.Equal(Count, seen.Reports.Last().ChunksDone);
        Assert.Equal(1.0, seen.Reports.Last().Fraction);
        Assert.True(seen.Reports.Zip(seen.Reports.Skip(1)).All(p => p.First.ChunksDone <= p.Second.ChunksDone), "progress never goes back");

        var results = new List<ChunkResult>();
        await foreach (var line in Client.ReadResultsAsync(submitted.Id, cancellationToken: Limits.Token))
        {
            results.Add(line);
        }

        Assert.Equal(Enumerable.Range(0, Count).Select(i => (long)i), results.Select(r => r.Index));
        Assert.All(results, r => Assert.Equal(new Sum(r.Index, (int)r.Index * 2 + 1), r.Result!.Value.Deserialize(SubmissionTestJson.Default.Sum)));

        var found = await Client.ListSubmissionsAsync(
            new SubmissionSearch { Labels = new Dictionary<string, long> { ["company_id"] = 42 }, Queue = queue, State = "completed" },
            cancellationToken: Limits.Token);
        Assert.Equal(submitted.Id, Assert.Single(found.Submissions).Id);
        await host.StopAsync(Limits.Token);
    }

    [Fact]
    public async Task Cancel_skips_the_rest_and_a_second_cancel_is_a_typed_conflict_naming_the_terminal_state()
    {
        var queue = ServerFixture.UniqueQueue("cancel");
        var submission = await Client.SubmitAsync(queue, Chunks(SubmissionChunk.Empty, SubmissionChunk.Empty), cancellationToken: Limits.Token);

        var notYet = await Assert.ThrowsAsync<SubmissionConflictException>(async () =>
        {
            await foreach (var _ in Client.ReadResultsAsync(submission.Id, cancellationToken: Limits.Token))
            {
            }
        });
        Assert.Equal("in_progress", notYet.State);
        await foreach (var _ in Client.ReadResultsAsync(submission.Id, partial: true, Limits.Token))
        {
            Assert.Fail("no chunk is done yet");
        }

        var cancelled = await Client.CancelSubmissionAsync(submission.Id, Limits.Token);
        Assert.Equal("cancelled", cancelled.State);
        var again = await Assert.ThrowsAsync<SubmissionConflictException>(() => Client.CancelSubmissionAsync(submission.Id, Limits.Token));
        Assert.Equal(("cancelled", submission.Id, System.Net.HttpStatusCode.Conflict), (again.State, again.SubmissionId, again.StatusCode));
        Assert.Contains("already cancelled", again.Message);
        var waited = await Assert.ThrowsAsync<SubmissionFailedException>(() => Client.WaitForSubmissionAsync(submission.Id, Limits.Wait));
        Assert.Equal("cancelled", waited.Submission.State);

        // Zero chunks: completed at once, so cancelling it names "completed".
        var empty = await Client.SubmitAsync(queue, Chunks(), cancellationToken: Limits.Token);
        Assert.Equal("completed", empty.State);
        var finished = await Assert.ThrowsAsync<SubmissionConflictException>(() => Client.CancelSubmissionAsync(empty.Id, Limits.Token));
        Assert.Equal("completed", finished.State);

        var missing = await Assert.ThrowsAsync<SubmissionNotFoundException>(() => Client.GetSubmissionAsync(long.MaxValue - 1, Limits.Token));
        Assert.Equal(long.MaxValue - 1, missing.SubmissionId);
    }

    [Fact]
    public async Task Object_store_chunks_are_read_by_the_worker_and_their_outputs_come_back_as_references()
    {
        var queue = ServerFixture.UniqueQueue("objects");
        var prefix = $"tests/{queue}";
        for (var i = 0; i < 3; i++)
        {
            using var body = new MemoryStream(Encoding.UTF8.GetBytes($"chunk {i}"));
            await Client.WriteObjectAsync($"{prefix}/{i}-in.bin", body, Limits.Token);
        }

        var submission = await Client.SubmitFromObjectStoreAsync(queue, prefix, 3, new SubmissionOptions { ChunkSize = 10 }, Limits.Token);
        Assert.Equal(prefix, submission.Prefix);

        using var host = WorkerHost(s => s
            .AddSingleton<HandledChunks>()
            .AddConveyorChunkWorker<UpperCaseHandler>(queue, o => o.PollWait = TimeSpan.FromMilliseconds(200)));
        await host.StartAsync(Limits.Token);
        var done = await Client.WaitForSubmissionAsync(submission.Id, Limits.Wait, cancellationToken: Limits.Token);
        Assert.Equal(30, done.OperationsDone);

        var outputs = new List<string>();
        await foreach (var line in Client.ReadResultsAsync(submission.Id, cancellationToken: Limits.Token))
        {
            Assert.Equal($"{prefix}/{line.Index}-out.bin", line.ResultRef!.Key);
            var stream = await Client.ReadObjectAsync(line.ResultRef.Key, Limits.Token);
            await using (stream)
            {
                outputs.Add(await new StreamReader(stream).ReadToEndAsync());
            }
        }

        Assert.Equal(["CHUNK 0", "CHUNK 1", "CHUNK 2"], outputs);
        var missing = await Assert.ThrowsAsync<ObjectNotFoundException>(() => Client.ReadObjectAsync($"{prefix}/9-in.bin", Limits.Token));
        Assert.Equal($"{prefix}/9-in.bin", missing.Key);

        // Each chunk ran in its own DI scope, and saw its body as a reference read from the store.
        var handled = host.Services.GetRequiredService<HandledChunks>();
        Assert.Equal(3, handled.Scopes.Distinct().Count());
        Assert.All(handled.References, r => Assert.StartsWith(prefix, r));
        var byPrefix = await Client.ListSubmissionsAsync(new SubmissionSearch { Prefix = prefix }, cancellationToken: Limits.Token);
        Assert.Equal(submission.Id, Assert.Single(byPrefix.Submissions).Id);
        await host.StopAsync(Limits.Token);
    }

    [Fact]
    public async Task A_handler_that_keeps_throwing_fails_the_submission_with_its_message()
    {
        var queue = ServerFixture.UniqueQueue("failing");
        var attempts = new ConcurrentQueue<(long Index, int Attempt)>();
        var submission = await Client.SubmitBytesAsync(
            queue, Bytes([1, 2, 3], [4, 5, 6]), new SubmissionOptions { MaxChunkRetries = 1 }, Limits.Token);

        using var host = WorkerHost(s => s.AddConveyorChunkWorker(
            queue,
            (chunk, _) =>
            {
                attempts.Enqueue((chunk.Index, chunk.Attempt));
                return chunk.Body!.Value.Span[0] == 4
                    ? throw new InvalidOperationException($"cannot handle chunk {chunk.Index}")
                    : Task.FromResult(ChunkOutput.FromBytes(chunk.Body!.Value.ToArray().Reverse().ToArray(), operations: 3));
            },
            o => { o.Concurrency = 1; o.PollWait = TimeSpan.FromMilliseconds(200); }));
        await host.StartAsync(Limits.Token);

        var failed = await Assert.ThrowsAsync<SubmissionFailedException>(
            () => Client.WaitForSubmissionAsync(submission.Id, Limits.Wait, pollInterval: TimeSpan.FromMilliseconds(50), cancellationToken: Limits.Token));
        Assert.Equal(("failed", 1L, "cannot handle chunk 1"), (failed.Submission.State, failed.Submission.FailedChunk!.Index, failed.Submission.FailedChunk.Error));
        Assert.Contains("chunk 1 ran out of retries (cannot handle chunk 1)", failed.Message);

        // max_chunk_retries 1: chunk 1 ran twice; chunk 0 ran once and its bytes result is kept (partial read).
        Assert.Equal([1, 2], attempts.Where(a => a.Index == 1).Select(a => a.Attempt));
        var partial = new List<ChunkResult>();
        await foreach (var line in Client.ReadResultsAsync(submission.Id, partial: true, Limits.Token))
        {
            partial.Add(line);
        }

        Assert.Equal(new byte[] { 3, 2, 1 }, Assert.Single(partial).ResultBytes);
        await host.StopAsync(Limits.Token);
    }

    [Fact]
    public async Task Waiting_on_a_submission_nobody_works_times_out_with_the_last_progress_seen()
    {
        var queue = ServerFixture.UniqueQueue("idle");
        var submission = await Client.SubmitAsync(queue, Chunks(SubmissionChunk.FromJson(Json("1"))), cancellationToken: Limits.Token);

        var timedOut = await Assert.ThrowsAsync<SubmissionWaitTimeoutException>(
            () => Client.WaitForSubmissionAsync(submission.Id, TimeSpan.FromMilliseconds(300), pollInterval: TimeSpan.FromMilliseconds(50)));
        Assert.Equal(("in_progress", 1L), (timedOut.LastSeen!.State, timedOut.LastSeen.ChunksTotal));
        Assert.True(timedOut.IsTransient);
    }

    [Fact]
    public async Task A_bad_chunk_line_is_refused_and_nothing_is_created()
    {
        var queue = ServerFixture.UniqueQueue("bad");
        var error = await Assert.ThrowsAsync<InvalidRequestException>(() => Client.SubmitAsync(
            queue, Chunks(SubmissionChunk.Empty), new SubmissionOptions { Labels = new Dictionary<string, long> { ["not ok"] = 1 } }, Limits.Token));
        Assert.Contains("not a valid label name", error.Message);
        var page = await Client.ListSubmissionsAsync(new SubmissionSearch { Queue = queue }, cancellationToken: Limits.Token);
        Assert.Empty(page.Submissions);
    }

    [Theory]
    [InlineData(ChunkWorkerTransport.WebSocket)]
    [InlineData(ChunkWorkerTransport.Http)]
    public async Task A_chunk_longer_than_its_lease_is_kept_by_heartbeats_and_runs_once(ChunkWorkerTransport transport)
    {
        var queue = ServerFixture.UniqueQueue("long");
        var attempts = new ConcurrentQueue<int>();
        var submission = await Client.SubmitAsync(queue, Chunks(SubmissionChunk.FromJson(Json("1"))), cancellationToken: Limits.Token);
        using var host = WorkerHost(s => s.AddConveyorChunkWorker(
            queue,
            async (chunk, token) =>
            {
                attempts.Enqueue(chunk.Attempt);

                // Work for 2.5 leases: without heartbeats the server would expire the lease (checked every second) and
                // hand the chunk out again, or refuse this completion. Heartbeats come ten times per lease, so a busy
                // machine does not lose it.
                await Task.Delay(TimeSpan.FromMilliseconds(5000), token);
                return ChunkOutput.None;
            },
            o => { o.LeaseDuration = TimeSpan.FromSeconds(2); o.HeartbeatInterval = TimeSpan.FromMilliseconds(200); o.Transport = transport;
                   o.PollWait = TimeSpan.FromMilliseconds(200); o.Concurrency = 2; }));
        await host.StartAsync(Limits.Token);

        var done = await Client.WaitForSubmissionAsync(submission.Id, Limits.Wait, pollInterval: TimeSpan.FromMilliseconds(50), cancellationToken: Limits.Token);

        Assert.Equal((1L, 0L), (done.ChunksDone, done.ChunksFailed));
        Assert.Equal([1], attempts);
        await host.StopAsync(Limits.Token);
    }

    [Theory]
    [InlineData(ChunkWorkerTransport.WebSocket)]
    [InlineData(ChunkWorkerTransport.Http)]
    public async Task Cancelling_the_submission_cancels_a_running_handlers_token(ChunkWorkerTransport transport)
    {
        var queue = ServerFixture.UniqueQueue("lost");
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var submission = await Client.SubmitAsync(queue, Chunks(SubmissionChunk.Empty), cancellationToken: Limits.Token);
        using var host = WorkerHost(s => s.AddConveyorChunkWorker(
            queue,
            async (_, token) =>
            {
                started.TrySetResult();
                using var registration = token.Register(() => cancelled.TrySetResult());
                await Task.Delay(Timeout.Infinite, token);
                return ChunkOutput.None;
            },
            o => { o.HeartbeatInterval = TimeSpan.FromMilliseconds(100); o.Transport = transport; o.PollWait = TimeSpan.FromMilliseconds(200); }));
        await host.StartAsync(Limits.Token);
        await started.Within();

        await Client.CancelSubmissionAsync(submission.Id, Limits.Token);

        // The next heartbeat is refused (the chunk was skipped): the handler's token fires, and nothing is reported.
        await cancelled.Within();
        await host.StopAsync(Limits.Token);
        var after = await Client.GetSubmissionAsync(submission.Id, Limits.Token);
        Assert.Equal(("cancelled", 0L), (after.State, after.ChunksDone));
    }

    [Theory]
    [InlineData(ChunkWorkerTransport.WebSocket)]
    [InlineData(ChunkWorkerTransport.Http)]
    public async Task Stopping_past_the_grace_period_releases_the_running_chunk_without_counting_its_attempt(ChunkWorkerTransport transport)
    {
        var queue = ServerFixture.UniqueQueue("stop");
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var submission = await Client.SubmitAsync(queue, Chunks(SubmissionChunk.FromJson(Json("\"slow\""))), cancellationToken: Limits.Token);
        using var host = WorkerHost(s => s.AddConveyorChunkWorker(
            queue,
            async (_, token) =>
            {
                started.TrySetResult();
                await Task.Delay(Timeout.Infinite, token);
                return ChunkOutput.None;
            },
            o => { o.ShutdownGracePeriod = TimeSpan.Zero; o.Transport = transport; o.PollWait = TimeSpan.FromMilliseconds(200); o.Concurrency = 2; }));
        await host.StartAsync(Limits.Token);
        await started.Within();

        await host.StopAsync(Limits.Token);

        var after = await Client.GetSubmissionAsync(submission.Id, Limits.Token);
        Assert.Equal((1L, 0L, "in_progress"), (after.ChunksReady, after.ChunksReserved, after.State));
        var again = Assert.Single(await Client.ReserveChunksAsync(queue, cancellationToken: Limits.Token));
        Assert.Equal((0L, 1), (again.Index, again.Attempt));
        Assert.Equal("slow", again.Data!.Value.GetString());
        Assert.Equal("released", (await Client.ReleaseChunkAsync(again, Limits.Token)).Outcome);
    }

    [Fact]
    public async Task A_chunk_sequence_that_throws_surfaces_as_itself_and_creates_nothing()
    {
        var queue = ServerFixture.UniqueQueue("throws");
        async IAsyncEnumerable<SubmissionChunk> Broken()
        {
            yield return SubmissionChunk.FromJson(Json("1"));
            await Task.Yield();
            throw new FileNotFoundException("the input went away");
        }

        var error = await Assert.ThrowsAsync<FileNotFoundException>(() => Client.SubmitAsync(queue, Broken(), cancellationToken: Limits.Token));
        Assert.Equal("the input went away", error.Message);
        Assert.Empty((await Client.ListSubmissionsAsync(new SubmissionSearch { Queue = queue }, cancellationToken: Limits.Token)).Submissions);
    }

    [Fact]
    public async Task Ten_thousand_chunks_stream_in_one_request_and_reservations_follow_the_requested_order()
    {
        var queue = ServerFixture.UniqueQueue("big");
        async IAsyncEnumerable<SubmissionChunk> Many(int count, string tag)
        {
            for (var i = 0; i < count; i++)
            {
                if (i % 1000 == 0) await Task.Yield();
                yield return SubmissionChunk.FromJson(Json($$"""{"tag":"{{tag}}","i":{{i}}}"""));
            }
        }

        var older = await Client.SubmitAsync(queue, Many(10_000, "older"), new SubmissionOptions { Labels = new Dictionary<string, long> { ["company_id"] = 1 } }, Limits.Token);
        var newer = await Client.SubmitAsync(queue, Many(3, "newer"), new SubmissionOptions { Labels = new Dictionary<string, long> { ["company_id"] = 2 } }, Limits.Token);
        Assert.Equal((10_000L, 3L), (older.ChunksTotal, newer.ChunksTotal));

        var first = Assert.Single(await Client.ReserveChunksAsync(queue, order: ChunkReservationOrder.Newest, cancellationToken: Limits.Token));
        Assert.Equal((newer.Id, 0L, "newer"), (first.SubmissionId, first.Index, first.Data!.Value.GetProperty("tag").GetString()));
        var oldest = Assert.Single(await Client.ReserveChunksAsync(queue, cancellationToken: Limits.Token));
        Assert.Equal((older.Id, 0L), (oldest.SubmissionId, oldest.Index));

        // Prefer-distinct: company 1 has a chunk in flight, company 2 has one too; the next goes to the one with fewer.
        var distinct = await Client.ReserveChunksAsync(queue, max: 2, preferDistinct: "company_id", cancellationToken: Limits.Token);
        Assert.Equal([1L, 2L], distinct.Select(c => c.Labels["company_id"]).Order());

        foreach (var chunk in distinct.Append(first).Append(oldest))
        {
            Assert.Equal("released", (await Client.ReleaseChunkAsync(chunk, Limits.Token)).Outcome);
        }

        await Client.CancelSubmissionAsync(older.Id, Limits.Token);
        await Client.CancelSubmissionAsync(newer.Id, Limits.Token);
    }

    [Fact]
    public async Task A_consumer_connection_that_goes_away_has_its_chunks_released_without_counting_the_attempt()
    {
        var queue = ServerFixture.UniqueQueue("drop");
        var submission = await Client.SubmitAsync(queue, Chunks(SubmissionChunk.FromJson(Json("1"))), cancellationToken: Limits.Token);
        var transport = new Internal.WebSocketChunkTransport(Client, TimeSpan.FromSeconds(15));
        var held = Assert.Single(await transport.ReserveAsync(ConveyorClient.ReserveBody(queue, 1, null, null, ChunkReservationOrder.Oldest, null), Limits.Token));
        Assert.Equal(1L, (await Client.GetSubmissionAsync(submission.Id, Limits.Token)).ChunksReserved);

        // The worker's connection ends without finishing the chunk (as when its process dies).
        await transport.DisposeAsync();

        SubmissionInfo after;
        using var deadline = new CancellationTokenSource(Limits.Wait);
        while ((after = await Client.GetSubmissionAsync(submission.Id, deadline.Token)).ChunksReady != 1)
        {
            await Task.Delay(20, deadline.Token);
        }

        Assert.Equal(0L, after.ChunksReserved);
        var again = Assert.Single(await Client.ReserveChunksAsync(queue, cancellationToken: Limits.Token));
        Assert.Equal((held.Index, 1), (again.Index, again.Attempt));
        await Assert.ThrowsAsync<ChunkLeaseLostException>(() => Client.CompleteChunkAsync(held, cancellationToken: Limits.Token));
        Assert.Equal("completed", (await Client.CompleteChunkAsync(again, cancellationToken: Limits.Token)).Outcome);
    }

    [Fact]
    public async Task A_conflicts_state_comes_from_the_problems_state_field()
    {
        using var http = new HttpClient(new ProblemHandler(
            """{"type":"about:blank","title":"Conflict","status":409,"detail":"Not possible now.","state":"failed"}"""));
        using var client = new ConveyorClient(http, new Uri("http://127.0.0.1:1/"));

        var conflict = await Assert.ThrowsAsync<SubmissionConflictException>(() => client.CancelSubmissionAsync(5, Limits.Token));

        Assert.Equal(("failed", 5L, "Not possible now."), (conflict.State, conflict.SubmissionId, conflict.Message));
    }

    private sealed class ProblemHandler(string problem) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            Task.FromResult(new HttpResponseMessage(System.Net.HttpStatusCode.Conflict)
            {
                Content = new StringContent(problem, Encoding.UTF8, "application/problem+json"),
            });
    }

    private IHost WorkerHost(Action<IServiceCollection> services)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(30));
        builder.Services.AddConveyor(o => o.BaseAddress = server.BaseAddress);
        services(builder.Services);
        return builder.Build();
    }

    private static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement.Clone();

    private static async IAsyncEnumerable<SubmissionChunk> Chunks(params SubmissionChunk[] chunks)
    {
        foreach (var chunk in chunks)
        {
            await Task.Yield();
            yield return chunk;
        }
    }

    private static async IAsyncEnumerable<ReadOnlyMemory<byte>> Bytes(params byte[][] chunks)
    {
        foreach (var chunk in chunks)
        {
            await Task.Yield();
            yield return chunk;
        }
    }

    /// <summary>Records reports as they happen (Progress&lt;T&gt; would post them to the thread pool, after the wait returned).</summary>
    private sealed class SynchronousProgress : IProgress<SubmissionProgress>
    {
        public ConcurrentQueue<SubmissionProgress> Reports { get; } = new();

        public void Report(SubmissionProgress value) => Reports.Enqueue(value);
    }

    public sealed class HandledChunks
    {
        public ConcurrentBag<IServiceProvider> Scopes { get; } = [];

        public ConcurrentBag<string> References { get; } = [];
    }

    public sealed class UpperCaseHandler(HandledChunks handled, IServiceProvider scope) : IChunkHandler
    {
        public Task<ChunkOutput> HandleAsync(ChunkContext chunk, CancellationToken cancellationToken)
        {
            handled.Scopes.Add(scope);
            handled.References.Add(chunk.Chunk.BodyRef!.Key);
            var text = Encoding.UTF8.GetString(chunk.Body!.Value.Span).ToUpperInvariant();
            return Task.FromResult(ChunkOutput.FromBytes(Encoding.UTF8.GetBytes(text)));
        }
    }
}

public sealed record Numbers(int[] Values);

public sealed record Sum(long Index, int Total);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(Numbers))]
[JsonSerializable(typeof(Sum))]
internal sealed partial class SubmissionTestJson : JsonSerializerContext;
