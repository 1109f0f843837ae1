namespace Conveyor.Submissions;

/// <summary>
/// The submissions seam: a submission is many ordered chunks handed to consumers. SQLite and PostgreSQL implement it and
/// pass one contract suite. Expected outcomes are results; exceptions mean bugs or infrastructure failures
/// (<see cref="StoreUnavailableException"/> when the database cannot be reached).
/// </summary>
public interface ISubmissionStore : IAsyncDisposable
{
    /// <summary>
    /// Inserts the submission and every chunk (in index order, 0 first) in one transaction: when the task completes all of
    /// them are durable, and when it throws none exists. Chunks are read from the stream as they are written, in batches,
    /// so a million-chunk submission never sits in memory. Zero chunks → completed at once.
    /// </summary>
    ValueTask<Submission> CreateAsync(NewSubmission submission, IAsyncEnumerable<ChunkBody> chunks, CancellationToken cancellationToken);

    ValueTask<Submission?> GetAsync(long id, CancellationToken cancellationToken);

    /// <summary>Newest first; every condition of the query must hold.</summary>
    ValueTask<IReadOnlyList<Submission>> FindAsync(SubmissionQuery query, CancellationToken cancellationToken);

    /// <summary>
    /// The finished chunks' results in index order, read in keyset batches (never all at once); chunks not done yet are
    /// left out (the caller decides whether a partial answer is wanted).
    /// </summary>
    IAsyncEnumerable<ChunkResult> ReadResultsAsync(long id, CancellationToken cancellationToken);

    /// <summary>Cancels an unfinished submission: its unfinished chunks are skipped, reserved ones too.</summary>
    ValueTask<CancelOutcome> CancelAsync(long id, CancellationToken cancellationToken);

    /// <summary>Reserves up to <c>Max</c> ready chunks (one attempt each), never waiting. Empty when none is ready.</summary>
    ValueTask<IReadOnlyList<ReservedChunk>> ReserveAsync(ReserveRequest request, CancellationToken cancellationToken);

    /// <summary>Completes a reserved chunk durably; the submission completes with its last chunk.</summary>
    ValueTask<ChunkOutcome> CompleteAsync(ChunkCompletion completion, CancellationToken cancellationToken);

    /// <summary>
    /// Fails an attempt. With retries left the chunk is ready again; without, the chunk fails, the submission fails and
    /// its remaining chunks are skipped.
    /// </summary>
    ValueTask<ChunkOutcome> FailAsync(ChunkFailure failure, CancellationToken cancellationToken);

    ValueTask<ChunkOutcome> HeartbeatAsync(long submissionId, long index, string leaseToken, TimeSpan extendBy, CancellationToken cancellationToken);

    /// <summary>Hands a reserved chunk back untouched: ready again, and the attempt is not counted.</summary>
    ValueTask<ChunkOutcome> ReleaseAsync(long submissionId, long index, string leaseToken, CancellationToken cancellationToken);

    /// <summary>Releases every chunk reserved by <paramref name="owner"/> at once, without counting an attempt (a consumer connection dropped).</summary>
    ValueTask<int> ReleaseOwnerAsync(string owner, CancellationToken cancellationToken);

    /// <summary>Expired reservations count as failed attempts ("lease expired"); returns how many were reclaimed.</summary>
    ValueTask<int> ReclaimExpiredAsync(CancellationToken cancellationToken);

    /// <summary>When the earliest reservation expires (the lease reaper can sleep until then); null when none is reserved.</summary>
    ValueTask<DateTimeOffset?> NextLeaseExpiryAsync(CancellationToken cancellationToken);

    /// <summary>Finished submissions whose completion callback is not enqueued yet, oldest first.</summary>
    ValueTask<IReadOnlyList<Submission>> CallbacksDueAsync(int limit, CancellationToken cancellationToken);

    /// <summary>Records that the completion callback was enqueued.</summary>
    ValueTask CallbackDoneAsync(long id, CancellationToken cancellationToken);

    /// <summary>Retention: deletes up to <paramref name="limit"/> submissions that finished before the given time, with their chunks.</summary>
    ValueTask<int> DeleteFinishedAsync(DateTimeOffset finishedBefore, int limit, CancellationToken cancellationToken);
}
