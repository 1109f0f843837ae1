using System.Collections.Concurrent;
using System.Text.Json;
using Conveyor.Submissions;

namespace Conveyor.Server.Submissions;

/// <summary>
/// What the HTTP chunk routes and the /v1/consume WebSocket share: validating a reservation, waiting for chunks, and
/// completing or failing one (writing object-store outputs, waking waiters and the callback dispatcher).
/// </summary>
internal sealed class ChunkOperations(
    ISubmissionStore store, IObjectStore objects, ChunkSignal signal, SubmissionCallbackDispatcher callbacks, SubmissionLeaseReaper reaper,
    TimeProvider time)
{
    public const long DefaultLeaseMs = 30_000;
    public const long MaxLeaseMs = 24 * 3600 * 1000L;
    public const long MaxWaitMs = 60_000;

    // A submission's prefix never changes: remembered so completing a chunk costs no extra read.
    private readonly ConcurrentDictionary<long, string?> _prefixes = new();

    public ISubmissionStore Store => store;

    public IObjectStore Objects => objects;

    public static string? CheckReserve(string? queue, int? max, long? waitMs, long? leaseMs, string? strategy, string? preferDistinct, string? owner,
        out ReserveRequest request, out TimeSpan wait)
    {
        request = null!;
        wait = TimeSpan.Zero;
        if (queue is null) return "queue is required: the queue whose submissions to take chunks from.";
        if (Http.JobRequests.CheckQueue(queue) is { } bad) return bad;
        if (max is < 1 or > SubmissionLimits.MaxReserve) return $"max must be between 1 and {SubmissionLimits.MaxReserve}, not {max}.";
        if (waitMs is < 0 or > MaxWaitMs) return $"wait_ms must be between 0 and {MaxWaitMs}, not {waitMs}.";
        if (leaseMs is < 1000 or > MaxLeaseMs) return $"lease_ms must be between 1000 and {MaxLeaseMs}, not {leaseMs}.";
        SubmissionOrder order;
        switch (strategy)
        {
            case null or "oldest": order = SubmissionOrder.Oldest; break;
            case "newest": order = SubmissionOrder.Newest; break;
            case "random": order = SubmissionOrder.Random; break;
            default: return $"strategy '{Http.JobRequests.Truncate(strategy)}' is not one of oldest, newest, random.";
        }
        if (preferDistinct is not null && SubmissionRequests.CheckLabelKey(preferDistinct) is { } badLabel) return $"prefer_distinct: {badLabel}";
        request = new ReserveRequest(queue, max ?? 1, TimeSpan.FromMilliseconds(leaseMs ?? DefaultLeaseMs))
        {
            Order = order,
            PreferDistinct = preferDistinct,
            Owner = owner,
        };
        wait = TimeSpan.FromMilliseconds(waitMs ?? 0);
        return null;
    }

    /// <summary>Reserves, and while nothing is ready waits for a pulse (or a recheck) until <paramref name="wait"/> is over.</summary>
    public async Task<IReadOnlyList<ReservedChunk>> ReserveAsync(ReserveRequest request, TimeSpan wait, CancellationToken cancellationToken)
    {
        var deadline = time.GetUtcNow() + wait;
        while (true)
        {
            var chunks = await store.ReserveAsync(request, cancellationToken);
            if (chunks.Count > 0) reaper.Reserved(chunks[0].LeaseExpiresAt); // one lease length for all of them
            var left = deadline - time.GetUtcNow();
            if (chunks.Count > 0 || left <= TimeSpan.Zero || cancellationToken.IsCancellationRequested) return chunks;
            await signal.WaitAsync(left, cancellationToken);
        }
    }

    public static string? CheckTarget(long? submissionId, long? index, string? leaseToken)
    {
        if (submissionId is null) return "submission_id is required: the submission_id of the reserved chunk.";
        if (index is null or < 0) return "index is required: the index of the reserved chunk.";
        if (string.IsNullOrEmpty(leaseToken)) return "lease_token is required: the lease_token you got with the chunk.";
        return null;
    }

    public async Task<(int Status, string? Outcome, ChunkOutcome Result)> CompleteAsync(
        long submissionId, long index, string leaseToken, JsonElement? result, string? resultBase64, long? operations, CancellationToken cancellationToken)
    {
        if (operations is < 0) return Refuse("operations must be 0 or more.");
        if (result is not null && resultBase64 is not null) return Refuse("Send result (JSON) or result_base64 (bytes), not both.");
        var body = ChunkBody.None;
        if (result is { } json) body = ChunkBody.Json(System.Text.Encoding.UTF8.GetBytes(json.GetRawText()));
        else if (resultBase64 is not null)
        {
            try
            {
                body = ChunkBody.Binary(Convert.FromBase64String(resultBase64));
            }
            catch (FormatException)
            {
                return Refuse("result_base64 is not valid base64.");
            }
        }
        if (await PrefixOf(submissionId, cancellationToken) is { } prefix)
        {
            // Object-store submission: the output lives at <prefix>/<index>-out.bin, written here from an inline result or
            // already written by the consumer (PUT /v1/objects/... or a shared directory).
            var key = ObjectKeys.Output(prefix, index);
            if (body.Kind != BodyKind.None)
            {
                using var content = new MemoryStream(body.Bytes.ToArray(), writable: false);
                await objects.WriteAsync(key, content, cancellationToken);
                body = ChunkBody.InObjectStore;
            }
            else if (await objects.ExistsAsync(key, cancellationToken))
            {
                body = ChunkBody.InObjectStore;
            }
        }
        var outcome = await store.CompleteAsync(new ChunkCompletion(submissionId, index, leaseToken) { Result = body, Operations = operations }, cancellationToken);
        if (outcome.Status == ChunkOutcomeStatus.AlreadyFinished) return (200, "already_finished", outcome);
        if (outcome.IsOk && outcome.Submission!.IsTerminal) callbacks.Wake();
        return (StatusOf(outcome), outcome.IsOk ? "completed" : null, outcome);
    }

    public async Task<(int Status, string? Outcome, ChunkOutcome Result)> FailAsync(long submissionId, long index, string leaseToken, string? error, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(error)) return Refuse("error is required: a sentence saying why the chunk failed.");
        if (error.Length > 8_000) error = error[..8_000];
        var outcome = await store.FailAsync(new ChunkFailure(submissionId, index, leaseToken, error), cancellationToken);
        if (!outcome.IsOk) return (StatusOf(outcome), null, outcome);
        if (outcome.Submission!.IsTerminal)
        {
            callbacks.Wake();
            return (200, "submission_failed", outcome);
        }
        signal.Pulse();
        return (200, "retry", outcome);
    }

    public async Task<(int Status, string? Outcome, ChunkOutcome Result)> HeartbeatAsync(long submissionId, long index, string leaseToken, long? extendMs, CancellationToken cancellationToken)
    {
        if (extendMs is < 1000 or > MaxLeaseMs) return Refuse($"extend_ms must be between 1000 and {MaxLeaseMs}, not {extendMs}.");
        var extendBy = TimeSpan.FromMilliseconds(extendMs ?? DefaultLeaseMs);
        var outcome = await store.HeartbeatAsync(submissionId, index, leaseToken, extendBy, cancellationToken);
        if (outcome.IsOk) reaper.Reserved(time.GetUtcNow() + extendBy); // a heartbeat may also shorten the lease
        return (StatusOf(outcome), outcome.IsOk ? "extended" : null, outcome);
    }

    public async Task<(int Status, string? Outcome, ChunkOutcome Result)> ReleaseAsync(long submissionId, long index, string leaseToken, CancellationToken cancellationToken)
    {
        var outcome = await store.ReleaseAsync(submissionId, index, leaseToken, cancellationToken);
        if (outcome.IsOk) signal.Pulse();
        return (StatusOf(outcome), outcome.IsOk ? "released" : null, outcome);
    }

    /// <summary>A consumer connection ended: everything it held is ready again at once, and no attempt is counted.</summary>
    public async Task<int> ReleaseOwnerAsync(string owner, CancellationToken cancellationToken)
    {
        var released = await store.ReleaseOwnerAsync(owner, cancellationToken);
        if (released > 0) signal.Pulse();
        return released;
    }

    public void Submitted(Submission submission)
    {
        _prefixes.TryAdd(submission.Id, submission.Prefix);
        if (submission.IsTerminal) callbacks.Wake(); else signal.Pulse();
    }

    private async Task<string?> PrefixOf(long submissionId, CancellationToken cancellationToken)
    {
        if (_prefixes.TryGetValue(submissionId, out var known)) return known;
        var submission = await store.GetAsync(submissionId, cancellationToken);
        if (submission is null) return null;
        if (_prefixes.Count > 100_000) _prefixes.Clear();
        _prefixes.TryAdd(submissionId, submission.Prefix);
        return submission.Prefix;
    }

    private static (int, string?, ChunkOutcome) Refuse(string detail) => (400, null, new ChunkOutcome(ChunkOutcomeStatus.NotFound, null, detail));

    private static int StatusOf(ChunkOutcome outcome) => outcome.Status switch
    {
        ChunkOutcomeStatus.Ok => 200,
        ChunkOutcomeStatus.NotFound => 404,
        _ => 409,
    };
}
