using System.Collections.Concurrent;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;

namespace Conveyor.Cli.Tests;

/// <summary>Durability of the real binary: kill -9 under load, and SIGTERM.</summary>

public sealed class CrashTests : IDisposable
{
    private readonly string _data = Directory.CreateTempSubdirectory("conveyor-crash-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_data, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public async Task Every_job_acknowledged_before_kill_9_is_there_exactly_once_after_restart()
    {
        var acknowledged = new ConcurrentDictionary<string, long>(); // "client-seq" -> id
        await using (var server = await ConveyorProcess.StartServerAsync(_data))
        {
            using var http = new HttpClient { BaseAddress = new Uri(server.BaseAddress), Timeout = TimeSpan.FromSeconds(10) };
            var enoughAcks = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            using var stop = new CancellationTokenSource();
            var clients = Enumerable.Range(0, 8).Select(client => Task.Run(async () =>
            {
                for (var seq = 0; !stop.IsCancellationRequested; seq++)
                {
                    try
                    {
                        if (seq % 10 == 9)
                        {
                            // Every tenth request is a batch of five, to crash batches mid-stream too.
                            var keys = Enumerable.Range(0, 5).Select(k => $"{client}-{seq}-{k}").ToList();
                            var body = "[" + string.Join(",", keys.Select(k => $$$"""{"payload":{"key":"{{{k}}}"}}""")) + "]";
                            using var response = await http.PostAsync("/v1/queues/crash/jobs/batch", new StringContent(body, Encoding.UTF8, "application/json"));
                            if (!response.IsSuccessStatusCode) continue;
                            var ids = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["jobs"]!.AsArray();
                            for (var k = 0; k < keys.Count; k++) acknowledged[keys[k]] = (long)ids[k]!["id"]!;
                        }
                        else
                        {
                            var key = $"{client}-{seq}";
                            using var response = await http.PostAsync("/v1/queues/crash/jobs",
                                new StringContent($$$"""{"payload":{"key":"{{{key}}}"}}""", Encoding.UTF8, "application/json"));
                            if (!response.IsSuccessStatusCode) continue;
                            acknowledged[key] = (long)JsonNode.Parse(await response.Content.ReadAsStringAsync())!["id"]!;
                        }
                        if (acknowledged.Count >= 2000) enoughAcks.TrySetResult();
                    }
                    catch (HttpRequestException) { return; } // the server is gone
                    catch (TaskCanceledException) { return; }
                }
            })).ToArray();

            await enoughAcks.Task.WaitAsync(TimeSpan.FromSeconds(120));
            await server.KillHardAsync(); // mid-stream: clients still have requests in flight
            stop.Cancel();
            await Task.WhenAll(clients).WaitAsync(TimeSpan.FromSeconds(60));
        }

        await using var restarted = await ConveyorProcess.StartServerAsync(_data);
        using var client = new HttpClient { BaseAddress = new Uri(restarted.BaseAddress), Timeout = TimeSpan.FromSeconds(30) };
        var found = new Dictionary<string, List<long>>();
        string? cursor = null;
        do
        {
            var page = JsonNode.Parse(await client.GetStringAsync($"/v1/jobs?queue=crash&limit=500{(cursor is null ? "" : "&cursor=" + cursor)}"))!;
            foreach (var job in page["jobs"]!.AsArray())
            {
                var key = (string)job!["payload"]!["key"]!;
                if (!found.TryGetValue(key, out var ids)) found[key] = ids = [];
                ids.Add((long)job["id"]!);
            }
            cursor = (string?)page["next_cursor"];
        } while (cursor is not null);

        Assert.True(acknowledged.Count >= 2000);
        foreach (var (key, id) in acknowledged)
        {
            Assert.True(found.TryGetValue(key, out var ids), $"acknowledged job {key} (id {id}) is missing after the crash");
            Assert.Equal([id], ids);
        }
        Assert.All(found, pair => Assert.Single(pair.Value));
        var counts = JsonNode.Parse(await client.GetStringAsync("/v1/queues"))!.AsArray().Single(q => (string)q!["name"]! == "crash")!["counts"]!;
        Assert.Equal(found.Count, (long)counts["available"]!);
    }

    [Fact]
    public async Task Sigterm_finishes_in_flight_work_and_exits_0()
    {
        long id;
        await using (var server = await ConveyorProcess.StartServerAsync(_data))
        {
            using var http = new HttpClient { BaseAddress = new Uri(server.BaseAddress) };
            using var response = await http.PostAsync("/v1/queues/graceful/jobs", new StringContent("""{"payload":42}""", Encoding.UTF8, "application/json"));
            id = (long)JsonNode.Parse(await response.Content.ReadAsStringAsync())!["id"]!;
            // A long poll in flight must not hold the shutdown up for its whole wait.
            var poll = http.PostAsync("/v1/queues/empty/lease", new StringContent("""{"wait_ms":30000}""", Encoding.UTF8, "application/json"));
            Assert.Equal(0, await server.StopAsync());
            try { using var _ = await poll; } catch (HttpRequestException) { }
        }
        await using var again = await ConveyorProcess.StartServerAsync(_data);
        using var client = new HttpClient { BaseAddress = new Uri(again.BaseAddress) };
        var job = JsonNode.Parse(await client.GetStringAsync($"/v1/jobs/{id}"))!;
        Assert.Equal(42, (int)job["payload"]!);
    }
}
