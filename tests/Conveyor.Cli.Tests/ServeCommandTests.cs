namespace Conveyor.Cli.Tests;

public sealed class ServeCommandTests
{
    [Fact]
    public async Task Serve_without_options_or_environment_uses_the_documented_defaults()
    {
        var cli = new CliHarness();

        Assert.Equal(0, await cli.RunAsync("serve"));

        var served = Assert.IsType<Conveyor.Server.ServerOptions>(cli.Served);
        Assert.Equal("127.0.0.1", served.Host);
        Assert.Equal(5080, served.Port);
        Assert.Equal(Path.GetFullPath("./conveyor-data"), served.DataDirectory);
        Assert.Equal(1_048_576, served.MaxJobBytes);
        Assert.Equal(67_108_864, served.MaxBodyBytes);
    }

    [Fact]
    public async Task Serve_takes_the_command_line_over_the_environment_and_the_environment_over_defaults()
    {
        var cli = new CliHarness();
        cli.Environment["CONVEYOR_HOST"] = "127.0.0.2";
        cli.Environment["CONVEYOR_PORT"] = "6000";
        cli.Environment["CONVEYOR_DATA"] = "/tmp/from-env";
        cli.Environment["CONVEYOR_MAX_JOB_BYTES"] = "2048";

        Assert.Equal(0, await cli.RunAsync("serve", "--port", "0", "--data", "/tmp/from-args"));

        var served = Assert.IsType<Conveyor.Server.ServerOptions>(cli.Served);
        Assert.Equal("127.0.0.2", served.Host);
        Assert.Equal(0, served.Port);
        Assert.Equal("/tmp/from-args", served.DataDirectory);
        Assert.Equal(2048, served.MaxJobBytes);
        Assert.Equal(67_108_864, served.MaxBodyBytes);
    }

    [Fact]
    public async Task A_malformed_environment_variable_is_a_usage_error_that_names_it()
    {
        var cli = new CliHarness();
        cli.Environment["CONVEYOR_PORT"] = "eighty";

        Assert.Equal(2, await cli.RunAsync("serve"));

        Assert.Null(cli.Served);
        var line = Assert.Single(cli.ErrorLines);
        Assert.StartsWith("error: CONVEYOR_PORT must be a whole number from 0 to 65535, got 'eighty'.", line);
    }

    [Fact]
    public async Task Settings_the_server_rejects_are_reported_as_usage_errors_before_it_starts()
    {
        var cli = new CliHarness();

        Assert.Equal(2, await cli.RunAsync("serve", "--max-job-bytes", "4096", "--max-body-bytes", "2048"));

        Assert.Null(cli.Served);
        Assert.Contains("--max-body-bytes (2048) must be at least --max-job-bytes (4096)", Assert.Single(cli.ErrorLines));
    }

    [Fact]
    public async Task An_out_of_range_port_is_refused_while_parsing()
    {
        var cli = new CliHarness();

        Assert.Equal(2, await cli.RunAsync("serve", "--port", "70000"));

        Assert.Equal(
            "error: --port must be a whole number from 0 to 65535, got '70000'. See 'conveyor serve --help'.",
            Assert.Single(cli.ErrorLines));
    }

    [Fact]
    public async Task Serve_help_shows_every_option_with_its_environment_variable_and_default()
    {
        var cli = new CliHarness();

        Assert.Equal(0, await cli.RunAsync("serve", "--help"));

        var help = cli.Out.ToString();
        Assert.Contains("--host <host>", help);
        Assert.Contains("[env: CONVEYOR_HOST] [default: 127.0.0.1]", help);
        Assert.Contains("[env: CONVEYOR_PORT] [default: 5080]", help);
        Assert.Contains("[env: CONVEYOR_DATA] [default: ./conveyor-data]", help);
        Assert.Contains("[env: CONVEYOR_MAX_JOB_BYTES] [default: 1048576]", help);
        Assert.Contains("[env: CONVEYOR_MAX_BODY_BYTES] [default: 67108864]", help);
        Assert.Null(cli.Served);
    }
}
