using System.Text.Json;
using Conveyor.Submissions;

namespace Conveyor.Server.Submissions;

/// <summary>Writes submissions, reserved chunks and result lines with a Utf8JsonWriter; stored JSON is copied raw.</summary>
internal static class SubmissionJson
{
    public static string ToWire(this SubmissionState state) => state switch
    {
        SubmissionState.InProgress => "in_progress",
        SubmissionState.Completed => "completed",
        SubmissionState.Failed => "failed",
        _ => "cancelled",
    };

    public static bool TryParseState(string text, out SubmissionState state)
    {
        foreach (var candidate in Enum.GetValues<SubmissionState>())
        {
            if (candidate.ToWire() == text)
            {
                state = candidate;
                return true;
            }
        }
        state = default;
        return false;
    }

    public static void Write(Utf8JsonWriter w, Submission s)
    {
        w.WriteStartObject();
        w.WriteNumber("id", s.Id);
        w.WriteString("queue", s.Queue);
        w.WriteString("state", s.State.ToWire());
        w.WriteNumber("chunks_total", s.ChunksTotal);
        w.WriteNumber("chunks_done", s.ChunksDone);
        w.WriteNumber("chunks_failed", s.ChunksFailed);
        w.WriteNumber("chunks_ready", s.ChunksReady);
        w.WriteNumber("chunks_reserved", s.ChunksReserved);
        w.WriteNumber("operations_done", s.OperationsDone);
        w.WriteNumber("chunk_size", s.ChunkSize);
        w.WriteNumber("max_chunk_retries", s.MaxChunkRetries);
        Raw(w, "metadata", s.MetadataJson);
        w.WriteStartObject("labels");
        foreach (var (key, value) in s.Labels) w.WriteNumber(key, value);
        w.WriteEndObject();
        if (s.Prefix is null) w.WriteNull("prefix"); else w.WriteString("prefix", s.Prefix);
        if (s.OnComplete is { } callback)
        {
            w.WriteStartObject("on_complete");
            w.WriteString("queue", callback.Queue);
            w.WriteString("kind", callback.Kind);
            Raw(w, "payload", callback.PayloadJson);
            Raw(w, "destinations", callback.DestinationsJson);
            w.WriteEndObject();
        }
        else
        {
            w.WriteNull("on_complete");
        }
        if (s.FailedChunkIndex is { } index)
        {
            w.WriteStartObject("failed_chunk");
            w.WriteNumber("index", index);
            if (s.FailedChunkError is null) w.WriteNull("error"); else w.WriteString("error", s.FailedChunkError);
            w.WriteEndObject();
        }
        else
        {
            w.WriteNull("failed_chunk");
        }
        Time(w, "created_at", s.CreatedAt);
        Time(w, "updated_at", s.UpdatedAt);
        Time(w, "finished_at", s.FinishedAt);
        w.WriteEndObject();
    }

    public static void Write(Utf8JsonWriter w, ReservedChunk c, string objectStore)
    {
        w.WriteStartObject();
        w.WriteNumber("submission_id", c.SubmissionId);
        w.WriteNumber("index", c.Index);
        w.WriteString("lease_token", c.LeaseToken);
        w.WriteNumber("attempt", c.Attempt);
        Time(w, "lease_expires_at", c.LeaseExpiresAt);
        w.WriteStartObject("labels");
        foreach (var (key, value) in c.Labels) w.WriteNumber(key, value);
        w.WriteEndObject();
        Body(w, c.Body, "data", "data_base64", "body_ref", c.InputKey, objectStore);
        if (c.Prefix is not null) Ref(w, "output_ref", objectStore, ObjectKeys.Output(c.Prefix, c.Index));
        w.WriteEndObject();
    }

    public static void Write(Utf8JsonWriter w, ChunkResult r, string objectStore)
    {
        w.WriteStartObject();
        w.WriteNumber("index", r.Index);
        Body(w, r.Result, "result", "result_base64", "result_ref", r.OutputKey, objectStore);
        w.WriteEndObject();
    }

    private static void Body(Utf8JsonWriter w, ChunkBody body, string json, string base64, string reference, string? key, string objectStore)
    {
        switch (body.Kind)
        {
            case BodyKind.Json:
                w.WritePropertyName(json);
                w.WriteRawValue(body.Bytes.Span, skipInputValidation: true);
                break;
            case BodyKind.Bytes:
                w.WriteBase64String(base64, body.Bytes.Span);
                break;
            case BodyKind.Object:
                Ref(w, reference, objectStore, key!);
                break;
            default:
                w.WriteNull(json);
                break;
        }
    }

    private static void Ref(Utf8JsonWriter w, string name, string objectStore, string key)
    {
        w.WriteStartObject(name);
        w.WriteString("store", objectStore);
        w.WriteString("key", key);
        w.WriteEndObject();
    }

    private static void Raw(Utf8JsonWriter w, string name, string? json)
    {
        w.WritePropertyName(name);
        if (json is null) w.WriteNullValue(); else w.WriteRawValue(json, skipInputValidation: true);
    }

    private static void Time(Utf8JsonWriter w, string name, DateTimeOffset? value)
    {
        if (value is { } v) w.WriteString(name, v.UtcDateTime); else w.WriteNull(name);
    }
}
