using System.Diagnostics;
using WorkToDo.Cli;
using WorkToDo.RawHttp;

namespace Conveyor.Examples.WorkToDo.Tests;

/// <summary>cli_01 (worktodo-cli) and cli_02 (worktodo-raw) against the running API and database.</summary>
public sealed class CliTests(WorkToDoStack stack) : IClassFixture<WorkToDoStack>
{
    [Fact]
    public async Task Cli_reads_a_work_by_id_through_http_and_through_the_database_alike()
    {
        var work = await stack.DoneAsync((await stack.CreateThroughApiAsync()).Id);

        var http = await RunCliAsync("--id", $"{work.Id}", "--call-type", "http", "--api", stack.Api.ToString());
        var db = await RunCliAsync("--id", $"{work.Id}", "--call-type", "db", "--postgres", stack.Postgres, "--schema", stack.Schema);

        Assert.Equal((0, ""), (http.Code, http.Error));
        Assert.Equal((0, ""), (db.Code, db.Error));
        Assert.Equal(http.Output, db.Output);
        Assert.Contains($"work_code   {work.WorkCode}\n", http.Output, StringComparison.Ordinal);
        Assert.Contains("done        true\n", http.Output, StringComparison.Ordinal);
        Assert.Contains($"result      {work.Result}\n", http.Output, StringComparison.Ordinal);
        Assert.Contains($"compute/result = {work.Result}\n", http.Output, StringComparison.Ordinal);

        // --json gives the API's shape from either path.
        var json = await RunCliAsync("--id", $"{work.Id}", "--call-type", "db", "--postgres", stack.Postgres, "--schema", stack.Schema, "--json");
        Assert.Equal(0, json.Code);
        Assert.Contains($"\"work_code\":\"{work.WorkCode}\"", json.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cli_searches_by_work_code_prefix_through_http_and_through_the_database()
    {
        var work = await stack.CreateThroughApiAsync();

        var http = await RunCliAsync("--work-code", "api-", "--call-type", "http", "--api", stack.Api.ToString(), "--since", "1h");
        var db = await RunCliAsync("--work-code", work.WorkCode, "--call-type", "db", "--postgres", stack.Postgres, "--schema", stack.Schema);

        Assert.Equal(0, http.Code);
        Assert.StartsWith("ID        WORK_CODE", http.Output, StringComparison.Ordinal);
        Assert.Contains(work.WorkCode, http.Output, StringComparison.Ordinal);
        Assert.Equal(0, db.Code);
        Assert.Equal(2, db.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length); // header + the one work
    }

    [Fact]
    public async Task Cli_reports_a_missing_work_in_one_line_with_exit_code_1()
    {
        var http = await RunCliAsync("--id", "987654321", "--api", stack.Api.ToString());
        var db = await RunCliAsync("--id", "987654321", "--call-type", "db", "--postgres", stack.Postgres, "--schema", stack.Schema);
        var noMatch = await RunCliAsync("--work-code", "nothing-like-this", "--api", stack.Api.ToString());

        Assert.Equal((1, "", "error: work 987654321 was not found.\n"), http);
        Assert.Equal((1, "", "error: work 987654321 was not found.\n"), db);
        Assert.Equal(1, noMatch.Code);
        Assert.StartsWith("error: no work with a code starting with 'nothing-like-this'", noMatch.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cli_reports_an_unreachable_api_or_database_with_exit_code_1()
    {
        var api = await RunCliAsync("--id", "1", "--api", "http://127.0.0.1:1/");
        var db = await RunCliAsync("--id", "1", "--call-type", "db", "--postgres", "Host=127.0.0.1;Port=1;Username=x;Timeout=2");

        Assert.Equal(1, api.Code);
        Assert.StartsWith("error: the API could not be reached", api.Error, StringComparison.Ordinal);
        Assert.Equal(1, db.Code);
        Assert.StartsWith("error: the database failed", db.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Raw_http_prints_the_raw_response_of_the_api_for_a_work_a_missing_one_and_a_post()
    {
        var work = await stack.DoneAsync((await stack.CreateThroughApiAsync()).Id);

        var found = await RunRawAsync(new Uri(stack.Api, $"/work/{work.Id}").ToString());
        Assert.Equal((0, ""), (found.Code, found.Error));
        Assert.StartsWith("HTTP/1.1 200 OK\r\n", found.Output, StringComparison.Ordinal);
        Assert.Contains("Content-Type: application/json; charset=utf-8\r\n", found.Output, StringComparison.Ordinal);
        Assert.Contains("\r\n\r\n", found.Output, StringComparison.Ordinal);
        Assert.Contains($"\"work_code\":\"{work.WorkCode}\"", found.Output, StringComparison.Ordinal);

        var missing = await RunRawAsync(new Uri(stack.Api, "/work/987654321").ToString());
        Assert.Equal(0, missing.Code);
        Assert.StartsWith("HTTP/1.1 404 Not Found\r\n", missing.Output, StringComparison.Ordinal);
        Assert.Contains("Content-Type: application/problem+json", missing.Output, StringComparison.Ordinal);

        var created = await RunRawAsync("-X", "POST", new Uri(stack.Api, "/work").ToString());
        Assert.StartsWith("HTTP/1.1 201 Created\r\n", created.Output, StringComparison.Ordinal);
        Assert.Contains("Location: /work/", created.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Raw_http_reports_a_refused_connection_with_exit_code_1()
    {
        var refused = await RunRawAsync("http://127.0.0.1:1/work/1");
        Assert.Equal(1, refused.Code);
        Assert.StartsWith("error: could not connect to 127.0.0.1:1", refused.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_built_cli_binary_exits_1_for_a_missing_work_and_0_for_a_found_one()
    {
        // One run of the real program, so Program.cs and the exit code a shell sees are covered too.
        var work = await stack.CreateThroughApiAsync();
        Assert.Equal(1, (await RunProcessAsync("worktodo-cli.dll", "--id", "987654321", "--api", stack.Api.ToString())).Code);
        var found = await RunProcessAsync("worktodo-cli.dll", "--id", $"{work.Id}", "--api", stack.Api.ToString());
        Assert.Equal(0, found.Code);
        Assert.Contains(work.WorkCode, found.Output, StringComparison.Ordinal);
    }

    internal static async Task<(int Code, string Output, string Error)> RunCliAsync(params string[] args)
    {
        var (output, error) = (new StringWriter { NewLine = "\n" }, new StringWriter { NewLine = "\n" });
        var code = await new WorkCli(output, error, _ => null).RunAsync(args);
        return (code, output.ToString(), error.ToString());
    }

    internal static async Task<(int Code, string Output, string Error)> RunRawAsync(params string[] args)
    {
        var (output, error) = (new StringWriter { NewLine = "\n" }, new StringWriter { NewLine = "\n" });
        var code = await new RawHttpCli(output, error).RunAsync(args);
        return (code, output.ToString(), error.ToString());
    }

    private static async Task<(int Code, string Output)> RunProcessAsync(string dll, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, dll));
        foreach (var arg in args) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await output + await error);
    }
}
