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
    /// The traceparent stored on an enqueued job: the one the producer gave explicitly, else the enqueue span's own
    /// (a child of the request's traceparent header), so a worker's handler span continues the producer's trace.
    /// Without a traceparent from the producer the server's span is stored only when it is recorded (traces exported):
    /// a trace that began in this request and that nobody records has nothing for a worker to continue, and its 55
    /// characters would be written into every version of the job's row.
    /// </summary>
    public static string? TraceParentFor(string? explicitTraceParent, HttpContext context)
    {
        if (explicitTraceParent is not null) return explicitTraceParent;
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
