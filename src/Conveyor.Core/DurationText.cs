using System.Globalization;

namespace Conveyor;

/// <summary>Durations as people write them in options: <c>500ms</c>, <c>45s</c>, <c>30m</c>, <c>12h</c>, <c>7d</c>.</summary>
public static class DurationText
{
    public static bool TryParse(string? text, out TimeSpan duration)
    {
        duration = default;
        if (string.IsNullOrWhiteSpace(text)) return false;
        text = text.Trim();
        var split = 0;
        while (split < text.Length && (char.IsAsciiDigit(text[split]) || text[split] == '.')) split++;
        if (split == 0 || !double.TryParse(text[..split], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value)) return false;
        double? ms = text[split..] switch
        {
            "ms" => value,
            "s" => value * 1000,
            "m" => value * 60_000,
            "h" => value * 3_600_000,
            "d" => value * 86_400_000,
            _ => null,
        };
        if (ms is null || ms > TimeSpan.MaxValue.TotalMilliseconds / 2) return false;
        duration = TimeSpan.FromMilliseconds(ms.Value);
        return true;
    }

    public static string Format(TimeSpan duration) =>
        duration.TotalDays >= 1 && duration.TotalDays % 1 == 0 ? $"{duration.TotalDays:0}d"
        : duration.TotalHours >= 1 && duration.TotalHours % 1 == 0 ? $"{duration.TotalHours:0}h"
        : duration.TotalMinutes >= 1 && duration.TotalMinutes % 1 == 0 ? $"{duration.TotalMinutes:0}m"
        : duration.TotalSeconds >= 1 && duration.TotalSeconds % 1 == 0 ? $"{duration.TotalSeconds:0}s"
        : $"{duration.TotalMilliseconds:0}ms";
}
