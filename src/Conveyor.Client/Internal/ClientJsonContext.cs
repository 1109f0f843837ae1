using System.Text.Json.Serialization;

namespace Conveyor.Client.Internal;

// Source-generated so the client needs no reflection and trims cleanly. Nulls are left out of
// requests so the server applies its own defaults to every optional field.
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(JobInfo))]
[JsonSerializable(typeof(IReadOnlyList<JobInfo>))]
[JsonSerializable(typeof(IReadOnlyList<JobEvent>))]
[JsonSerializable(typeof(EnqueueRequest))]
[JsonSerializable(typeof(IReadOnlyList<EnqueueRequest>))]
[JsonSerializable(typeof(BatchEnqueueResult))]
[JsonSerializable(typeof(AckRequest))]
[JsonSerializable(typeof(AckResponse))]
[JsonSerializable(typeof(JobPage))]
[JsonSerializable(typeof(IReadOnlyList<QueueInfo>))]
[JsonSerializable(typeof(QueueInfo))]
[JsonSerializable(typeof(ServerStats))]
[JsonSerializable(typeof(ScheduleRequest))]
[JsonSerializable(typeof(ScheduleInfo))]
[JsonSerializable(typeof(IReadOnlyList<ScheduleInfo>))]
[JsonSerializable(typeof(LeaseBody))]
[JsonSerializable(typeof(HeartbeatBody))]
[JsonSerializable(typeof(CompleteBody))]
[JsonSerializable(typeof(FailBody))]
[JsonSerializable(typeof(ReleaseBody))]
[JsonSerializable(typeof(ProblemBody))]
internal sealed partial class ClientJsonContext : JsonSerializerContext;
