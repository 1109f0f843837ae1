using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Conveyor.Cli.Output;

/// <summary>Small formatting helpers for the human-readable output.</summary>
internal static class Text
{
    public const string None = "-";

    private static readonly JsonWriterOptions CompactJson = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static string Time(DateTimeOffset? value) =>
        value is { } time ? time.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture) : None;

    public static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>JSON on one line, cut to <paramref name="maxLength"/> characters when given.</summary>
    public static string Json(JsonElement? value, int maxLength = int.MaxValue)
    {
        if (value is not { } element || element.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined)
        {
            return None;
        }

        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, CompactJson))
        {
            element.WriteTo(writer);
        }

        return Cut(Encoding.UTF8.GetString(buffer.WrittenSpan), maxLength);
    }

    public static string Cut(string text, int maxLength) =>
        text.Length <= maxLength ? text : string.Concat(text.AsSpan(0, Math.Max(0, maxLength - 1)), "…");

    public static string OneLine(string? text) => string.IsNullOrEmpty(text) ? None : text.ReplaceLineEndings(" ");

    public static string Duration(long milliseconds)
    {
        var span = TimeSpan.FromMilliseconds(milliseconds);
        return span.TotalDays >= 1 ? $"{(int)span.TotalDays}d {span.Hours}h {span.Minutes}m"
            : span.TotalHours >= 1 ? $"{span.Hours}h {span.Minutes}m {span.Seconds}s"
            : span.TotalMinutes >= 1 ? $"{span.Minutes}m {span.Seconds}s"
            : string.Create(CultureInfo.InvariantCulture, $"{span.TotalSeconds:0.#}s");
    }

    /// <summary>Writes <paramref name="value"/> as the API's indented JSON followed by a newline.</summary>
    public static void WriteJson<T>(TextWriter output, T value, JsonTypeInfo<T> typeInfo)
    {
        output.WriteLine(JsonSerializer.Serialize(value, typeInfo));
    }

    /// <summary>Writes "label  value" lines with the values aligned.</summary>
    public static void WriteFields(TextWriter output, IEnumerable<(string Label, string Value)> fields)
    {
        var list = fields.ToList();
        var width = list.Max(f => f.Label.Length) + 2;
        foreach (var (label, value) in list)
        {
            output.WriteLine((label.PadRight(width) + value).TrimEnd());
        }
    }
}
