namespace Conveyor.Core.Tests;

public sealed class LifecycleRulesTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 23, 12, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData(JobState.Scheduled, JobState.Available, true)]
    [InlineData(JobState.Available, JobState.Running, true)]
    [InlineData(JobState.Running, JobState.Completed, true)]
    [InlineData(JobState.Running, JobState.Scheduled, true)]
    [InlineData(JobState.Running, JobState.Dead, true)]
    [InlineData(JobState.Running, JobState.Available, true)]
    [InlineData(JobState.Running, JobState.Cancelled, true)]
    [InlineData(JobState.Available, JobState.Cancelled, true)]
    [InlineData(JobState.Scheduled, JobState.Cancelled, true)]
    [InlineData(JobState.Dead, JobState.Available, true)]
    [InlineData(JobState.Cancelled, JobState.Available, true)]
    [InlineData(JobState.Completed, JobState.Available, false)]
    [InlineData(JobState.Completed, JobState.Cancelled, false)]
    [InlineData(JobState.Available, JobState.Completed, false)]
    [InlineData(JobState.Scheduled, JobState.Running, false)]
    [InlineData(JobState.Dead, JobState.Running, false)]
    public void The_state_machine_allows_exactly_the_designed_transitions(JobState from, JobState to, bool allowed) =>
        Assert.Equal(allowed, JobTransitions.IsAllowed(from, to));

    [Fact]
    public void A_failure_with_attempts_left_is_retried_later()
    {
        var decision = JobTransitions.OnFail(attempt: 1, maxAttempts: 3, dead: false, retryIn: null, Now, RetryPolicy.Default);
        Assert.Equal(JobState.Scheduled, decision.NextState);
        Assert.True(decision.RunAt > Now);
    }

    [Fact]
    public void A_failure_on_the_last_attempt_or_marked_dead_is_dead()
    {
        Assert.Equal(JobState.Dead, JobTransitions.OnFail(3, 3, false, null, Now, RetryPolicy.Default).NextState);
        Assert.Equal(JobState.Dead, JobTransitions.OnFail(1, 3, true, null, Now, RetryPolicy.Default).NextState);
    }

    [Fact]
    public void An_explicit_retry_delay_wins_over_the_policy()
    {
        var decision = JobTransitions.OnFail(1, 3, false, TimeSpan.FromSeconds(9), Now, RetryPolicy.Default);
        Assert.Equal(Now.AddSeconds(9), decision.RunAt);
    }

    [Fact]
    public void Lease_expiry_counts_the_attempt()
    {
        Assert.Equal(JobState.Available, JobTransitions.OnLeaseExpired(1, 2));
        Assert.Equal(JobState.Dead, JobTransitions.OnLeaseExpired(2, 2));
    }

    [Fact]
    public void Backoff_doubles_per_attempt_within_the_jitter_and_stops_at_the_cap()
    {
        var policy = new RetryPolicy { Base = TimeSpan.FromSeconds(1), Max = TimeSpan.FromMinutes(1), Jitter = 0.2 };
        var random = new Random(7);
        for (var attempt = 1; attempt <= 10; attempt++)
        {
            var expected = Math.Min(Math.Pow(2, attempt - 1), 60);
            var delay = policy.DelayFor(attempt, random).TotalSeconds;
            Assert.InRange(delay, expected * 0.8, expected * 1.2);
        }
        Assert.InRange(policy.DelayFor(1000, random).TotalSeconds, 48, 72);
    }

    [Fact]
    public void Jitter_spreads_retries_that_failed_together()
    {
        var delays = Enumerable.Range(0, 50).Select(i => RetryPolicy.Default.DelayFor(3, new Random(i))).Distinct().Count();
        Assert.True(delays > 40);
    }

    [Theory]
    [InlineData("emails", true)]
    [InlineData("a.b_c-d:e", true)]
    [InlineData("", false)]
    [InlineData("has space", false)]
    [InlineData("slash/no", false)]
    public void Queue_names_are_checked(string name, bool valid) => Assert.Equal(valid, JobLimits.IsValidQueueName(name));

    [Fact]
    public void Wire_names_round_trip()
    {
        foreach (var state in JobStates.All)
        {
            Assert.True(JobStates.TryParse(state.ToWire(), out var parsed));
            Assert.Equal(state, parsed);
        }
        Assert.False(JobStates.TryParse("sleeping", out _));
    }
}
