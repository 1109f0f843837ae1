using System.Net;

namespace Conveyor.Client;

/// <summary>The server does not know the submission (404): the id is wrong, or retention deleted it.</summary>
public sealed class SubmissionNotFoundException(string message, long? submissionId, HttpStatusCode statusCode)
    : ConveyorException(message, statusCode)
{
    public long? SubmissionId { get; } = submissionId;
}

/// <summary>
/// The submission is not in a state that allows the call (409): cancelling one that already finished
/// (<see cref="State"/> names its terminal state), or reading the results of one that is not completed without
/// <c>partial</c>.
/// </summary>
public class SubmissionConflictException(string message, long? submissionId, string? state, HttpStatusCode statusCode)
    : ConveyorException(message, statusCode)
{
    public long? SubmissionId { get; } = submissionId;

    /// <summary>The submission's state when the server refused, when the answer named it (e.g. <c>completed</c>).</summary>
    public string? State { get; } = state;
}

/// <summary>
/// A complete, fail, heartbeat or release of a chunk carried a lease token the server no longer honours (409): the
/// lease expired or was released, or the submission failed or was cancelled (its chunks are skipped). Nothing
/// changed; stop working on the chunk.
/// </summary>
public sealed class ChunkLeaseLostException(string message, long submissionId, long index, HttpStatusCode statusCode)
    : SubmissionConflictException(message, submissionId, state: null, statusCode)
{
    public long Index { get; } = index;
}

/// <summary>A submission waited for ended <c>failed</c> or <c>cancelled</c>; <see cref="Submission"/> says which chunk failed and why.</summary>
public sealed class SubmissionFailedException(string message, SubmissionInfo submission) : ConveyorException(message)
{
    public SubmissionInfo Submission { get; } = submission;
}

/// <summary>
/// A submission waited for did not finish in time. It is untouched and its chunks keep being worked: wait again, or
/// cancel it. Transient, as waiting longer can help.
/// </summary>
public sealed class SubmissionWaitTimeoutException(string message, long submissionId, SubmissionInfo? lastSeen)
    : ConveyorException(message, statusCode: null, isTransient: true)
{
    public long SubmissionId { get; } = submissionId;

    /// <summary>The submission as last seen (null when the server could not be reached).</summary>
    public SubmissionInfo? LastSeen { get; } = lastSeen;
}

/// <summary>The object store has no object under <see cref="Key"/> (404 from <c>GET /v1/objects/{key}</c>).</summary>
public sealed class ObjectNotFoundException(string message, string key, HttpStatusCode statusCode)
    : ConveyorException(message, statusCode)
{
    public string Key { get; } = key;
}
