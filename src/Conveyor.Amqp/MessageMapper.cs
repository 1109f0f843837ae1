using System.Text.Unicode;
using System.Globalization;
using System.Text;
using System.Text.Json;
using RabbitMQ.Client;

namespace Conveyor.Amqp;

/// <summary>Where an RPC job's reply goes. Kept on the job as tags (see <see cref="MessageMapper"/>).</summary>
internal readonly record struct ReplyRoute(string ReplyTo, string CorrelationId);

/// <summary>A message turned into a job, or the reason it cannot be one.</summary>
internal readonly record struct MappedMessage(NewJob? Job, ReplyRoute? Reply, string? Error);

/// <summary>
/// Maps a RabbitMQ message onto a <see cref="NewJob"/> (docs/amqp.md, "Mapping"). Pure: no I/O, tested on its own.
/// </summary>
/// <remarks>
/// The reply route of an RPC message is stored on the job as the tags <c>amqp-rpc</c>, <c>amqp-reply-to:…</c> and
/// <c>amqp-correlation-id:…</c>: the store contract has no field for it yet, and tags survive a restart, so a server
/// that starts again finds the RPC jobs still owed a reply (tag search) and resumes waiting for them. When jobs gain
/// destinations (push delivery), the reply becomes an <c>amqp</c> destination instead.
/// </remarks>
internal static class MessageMapper
{
    public const string RpcTag = "amqp-rpc";
    public const string ReplyToTagPrefix = "amqp-reply-to:";
    public const string CorrelationTagPrefix = "amqp-correlation-id:";

    /// <summary>Longest reply-to and correlation id accepted (they travel as tags).</summary>
    public const int MaxRouteLength = 255;

    public static MappedMessage Map(
        string queue, IReadOnlyBasicProperties properties, ReadOnlySpan<byte> body, long maxPayloadBytes, DateTimeOffset now)
    {
        var headers = properties.Headers;
        if (body.Length > maxPayloadBytes)
            return Fail($"the body is {body.Length} bytes; the largest job payload is {maxPayloadBytes} bytes (--max-job-bytes).");

        var payload = Payload(properties.ContentType, body, out var payloadError);
        if (payloadError is not null) return Fail(payloadError);

        var kind = HeaderString(headers, AmqpHeaders.Kind) ?? NullIfEmpty(properties.Type) ?? "default";
        if (kind.Length > JobLimits.MaxNameLength) return Fail($"the kind is longer than {JobLimits.MaxNameLength} characters.");

        int priority = 0;
        if (Header(headers, AmqpHeaders.Priority) is { } p)
        {
            if (!TryLong(p, out var value) || value is < JobLimits.MinPriority or > JobLimits.MaxPriority)
                return Fail($"{AmqpHeaders.Priority} must be a whole number from {JobLimits.MinPriority} to {JobLimits.MaxPriority}.");
            priority = (int)value;
        }
        else if (properties.IsPriorityPresent())
        {
            priority = properties.Priority;
        }

        var maxAttempts = JobLimits.DefaultMaxAttempts;
        if (Header(headers, AmqpHeaders.MaxAttempts) is { } m)
        {
            if (!TryLong(m, out var value) || value is < 1 or > JobLimits.MaxMaxAttempts)
                return Fail($"{AmqpHeaders.MaxAttempts} must be a whole number from 1 to {JobLimits.MaxMaxAttempts}.");
            maxAttempts = (int)value;
        }

        DateTimeOffset? runAt = null;
        if (Header(headers, AmqpHeaders.RunAt) is { } r)
        {
            if (!DateTimeOffset.TryParse(Text(r), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at))
                return Fail($"{AmqpHeaders.RunAt} must be an ISO-8601 time such as 2026-11-23T13:45:00Z.");
            runAt = at.ToUniversalTime();
        }
        else if ((Header(headers, AmqpHeaders.DelayMs) ?? Header(headers, AmqpHeaders.Delay)) is { } d)
        {
            if (!TryLong(d, out var ms) || ms < 0 || ms > (long)TimeSpan.FromDays(3650).TotalMilliseconds)
                return Fail($"{AmqpHeaders.DelayMs} (or {AmqpHeaders.Delay}) must be a number of milliseconds of at least 0.");
            if (ms > 0) runAt = now.AddMilliseconds(ms);
        }

        var idempotencyKey = HeaderString(headers, AmqpHeaders.IdempotencyKey) ?? NullIfEmpty(properties.MessageId);
        if (idempotencyKey is { Length: > JobLimits.MaxKeyLength }) return Fail($"the idempotency key (message_id) is longer than {JobLimits.MaxKeyLength} characters.");
        var partitionKey = HeaderString(headers, AmqpHeaders.PartitionKey);
        if (partitionKey is { Length: > JobLimits.MaxKeyLength }) return Fail($"{AmqpHeaders.PartitionKey} is longer than {JobLimits.MaxKeyLength} characters.");

        var tags = new List<string>();
        if (Header(headers, AmqpHeaders.Tags) is { } t)
        {
            IEnumerable<string> values = t is IEnumerable<object> list
                ? list.Select(Text)
                : Text(t).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            foreach (var tag in values)
            {
                if (tag.Length is 0 or > JobLimits.MaxNameLength) return Fail($"each tag in {AmqpHeaders.Tags} must be 1-{JobLimits.MaxNameLength} characters long.");
                tags.Add(tag);
            }
        }

        ReplyRoute? reply = null;
        if (NullIfEmpty(properties.ReplyTo) is { } replyTo && NullIfEmpty(properties.CorrelationId) is { } correlationId)
        {
            if (replyTo.Length > MaxRouteLength || correlationId.Length > MaxRouteLength)
                return Fail($"reply_to and correlation_id must be at most {MaxRouteLength} characters each.");
            reply = new ReplyRoute(replyTo, correlationId);
            tags.Add(RpcTag);
            tags.Add(ReplyToTagPrefix + replyTo);
            tags.Add(CorrelationTagPrefix + correlationId);
        }
        if (tags.Count > JobLimits.MaxTags) return Fail($"a job may carry at most {JobLimits.MaxTags} tags (an RPC call uses 3 of them).");

        var traceParent = HeaderString(headers, AmqpHeaders.TraceParent);
        var job = new NewJob
        {
            Queue = queue,
            Kind = kind,
            PayloadJson = payload,
            Priority = priority,
            RunAt = runAt,
            MaxAttempts = maxAttempts,
            IdempotencyKey = idempotencyKey,
            PartitionKey = partitionKey,
            Tags = tags,
            TraceParent = traceParent is { Length: > 0 and <= 128 } ? traceParent : null,
        };
        return new MappedMessage(job, reply, null);

        static MappedMessage Fail(string error) => new(null, null, error);
    }

