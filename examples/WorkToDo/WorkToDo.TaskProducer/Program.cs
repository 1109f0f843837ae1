using Microsoft.Extensions.Configuration;
using WorkToDo.TaskProducer;

// worktodo-task-producer: publishes a WorkDemand to RabbitMQ every --every (default 5s). Options: --amqp, --rabbit-queue,
// --every, --count (or WORKTODO_AMQP, …). Ctrl-C / SIGTERM stop it between two demands.
var configuration = new ConfigurationBuilder().AddEnvironmentVariables("WORKTODO_").AddCommandLine(args).Build();
ProducerSettings settings;
try
{
    settings = ProducerSettings.From(configuration);
}
catch (ArgumentException e)
{
    await Console.Error.WriteLineAsync($"error: {e.Message}");
    return 2;
}

using var stop = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(
    System.Runtime.InteropServices.PosixSignal.SIGTERM, context => { context.Cancel = true; stop.Cancel(); });
Console.WriteLine($"worktodo-task-producer publishing to '{settings.RabbitQueue}' every {settings.Every.TotalSeconds:0.###} s");
var sent = await new DemandProducer(settings, Console.Out).RunAsync(stop.Token);
Console.WriteLine($"stopped after {sent} demands");
return 0;
