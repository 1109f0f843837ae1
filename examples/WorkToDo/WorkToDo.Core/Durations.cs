using System.Globalization;

namespace WorkToDo.Core;

/// <summary>Durations such as <c>90s</c>, <c>15m</c>, <c>6h</c>, <c>7d</c> (the search's <c>since</c>).</summary>
public static class Durations
{
    public static readonly TimeSpan DefaultSearchWindow = TimeSpan.FromHours(6);

    public static bool TryParse(string? text, out TimeSpan duration)
    {
        duration = default;
        if (string.IsNullOrWhiteSpace(text) || text.Length < 2) return false;
        if (!long.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n > 1_000_000) return false;
        TimeSpan? parsed = text[^1] switch
        {
            's' => TimeSpan.FromSeconds(n),
            'm' => TimeSpan.FromMinutes(n),
            'h' => TimeSpan.FromHours(n),
            'd' => TimeSpan.FromDays(n),
            _ => null,
        };
        if (parsed is not { } value || value <= TimeSpan.Zero) return false;
        duration = value;
        return true;
    }

    public const string Expected = "a positive whole number followed by s, m, h or d, such as 30m or 6h";
}
