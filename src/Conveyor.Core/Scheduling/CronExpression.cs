using System.Globalization;

namespace Conveyor.Scheduling;

/// <summary>
/// A cron expression: 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first.
/// Fields take <c>*</c>, numbers, ranges <c>a-b</c>, lists <c>a,b</c> and steps <c>*/n</c>, <c>a-b/n</c>, <c>a/n</c>;
/// months <c>JAN-DEC</c> and days <c>SUN-SAT</c> by name; day-of-week 0-7 (0 and 7 are Sunday); <c>?</c> means <c>*</c>
/// in the day fields; macros <c>@yearly @annually @monthly @weekly @daily @midnight @hourly</c>.
/// As in Vixie cron, when both day-of-month and day-of-week are restricted a day matching either one fires.
/// Written here because no cron library is in our package source.
/// </summary>
public sealed class CronExpression
{
    private static readonly string[] MonthNames = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
    private static readonly string[] DayNames = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    private const int SearchYears = 5;

    private readonly ulong _seconds, _minutes, _hours, _daysOfMonth, _months, _daysOfWeek;
    private readonly bool _domRestricted, _dowRestricted;

    private CronExpression(string text, bool hasSeconds, ulong seconds, ulong minutes, ulong hours, ulong dom, ulong months, ulong dow,
        bool domRestricted, bool dowRestricted)
    {
        Text = text;
        HasSeconds = hasSeconds;
        (_seconds, _minutes, _hours, _daysOfMonth, _months, _daysOfWeek) = (seconds, minutes, hours, dom, months, dow);
        (_domRestricted, _dowRestricted) = (domRestricted, dowRestricted);
    }

    public string Text { get; }

    public bool HasSeconds { get; }

    public static CronExpression Parse(string text) =>
        TryParse(text, out var expression, out var error) ? expression : throw new FormatException(error);

