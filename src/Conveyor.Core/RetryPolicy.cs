namespace Conveyor;

/// <summary>
/// When a failed job runs again: exponential backoff with jitter.
/// Delay for attempt n (1-based) = min(Base × 2^(n−1), Max), then multiplied by a random factor in
/// [1 − Jitter, 1 + Jitter] so that jobs which failed together do not retry in lockstep.
/// </summary>
public sealed class RetryPolicy
{
    public TimeSpan Base { get; init; } = TimeSpan.FromSeconds(1);
    public TimeSpan Max { get; init; } = TimeSpan.FromHours(1);
    public double Jitter { get; init; } = 0.2;

    public static readonly RetryPolicy Default = new();

    public TimeSpan DelayFor(int attempt, Random? random = null)
    {
        var exponent = Math.Clamp(attempt - 1, 0, 30);
        var raw = Math.Min(Base.TotalMilliseconds * Math.Pow(2, exponent), Max.TotalMilliseconds);
        var factor = 1 + Jitter * (2 * (random ?? Random.Shared).NextDouble() - 1);
        return TimeSpan.FromMilliseconds(Math.Max(0, raw * factor));
    }
}
