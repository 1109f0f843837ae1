using System.Net;

namespace Conveyor.Client;

/// <summary>
/// The root of every exception the SDK throws for anything that went wrong talking to the server or waiting for a job.
/// The message is the server's own explanation (the problem+json <c>detail</c>) when there is one. Catch a subclass
/// to react to one case (<see cref="JobNotFoundException"/>, <see cref="LeaseLostException"/>, …), or this root and
/// <see cref="IsTransient"/> to decide whether to retry.
/// </summary>
/// <remarks>Built in one place (<c>Internal/ErrorFactory</c>) so messages stay consistent and say what to do next.</remarks>
public class ConveyorException : Exception
{
    public ConveyorException(string message, HttpStatusCode? statusCode = null, bool isTransient = false, Exception? innerException = null)
        : base(message, innerException)
    {
        StatusCode = statusCode;
        IsTransient = isTransient;
    }

    /// <summary>The HTTP status the server answered with; null when no answer arrived (connection failure, timeout).</summary>
    public HttpStatusCode? StatusCode { get; }

    /// <summary>True when the same call may succeed if retried later: network failures, timeouts, 408, 429 and 5xx answers.</summary>
    public bool IsTransient { get; }

    /// <summary>The problem+json <c>type</c> URI, when the server sent one.</summary>
    public string? ProblemType { get; internal set; }

    /// <summary>The problem+json <c>title</c>, when the server sent one.</summary>
    public string? Title { get; internal set; }

    /// <summary>The problem's <c>state</c> field (a submission's 409s carry it), read by SubmissionConflictException.</summary>
    internal string? ProblemState { get; set; }
}

/// <summary>The server does not know the job (404). Not transient: the id is wrong or the job was removed.</summary>
public sealed class JobNotFoundException(string message, long? jobId, HttpStatusCode statusCode)
    : ConveyorException(message, statusCode)
{
    /// <summary>The job asked about, when the call named one.</summary>
    public long? JobId { get; } = jobId;
}

/// <summary>
/// The job is not in a state that allows the call (409), e.g. cancelling a finished job or retrying a running one.
/// </summary>
public class JobConflictException(string message, long? jobId, HttpStatusCode statusCode)
    : ConveyorException(message, statusCode)
{
    /// <summary>The job the call was about, when it named one.</summary>
    public long? JobId { get; } = jobId;
}

/// <summary>
/// A heartbeat, complete, fail or release carried a lease token the server no longer honours (409): the lease expired
/// and the job went to another worker, or the job was cancelled. Nothing was changed; stop working on the job.
/// </summary>
public sealed class LeaseLostException(string message, long? jobId, HttpStatusCode statusCode)
    : JobConflictException(message, jobId, statusCode);

/// <summary>
/// The server wants an API key (401) or the key's role does not allow the call (403): set
/// <see cref="ConveyorClientOptions.ApiKey"/> to a key with the right role (producer, consumer or admin).
/// </summary>
public sealed class AccessDeniedException(string message, HttpStatusCode statusCode)
    : ConveyorException(message, statusCode);

/// <summary>The server refused the request as invalid (400, 413, 415, 422): retrying the same request cannot help.</summary>
public sealed class InvalidRequestException(string message, HttpStatusCode statusCode)
    : ConveyorException(message, statusCode);

/// <summary>
/// No usable answer right now: the server could not be reached, did not answer in time, or answered 408, 429 or 5xx
/// (503: its store is unreachable). Always transient: retry later.
/// </summary>
public sealed class ServerUnavailableException(string message, HttpStatusCode? statusCode, Exception? innerException = null)
    : ConveyorException(message, statusCode, isTransient: true, innerException);

/// <summary>
/// A job waited for (<see cref="ConveyorClient.WaitForResultAsync"/>, <see cref="ConveyorClient.EnqueueAndWaitAsync{TRequest, TResult}"/>)
/// finished without a result: it is <c>dead</c> (its handler failed on every attempt, or failed permanently) or was
/// <c>cancelled</c>. <see cref="Job"/> holds its errors.
/// </summary>
public sealed class JobFailedException(string message, JobInfo job) : ConveyorException(message)
{
    /// <summary>The job as it finished: <see cref="JobInfo.State"/> is <c>dead</c> or <c>cancelled</c>.</summary>
    public JobInfo Job { get; } = job;
}

/// <summary>
/// A job waited for did not finish within the given time. The job itself is untouched and may still run: wait again
/// with <see cref="ConveyorClient.WaitForResultAsync"/>, or cancel it with <see cref="ConveyorClient.CancelAsync"/>
/// if the answer is no longer wanted. Transient, as waiting longer can help.
/// </summary>
public sealed class JobWaitTimeoutException(string message, JobInfo? lastSeen, long jobId)
    : ConveyorException(message, statusCode: null, isTransient: true)
{
    public long JobId { get; } = jobId;

    /// <summary>The job as last seen before the time ran out (null when the server was not reachable).</summary>
    public JobInfo? LastSeen { get; } = lastSeen;
}
