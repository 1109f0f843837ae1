using System.Net;

namespace Conveyor.Cli.Tests;

public sealed class SecurityOptionTests
{
    [Fact]
    public async Task Serve_reads_keys_retention_and_log_format_from_options_or_the_environment()
    {
        var cli = new CliHarness();
        cli.Environment["CONVEYOR_API_KEYS"] = "producer-key-0123456789:producer";
        cli.Environment["CONVEYOR_RETENTION"] = "12h";
        Assert.Equal(0, await cli.RunAsync("serve", "--host", "0.0.0.0", "--log-format", "json"));
        var served = cli.Served!;
        Assert.Single(served.ApiKeys);
        Assert.Equal(Conveyor.Server.Security.ApiKeyRole.Producer, served.ApiKeys[0].Role);
        Assert.Equal(TimeSpan.FromHours(12), served.Retention);
        Assert.Equal("json", served.LogFormat);
    }

    [Fact]
    public async Task Serve_beyond_loopback_without_keys_needs_allow_anonymous()
    {
        var refused = new CliHarness();
        Assert.Equal(2, await refused.RunAsync("serve", "--host", "0.0.0.0"));
        Assert.Contains("--allow-anonymous", Assert.Single(refused.ErrorLines));

        var allowed = new CliHarness();
        Assert.Equal(0, await allowed.RunAsync("serve", "--host", "0.0.0.0", "--allow-anonymous"));
        Assert.True(allowed.Served!.AllowAnonymous);

        var byEnvironment = new CliHarness();
        byEnvironment.Environment["CONVEYOR_ALLOW_ANONYMOUS"] = "true";
        Assert.Equal(0, await byEnvironment.RunAsync("serve", "--host", "0.0.0.0"));
    }

    [Theory]
    [InlineData("--api-keys", "short:admin", "--api-keys")]
    [InlineData("--retention", "forever", "--retention")]
    [InlineData("--log-format", "xml", "--log-format")]
    public async Task Bad_security_options_are_one_line_usage_errors(string option, string value, string mentions)
    {
        var cli = new CliHarness();
        Assert.Equal(2, await cli.RunAsync("serve", option, value));
        Assert.Null(cli.Served);
        Assert.Contains(mentions, Assert.Single(cli.ErrorLines), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Retention_zero_keeps_finished_jobs_forever()
    {
        var cli = new CliHarness();
        Assert.Equal(0, await cli.RunAsync("serve", "--retention", "0"));
        Assert.Null(cli.Served!.Retention);
    }

    [Fact]
    public async Task Client_commands_send_the_api_key_from_the_option_or_the_environment()
    {
        var seen = new List<string?>();
        var cli = new CliHarness();
        cli.Http.Respond = request =>
        {
            seen.Add(request.Headers.Authorization?.ToString());
            return StubHandler.Json(HttpStatusCode.OK, "[]");
        };
        Assert.Equal(0, await cli.RunAsync("queues", "--api-key", "from-option-123456"));
        cli.Environment["CONVEYOR_API_KEY"] = "from-environment-1234";
        Assert.Equal(0, await cli.RunAsync("queues"));
        Assert.Equal(["Bearer from-option-123456", "Bearer from-environment-1234"], seen);
    }
}
