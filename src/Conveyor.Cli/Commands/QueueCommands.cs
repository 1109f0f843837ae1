using Conveyor.Cli.Output;

namespace Conveyor.Cli.Commands;

// Inside the namespace on purpose: Conveyor.Core's public JobEvent, QueueInfo, StateCounts… live in the enclosing
// 'Conveyor' namespace and would otherwise win over the client's wire types of the same names.
using Conveyor.Client;

/// <summary>The queue and server commands.</summary>
internal static class QueueCommands
{
    public static async Task<int> ListAsync(
        ConveyorClient client, ListOptions options, TextWriter output, CancellationToken cancellationToken)
    {
        var queues = await client.ListQueuesAsync(cancellationToken).ConfigureAwait(false);
        if (options.Json)
        {
            Text.WriteJson(output, queues, OutputJsonContext.Terminal.IReadOnlyListQueueInfo);
        }
        else if (queues.Count == 0)
        {
            output.WriteLine("no queues yet: a queue is created by its first enqueue");
        }
        else
        {
            var table = new TextTable("QUEUE", "STATUS", "SCHEDULED", "AVAILABLE", "RUNNING", "COMPLETED", "DEAD", "CANCELLED");
            foreach (var queue in queues)
            {
                var c = queue.Counts;
                table.Add(
                    queue.Name,
                    queue.Paused ? "paused" : "active",
                    Text.Number(c.Scheduled),
                    Text.Number(c.Available),
                    Text.Number(c.Running),
                    Text.Number(c.Completed),
                    Text.Number(c.Dead),
                    Text.Number(c.Cancelled));
            }

            table.WriteTo(output);
        }

        return ExitCodes.Success;
    }

    public static async Task<int> PauseAsync(
        ConveyorClient client, QueueActionOptions options, TextWriter output, CancellationToken cancellationToken)
    {
        var queue = await client.PauseQueueAsync(options.Queue, cancellationToken).ConfigureAwait(false);
        WriteQueue(output, queue, options.Json, $"queue '{queue.Name}' paused: it accepts jobs but leases none until resumed");
        return ExitCodes.Success;
    }

    public static async Task<int> ResumeAsync(
        ConveyorClient client, QueueActionOptions options, TextWriter output, CancellationToken cancellationToken)
    {
        var queue = await client.ResumeQueueAsync(options.Queue, cancellationToken).ConfigureAwait(false);
        WriteQueue(output, queue, options.Json, $"queue '{queue.Name}' resumed ({queue.Counts.Available} available)");
        return ExitCodes.Success;
    }

    public static async Task<int> StatsAsync(
        ConveyorClient client, ListOptions options, TextWriter output, CancellationToken cancellationToken)
    {
        var stats = await client.GetStatsAsync(cancellationToken).ConfigureAwait(false);
        if (options.Json)
        {
            Text.WriteJson(output, stats, OutputJsonContext.Terminal.ServerStats);
            return ExitCodes.Success;
        }

        var c = stats.Counts;
        Text.WriteFields(output,
        [
            ("uptime", Text.Duration(stats.UptimeMs)),
            ("queues", Text.Number(stats.Queues)),
            ("scheduled", Text.Number(c.Scheduled)),
            ("available", Text.Number(c.Available)),
            ("running", Text.Number(c.Running)),
            ("completed", Text.Number(c.Completed)),
            ("dead", Text.Number(c.Dead)),
            ("cancelled", Text.Number(c.Cancelled)),
            ("since start", $"{stats.Enqueued} enqueued, {stats.Completed} completed, {stats.Failed} failed"),
        ]);
        return ExitCodes.Success;
    }

    private static void WriteQueue(TextWriter output, QueueInfo queue, bool json, string line)
    {
        if (json)
        {
            Text.WriteJson(output, queue, OutputJsonContext.Terminal.QueueInfo);
        }
        else
        {
            output.WriteLine(line);
        }
    }
}
