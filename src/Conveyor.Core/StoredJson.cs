using System.Buffers;
using System.Text;
using System.Text.Json;

namespace Conveyor;

/// <summary>The small JSON texts every store writes the same way: tag arrays and entries of a job's <c>errors</c>.</summary>
public static class StoredJson
{
    public static string StringArray(IReadOnlyList<string> values) => Write(64, w =>
    {
        w.WriteStartArray();
        foreach (var value in values) w.WriteStringValue(value);
        w.WriteEndArray();
    });

    /// <summary>One entry of the <c>errors</c> array: <c>{"attempt", "at", "message", "stack"}</c>.</summary>
    public static string ErrorEntry(int attempt, DateTimeOffset at, string message, string? stack) => Write(128, w =>
    {
        w.WriteStartObject();
        w.WriteNumber("attempt", attempt);
        w.WriteString("at", at.UtcDateTime);
        w.WriteString("message", message);
        if (stack is null) w.WriteNull("stack"); else w.WriteString("stack", stack);
        w.WriteEndObject();
    });

    private static string Write(int size, Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(size);
        using (var w = new Utf8JsonWriter(buffer)) write(w);
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
