using Conveyor.Server.Security;
using System.Text;

namespace Conveyor.Server.Metrics;

/// <summary><c>GET /metrics</c>: queue depth read from the store at scrape time, then every recorded instrument.</summary>
internal static class MetricsEndpoint
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    public static void Map(IEndpointRouteBuilder app) => app.MapGet("/metrics", WriteAsync).ExcludeFromDescription().Requires(Access.Read);

    private static async Task<IResult> WriteAsync(IJobStore store, PrometheusExporter exporter, ServerClock clock, CancellationToken ct)
    {
        var queues = await store.QueueListAsync(ct);
        var text = new StringBuilder(4096);
        text.Append("# HELP conveyor_queue_jobs Jobs per queue and state right now.\n# TYPE conveyor_queue_jobs gauge\n");
        foreach (var queue in queues)
        {
            foreach (var state in JobStates.All)
            {
                var count = state switch
                {
                    JobState.Scheduled => queue.Counts.Scheduled,
                    JobState.Available => queue.Counts.Available,
                    JobState.Running => queue.Counts.Running,
                    JobState.Completed => queue.Counts.Completed,
                    JobState.Dead => queue.Counts.Dead,
                    _ => queue.Counts.Cancelled,
                };
                text.Append("conveyor_queue_jobs{queue=\"");
                PrometheusExporter.AppendLabelValue(text, queue.Name);
                text.Append("\",state=\"").Append(state.ToWire()).Append("\"} ").Append(count).Append('\n');
            }
        }
        text.Append("# HELP conveyor_queue_paused 1 when the queue is paused.\n# TYPE conveyor_queue_paused gauge\n");
        foreach (var queue in queues)
        {
            text.Append("conveyor_queue_paused{queue=\"");
            PrometheusExporter.AppendLabelValue(text, queue.Name);
            text.Append("\"} ").Append(queue.Paused ? 1 : 0).Append('\n');
        }
        text.Append("# HELP conveyor_uptime_seconds Seconds since the server started.\n# TYPE conveyor_uptime_seconds gauge\n");
        text.Append("conveyor_uptime_seconds ").Append(PrometheusExporter.Number(clock.UptimeMs / 1000.0)).Append('\n');
        exporter.WriteTo(text);
        return Results.Text(text.ToString(), ContentType);
    }
}
