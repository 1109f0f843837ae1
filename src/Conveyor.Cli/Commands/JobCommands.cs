using Conveyor.Cli.Output;

namespace Conveyor.Cli.Commands;

// Inside the namespace on purpose: Conveyor.Core's public JobEvent, QueueInfo, StateCounts… live in the enclosing
// 'Conveyor' namespace and would otherwise win over the client's wire types of the same names.
using Conveyor.Client;

/// <summary>The job commands: each one call to the server and a few lines of output.</summary>
internal static class JobCommands
{
    private const int PayloadColumnWidth = 60;

    public static async Task<int> EnqueueAsync(
        ConveyorClient client, EnqueueOptions options, TextWriter output, CancellationToken cancellationToken)
    {
        var (job, replayed) = await client.EnqueueAsync(options.Queue, options.Request, cancellationToken).ConfigureAwait(false);
        if (options.Json)
        {
            Text.WriteJson(output, job, OutputJsonContext.Terminal.JobInfo);
        }
        else if (replayed)
        {
            output.WriteLine($"job {job.Id} already exists in '{job.Queue}' with this idempotency key ({job.State})");
        }
        else
        {
            output.WriteLine($"enqueued job {job.Id} in '{job.Queue}' ({Describe(job)})");
        }

        return ExitCodes.Success;
    }

    public static async Task<int> LeaseAsync(
        ConveyorClient client, LeaseOptions options, TextWriter output, CancellationToken cancellationToken)
    {
        var jobs = await client.LeaseAsync(options.Queue, options.Max, options.LeaseMs, options.WaitMs, options.Worker, cancellationToken)
            .ConfigureAwait(false);
        if (options.Json)
        {
            Text.WriteJson(output, jobs, OutputJsonContext.Terminal.IReadOnlyListJobInfo);
        }
        else if (jobs.Count == 0)
        {
            output.WriteLine($"no job available in '{options.Queue}'");
        }
        else
        {
            // The token is printed whole: it is what `conveyor complete` and `fail` need.
            var table = new TextTable("ID", "KIND", "ATTEMPT", "TOKEN", "EXPIRES", "PAYLOAD");
            foreach (var job in jobs)
            {
                table.Add(
                    Text.Number(job.Id),
                    job.Kind,
                    $"{job.Attempt}/{job.MaxAttempts}",
                    job.Lease?.Token ?? Text.None,
                    Text.Time(job.Lease?.ExpiresAt),
                    Text.Json(job.Payload, PayloadColumnWidth));
            }

            table.WriteTo(output);
        }

        return ExitCodes.Success;
    }

    public static async Task<int> CompleteAsync(
        ConveyorClient client, CompleteOptions options, TextWriter output, CancellationToken cancellationToken)
    {
        var job = await client.CompleteAsync(options.Id, options.Token, options.Result, cancellationToken).ConfigureAwait(false);
        WriteJob(output, job, options.Json, $"job {job.Id} {job.State}");
        return ExitCodes.Success;
    }

    public static async Task<int> FailAsync(
        ConveyorClient client, FailOptions options, TextWriter output, CancellationToken cancellationToken)
    {
        var job = await client
            .FailAsync(options.Id, options.Token, options.Error, options.RetryInMs, options.Dead, stack: null, cancellationToken)
            .ConfigureAwait(false);
        WriteJob(output, job, options.Json, $"job {job.Id} failed, now {Describe(job)}");
        return ExitCodes.Success;
    }

    public static async Task<int> CancelAsync(
        ConveyorClient client, JobActionOptions options, TextWriter output, CancellationToken cancellationToken)
    {
        var job = await client.CancelAsync(options.Id, cancellationToken).ConfigureAwait(false);
        WriteJob(output, job, options.Json, $"job {job.Id} {job.State}");
        return ExitCodes.Success;
    }

    public static async Task<int> RetryAsync(
        ConveyorClient client, JobActionOptions options, TextWriter output, CancellationToken cancellationToken)
    {
        var job = await client.RetryAsync(options.Id, cancellationToken).ConfigureAwait(false);
        WriteJob(output, job, options.Json, $"job {job.Id} is {Describe(job)} again");
        return ExitCodes.Success;
    }

