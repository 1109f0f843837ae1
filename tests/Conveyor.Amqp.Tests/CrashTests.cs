using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Conveyor.Amqp.Tests;

/// <summary>The built <c>conveyor serve --amqp … --ingest …</c>, killed with SIGKILL while it ingests.</summary>
public sealed partial class CrashTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [GeneratedRegex(@"Conveyor listening on (?<url>http://\S+)")]
    private static partial Regex ListeningLine();

    [Fact]
    public async Task Sigkill_mid_ingest_loses_no_message_every_one_is_committed_or_still_in_rabbitmq()
    {
        const int total = 5000;
        var rabbit = TestBroker.UniqueName("crash");
        var queue = TestBroker.UniqueName("crashjobs");
        var directory = Directory.CreateTempSubdirectory("conveyor-amqp-crash-").FullName;
        try
        {
            await using var connection = await TestBroker.ConnectAsync();
            await TestBroker.DeclareQueueAsync(connection, rabbit);

            using (var server = await ServeAsync(directory, "--amqp", TestBroker.Uri.ToString(), "--ingest", $"{rabbit}={queue}"))
            {
                // A steady stream of messages, so the kill lands while deliveries are in flight.
                var producer = Task.Run(async () =>
                {
                    for (var start = 0; start < total; start += 100)
                    {
                        await TestBroker.PublishAsync(connection, rabbit,
                            Enumerable.Range(start, 100).Select(i => ($$"""{"n":{{i}}}""", TestBroker.Json($"k{i}"))));
                        await Task.Delay(10);
                    }
                });
                using var http = new HttpClient { BaseAddress = server.Url };
                await TestBroker.Eventually(async () => await CountAsync(http, queue) >= 500, "the first committed jobs");
                server.Process.Kill(entireProcessTree: true); // no graceful stop: whatever was not acknowledged must come back
                Assert.False(producer.IsCompleted, "the kill came too late to test anything");
                await server.Process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
                await producer.WaitAsync(TimeSpan.FromSeconds(60));
            }

            // Once RabbitMQ has noticed the dead consumer, every message is either committed or ready again.
            await using var channel = await connection.CreateChannelAsync();
            await TestBroker.Eventually(async () => (await channel.QueueDeclarePassiveAsync(rabbit)).ConsumerCount == 0, "the consumer gone");
            var ready = (await channel.QueueDeclarePassiveAsync(rabbit)).MessageCount;
            long committed;
            using (var server = await ServeAsync(directory))
            {
                using var http = new HttpClient { BaseAddress = server.Url };
                committed = await CountAsync(http, queue);
                server.Process.Kill(entireProcessTree: true);
            }
            output.WriteLine($"after SIGKILL: {committed} committed, {ready} back in RabbitMQ, of {total}");
            Assert.True(committed + ready >= total, $"{committed} committed + {ready} still in RabbitMQ < {total}: an acknowledged message was lost");

            // Started again with the ingest, it takes the rest; message ids make any redelivered one a replay.
            using (var server = await ServeAsync(directory, "--amqp", TestBroker.Uri.ToString(), "--ingest", $"{rabbit}={queue}"))
            {
                using var http = new HttpClient { BaseAddress = server.Url };
                await TestBroker.Eventually(async () => await CountAsync(http, queue) >= total, $"{total} jobs", 60);
                await TestBroker.Eventually(async () => await TestBroker.ReadyCountAsync(connection, rabbit) == 0, "the queue drained");
                Assert.Equal(total, await CountAsync(http, queue));
                server.Process.Kill(entireProcessTree: true);
            }
        }
        finally
        {
            try { Directory.Delete(directory, recursive: true); } catch (IOException) { }
        }
    }

    private static async Task<long> CountAsync(HttpClient http, string queue)
    {
        var queues = JsonNode.Parse(await http.GetStringAsync("/v1/queues"))!.AsArray();
        var counts = queues.SingleOrDefault(q => (string)q!["name"]! == queue)?["counts"];
        return counts is null ? 0 : counts.AsObject().Sum(c => (long)c.Value!);
    }

    private sealed record Served(Process Process, Uri Url) : IDisposable
    {
        public void Dispose()
        {
            if (!Process.HasExited) Process.Kill(entireProcessTree: true);
            Process.Dispose();
        }
    }

    private static async Task<Served> ServeAsync(string directory, params string[] extra)
    {
        var info = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "conveyor.dll"), "serve", "--port", "0", "--data", directory }.Concat(extra))
            info.ArgumentList.Add(arg);
        var process = Process.Start(info)!;
        var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        var transcript = new System.Collections.Concurrent.ConcurrentQueue<string>();
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            transcript.Enqueue(e.Data);
            if (ListeningLine().Match(e.Data) is { Success: true } m) listening.TrySetResult(new Uri(m.Groups["url"].Value));
        };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) transcript.Enqueue(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            return new Served(process, await listening.Task.WaitAsync(TimeSpan.FromSeconds(60)));
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("conveyor serve did not print its listening line:\n" + string.Join('\n', transcript));
        }
    }
}
