using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Conveyor.Submissions.Tests;

/// <summary>
/// The "show" case: 1,000 chunks × 1,000 operations streamed in as NDJSON, processed by WebSocket consumers,
/// and the results streamed back in order, with the server's memory staying bounded (measured in bytes, not time).
/// </summary>
/// <remarks>
/// The GC heap is the whole test process's: these tests run alone (a collection without parallelization), after the
/// others, so no other test's allocations are counted.
/// </remarks>
[Collection(nameof(MillionOperationTests))]
public abstract class MillionOperationTests(ITestOutputHelper output)
{
    private const int Chunks = 1_000;
    private const int OperationsPerChunk = 1_000;

    protected abstract bool Postgres { get; }

    [Fact]
    public async Task A_million_operation_submission_runs_end_to_end_with_bounded_server_memory()
    {
        await using var server = await SubmissionServer.StartAsync(Postgres);
        // A warm-up submission first: connection, buffer and statement pools fill to their working size, and stay so.
        await RunAsync(server, 50);
        var baseline = Heap();
        var queue = SubmissionServer.UniqueQueue("million");

        // Streamed from a generator: neither side ever holds the ~30 MB body.
        using var content = new NdjsonContent(queue, Chunks);
        using var response = await server.Http.PostAsync("/v1/submissions", content);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var id = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["id"]!.GetValue<long>();
        Assert.True(content.BytesWritten > 25_000_000, $"the body was only {content.BytesWritten:N0} bytes");
        var afterSubmit = Heap();

        var peak = 0L;
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                peak = Math.Max(peak, GC.GetTotalMemory(false));
                try { await Task.Delay(5, sampling.Token); } catch (OperationCanceledException) { }
            }
        });
        var consumers = Enumerable.Range(0, 4).Select(_ => ConsumeAsync(server, queue)).ToArray();
        var processed = (await Task.WhenAll(consumers)).Sum();
        await sampling.CancelAsync();
        await sampler;
        Assert.Equal(Chunks, processed);

        var submission = await server.Submission(id);
        Assert.Equal("completed", submission["state"]!.GetValue<string>());
        Assert.Equal((long)Chunks * OperationsPerChunk, submission["operations_done"]!.GetValue<long>());

        // Results streamed and checked line by line, in chunk order.
        using var results = await server.Http.GetAsync($"/v1/submissions/{id}/results", HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await results.Content.ReadAsStreamAsync());
        var expected = 0L;
        while (await reader.ReadLineAsync() is { } line)
        {
            using var document = JsonDocument.Parse(line);
            Assert.Equal(expected, document.RootElement.GetProperty("index").GetInt64());
            Assert.Equal(SumOf(expected), document.RootElement.GetProperty("result").GetProperty("sum").GetInt64());
            expected++;
        }
        Assert.Equal(Chunks, expected);
        var afterResults = Heap();

        output.WriteLine($"heap: baseline {baseline:N0}, after submit +{afterSubmit - baseline:N0}, peak +{peak - baseline:N0}, after results +{afterResults - baseline:N0} bytes");
        // Generous bounds, far below what holding the submission would take (~30 MB of input, as many objects again parsed).
        const long retained = 24L * 1024 * 1024;
        Assert.True(afterSubmit - baseline < retained, $"the heap grew {afterSubmit - baseline:N0} bytes across the submit");
        Assert.True(afterResults - baseline < retained, $"the heap grew {afterResults - baseline:N0} bytes across processing and results");
        Assert.True(peak - baseline < 256L * 1024 * 1024, $"the heap peaked {peak - baseline:N0} bytes above the baseline while processing");
    }

    private static async Task RunAsync(SubmissionServer server, int chunks)
    {
        var queue = SubmissionServer.UniqueQueue("warm");
        using var content = new NdjsonContent(queue, chunks);
        using var response = await server.Http.PostAsync("/v1/submissions", content);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        var id = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["id"]!.GetValue<long>();
        Assert.Equal(chunks, (await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => ConsumeAsync(server, queue)))).Sum());
        Assert.Equal(chunks, (await server.Results(id)).Lines.Count);
    }

    private static long Heap()
    {
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        return GC.GetTotalMemory(forceFullCollection: true);
    }

    private static long SumOf(long chunk) => Enumerable.Range(0, OperationsPerChunk).Sum(i => chunk * OperationsPerChunk + i);

    /// <summary>One consumer: reserve ten at a time over the WebSocket, add the amounts up, complete; until nothing is left.</summary>
    private static async Task<int> ConsumeAsync(SubmissionServer server, string queue)
    {
        using var socket = await server.ConnectAsync();
        var done = 0;
        while (true)
        {
            var reply = await socket.RequestAsync($$"""{"type":"reserve","id":0,"queue":"{{queue}}","max":10,"wait_ms":200}""");
            var chunks = reply["chunks"]!.AsArray();
            if (chunks.Count == 0) return done;
            foreach (var chunk in chunks)
            {
                var sum = chunk!["data"]!["ops"]!.AsArray().Sum(op => op!["amount"]!.GetValue<long>());
                await socket.SendAsync($$"""
                    {"type":"complete","id":1,"submission_id":{{chunk["submission_id"]}},"index":{{chunk["index"]}},"lease_token":"{{chunk["lease_token"]}}","result":{"sum":{{sum}}},"operations":{{OperationsPerChunk}} }
                    """);
            }
            for (var i = 0; i < chunks.Count; i++)
            {
                var ack = await socket.ReceiveAsync();
                Assert.True((string?)ack["type"] == "ack", ack.ToJsonString());
            }
            done += chunks.Count;
        }
    }

    /// <summary>The submission as NDJSON, written line by line while it is sent.</summary>
    private sealed class NdjsonContent : HttpContent
    {
        private readonly string _queue;
        private readonly int _chunks;

        public NdjsonContent(string queue, int chunks)
        {
            _queue = queue;
            _chunks = chunks;
            Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/x-ndjson");
        }

        public long BytesWritten { get; private set; }

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            var line = new StringBuilder(64 * 1024);
            line.Append($$"""{"queue":"{{_queue}}","chunk_size":{{OperationsPerChunk}},"labels":{"company_id":1} }""").Append('\n');
            await Write(stream, line);
            for (var chunk = 0L; chunk < _chunks; chunk++)
            {
                line.Append("""{"data":{"ops":[""");
                for (var op = 0; op < OperationsPerChunk; op++)
                {
                    if (op > 0) line.Append(',');
                    line.Append($$"""{"id":{{chunk * OperationsPerChunk + op}},"amount":{{chunk * OperationsPerChunk + op}} }""");
                }
                line.Append("]}}\n");
                await Write(stream, line);
            }
        }

        private async Task Write(Stream stream, StringBuilder line)
        {
            var bytes = Encoding.UTF8.GetBytes(line.ToString());
            await stream.WriteAsync(bytes);
            BytesWritten += bytes.Length;
            line.Clear();
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }

    }
}

[CollectionDefinition(nameof(MillionOperationTests), DisableParallelization = true)]
public sealed class MillionOperationCollection;

public sealed class SqliteMillionOperationTests(ITestOutputHelper output) : MillionOperationTests(output)
{
    protected override bool Postgres => false;
}

public sealed class PostgresMillionOperationTests(ITestOutputHelper output) : MillionOperationTests(output)
{
    protected override bool Postgres => true;
}
