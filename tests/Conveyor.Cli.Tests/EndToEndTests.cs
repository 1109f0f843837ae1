using System.Text.Json;

namespace Conveyor.Cli.Tests;

/// <summary>Runs the built <c>conveyor</c> binary: a real server process and real client processes on loopback.</summary>
public sealed class EndToEndTests
{
    [Fact]
    public async Task Built_binary_serves_and_its_client_commands_drive_a_job_through_its_life()
    {
        await using var server = await ConveyorProcess.StartServerAsync();
        string[] at = ["--server", server.BaseAddress];

        var enqueued = await ConveyorProcess.RunAsync(
            ["enqueue", "e2e", "--kind", "greet", "--payload", """{"name":"Ada"}""", "--json", .. at]);
        Assert.Equal(0, enqueued.ExitCode);
        long id;
        using (var job = JsonDocument.Parse(enqueued.Out))
        {
            id = job.RootElement.GetProperty("id").GetInt64();
            Assert.Equal("available", job.RootElement.GetProperty("state").GetString());
        }

        var second = await ConveyorProcess.RunAsync(["enqueue", "e2e", "--kind", "greet", .. at]);
        Assert.Equal(0, second.ExitCode);
        Assert.Matches(@"^enqueued job \d+ in 'e2e' \(available\)\n$", second.Out);

        var leased = await ConveyorProcess.RunAsync(["lease", "e2e", "--worker", "e2e-worker", "--json", .. at]);
        Assert.Equal(0, leased.ExitCode);
        string token;
        using (var jobs = JsonDocument.Parse(leased.Out))
        {
            var job = Assert.Single(jobs.RootElement.EnumerateArray());
            Assert.Equal(id, job.GetProperty("id").GetInt64());
            Assert.Equal("running", job.GetProperty("state").GetString());
            token = job.GetProperty("lease").GetProperty("token").GetString()!;
        }

        var completed = await ConveyorProcess.RunAsync(["complete", $"{id}", "--token", token, "--result", """{"greeted":true}""", .. at]);
        Assert.Equal(0, completed.ExitCode);
        Assert.Equal($"job {id} completed\n", completed.Out);

        var shown = await ConveyorProcess.RunAsync(["get", $"{id}", .. at]);
        Assert.Equal(0, shown.ExitCode);
        Assert.Matches(@"(?m)^state\s+completed$", shown.Out);
        Assert.Matches(@"(?m)^result\s+\{""greeted"":true\}$", shown.Out);

        var queues = await ConveyorProcess.RunAsync(["queues", .. at]);
        Assert.Equal(0, queues.ExitCode);
        Assert.Matches(@"(?m)^QUEUE\s+STATUS\s+SCHEDULED\s+AVAILABLE\s+RUNNING\s+COMPLETED\s+DEAD\s+CANCELLED$", queues.Out);
        Assert.Matches(@"(?m)^e2e\s+active\s+0\s+1\s+0\s+1\s+0\s+0$", queues.Out);

        var stats = await ConveyorProcess.RunAsync(["stats", .. at]);
        Assert.Equal(0, stats.ExitCode);
        Assert.Matches(@"(?m)^since start\s+2 enqueued, 1 completed, 0 failed$", stats.Out);

        var missing = await ConveyorProcess.RunAsync(["get", "987654", .. at]);
        Assert.Equal(1, missing.ExitCode);
        Assert.Empty(missing.Out);
        var line = Assert.Single(missing.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: ", line);
        Assert.Contains("987654", line);

        // A stale token is refused by the server: exit 1, the job stays completed.
        var stale = await ConveyorProcess.RunAsync(["complete", $"{id}", "--token", token, .. at]);
        Assert.Equal(1, stale.ExitCode);
        Assert.Single(stale.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));

        Assert.Equal(0, await server.StopAsync());
    }

    [Fact]
    public async Task Built_binary_exits_3_when_no_server_listens()
    {
        // Port 1 on loopback: nothing listens there, so the connection is refused at once.
        var result = await ConveyorProcess.RunAsync(["queues", "--server", "http://127.0.0.1:1"]);

        Assert.Equal(3, result.ExitCode);
        var line = Assert.Single(result.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: could not reach the Conveyor server at http://127.0.0.1:1/", line);
    }

    [Fact]
    public async Task Built_binary_exits_2_on_a_usage_error()
    {
        var result = await ConveyorProcess.RunAsync(["enqueue", "e2e", "--priority", "high"]);

        Assert.Equal(2, result.ExitCode);
        Assert.Equal("error: --priority must be a whole number, got 'high'. See 'conveyor enqueue --help'.\n", result.Err);
    }
}
