using System.Net;
using System.Text.Json;
using Conveyor.Client;

namespace Conveyor.Cli.Tests;

/// <summary>
/// <c>conveyor submit</c> and <c>conveyor submission</c>: the built binary against a real server process while an SDK
/// chunk worker completes the chunks, and bad input refused in process before anything is sent.
/// </summary>
public sealed class SubmissionCommandTests
{
    [Fact]
    public async Task Submit_with_wait_streams_the_file_and_returns_when_a_worker_has_done_every_chunk()
    {
        await using var server = await ConveyorProcess.StartServerAsync();
        string[] at = ["--server", server.BaseAddress];
        var file = Path.Combine(Directory.CreateTempSubdirectory("conveyor-submit-").FullName, "work.ndjson");
        await File.WriteAllLinesAsync(file, ["""{"ops":[1,2]}""", "", """{"ops":[3,4]}""", "[5,6]", "7", """{"ops":[]}"""]);

        // The worker: the SDK's ChunkWorker in this process, answering each chunk with its data's raw text.
        using var client = new ConveyorClient(new Uri(server.BaseAddress));
        using var stop = new CancellationTokenSource();
        var worker = new ChunkWorker(
            client,
            "cli-chunks",
            (chunk, _) => Task.FromResult(ChunkOutput.FromJson(JsonSerializer.SerializeToElement(chunk.Data!.Value.GetRawText()), operations: 2)),
            new ChunkWorkerOptions { Concurrency = 2, PollWait = TimeSpan.FromMilliseconds(200) });
        var working = worker.RunAsync(stop.Token);

        var submitted = await ConveyorProcess.RunAsync(
            ["submit", "cli-chunks", file, "--chunk-size", "2", "--label", "company_id=7", "--metadata", """{"from":"cli"}""", "--wait", .. at]);

        Assert.True(submitted.ExitCode == 0, submitted.Err);
        var id = long.Parse(Assert.Single(System.Text.RegularExpressions.Regex.Matches(submitted.Out, @"^submitted submission (\d+) to 'cli-chunks': 5 chunks$",
            System.Text.RegularExpressions.RegexOptions.Multiline)).Groups[1].Value);
        Assert.EndsWith($"submission {id} completed: 5 chunks, 10 operations\n", submitted.Out);

        var shown = await ConveyorProcess.RunAsync(["submission", $"{id}", .. at]);
        Assert.Equal(0, shown.ExitCode);
        Assert.Matches(@"(?m)^state\s+completed$", shown.Out);
        Assert.Matches(@"(?m)^progress\s+5/5 chunks \(100\.0%\)$", shown.Out);
        Assert.Matches(@"(?m)^labels\s+company_id=7$", shown.Out);
        Assert.Matches(@"(?m)^metadata\s+\{""from"":""cli""\}$", shown.Out);

        var results = await ConveyorProcess.RunAsync(["submission", $"{id}", "--results", .. at]);
        Assert.Equal(0, results.ExitCode);
        Assert.Equal(
            """
            {"index":0,"result":"{\"ops\":[1,2]}"}
            {"index":1,"result":"{\"ops\":[3,4]}"}
            {"index":2,"result":"[5,6]"}
            {"index":3,"result":"7"}
            {"index":4,"result":"{\"ops\":[]}"}

            """.ReplaceLineEndings("\n"),
            results.Out);

        var json = await ConveyorProcess.RunAsync(["submission", $"{id}", "--json", .. at]);
        using (var document = JsonDocument.Parse(json.Out))
        {
            Assert.Equal(("completed", 10), (document.RootElement.GetProperty("state").GetString(), document.RootElement.GetProperty("operations_done").GetInt32()));
        }

        // Already finished: the server refuses, one line naming the state, exit 1.
        var cancel = await ConveyorProcess.RunAsync(["submission", $"{id}", "--cancel", .. at]);
        Assert.Equal(1, cancel.ExitCode);
        var line = Assert.Single(cancel.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: ", line);
        Assert.Contains("already completed", line);

        await stop.CancelAsync();
        await working.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(0, await server.StopAsync());
    }

    [Fact]
    public async Task A_failing_chunk_makes_submit_wait_exit_1_with_the_chunks_error_and_json_prints_the_failed_submission()
    {
        await using var server = await ConveyorProcess.StartServerAsync();
        var file = Path.Combine(Directory.CreateTempSubdirectory("conveyor-submit-").FullName, "bad.ndjson");
        await File.WriteAllLinesAsync(file, ["1", "2"]);
        using var client = new ConveyorClient(new Uri(server.BaseAddress));
        using var stop = new CancellationTokenSource();
        var worker = new ChunkWorker(
            client,
            "cli-failing",
            (chunk, _) => chunk.Index == 1 ? throw new InvalidOperationException("no such account") : Task.FromResult(ChunkOutput.None),
            new ChunkWorkerOptions { Concurrency = 1, PollWait = TimeSpan.FromMilliseconds(200) });
        var working = worker.RunAsync(stop.Token);

        var run = await ConveyorProcess.RunAsync(
            ["submit", "cli-failing", file, "--max-chunk-retries", "0", "--wait", "--json", "--server", server.BaseAddress]);

        Assert.Equal(1, run.ExitCode);
        using (var document = JsonDocument.Parse(run.Out))
        {
            Assert.Equal("failed", document.RootElement.GetProperty("state").GetString());
            Assert.Equal("no such account", document.RootElement.GetProperty("failed_chunk").GetProperty("error").GetString());
        }

        var line = Assert.Single(run.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("chunk 1 ran out of retries (no such account)", line);
        await stop.CancelAsync();
        await working.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Results_before_completion_are_refused_partial_results_are_not_and_cancel_skips_the_rest()
    {
        var directory = Directory.CreateTempSubdirectory("conveyor-cli-submission-").FullName;
        await using var server = await Conveyor.Server.ConveyorServer.StartAsync(
            new Conveyor.Server.ServerOptions { Port = 0, DataDirectory = directory, Out = null });
        var output = new StringWriter { NewLine = "\n" };
        var error = new StringWriter { NewLine = "\n" };
        var cli = new Conveyor.Cli.CommandLine.CliApp(
            output, error, _ => null, (address, _) => new ConveyorClient(address), (_, _) => Task.FromResult(0));
        string[] at = ["--server", server.BaseAddress.ToString()];
        var file = Path.Combine(directory, "two.ndjson");
        await File.WriteAllLinesAsync(file, ["1", "2"]);

        Assert.Equal(0, await cli.RunAsync(["submit", "cli-pending", file, "--json", .. at], TestTimeout.Token));
        long id;
        using (var document = JsonDocument.Parse(output.ToString()))
        {
            id = document.RootElement.GetProperty("id").GetInt64();
            Assert.Equal(("in_progress", 2), (document.RootElement.GetProperty("state").GetString(), document.RootElement.GetProperty("chunks_total").GetInt32()));
        }

        output.GetStringBuilder().Clear();
        Assert.Equal(1, await cli.RunAsync(["submission", $"{id}", "--results", .. at], TestTimeout.Token));
        Assert.Equal($"error: Submission {id} is in_progress (0 of 2 chunks done); its results can be read once it is completed, "
            + "or pass ?partial=true for the chunks finished so far.\n", error.ToString());
        Assert.Equal(0, await cli.RunAsync(["submission", $"{id}", "--results", "--partial", .. at], TestTimeout.Token));
        Assert.Equal("", output.ToString());

        Assert.Equal(0, await cli.RunAsync(["submission", $"{id}", "--cancel", .. at], TestTimeout.Token));
        Assert.Equal($"submission {id} cancelled (0 of 2 chunks done)\n", output.ToString());
        output.GetStringBuilder().Clear();
        Assert.Equal(0, await cli.RunAsync(["submission", $"{id}", .. at], TestTimeout.Token));
        Assert.Matches(@"(?m)^state\s+cancelled$", output.ToString());
        Assert.Matches(@"(?m)^chunks\s+0 ready, 0 reserved, 0 failed$", output.ToString());
    }

    [Fact]
    public async Task A_missing_file_is_a_usage_error_and_nothing_is_sent()
    {
        var cli = new CliHarness();

        var exit = await cli.RunAsync("submit", "work", "/nonexistent/work.ndjson");

        Assert.Equal(2, exit);
        var line = Assert.Single(cli.ErrorLines);
        Assert.StartsWith("error: The file '/nonexistent/work.ndjson' does not exist;", line);
        Assert.EndsWith("See 'conveyor submit --help'.", line);
        Assert.Empty(cli.Http.Requests);
    }

    [Theory]
    [InlineData("company_id")]
    [InlineData("company_id=forty-two")]
    [InlineData("=42")]
    public async Task A_bad_label_is_a_usage_error(string label)
    {
        var cli = new CliHarness();
        var file = Path.GetTempFileName();

        var exit = await cli.RunAsync("submit", "work", file, "--label", label);

        Assert.Equal(2, exit);
        Assert.Equal($"error: --label must be name=integer such as company_id=42, got '{label}'. See 'conveyor submit --help'.", Assert.Single(cli.ErrorLines));
        Assert.Empty(cli.Http.Requests);
        File.Delete(file);
    }

    [Fact]
    public async Task A_line_that_is_not_json_is_a_usage_error_naming_the_line()
    {
        var cli = new CliHarness();
        cli.Http.Respond = _ => StubHandler.Json(HttpStatusCode.Created, "{}");
        var file = Path.GetTempFileName();
        await File.WriteAllLinesAsync(file, ["{\"a\":1}", "{oops"]);

        var exit = await cli.RunAsync("submit", "work", file);

        Assert.Equal(2, exit);
        var line = Assert.Single(cli.ErrorLines);
        Assert.StartsWith($"error: {file} line 2 is not valid JSON", line);
        Assert.Contains("Nothing was submitted.", line);
        File.Delete(file);
    }

    [Fact]
    public async Task Options_that_need_another_are_usage_errors()
    {
        var cli = new CliHarness();
        var file = Path.GetTempFileName();

        Assert.Equal(2, await cli.RunAsync("submit", "work", file, "--timeout", "5"));
        Assert.Equal(2, await cli.RunAsync("submission", "7", "--results", "--cancel"));
        Assert.Equal(2, await cli.RunAsync("submission", "seven"));
        Assert.Equal(2, await cli.RunAsync("submit", "work", file, "--label", "a=1", "--label", "a=2"));
        Assert.Equal(
            [
                "error: --timeout only applies with --wait. See 'conveyor submit --help'.",
                "error: Give --results or --cancel, not both. See 'conveyor submission --help'.",
                "error: The submission id must be a positive whole number, got 'seven'. See 'conveyor submission --help'.",
                "error: --label 'a' is given twice; a label has one value. See 'conveyor submit --help'.",
            ],
            cli.ErrorLines);
        File.Delete(file);
    }

    [Fact]
    public async Task An_unknown_submission_is_a_one_line_refusal_with_exit_1()
    {
        var cli = new CliHarness();
        cli.Http.Respond = _ => StubHandler.Problem(HttpStatusCode.NotFound, "Submission 99 was not found.");

        var exit = await cli.RunAsync("submission", "99");

        Assert.Equal(1, exit);
        Assert.Equal("error: Submission 99 was not found.", Assert.Single(cli.ErrorLines));
        Assert.Equal((HttpMethod.Get, "/v1/submissions/99"), (cli.Http.Requests[0].Method, cli.Http.Requests[0].Path));
    }
}
