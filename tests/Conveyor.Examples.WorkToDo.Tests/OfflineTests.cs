using WorkToDo.Core;
using WorkToDo.RawHttp;
using WorkToDo.TaskProducer;

namespace Conveyor.Examples.WorkToDo.Tests;

/// <summary>What needs no server: the rule, the codes, the parsers, and command lines refused before anything is sent.</summary>
public sealed class OfflineTests
{
    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 3)]
    [InlineData(10, 55)]
    [InlineData(99, 4950)]
    [InlineData(0, 0)]
    public void SumTo_adds_the_integers_from_1_to_n_inclusive(int n, long sum) => Assert.Equal(sum, Arithmetic.SumTo(n));

    [Fact]
    public void Work_codes_are_a_prefix_and_ten_letters_or_digits_and_a_demand_always_gets_the_same_one()
    {
        Assert.Matches("^api-[a-z0-9]{10}$", WorkCodes.NewApiCode());
        Assert.NotEqual(WorkCodes.NewApiCode(), WorkCodes.NewApiCode());
        Assert.Matches("^consumer-[a-z0-9]{10}$", WorkCodes.ForDemand("b6f1c0"));
        Assert.Equal(WorkCodes.ForDemand("b6f1c0"), WorkCodes.ForDemand("b6f1c0"));
        Assert.NotEqual(WorkCodes.ForDemand("b6f1c0"), WorkCodes.ForDemand("b6f1c1"));
        Assert.All(Enumerable.Range(0, 200).Select(_ => Arithmetic.RandomAddUpTo()), n => Assert.InRange(n, 1, 99));
    }

    [Theory]
    [InlineData("90s", 90)]
    [InlineData("15m", 900)]
    [InlineData("6h", 21600)]
    [InlineData("7d", 604800)]
    public void Durations_read_a_number_and_a_unit(string text, int seconds)
    {
        Assert.True(Durations.TryParse(text, out var duration));
        Assert.Equal(TimeSpan.FromSeconds(seconds), duration);
    }

    [Theory]
    [InlineData("")]
    [InlineData("6")]
    [InlineData("h")]
    [InlineData("0h")]
    [InlineData("-1h")]
    [InlineData("6 h")]
    [InlineData("6w")]
    [InlineData("99999999999d")]
    public void Durations_refuse_anything_else(string text) => Assert.False(Durations.TryParse(text, out _));

    [Fact]
    public void Producer_intervals_also_take_milliseconds() =>
        Assert.True(ProducerSettings.TryParseInterval("500ms", out var interval) && interval == TimeSpan.FromMilliseconds(500));

    [Theory]
    [InlineData(new string[0], "error: Give exactly one of --id N or --work-code PREFIX.")]
    [InlineData(new[] { "--id", "1", "--work-code", "api-" }, "error: Give exactly one of --id N or --work-code PREFIX.")]
    [InlineData(new[] { "--id", "abc" }, "error: --id must be a positive whole number, got 'abc'.")]
    [InlineData(new[] { "--id", "0" }, "error: --id must be a positive whole number, got '0'.")]
    [InlineData(new[] { "--id", "1", "--call-type", "ftp" }, "error: Argument 'ftp' not recognized. Must be one of:")]
    [InlineData(new[] { "--id", "1", "--since", "1h" }, "error: --since goes with --work-code, not --id.")]
    [InlineData(new[] { "--work-code", "api-", "--since", "soon" }, "error: --since must be a positive whole number followed by s, m, h or d")]
    [InlineData(new[] { "--id", "1", "--call-type", "db" }, "error: --call-type db needs the database")]
    [InlineData(new[] { "--id", "1", "--call-type", "db", "--postgres", "nonsense" }, "error: --postgres must be an Npgsql connection string")]
    [InlineData(new[] { "--id", "1", "--call-type", "db", "--postgres", "Host=h", "--schema", "Bad-Name" }, "error: The schema must be")]
    [InlineData(new[] { "--id", "1", "--api", "ftp://x" }, "error: --api must be the API's http:// address")]
    [InlineData(new[] { "--id", "1", "--bogus" }, "error: Unrecognized command or argument '--bogus'.")]
    public async Task Cli_refuses_a_bad_command_line_with_exit_code_2_and_says_what_to_fix(string[] args, string says)
    {
        var (code, output, error) = await CliTests.RunCliAsync(args);
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.StartsWith(says, error, StringComparison.Ordinal);
        Assert.EndsWith("Try 'worktodo-cli --help'.\n", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cli_help_lists_the_options_and_exits_0()
    {
        var (code, output, _) = await CliTests.RunCliAsync("--help");
        Assert.Equal(0, code);
        Assert.Contains("--call-type", output, StringComparison.Ordinal);
        Assert.Contains("--work-code", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("https://127.0.0.1/work/1")]
    [InlineData("not-a-url")]
    [InlineData("-X DELETE http://127.0.0.1/work/1")]
    [InlineData("--timeout-ms 0 http://127.0.0.1/work/1")]
    public async Task Raw_http_refuses_a_bad_command_line_with_exit_code_2(string line)
    {
        var (code, _, error) = await CliTests.RunRawAsync(line.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(2, code);
        Assert.StartsWith("error: ", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Raw_http_writes_the_request_line_host_and_connection_close_with_crlf()
    {
        Assert.Equal(
            "GET /work/search?work_code=api- HTTP/1.1\r\nHost: 127.0.0.1:5090\r\nUser-Agent: worktodo-raw/1.0\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            RawHttpCli.BuildRequest(new Uri("http://127.0.0.1:5090/work/search?work_code=api-"), "GET"));
        Assert.Contains("Content-Length: 0\r\n", RawHttpCli.BuildRequest(new Uri("http://127.0.0.1:5090/work"), "POST"), StringComparison.Ordinal);
    }
}
