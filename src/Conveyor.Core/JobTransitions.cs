namespace Conveyor;

/// <summary>The rules of the lifecycle (DESIGN.md §3), one place for every store to ask.</summary>
public static class JobTransitions
{
    /// <summary>What a failure leads to: a retry at a time, or the dead state.</summary>
    public readonly record struct FailDecision(JobState NextState, DateTimeOffset? RunAt);

    public static FailDecision OnFail(int attempt, int maxAttempts, bool dead, TimeSpan? retryIn, DateTimeOffset now, RetryPolicy policy)
    {
        if (dead || attempt >= maxAttempts) return new FailDecision(JobState.Dead, null);
        var delay = retryIn ?? policy.DelayFor(attempt);
        return new FailDecision(JobState.Scheduled, now + delay);
    }

    /// <summary>A lease that expired counts as a used attempt; with none left the job is dead.</summary>
    public static JobState OnLeaseExpired(int attempt, int maxAttempts) =>
        attempt >= maxAttempts ? JobState.Dead : JobState.Available;

    /// <summary>The state of a waiting job at a given time.</summary>
    public static JobState Waiting(DateTimeOffset runAt, DateTimeOffset now) =>
        runAt > now ? JobState.Scheduled : JobState.Available;

    public static bool CanCancel(JobState state) => !state.IsFinished();

    public static bool CanRetryManually(JobState state) => state is JobState.Dead or JobState.Cancelled;

    public static bool IsAllowed(JobState from, JobState to) => (from, to) switch
    {
        (JobState.Scheduled, JobState.Available) => true,
        (JobState.Available, JobState.Running) => true,
        (JobState.Running, JobState.Completed or JobState.Scheduled or JobState.Dead or JobState.Available) => true,
        (JobState.Scheduled or JobState.Available or JobState.Running, JobState.Cancelled) => true,
        (JobState.Dead or JobState.Cancelled, JobState.Available) => true,
        _ => false,
    };
}
