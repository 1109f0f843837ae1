using System.Text.Json;
using Conveyor.Client;
using Conveyor.Examples.Contracts;
using Conveyor.Examples.Worker;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

// The worker side of the sample: sends "emails" (16 at a time) and answers "quotes" (RPC). Start a server first
// (conveyor serve), then: dotnet run --project examples/Conveyor.Examples.Worker. Ctrl-C stops it gracefully.
var builder = Host.CreateApplicationBuilder(args);
builder.Logging.AddFilter("System.Net.Http.HttpClient", LogLevel.Warning); // IHttpClientFactory logs every request at Information
builder.Services.AddConveyor(o =>
{
    o.BaseAddress = new Uri(Environment.GetEnvironmentVariable("CONVEYOR_SERVER") ?? "http://127.0.0.1:5080");
    o.ApiKey = Environment.GetEnvironmentVariable("CONVEYOR_API_KEY");

    // Source-generated (de)serialization for every payload and result: no reflection.
    o.SerializerOptions = new JsonSerializerOptions(JsonSerializerDefaults.Web) { TypeInfoResolver = ExampleJson.Default };
});
builder.Services.AddSingleton<IMailer, ConsoleMailer>();
builder.Services.AddConveyorWorker(o =>
    {
        o.Queue("emails", concurrency: 16, timeout: TimeSpan.FromSeconds(30));
        o.Queue("quotes", concurrency: 4, timeout: TimeSpan.FromSeconds(5));
        o.ShutdownGracePeriod = TimeSpan.FromSeconds(10);
    })
    .AddHandler<SendEmail, SendEmailHandler>("emails", kind: "email.send")
    .AddHandler<QuoteRequest, QuoteAnswer, QuoteHandler>("quotes");

await builder.Build().RunAsync();

namespace Conveyor.Examples.Worker
{
    public interface IMailer
    {
        Task SendAsync(string to, string subject, CancellationToken cancellationToken);
    }

    internal sealed class ConsoleMailer(ILogger<ConsoleMailer> logger) : IMailer
    {
        public async Task SendAsync(string to, string subject, CancellationToken cancellationToken)
        {
            await Task.Delay(50, cancellationToken); // an SMTP round trip
            logger.LogInformation("sent '{Subject}' to {To}", subject, to);
        }
    }

    /// <summary>Resolved from a fresh scope per job. Throwing retries the job with backoff; bad input fails it for good.</summary>
    internal sealed class SendEmailHandler(IMailer mailer) : IJobHandler<SendEmail>
    {
        public async Task HandleAsync(SendEmail payload, JobContext context, CancellationToken cancellationToken)
        {
            if (!payload.To.Contains('@', StringComparison.Ordinal))
            {
                throw new JobFailedPermanentlyException($"'{payload.To}' is not an email address");
            }

            await mailer.SendAsync(payload.To, payload.Subject, cancellationToken);
        }
    }

    /// <summary>An RPC handler: its return value is what the producer's EnqueueAndWaitAsync gets back.</summary>
    internal sealed class QuoteHandler : IJobHandler<QuoteRequest, QuoteAnswer>
    {
        public Task<QuoteAnswer> HandleAsync(QuoteRequest payload, JobContext context, CancellationToken cancellationToken) =>
            payload.Quantity <= 0
                ? throw new JobFailedPermanentlyException($"quantity must be positive, not {payload.Quantity}")
                : Task.FromResult(new QuoteAnswer(payload.Product, payload.Quantity, payload.Quantity * 9.99m));
    }
}
