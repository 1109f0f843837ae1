using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Conveyor.Cli.Output;

// Inside the namespace on purpose: Conveyor.Core's public JobEvent, QueueInfo, StateCounts… live in the enclosing
// 'Conveyor' namespace and would otherwise win over the client's wire types of the same names.
using Conveyor.Client;

/// <summary>What <c>get --events --json</c> prints: the job and its history in one document.</summary>
internal sealed record JobWithEvents(JobInfo Job, IReadOnlyList<JobEvent> Events);

// The --json output: the API's own snake_case shape, indented for people who peek at it, with nulls kept
// so scripts see every field the server reported.
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true)]
[JsonSerializable(typeof(JobInfo))]
[JsonSerializable(typeof(IReadOnlyList<JobInfo>))]
[JsonSerializable(typeof(JobWithEvents))]
[JsonSerializable(typeof(JobPage))]
[JsonSerializable(typeof(QueueInfo))]
[JsonSerializable(typeof(IReadOnlyList<QueueInfo>))]
[JsonSerializable(typeof(ServerStats))]
[JsonSerializable(typeof(ScheduleInfo))]
[JsonSerializable(typeof(IReadOnlyList<ScheduleInfo>))]
internal sealed partial class OutputJsonContext : JsonSerializerContext
{
    /// <summary>Like the generated Default, but leaves non-ASCII text and '+', '&lt;' unescaped: this is for terminals, not HTML.</summary>
    public static OutputJsonContext Terminal { get; } = new(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        NewLine = "\n",
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}