    public static bool TryParse(string? text, out CronExpression expression, out string error)
    {
        expression = null!;
        error = "";
        if (string.IsNullOrWhiteSpace(text))
        {
            error = "The cron expression is empty: use 5 fields (minute hour day month weekday) such as '*/5 * * * *'.";
            return false;
        }
        var source = text.Trim();
        var expanded = source.ToLowerInvariant() switch
        {
            "@yearly" or "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" or "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            _ when source.StartsWith('@') => null,
            _ => source,
        };
        if (expanded is null)
        {
            error = $"'{source}' is not a cron macro: use @yearly, @monthly, @weekly, @daily or @hourly.";
            return false;
        }
        var fields = expanded.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length is not (5 or 6))
        {
            error = $"'{source}' has {fields.Length} fields; a cron expression has 5 (minute hour day month weekday) or 6 (with seconds first).";
            return false;
        }
        var hasSeconds = fields.Length == 6;
        var offset = hasSeconds ? 1 : 0;
        ulong seconds = 1;
        if (hasSeconds && !TryField(fields[0], "second", 0, 59, null, out seconds, out error)) return false;
        if (!TryField(fields[offset], "minute", 0, 59, null, out var minutes, out error)) return false;
        if (!TryField(fields[offset + 1], "hour", 0, 23, null, out var hours, out error)) return false;
        if (!TryField(fields[offset + 2], "day of month", 1, 31, null, out var dom, out error)) return false;
        if (!TryField(fields[offset + 3], "month", 1, 12, MonthNames, out var months, out error)) return false;
        if (!TryField(fields[offset + 4], "day of week", 0, 7, DayNames, out var dow, out error)) return false;
        if ((dow & (1UL << 7)) != 0) dow = (dow | 1UL) & ~(1UL << 7); // 7 is Sunday too
        expression = new CronExpression(source, hasSeconds, seconds, minutes, hours, dom, months, dow,
            domRestricted: !IsWildcard(fields[offset + 2]), dowRestricted: !IsWildcard(fields[offset + 4]));
        return true;
    }

    private static bool IsWildcard(string field) => field is "*" or "?";

    private static bool TryField(string field, string name, int min, int max, string[]? names, out ulong bits, out string error)
    {
        bits = 0;
        error = "";
        foreach (var part in field.Split(','))
        {
            var step = 1;
            var range = part;
            var slash = part.IndexOf('/');
            if (slash >= 0)
            {
                if (!int.TryParse(part[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out step) || step < 1)
                {
                    error = $"The {name} field '{field}' has a bad step '{part[(slash + 1)..]}': use a whole number of 1 or more.";
                    return false;
                }
                range = part[..slash];
            }
            int low, high;
            if (range is "*" or "?")
            {
                if (range == "?" && name is not ("day of month" or "day of week"))
                {
                    error = $"'?' is only allowed in the day fields, not in the {name} field.";
                    return false;
                }
                (low, high) = (min, max);
            }
            else
            {
                var dash = range.IndexOf('-');
                if (!TryValue(dash < 0 ? range : range[..dash], names, min, out low) ||
                    !TryValue(dash < 0 ? range : range[(dash + 1)..], names, min, out high))
                {
                    error = $"The {name} field '{field}' is not understood: expected numbers {min}-{max}{(names is null ? "" : $" or names like {names[0]}")}, '*', ranges, lists and steps.";
                    return false;
                }
                if (dash < 0 && slash >= 0) high = max; // "a/n" means from a to the end
                if (low < min || high > max || low > high)
                {
                    error = $"The {name} field '{field}' is out of range: it takes {min}-{max}.";
                    return false;
                }
            }
            for (var v = low; v <= high; v += step) bits |= 1UL << v;
        }
        return true;
    }

    private static bool TryValue(string text, string[]? names, int min, out int value)
    {
        if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value)) return true;
        if (names is not null)
        {
            var index = Array.IndexOf(names, text.ToUpperInvariant());
            if (index >= 0)
            {
                value = index + min;
                return true;
            }
        }
        return false;
    }

    private bool DayMatches(DateTime day)
    {
        var domHit = (_daysOfMonth & (1UL << day.Day)) != 0;
        var dowHit = (_daysOfWeek & (1UL << (int)day.DayOfWeek)) != 0;
        return _domRestricted && _dowRestricted ? domHit || dowHit : domHit && dowHit;
    }

    /// <summary>
    /// The first occurrence strictly after <paramref name="after"/>, evaluated on the wall clock of <paramref name="zone"/>.
    /// A wall time skipped by a daylight-saving jump fires at the first instant after the jump; a wall time that
    /// happens twice (clocks going back) fires once, at its first instant. Null when nothing matches within five years.
    /// </summary>
    public DateTimeOffset? NextAfter(DateTimeOffset after, TimeZoneInfo zone)
    {
        var local = TimeZoneInfo.ConvertTime(after, zone).DateTime;
        var t = HasSeconds
            ? new DateTime(local.Year, local.Month, local.Day, local.Hour, local.Minute, local.Second).AddSeconds(1)
            : new DateTime(local.Year, local.Month, local.Day, local.Hour, local.Minute, 0).AddMinutes(1);
        var limit = t.AddYears(SearchYears);
        while (t < limit)
        {
            if ((_months & (1UL << t.Month)) == 0) { t = new DateTime(t.Year, t.Month, 1).AddMonths(1); continue; }
            if (!DayMatches(t)) { t = t.Date.AddDays(1); continue; }
            if ((_hours & (1UL << t.Hour)) == 0) { t = t.Date.AddHours(t.Hour + 1); continue; }
            if ((_minutes & (1UL << t.Minute)) == 0) { t = t.Date.AddHours(t.Hour).AddMinutes(t.Minute + 1); continue; }
            if ((_seconds & (1UL << t.Second)) == 0) { t = t.AddSeconds(1); continue; }
            var instant = ToInstant(t, zone);
            if (instant > after) return instant;
            t = HasSeconds ? t.AddSeconds(1) : t.AddMinutes(1);
        }
        return null;
    }

    private static DateTimeOffset ToInstant(DateTime wall, TimeZoneInfo zone)
    {
        var shifted = wall;
        while (zone.IsInvalidTime(shifted)) shifted = shifted.AddMinutes(1); // in a spring-forward gap: the gap's end
        if (zone.IsAmbiguousTime(shifted))
        {
            var offsets = zone.GetAmbiguousTimeOffsets(shifted);
            var earliest = offsets.Max(); // the larger offset is the earlier instant
            return new DateTimeOffset(shifted, earliest);
        }
        return new DateTimeOffset(shifted, zone.GetUtcOffset(shifted));
    }

    public override string ToString() => Text;
}
