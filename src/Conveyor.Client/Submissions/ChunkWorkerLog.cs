using Microsoft.Extensions.Logging;

namespace Conveyor.Client.Internal;

/// <summary>Every log line of the chunk worker, with stable event ids (11xx).</summary>
internal static partial class ChunkWorkerLog
{
    [LoggerMessage(1101, LogLevel.Information, "Conveyor chunk worker on '{Queue}' ×{Concurrency} started")]
    public static partial void Started(ILogger logger, string queue, int concurrency);

    [LoggerMessage(1102, LogLevel.Information, "Conveyor chunk worker on '{Queue}' stopped")]
    public static partial void Stopped(ILogger logger, string queue);

    [LoggerMessage(1103, LogLevel.Warning, "Reserving chunks of '{Queue}' failed; retrying in {Delay}")]
    public static partial void ReserveFailed(ILogger logger, Exception exception, string queue, TimeSpan delay);

    [LoggerMessage(1104, LogLevel.Warning, "Chunk {Index} of submission {SubmissionId} failed on attempt {Attempt}: {Error}")]
    public static partial void ChunkFailed(ILogger logger, long submissionId, long index, int attempt, string error);

    [LoggerMessage(1105, LogLevel.Warning, "Chunk {Index} of submission {SubmissionId} lost its lease ({Reason}); its outcome is not reported")]
    public static partial void LeaseLost(ILogger logger, long submissionId, long index, string reason);

    [LoggerMessage(1106, LogLevel.Warning, "Heartbeat of chunk {Index} of submission {SubmissionId} failed; trying again before the lease runs out")]
    public static partial void HeartbeatFailed(ILogger logger, Exception exception, long submissionId, long index);

    [LoggerMessage(1107, LogLevel.Warning, "Reporting the outcome of chunk {Index} of submission {SubmissionId} failed; it runs again once its lease expires")]
    public static partial void OutcomeLost(ILogger logger, Exception exception, long submissionId, long index);

    [LoggerMessage(1108, LogLevel.Information, "Chunk {Index} of submission {SubmissionId} released: the worker is shutting down")]
    public static partial void Released(ILogger logger, long submissionId, long index);

    [LoggerMessage(1109, LogLevel.Error, "A chunk worker loop of '{Queue}' failed unexpectedly")]
    public static partial void LoopCrashed(ILogger logger, Exception exception, string queue);
}
