using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text.Json;

namespace Conveyor.Cli.CommandLine;

/// <summary>
/// Typed options with custom parsers, so a bad value is reported as "--port expects …, got 'x'" rather than
/// System.CommandLine's default message that names CLR types.
/// </summary>
internal static class Options
{
    public static Option<int?> Int(string name, string description, int min = int.MinValue, int max = int.MaxValue) =>
        new(name) { Description = description, CustomParser = result => ParseInt(result, name, min, max) };

    public static Option<long?> Long(string name, string description, long min = long.MinValue, long max = long.MaxValue) =>
        new(name) { Description = description, CustomParser = result => ParseLong(result, name, min, max) };

    public static Option<string?> String(string name, string description) => new(name) { Description = description };

    public static Option<bool> Flag(string name, string description) => new(name) { Description = description };

    public static Option<bool> Json() => Flag("--json", "Print the server's JSON instead of text, for scripts.");

    /// <summary>A JSON document given on the command line; parsed here so a typo never reaches the server.</summary>
    public static Option<JsonElement?> JsonValue(string name, string description) =>
        new(name) { Description = description, CustomParser = result => ParseJson(result, name) };

    public static Option<DateTimeOffset?> Timestamp(string name, string description) =>
        new(name) { Description = description, CustomParser = result => ParseTimestamp(result, name) };

    public static Argument<long> JobId() =>
        new("id") { Description = "The job's id.", CustomParser = result => ParseLong(result, "The job id", 1, long.MaxValue) ?? 0 };

    public static Argument<string> Queue() =>
        new("queue") { Description = "The queue's name." };

    public static bool TryParseInt(string text, int min, int max, out int value) =>
        int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value) && value >= min && value <= max;

    public static bool TryParseLong(string text, long min, long max, out long value) =>
        long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value) && value >= min && value <= max;

    public static string Range(long min, long max) => (min, max) switch
    {
        (long.MinValue or int.MinValue, long.MaxValue or int.MaxValue) => "a whole number",
        (1, long.MaxValue or int.MaxValue) => "a positive whole number",
        (_, long.MaxValue or int.MaxValue) => $"a whole number of at least {min}",
        _ => $"a whole number from {min} to {max}",
    };

    private static int? ParseInt(ArgumentResult result, string name, int min, int max)
    {
        var text = result.Tokens[0].Value;
        if (TryParseInt(text, min, max, out var value))
        {
            return value;
        }

        result.AddError($"{name} must be {Range(min, max)}, got '{text}'.");
        return null;
    }

    private static long? ParseLong(ArgumentResult result, string name, long min, long max)
    {
        var text = result.Tokens[0].Value;
        if (TryParseLong(text, min, max, out var value))
        {
            return value;
        }

        result.AddError($"{name} must be {Range(min, max)}, got '{text}'.");
        return null;
    }

    private static JsonElement? ParseJson(ArgumentResult result, string name)
    {
        var text = result.Tokens[0].Value;
        try
        {
            using var document = JsonDocument.Parse(text);
            return document.RootElement.Clone();
        }
        catch (JsonException exception)
        {
            // The parser's message ends with its own position format; ours names the character instead.
            var reason = exception.Message.Split(" LineNumber:")[0].TrimEnd();
            var hint = LooksLikeBareText(text) ? " Text needs JSON quotes, e.g. '\"hello\"'." : "";
            result.AddError($"{name} is not valid JSON at character {exception.BytePositionInLine + 1}: {reason}{hint}");
            return null;
        }
    }

    private static bool LooksLikeBareText(string text) =>
        text.Length > 0 && char.IsLetter(text[0]) && text is not ("true" or "false" or "null");

    private static DateTimeOffset? ParseTimestamp(ArgumentResult result, string name)
    {
        var text = result.Tokens[0].Value;

        // A time without an offset is read as UTC, matching the API's convention.
        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var value))
        {
            return value.ToUniversalTime();
        }

        result.AddError($"{name} must be an ISO-8601 time such as 2026-11-23T13:45:00Z, got '{text}'.");
        return null;
    }
}
