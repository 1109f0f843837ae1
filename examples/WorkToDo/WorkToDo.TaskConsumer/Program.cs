using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using WorkToDo.TaskConsumer;

// worktodo-task-consumer: computes works from the Conveyor queue "work". Options: --postgres, --schema, --conveyor,
// --queue, --concurrency (or WORKTODO_POSTGRES, …; CONVEYOR_SERVER also works). Ctrl-C / SIGTERM stop it gracefully:
// running jobs finish, leased ones are released.
var configuration = new ConfigurationBuilder().AddEnvironmentVariables("WORKTODO_").AddCommandLine(args).Build();
ConsumerSettings settings;
try
{
    settings = ConsumerSettings.From(configuration);
}
catch (ArgumentException e)
{
    await Console.Error.WriteLineAsync($"error: {e.Message}");
    return 2;
}

IHost host;
try
{
    host = await ConsumerHost.BuildAsync(settings);
}
catch (Npgsql.NpgsqlException e)
{
    await Console.Error.WriteLineAsync($"error: the database could not be prepared ({e.Message}). Check --postgres (WORKTODO_POSTGRES).");
    return 1;
}

using var _ = host;
await host.StartAsync();
Console.WriteLine($"worktodo-task-consumer working on queue '{settings.Queue}' of {settings.Conveyor}");
await host.WaitForShutdownAsync();
return 0;
