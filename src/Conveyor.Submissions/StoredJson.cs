using System.Text;
using System.Text.Json;

namespace Conveyor.Submissions;

/// <summary>The JSON columns both stores keep (labels, callback), written and read without reflection.</summary>
public static class StoredJson
{
    public static string Labels(IReadOnlyDictionary<string, long> labels)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            foreach (var (key, value) in labels.OrderBy(l => l.Key, StringComparer.Ordinal)) writer.WriteNumber(key, value);
            writer.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    public static IReadOnlyDictionary<string, long> ParseLabels(string? json)
    {
        var labels = new Dictionary<string, long>(StringComparer.Ordinal);
        if (string.IsNullOrEmpty(json)) return labels;
        using var document = JsonDocument.Parse(json);
        foreach (var property in document.RootElement.EnumerateObject()) labels[property.Name] = property.Value.GetInt64();
        return labels;
    }

    public static string? Callback(SubmissionCallback? callback)
    {
        if (callback is null) return null;
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("queue", callback.Queue);
            writer.WriteString("kind", callback.Kind);
            if (callback.PayloadJson is not null)
            {
                writer.WritePropertyName("payload");
                writer.WriteRawValue(callback.PayloadJson);
            }
            if (callback.DestinationsJson is not null)
            {
                writer.WritePropertyName("destinations");
                writer.WriteRawValue(callback.DestinationsJson);
            }
            writer.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    public static SubmissionCallback? ParseCallback(string? json)
    {
        if (string.IsNullOrEmpty(json)) return null;
        using var document = JsonDocument.Parse(json);
        var root = document.RootElement;
        return new SubmissionCallback(
            root.GetProperty("queue").GetString()!,
            root.GetProperty("kind").GetString()!,
            root.TryGetProperty("payload", out var payload) ? payload.GetRawText() : null,
            root.TryGetProperty("destinations", out var destinations) ? destinations.GetRawText() : null);
    }
}
