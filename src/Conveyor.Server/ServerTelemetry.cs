using System.Diagnostics;
using OpenTelemetry.Trace;

namespace Conveyor.Server;

/// <summary>
/// Server spans (source <c>Conveyor.Server</c>) and the trace context a job carries from producer to worker.
/// OTLP export is on when the standard <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> variable is set.
/// </summary>
internal static class ServerTelemetry
{
    public const string SourceName = "Conveyor.Server";

    public static readonly ActivitySource Source = new(SourceName);

    /// <summary>
    /// The traceparent a request gives the jobs it enqueues when their body names none (that one wins, in JobRequests):
    /// the enqueue span's own (a child of the request's traceparent header), so a worker's handler span continues the
    /// producer's trace. Without a traceparent header the server's span is given only when it is recorded (traces
    /// exported): a trace that began in this request and that nobody records has nothing for a worker to continue, and
    /// its 55 characters would be written into every version of the job's row.
    /// </summary>
    public static string? TraceParentFor(HttpContext context)
    {
        var header = context.Request.Headers.TryGetValue("traceparent", out var values) && values.Count == 1 ? values[0] : null;
        if (Activity.Current is { IdFormat: ActivityIdFormat.W3C } current && (header is not null || current.Recorded)) return current.Id;
        return header;
    }

    public static void AddOtlpExportWhenConfigured(IServiceCollection services)
    {
        if (string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT"))) return;
        services.AddOpenTelemetry()
            .WithTracing(tracing => tracing
                .AddSource(SourceName)
                .AddSource("Microsoft.AspNetCore")
                .AddOtlpExporter());
    }
}
