using System.Diagnostics;

namespace Conveyor.Client.Internal;

/// <summary>The SDK's one <see cref="ActivitySource"/>: a worker's job activity continues the producer's trace.</summary>
internal static class Telemetry
{
    public static readonly ActivitySource Source = new("Conveyor.Client");

    public static Activity? StartJob(JobInfo job)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        ActivityContext.TryParse(job.TraceParent, traceState: null, isRemote: true, out var parent);
        var activity = Source.StartActivity($"conveyor.job {job.Queue}", ActivityKind.Consumer, parent);
        activity?.SetTag("conveyor.job.id", job.Id);
        activity?.SetTag("conveyor.job.kind", job.Kind);
        activity?.SetTag("conveyor.job.attempt", job.Attempt);
        return activity;
    }
}
