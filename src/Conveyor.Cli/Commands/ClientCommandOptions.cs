using System.Text.Json;

namespace Conveyor.Cli.Commands;

// Inside the namespace on purpose: Conveyor.Core's public JobEvent, QueueInfo, StateCounts… live in the enclosing
// 'Conveyor' namespace and would otherwise win over the client's wire types of the same names.
using Conveyor.Client;

// Validated inputs of the client commands: built from the command line by CliApp, or directly by tests.

internal sealed record EnqueueOptions(string Queue, EnqueueRequest Request, bool Json);

internal sealed record LeaseOptions(string Queue, int Max, int LeaseMs, int WaitMs, string? Worker, bool Json);

internal sealed record CompleteOptions(long Id, string Token, JsonElement? Result, bool Json);

internal sealed record FailOptions(long Id, string Token, string Error, long? RetryInMs, bool Dead, bool Json);

internal sealed record GetJobOptions(long Id, bool Events, bool Json);

internal sealed record JobActionOptions(long Id, bool Json);

internal sealed record SearchJobsOptions(JobSearch Filters, int? Limit, string? Cursor, bool Json);

internal sealed record QueueActionOptions(string Queue, bool Json);

internal sealed record ListOptions(bool Json);
