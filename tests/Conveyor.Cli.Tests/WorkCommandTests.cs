using System.Diagnostics;
using System.Text.Json;
using Conveyor.Cli.CommandLine;
using Conveyor.Server;

namespace Conveyor.Cli.Tests;

// Inside the namespace so the client's types win over Conveyor.Core's types of the same names.
using Conveyor.Client;

/// <summary><c>conveyor work</c> against a real server, running real shell commands.</summary>
public sealed class WorkCommandTests : IAsyncLifetime
{
    // Reads the payload from stdin and answers with it and the job's environment, or fails when asked to.
    private const string Script =
        """
        p=$(cat)
        case "$p" in
          *fail*) echo "first line" >&2; echo "cannot do $p" >&2; exit 3 ;;
          *empty*) exit 0 ;;
        esac
        printf '{"in":%s,"id":%s,"kind":"%s","attempt":%s}\n' "$p" "$CONVEYOR_JOB_ID" "$CONVEYOR_JOB_KIND" "$CONVEYOR_JOB_ATTEMPT"
        """;

    private static int _counter;
    private readonly string _directory = Directory.CreateTempSubdirectory("conveyor-work-").FullName;
    private RunningServer _server = null!;
    private ConveyorClient _client = null!;

    public async Task InitializeAsync()
    {
        _server = await ConveyorServer.StartAsync(new ServerOptions { Port = 0, DataDirectory = _directory, Out = null });
        _client = new ConveyorClient(_server.BaseAddress);
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _server.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [Fact]
    public async Task Work_runs_a_shell_command_per_job_with_the_payload_on_stdin_and_stdout_as_the_result()
    {
        var queue = $"work-{Interlocked.Increment(ref _counter)}";
        var output = new StringWriter { NewLine = "\n" };
        var app = new CliApp(output, new StringWriter(), _ => null, (server, _) => new ConveyorClient(server), (_, _) => Task.FromResult(0));
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var worker = app.RunAsync(
            ["work", queue, "--concurrency", "2", "--server", _server.BaseAddress.ToString(), "--", "sh", "-c", Script], stop.Token);

        var ok = (await _client.EnqueueAsync(queue, new EnqueueRequest { Kind = "greet", Payload = Json("""{"name":"ada"}""") })).Job.Id;
        var empty = (await _client.EnqueueAsync(queue, new EnqueueRequest { Payload = Json("\"empty\"") })).Job.Id;
        var failing = (await _client.EnqueueAsync(queue, new EnqueueRequest { Payload = Json("\"fail\""), MaxAttempts = 1 })).Job.Id;

        var done = await _client.WaitForResultAsync(ok, TimeSpan.FromSeconds(30));
        Assert.Equal($$"""{"in":{"name":"ada"},"id":{{ok}},"kind":"greet","attempt":1}""", done.Result?.GetRawText());
        Assert.Null((await _client.WaitForResultAsync(empty, TimeSpan.FromSeconds(30))).Result);
        var dead = await Assert.ThrowsAsync<JobFailedException>(() => _client.WaitForResultAsync(failing, TimeSpan.FromSeconds(30)));
        Assert.Equal("exit code 3: first line\ncannot do \"fail\"", Assert.Single(dead.Job.Errors!).Message);

        await stop.CancelAsync();
        Assert.Equal(0, await worker.WaitAsync(TimeSpan.FromSeconds(30)));
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith($"working on '{queue}' at {_server.BaseAddress}, 2 at a time: sh -c ", lines[0]);
        Assert.Contains(lines, l => l.StartsWith($"job {ok} (greet, attempt 1/25) completed in ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith($"job {failing} (default, attempt 1/1) failed in ", StringComparison.Ordinal)
            && l.EndsWith("exit code 3: first line cannot do \"fail\"", StringComparison.Ordinal));
        Assert.Equal("stopped", lines[^1]);
    }

    [Fact]
    public async Task Work_without_a_command_is_a_usage_error()
    {
        var cli = new CliHarness();

        Assert.Equal(2, await cli.RunAsync("work", "emails"));

        Assert.Contains("See 'conveyor work --help'.", Assert.Single(cli.ErrorLines));
        Assert.Empty(cli.Http.Requests);
    }

    [Fact]
    public async Task Built_binary_work_stops_gracefully_on_sigterm_leaving_no_job_running()
    {
        var queue = $"work-bin-{Interlocked.Increment(ref _counter)}";
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } path ? path : "dotnet";
        var info = new ProcessStartInfo(host) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { ConveyorProcess.BinaryPath, "work", queue, "--server", _server.BaseAddress.ToString(), "--", "sh", "-c", "sleep 0.2; cat" })
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var first = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.StartsWith($"working on '{queue}'", first);
        var ids = new List<long>();
        for (var i = 0; i < 3; i++)
        {
            ids.Add((await _client.EnqueueAsync(queue, new EnqueueRequest { Payload = Json(i.ToString(System.Globalization.CultureInfo.InvariantCulture)) })).Job.Id);
        }

        // The first job's answer proves the worker is busy; then stop it mid-queue.
        await _client.WaitForResultAsync(ids[0], TimeSpan.FromSeconds(30));
        using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync();
        }

        var rest = await process.StandardOutput.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));

        Assert.True(process.ExitCode == 0, $"exit {process.ExitCode}\n{first}\n{rest}\n{await stderr}");
        Assert.EndsWith("stopped", rest.TrimEnd());
        foreach (var id in ids)
        {
            Assert.Contains((await _client.GetJobAsync(id)).State, new[] { "completed", "available" });
        }
    }

    private static JsonElement Json(string text)
    {
        using var document = JsonDocument.Parse(text);
        return document.RootElement.Clone();
    }
}
