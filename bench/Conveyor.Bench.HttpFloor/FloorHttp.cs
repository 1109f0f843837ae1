using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Conveyor.Bench.HttpFloor;

/// <summary>What the floors read from and write to the API's requests and answers: only what the bench sends and reads.</summary>
internal static class FloorHttp
{
    public static async Task<byte[]> ReadBodyAsync(HttpContext context)
    {
        using var buffer = new MemoryStream();
        await context.Request.Body.CopyToAsync(buffer);
        return buffer.ToArray();
    }

    /// <summary>Each job's "payload" value, as raw JSON: the body is one job object, or an array of them.</summary>
    public static List<byte[]> Payloads(byte[] body, bool batch)
    {
        var payloads = new List<byte[]>();
        var reader = new Utf8JsonReader(body);
        var jobDepth = batch ? 1 : 0;
        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == jobDepth + 1 && reader.ValueTextEquals("payload"u8))
            {
                reader.Read();
                var start = (int)reader.TokenStartIndex;
                reader.Skip();
                payloads.Add(body[start..(int)reader.BytesConsumed]);
            }
        }
        return payloads;
    }

    /// <summary>A lease request's "max" and "wait_ms".</summary>
    public static (int Max, TimeSpan Wait) LeaseRequest(byte[] body)
    {
        int max = 1, waitMs = 0;
        var reader = new Utf8JsonReader(body);
        while (reader.Read())
        {
            if (reader.TokenType != JsonTokenType.PropertyName) continue;
            var isMax = reader.ValueTextEquals("max"u8);
            var isWait = reader.ValueTextEquals("wait_ms"u8);
            reader.Read();
            if (isMax) max = reader.GetInt32();
            if (isWait) waitMs = reader.GetInt32();
        }
        return (max, TimeSpan.FromMilliseconds(waitMs));
    }

    /// <summary>An ack request's jobs: {"acks": [{"id": …, "lease_token": …}, …]}.</summary>
    public static List<(long Id, string? Token)> Acks(byte[] body)
    {
        var acks = new List<(long Id, string? Token)>();
        var reader = new Utf8JsonReader(body);
        long id = 0;
        string? token = null;
        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.EndObject && reader.CurrentDepth == 2)
            {
                acks.Add((id, token));
                token = null;
            }
            if (reader.TokenType != JsonTokenType.PropertyName || reader.CurrentDepth != 3) continue;
            var isId = reader.ValueTextEquals("id"u8);
            var isToken = reader.ValueTextEquals("lease_token"u8);
            reader.Read();
            if (isId) id = reader.GetInt64();
            if (isToken) token = reader.GetString();
        }
        return acks;
    }

    public static async Task WriteEnqueuedAsync(HttpContext context, bool batch, IReadOnlyList<FloorJob> jobs)
    {
        context.Response.StatusCode = batch ? 200 : 201;
        context.Response.ContentType = "application/json";
        await using var w = new Utf8JsonWriter(context.Response.BodyWriter);
        if (batch)
        {
            w.WriteStartObject();
            w.WriteNumber("count"u8, jobs.Count);
            w.WriteNumber("first_id"u8, jobs.Count == 0 ? 0 : jobs[0].Id);
            w.WriteEndObject();
        }
        else
        {
            WriteJob(w, jobs[0], token: null);
        }
    }

    /// <summary>204 when nothing was leased, else the jobs with their lease tokens.</summary>
    public static async Task WriteLeasedAsync(HttpContext context, IReadOnlyList<FloorJob> jobs)
    {
        if (jobs.Count == 0)
        {
            context.Response.StatusCode = 204;
            return;
        }
        context.Response.ContentType = "application/json";
        await using var w = new Utf8JsonWriter(context.Response.BodyWriter);
        w.WriteStartArray();
        foreach (var job in jobs) WriteJob(w, job, job.Token);
        w.WriteEndArray();
    }

    public static async Task WriteAckResultsAsync(HttpContext context, List<(long Id, string? Token)> acks, int[] statuses)
    {
        context.Response.ContentType = "application/json";
        await using var w = new Utf8JsonWriter(context.Response.BodyWriter);
        w.WriteStartObject();
        w.WriteStartArray("results"u8);
        for (var i = 0; i < acks.Count; i++)
        {
            w.WriteStartObject();
            w.WriteNumber("id"u8, acks[i].Id);
            w.WriteNumber("status"u8, statuses[i]);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void WriteJob(Utf8JsonWriter w, FloorJob job, string? token)
    {
        w.WriteStartObject();
        w.WriteNumber("id"u8, job.Id);
        w.WriteString("queue"u8, job.Queue);
        w.WriteString("state"u8, token is null ? "available"u8 : "running"u8);
        w.WriteString("created_at"u8, job.Created);
        w.WritePropertyName("payload"u8);
        w.WriteRawValue(job.Payload, skipInputValidation: true);
        if (token is not null)
        {
            w.WriteStartObject("lease"u8);
            w.WriteString("token"u8, token);
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }
}
