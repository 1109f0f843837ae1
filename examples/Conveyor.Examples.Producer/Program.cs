using System.Text.Json;
using Conveyor.Client;
using Conveyor.Examples.Contracts;
using Microsoft.Extensions.DependencyInjection;

// The producer side of the sample: enqueues emails (one, then a batch) and asks the worker for quotes over RPC.
// With a server and the worker running: dotnet run --project examples/Conveyor.Examples.Producer
var services = new ServiceCollection();
services.AddConveyor(o =>
{
    o.BaseAddress = new Uri(Environment.GetEnvironmentVariable("CONVEYOR_SERVER") ?? "http://127.0.0.1:5080");
    o.ApiKey = Environment.GetEnvironmentVariable("CONVEYOR_API_KEY");
    o.SerializerOptions = new JsonSerializerOptions(JsonSerializerDefaults.Web) { TypeInfoResolver = ExampleJson.Default };
});
await using var provider = services.BuildServiceProvider();
var conveyor = provider.GetRequiredService<ConveyorClient>();

try
{
    // One job, with options: a kind to route on, a priority, and an idempotency key so a retry of this program
    // does not send the welcome email twice.
    var (job, replayed) = await conveyor.EnqueueAsync(
        "emails",
        new SendEmail("ada@example.com", "Welcome"),
        new JobOptions { Kind = "email.send", Priority = 5, IdempotencyKey = "welcome-ada", MaxAttempts = 5 },
        ExampleJson.Default.SendEmail);
    Console.WriteLine(replayed ? $"welcome email already enqueued as job {job.Id}" : $"enqueued welcome email as job {job.Id}");

    // Many jobs in one request through the batch endpoint.
    var batch = await conveyor.EnqueueManyAsync(
        "emails",
        Enumerable.Range(1, 100).Select(i => new SendEmail($"user{i}@example.com", "Newsletter")),
        new JobOptions { Kind = "email.send", Tags = ["newsletter"] },
        ExampleJson.Default.SendEmail);
    Console.WriteLine($"enqueued {batch.Count} newsletter emails (jobs {batch.Jobs[0].Id}…{batch.Jobs[^1].Id})");

    // RPC: enqueue and wait for the worker's answer.
    var quote = await conveyor.EnqueueAndWaitAsync<QuoteRequest, QuoteAnswer>(
        "quotes",
        new QuoteRequest("widget", 3),
        TimeSpan.FromSeconds(10),
        new JobOptions { MaxAttempts = 1 },
        ExampleJson.Default.QuoteRequest,
        ExampleJson.Default.QuoteAnswer);
    Console.WriteLine($"quote: {quote!.Quantity} × {quote.Product} = {quote.Total}");

    // A request the handler refuses: the job is dead and the call says why.
    try
    {
        await conveyor.EnqueueAndWaitAsync<QuoteRequest, QuoteAnswer>(
            "quotes", new QuoteRequest("widget", 0), TimeSpan.FromSeconds(10), new JobOptions { MaxAttempts = 1 },
            ExampleJson.Default.QuoteRequest, ExampleJson.Default.QuoteAnswer);
    }
    catch (JobFailedException failed)
    {
        Console.WriteLine($"refused as expected: {failed.Job.Errors![^1].Message}");
    }

    return 0;
}
catch (JobWaitTimeoutException timeout)
{
    Console.Error.WriteLine($"error: {timeout.Message} (start the worker: dotnet run --project examples/Conveyor.Examples.Worker)");
    return 1;
}
catch (ConveyorException error)
{
    Console.Error.WriteLine($"error: {error.Message}");
    return error.IsTransient ? 3 : 1;
}