    public static async Task<int> GetAsync(
        ConveyorClient client, GetJobOptions options, TextWriter output, CancellationToken cancellationToken)
    {
        var job = await client.GetJobAsync(options.Id, cancellationToken).ConfigureAwait(false);
        var events = options.Events ? await client.GetEventsAsync(options.Id, cancellationToken).ConfigureAwait(false) : null;
        if (options.Json)
        {
            if (events is null)
            {
                Text.WriteJson(output, job, OutputJsonContext.Terminal.JobInfo);
            }
            else
            {
                Text.WriteJson(output, new JobWithEvents(job, events), OutputJsonContext.Terminal.JobWithEvents);
            }

            return ExitCodes.Success;
        }

        WriteDetails(output, job);
        if (events is not null)
        {
            output.WriteLine();
            if (events.Count == 0)
            {
                output.WriteLine("no events recorded");
            }
            else
            {
                var table = new TextTable("AT", "EVENT", "STATE", "ATTEMPT", "MESSAGE");
                foreach (var e in events)
                {
                    table.Add(
                        Text.Time(e.At),
                        e.Type,
                        e.State ?? Text.None,
                        e.Attempt is { } attempt ? Text.Number(attempt) : Text.None,
                        Text.OneLine(e.Message));
                }

                table.WriteTo(output);
            }
        }

        return ExitCodes.Success;
    }

    public static async Task<int> SearchAsync(
        ConveyorClient client, SearchJobsOptions options, TextWriter output, CancellationToken cancellationToken)
    {
        var page = await client.SearchJobsAsync(options.Filters, options.Cursor, options.Limit, cancellationToken).ConfigureAwait(false);
        if (options.Json)
        {
            Text.WriteJson(output, page, OutputJsonContext.Terminal.JobPage);
            return ExitCodes.Success;
        }

        if (page.Jobs.Count == 0)
        {
            output.WriteLine("no jobs match");
        }
        else
        {
            var table = new TextTable("ID", "QUEUE", "KIND", "STATE", "ATTEMPT", "PRIORITY", "CREATED");
            foreach (var job in page.Jobs)
            {
                table.Add(
                    Text.Number(job.Id),
                    job.Queue,
                    job.Kind,
                    job.State,
                    $"{job.Attempt}/{job.MaxAttempts}",
                    Text.Number(job.Priority),
                    Text.Time(job.CreatedAt));
            }

            table.WriteTo(output);
        }

        if (page.NextCursor is not null)
        {
            output.WriteLine($"more: --cursor {page.NextCursor}");
        }

        return ExitCodes.Success;
    }

    private static void WriteJob(TextWriter output, JobInfo job, bool json, string line)
    {
        if (json)
        {
            Text.WriteJson(output, job, OutputJsonContext.Terminal.JobInfo);
        }
        else
        {
            output.WriteLine(line);
        }
    }

    /// <summary>The state, plus when a waiting job will run.</summary>
    private static string Describe(JobInfo job) =>
        job.State == "scheduled" && job.RunAt is { } runAt ? $"scheduled for {Text.Time(runAt)}" : job.State;

    private static void WriteDetails(TextWriter output, JobInfo job)
    {
        var fields = new List<(string, string)>
        {
            ("id", Text.Number(job.Id)),
            ("queue", job.Queue),
            ("kind", job.Kind),
            ("state", job.State),
            ("priority", Text.Number(job.Priority)),
            ("attempt", $"{job.Attempt} of {job.MaxAttempts}"),
            ("run at", Text.Time(job.RunAt)),
            ("created", Text.Time(job.CreatedAt)),
            ("updated", Text.Time(job.UpdatedAt)),
            ("started", Text.Time(job.StartedAt)),
            ("finished", Text.Time(job.FinishedAt)),
            ("tags", job.Tags is { Count: > 0 } tags ? string.Join(", ", tags) : Text.None),
            ("idempotency key", job.IdempotencyKey ?? Text.None),
            ("partition key", job.PartitionKey ?? Text.None),
        };
        if (job.Lease is { } lease)
        {
            fields.Add(("lease", $"{lease.Token} held by {lease.Owner ?? "an unnamed worker"} until {Text.Time(lease.ExpiresAt)}"));
        }

        fields.Add(("payload", Text.Json(job.Payload)));
        fields.Add(("progress", Text.Json(job.Progress)));
        fields.Add(("result", Text.Json(job.Result)));
        foreach (var error in job.Errors ?? [])
        {
            fields.Add(($"error #{error.Attempt}", $"{Text.Time(error.At)} {Text.OneLine(error.Message)}"));
        }

        Text.WriteFields(output, fields);
    }
}
