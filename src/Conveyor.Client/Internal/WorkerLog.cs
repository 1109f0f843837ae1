using Microsoft.Extensions.Logging;

namespace Conveyor.Client.Internal;

/// <summary>Every log line of the worker host, with stable event ids (1xxx).</summary>
internal static partial class WorkerLog
{
    [LoggerMessage(1001, LogLevel.Information, "Conveyor worker {Worker} working on {Queues}")]
    public static partial void Started(ILogger logger, string worker, string queues);

    [LoggerMessage(1002, LogLevel.Information, "Conveyor worker stopping: no new leases; {Running} job(s) running, grace period {Grace}")]
    public static partial void Stopping(ILogger logger, int running, TimeSpan grace);

    [LoggerMessage(1003, LogLevel.Information, "Conveyor worker stopped")]
    public static partial void Stopped(ILogger logger);

    [LoggerMessage(1004, LogLevel.Warning, "Leasing from queue '{Queue}' failed; retrying in {Delay}")]
    public static partial void LeaseFailed(ILogger logger, Exception exception, string queue, TimeSpan delay);

    [LoggerMessage(1005, LogLevel.Warning, "Job {JobId} ({Kind}) in '{Queue}' failed on attempt {Attempt}: {Error}")]
    public static partial void JobFailed(ILogger logger, long jobId, string kind, string queue, int attempt, string error);

    [LoggerMessage(1006, LogLevel.Warning, "Job {JobId} in '{Queue}' lost its lease ({Reason}); its handler was cancelled and its outcome will not be reported")]
    public static partial void LeaseLost(ILogger logger, long jobId, string queue, string reason);

    [LoggerMessage(1007, LogLevel.Warning, "Heartbeat of job {JobId} failed; trying again before the lease runs out")]
    public static partial void HeartbeatFailed(ILogger logger, Exception exception, long jobId);

    [LoggerMessage(1008, LogLevel.Warning, "Sending {Count} outcome(s) to the server failed; retrying in {Delay}")]
    public static partial void AckFailed(ILogger logger, Exception exception, int count, TimeSpan delay);

    [LoggerMessage(1009, LogLevel.Warning, "The server refused the outcome of job {JobId} ({Status}): {Detail}")]
    public static partial void AckRefused(ILogger logger, long jobId, int status, string? detail);

    [LoggerMessage(1010, LogLevel.Error, "Gave up sending {Count} outcome(s) at shutdown; those jobs run again once their leases expire")]
    public static partial void AckAbandoned(ILogger logger, int count);

    [LoggerMessage(1011, LogLevel.Warning, "Job {JobId} in '{Queue}' timed out after {Timeout}; its handler was cancelled")]
    public static partial void JobTimedOut(ILogger logger, long jobId, string queue, TimeSpan timeout);

    [LoggerMessage(1012, LogLevel.Information, "Job {JobId} in '{Queue}' released: the worker is shutting down")]
    public static partial void JobReleased(ILogger logger, long jobId, string queue);

    [LoggerMessage(1013, LogLevel.Error, "The worker loop of queue '{Queue}' failed unexpectedly")]
    public static partial void LoopCrashed(ILogger logger, Exception exception, string queue);

    [LoggerMessage(1014, LogLevel.Warning, "A handler of job {JobId} kept running after its job was given up, and then failed")]
    public static partial void AbandonedHandlerFailed(ILogger logger, Exception exception, long jobId);
}
