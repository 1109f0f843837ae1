namespace Conveyor;

/// <summary>Where a job is in its lifecycle (DESIGN.md §3).</summary>
public enum JobState
{
    /// <summary>Waiting for its <c>run_at</c> (delayed, or backing off before a retry).</summary>
    Scheduled,
    /// <summary>Ready to be leased.</summary>
    Available,
    /// <summary>Leased by a worker; exclusive until the lease expires.</summary>
    Running,
    /// <summary>Finished with success.</summary>
    Completed,
    /// <summary>Failed with no attempts left, or failed with <c>dead: true</c>.</summary>
    Dead,
    /// <summary>Cancelled before it finished.</summary>
    Cancelled,
}

public static class JobStates
{
    public static bool IsFinished(this JobState state) => state >= JobState.Completed;

    public static string ToWire(this JobState state) => state switch
    {
        JobState.Scheduled => "scheduled",
        JobState.Available => "available",
        JobState.Running => "running",
        JobState.Completed => "completed",
        JobState.Dead => "dead",
        JobState.Cancelled => "cancelled",
        _ => throw new ArgumentOutOfRangeException(nameof(state)),
    };

    public static bool TryParse(string? text, out JobState state)
    {
        switch (text)
        {
            case "scheduled": state = JobState.Scheduled; return true;
            case "available": state = JobState.Available; return true;
            case "running": state = JobState.Running; return true;
            case "completed": state = JobState.Completed; return true;
            case "dead": state = JobState.Dead; return true;
            case "cancelled": state = JobState.Cancelled; return true;
            default: state = default; return false;
        }
    }

    public static readonly JobState[] All =
        [JobState.Scheduled, JobState.Available, JobState.Running, JobState.Completed, JobState.Dead, JobState.Cancelled];
}
