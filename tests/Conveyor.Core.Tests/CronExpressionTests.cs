using Conveyor.Scheduling;

namespace Conveyor.Core.Tests;

public sealed class CronExpressionTests
{
    private static readonly TimeZoneInfo Utc = TimeZoneInfo.Utc;
    private static readonly TimeZoneInfo Berlin = TimeZoneInfo.FindSystemTimeZoneById("Europe/Berlin");

    private static DateTimeOffset At(string iso) => DateTimeOffset.Parse(iso, System.Globalization.CultureInfo.InvariantCulture);

    private static List<DateTimeOffset> Next(string cron, string from, int count, TimeZoneInfo? zone = null)
    {
        var expression = CronExpression.Parse(cron);
        var result = new List<DateTimeOffset>();
        var t = At(from);
        for (var i = 0; i < count; i++)
        {
            t = expression.NextAfter(t, zone ?? Utc)!.Value;
            result.Add(t);
        }
        return result;
    }

    [Theory]
    [InlineData("*/15 * * * *", "2026-01-01T10:07:00Z", "2026-01-01T10:15:00Z", "2026-01-01T10:30:00Z")]
    [InlineData("0 9 * * MON-FRI", "2026-11-20T10:00:00Z", "2026-11-23T09:00:00Z", "2026-11-24T09:00:00Z")]
    [InlineData("30 2 1 * *", "2026-01-15T00:00:00Z", "2026-02-01T02:30:00Z", "2026-03-01T02:30:00Z")]
    [InlineData("0 0 29 2 *", "2026-01-01T00:00:00Z", "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z")]
    [InlineData("@hourly", "2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z", "2026-01-01T12:00:00Z")]
    [InlineData("@daily", "2026-01-01T10:00:00Z", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z")]
    [InlineData("*/20 * * * * *", "2026-01-01T10:00:05Z", "2026-01-01T10:00:20Z", "2026-01-01T10:00:40Z")]
    [InlineData("0 12 * JAN,jul SUN", "2026-06-01T00:00:00Z", "2026-07-05T12:00:00Z", "2026-07-12T12:00:00Z")]
    [InlineData("5/20 * * * *", "2026-01-01T10:00:00Z", "2026-01-01T10:05:00Z", "2026-01-01T10:25:00Z")]
    [InlineData("0 0 * * 7", "2026-11-23T00:00:00Z", "2026-11-29T00:00:00Z", "2026-12-06T00:00:00Z")]
    public void Next_occurrences_follow_the_fields(string cron, string from, string first, string second) =>
        Assert.Equal([At(first), At(second)], Next(cron, from, 2));

    [Fact]
    public void A_restricted_day_of_month_and_day_of_week_fire_on_either()
    {
        // The 13th, or any Friday (Vixie cron semantics).
        var days = Next("0 0 13 * FRI", "2026-11-01T00:00:00Z", 4).Select(d => d.Day);
        Assert.Equal([6, 13, 20, 27], days);
    }

    [Fact]
    public void An_occurrence_is_strictly_after_the_given_time()
    {
        var at = At("2026-01-01T10:15:00Z");
        Assert.Equal(At("2026-01-01T10:30:00Z"), CronExpression.Parse("*/15 * * * *").NextAfter(at, Utc));
    }

    [Fact]
    public void Wall_clock_times_are_evaluated_in_the_time_zone()
    {
        // 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
        Assert.Equal(At("2026-01-05T08:00:00Z"), CronExpression.Parse("0 9 * * *").NextAfter(At("2026-01-05T00:00:00Z"), Berlin));
        Assert.Equal(At("2026-07-06T07:00:00Z"), CronExpression.Parse("0 9 * * *").NextAfter(At("2026-07-06T00:00:00Z"), Berlin));
    }

    [Fact]
    public void A_time_skipped_by_the_spring_jump_fires_once_at_the_jump()
    {
        // Berlin, 2026-03-29: 02:00 jumps to 03:00 (01:00 UTC).
        var occurrences = Next("30 2 * * *", "2026-03-28T12:00:00Z", 2, Berlin);
        Assert.Equal([At("2026-03-29T01:00:00Z"), At("2026-03-30T00:30:00Z")], occurrences);
        var everyHalfHour = Next("*/30 * * * *", "2026-03-29T00:15:00Z", 4, Berlin);
        Assert.Equal([At("2026-03-29T00:30:00Z"), At("2026-03-29T01:00:00Z"), At("2026-03-29T01:30:00Z"), At("2026-03-29T02:00:00Z")], everyHalfHour);
    }

    [Fact]
    public void A_time_repeated_by_the_autumn_fall_back_fires_once()
    {
        // Berlin, 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice, fires at the first.
        var occurrences = Next("30 2 * * *", "2026-10-24T12:00:00Z", 2, Berlin);
        Assert.Equal([At("2026-10-25T00:30:00Z"), At("2026-10-26T01:30:00Z")], occurrences);
    }

    [Fact]
    public void A_date_that_never_comes_has_no_occurrence()
    {
        Assert.Null(CronExpression.Parse("0 0 30 2 *").NextAfter(At("2026-01-01T00:00:00Z"), Utc));
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("* * * *", "4 fields")]
    [InlineData("60 * * * *", "minute")]
    [InlineData("* 24 * * *", "hour")]
    [InlineData("* * 0 * *", "day of month")]
    [InlineData("* * * 13 *", "month")]
    [InlineData("* * * * 8", "day of week")]
    [InlineData("*/0 * * * *", "step")]
    [InlineData("5-1 * * * *", "out of range")]
    [InlineData("? * * * *", "only allowed")]
    [InlineData("L * * * *", "not understood")]
    [InlineData("@reboot", "macro")]
    public void Bad_expressions_are_refused_with_a_sentence_naming_the_problem(string cron, string mentions)
    {
        Assert.False(CronExpression.TryParse(cron, out _, out var error));
        Assert.Contains(mentions, error, StringComparison.Ordinal);
    }
}
