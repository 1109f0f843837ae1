using System.Collections.Concurrent;
using System.Diagnostics;

namespace Conveyor.Client.Tests;

/// <summary>A trace started by a producer continues through the server into the worker's handler.</summary>
public sealed class TracingTests(ServerFixture server) : IClassFixture<ServerFixture>
{
    private static readonly ActivitySource Producer = new("Conveyor.Tests.Producer");

    [Fact]
    public async Task An_enqueue_and_its_handler_share_one_trace_id()
    {
        var stopped = new ConcurrentBag<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name.StartsWith("Conveyor.", StringComparison.Ordinal),
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = stopped.Add,
        };
        ActivitySource.AddActivityListener(listener);
        var queue = ServerFixture.UniqueQueue("trace");
        var seenInHandler = new TaskCompletionSource<ActivityTraceId>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var host = server.Worker(
            o => o.Queue(queue),
            w => w.AddHandler<Order, string>(queue, (_, _, _) =>
            {
                seenInHandler.TrySetResult(Activity.Current?.TraceId ?? default);
                return Task.FromResult("ok");
            }));
        await host.StartAsync(Limits.Token);

        ActivityTraceId traceId;
        using (var span = Producer.StartActivity("place order")!)
        {
            traceId = span.TraceId;
            var (job, _) = await server.Client.EnqueueAsync(queue, new Order("ada", 1, 1));
            Assert.Contains(traceId.ToHexString(), job.TraceParent);
        }

        Assert.Equal(traceId, await seenInHandler.Task.WaitAsync(Limits.Wait));
        await host.StopAsync(Limits.Token);
        Assert.Contains(stopped, a => a.Source.Name == "Conveyor.Server" && a.OperationName == "conveyor.enqueue" && a.TraceId == traceId);
    }
}
