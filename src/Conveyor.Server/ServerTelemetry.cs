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
    /// the enqueue span's own when something records spans (a child of the request's traceparent header), else the
    /// header itself, so a worker's handler span continues the producer's trace. Without a traceparent header the
    /// server's span is given only when it is recorded (traces exported): a trace that began in this request and that
    /// nobody records has nothing for a worker to continue, and its 55 characters would be written into every version
    /// of the job's row.
    /// </summary>
    public static string? TraceParentFor(string? header)
    {
        if (Activity.Current is { IdFormat: ActivityIdFormat.W3C } current && (header is not null || current.Recorded)) return current.Id;
        return header;
    }

    /// <summary>
    /// A server span, or null when nothing listens. Its parent is the request's Activity when ASP.NET Core made one,
    /// else the caller's <c>traceparent</c> header: the request gets no Activity of its own when only our source is
    /// listened to (see the hosting log filter in ConveyorServer), and the span must still join the caller's trace.
    /// </summary>
    public static Activity? StartSpan(string name, HttpContext context) =>
        Source.HasListeners() ? StartSpan(name, TraceHeader(context, "traceparent"), TraceHeader(context, "tracestate")) : null;

    /// <summary>The same with the caller's trace context given directly (a WebSocket message carries its own).</summary>
    public static Activity? StartSpan(string name, string? traceParent, string? traceState)
    {
        if (!Source.HasListeners()) return null;
        if (Activity.Current is null && traceParent is not null && ActivityContext.TryParse(traceParent, traceState, out var parent))
        {
            return Source.StartActivity(name, ActivityKind.Internal, parent);
        }
        return Source.StartActivity(name);
    }

    /// <summary>A trace header (<c>traceparent</c>, <c>tracestate</c>) when the request carries exactly one.</summary>
    public static string? TraceHeader(HttpContext context, string name) =>
        context.Request.Headers.TryGetValue(name, out var values) && values.Count == 1 ? values[0] : null;

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
