using System.Text.Json;
using System.Text.Json.Serialization;

namespace WorkToDo.Core;

/// <summary>
/// A piece of work: add the integers 1..<see cref="AddUpTo"/>. <see cref="Result"/> is null until a worker computed it,
/// and set in the same transaction that sets <see cref="Done"/>. Timestamps are Unix seconds.
/// </summary>
public sealed record Work(long Id, string WorkCode, int AddUpTo, bool Done, long? Result, long CreatedOn, long UpdatedOn);

/// <summary>One execution step of a work: <c>compute/start</c>, <c>compute/stop</c>, <c>compute/result</c>.</summary>
public sealed record WorkEvent(string WorkCode, string Variable, string Value, long CreatedOn);

/// <summary>A work with its history, as <c>GET /work/{id}</c> answers.</summary>
public sealed record WorkDetail(
    long Id, string WorkCode, int AddUpTo, bool Done, long? Result, long CreatedOn, long UpdatedOn, IReadOnlyList<WorkEvent> Events)
{
    public static WorkDetail From(Work work, IReadOnlyList<WorkEvent> events) =>
        new(work.Id, work.WorkCode, work.AddUpTo, work.Done, work.Result, work.CreatedOn, work.UpdatedOn, events);
}

/// <summary>What the task-producer publishes to RabbitMQ: "please add up to this". <c>done</c> is always false on the wire.</summary>
public sealed record WorkDemand(int AddUpTo, bool Done);

/// <summary>The Conveyor job the API enqueues for a work it created.</summary>
public sealed record ComputeWork(long WorkId);

/// <summary>A job's result: which work it computed and the sum (shown by <c>conveyor get</c> and the dashboard).</summary>
public sealed record ComputeOutcome(long WorkId, string WorkCode, long Result);

/// <summary>Names shared by the programs: queues and job kinds.</summary>
public static class WorkNames
{
    /// <summary>The Conveyor queue every work job goes to (API jobs and ingested demands).</summary>
    public const string ConveyorQueue = "work";

    /// <summary>The RabbitMQ queue the producer publishes demands to; the Conveyor server ingests it into <see cref="ConveyorQueue"/>.</summary>
    public const string RabbitQueue = "work-demands";

    /// <summary>Kind of the job the API enqueues: payload <see cref="ComputeWork"/>.</summary>
    public const string ComputeKind = "work.compute";

    /// <summary>Kind of an ingested demand (the message's AMQP <c>type</c>): payload <see cref="WorkDemand"/>.</summary>
    public const string DemandKind = "work.demand";

    public const string DefaultSchema = "worktodo";

    public const string EventStart = "compute/start";
    public const string EventStop = "compute/stop";
    public const string EventResult = "compute/result";
}

/// <summary>Source-generated JSON for every wire shape, snake_case as the issue spells the fields.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(Work))]
[JsonSerializable(typeof(IReadOnlyList<Work>))]
[JsonSerializable(typeof(WorkDetail))]
[JsonSerializable(typeof(WorkDemand))]
[JsonSerializable(typeof(ComputeWork))]
[JsonSerializable(typeof(ComputeOutcome))]
public sealed partial class WorkJson : JsonSerializerContext;