    /// <summary>The reply route stored in a job's tags, or null when the job is not an RPC call.</summary>
    public static ReplyRoute? ReplyRouteOf(IReadOnlyList<string> tags)
    {
        string? replyTo = null, correlationId = null;
        foreach (var tag in tags)
        {
            if (tag.StartsWith(ReplyToTagPrefix, StringComparison.Ordinal)) replyTo = tag[ReplyToTagPrefix.Length..];
            else if (tag.StartsWith(CorrelationTagPrefix, StringComparison.Ordinal)) correlationId = tag[CorrelationTagPrefix.Length..];
        }
        return replyTo is not null && correlationId is not null ? new ReplyRoute(replyTo, correlationId) : null;
    }

    /// <summary>
    /// The body as JSON text: a JSON body as it is; any other UTF-8 body as a JSON string; anything else as
    /// <c>{"base64": "…"}</c>. A body that says it is JSON (content type) but is not is refused.
    /// </summary>
    internal static string? Payload(string? contentType, ReadOnlySpan<byte> body, out string? error)
    {
        error = null;
        if (body.IsEmpty) return null;
        var declaredJson = contentType is { } type && (type.StartsWith("application/json", StringComparison.OrdinalIgnoreCase) ||
                                                        type.Contains("+json", StringComparison.OrdinalIgnoreCase));
        var maybeJson = declaredJson || string.IsNullOrEmpty(contentType);
        if (maybeJson && IsSingleJsonValue(body)) return Encoding.UTF8.GetString(body);
        if (declaredJson)
        {
            error = $"the content type is {contentType} but the body is not valid JSON.";
            return null;
        }
        if (Utf8.IsValid(body)) return JsonSerializer.Serialize(Encoding.UTF8.GetString(body), AmqpJson.Default.String);
        return "{\"base64\":\"" + Convert.ToBase64String(body) + "\"}";
    }

    private static bool IsSingleJsonValue(ReadOnlySpan<byte> body)
    {
        var reader = new Utf8JsonReader(body);
        try
        {
            if (!reader.Read()) return false;
            reader.Skip();
            return !reader.Read();
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static object? Header(IDictionary<string, object?>? headers, string name) =>
        headers is not null && headers.TryGetValue(name, out var value) ? value : null;

    private static string? HeaderString(IDictionary<string, object?>? headers, string name) =>
        Header(headers, name) is { } value ? NullIfEmpty(Text(value)) : null;

    /// <summary>AMQP strings arrive as UTF-8 bytes.</summary>
    private static string Text(object value) => value switch
    {
        byte[] bytes => Encoding.UTF8.GetString(bytes),
        string s => s,
        AmqpTimestamp ts => DateTimeOffset.FromUnixTimeSeconds(ts.UnixTime).ToString("O", CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    private static bool TryLong(object value, out long result)
    {
        switch (value)
        {
            case int i: result = i; return true;
            case long l: result = l; return true;
            case short s: result = s; return true;
            case byte b: result = b; return true;
            case sbyte sb: result = sb; return true;
            case uint ui: result = ui; return true;
            case ushort us: result = us; return true;
            case double d when d == Math.Floor(d) && Math.Abs(d) < 1e15: result = (long)d; return true;
            case float f when f == MathF.Floor(f) && Math.Abs(f) < 1e7: result = (long)f; return true;
            case decimal m when m == decimal.Floor(m) && Math.Abs(m) < 1e15m: result = (long)m; return true;
            default: return long.TryParse(Text(value), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out result);
        }
    }

    private static string? NullIfEmpty(string? text) => string.IsNullOrEmpty(text) ? null : text;
}
