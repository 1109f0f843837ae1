namespace Conveyor.Submissions;

/// <summary>The rules both stores apply before changing a chunk, so they refuse the same calls with the same words.</summary>
public static class ChunkRules
{
    /// <summary>Null when <paramref name="leaseToken"/> holds the chunk's reservation; otherwise why the call changes nothing.</summary>
    public static (ChunkOutcomeStatus Status, string Detail)? Refusal(ChunkState state, string? token, string leaseToken, long submissionId, long index) => state switch
    {
        ChunkState.Done or ChunkState.Failed => (ChunkOutcomeStatus.AlreadyFinished, $"Chunk {index} of submission {submissionId} is already finished; nothing was changed."),
        ChunkState.Skipped => (ChunkOutcomeStatus.Skipped, $"Chunk {index} of submission {submissionId} was skipped: the submission failed or was cancelled."),
        ChunkState.Reserved when token == leaseToken => null,
        _ => (ChunkOutcomeStatus.StaleLease, $"The lease token does not hold chunk {index} of submission {submissionId} (expired, released or another consumer's); reserve again."),
    };
}
