using WorkToDo.Api;

// worktodo-api: the HTTP API of the "work to do" example. Options: --url, --postgres, --schema, --conveyor, --queue
// (or WORKTODO_URL, WORKTODO_POSTGRES, …). Ctrl-C / SIGTERM stop it gracefully.
var configuration = new ConfigurationBuilder().AddEnvironmentVariables("WORKTODO_").AddCommandLine(args).Build();
ApiSettings settings;
try
{
    settings = ApiSettings.From(configuration);
}
catch (ArgumentException e)
{
    await Console.Error.WriteLineAsync($"error: {e.Message}");
    return 2;
}

WebApplication app;
try
{
    app = await WorkApi.BuildAsync(settings);
    await app.StartAsync();
}
catch (Npgsql.NpgsqlException e)
{
    await Console.Error.WriteLineAsync($"error: the database could not be prepared ({e.Message}). Check --postgres (WORKTODO_POSTGRES).");
    return 1;
}

Console.WriteLine($"worktodo-api listening on {WorkApi.Address(app)}");
await app.WaitForShutdownAsync();
return 0;
