using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Conveyor.Server.Delivery;

/// <summary>Where the dispatcher delivers a push job's payload. <see cref="Index"/> is its place in the job's list.</summary>
internal abstract record Destination(int Index, IReadOnlyList<KeyValuePair<string, string>> Headers, TimeSpan? Timeout)
{
    /// <summary>Short, for error messages and the delivery report: <c>POST https://…</c> or <c>amqp orders/created</c>.</summary>
    public abstract string Describe();
}

internal sealed record HttpDestination(int Index, Uri Url, string Method, IReadOnlyList<KeyValuePair<string, string>> Headers, TimeSpan? Timeout)
    : Destination(Index, Headers, Timeout)
{
    public override string Describe() => $"{Method} {Url}";
}

internal sealed record AmqpDestination(int Index, string Exchange, string RoutingKey, IReadOnlyList<KeyValuePair<string, string>> Headers, TimeSpan? Timeout)
    : Destination(Index, Headers, Timeout)
{
    public override string Describe() => $"amqp exchange '{(Exchange.Length == 0 ? "(default)" : Exchange)}' routing key '{RoutingKey}'";
}

/// <summary>
/// Parses destinations from requests (with a sentence for each mistake) and from storage, and writes them back in one
/// canonical JSON form. Header values may name server environment variables as <c>{{NAME}}</c>; only the names the
/// server allows (<see cref="ServerOptions.DeliverySecrets"/>) are accepted, so a producer cannot read other variables.
/// </summary>
internal static partial class Destinations
{
    public const int MaxPerJob = 16;
    public const int MaxHeaders = 32;
    public static readonly TimeSpan MaxTimeout = TimeSpan.FromMinutes(5);

    [GeneratedRegex(@"\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}")]
    private static partial Regex Placeholder();

    [GeneratedRegex(@"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")]
    private static partial Regex HeaderName();

    /// <summary>
    /// Reads <c>destination</c> (one object) or <c>destinations</c> (an array) from a request into the canonical JSON
    /// array stored with the job; null when neither is given.
    /// </summary>
    public static bool TryNormalize(JsonElement? single, JsonElement? many, IReadOnlyCollection<string> allowedSecrets, out string? json, out string? error)
    {
        json = null;
        error = null;
        var hasSingle = single is { ValueKind: not JsonValueKind.Null };
        var hasMany = many is { ValueKind: not JsonValueKind.Null };
        if (!hasSingle && !hasMany) return true;
        if (hasSingle && hasMany)
        {
            error = "Give either destination or destinations, not both.";
            return false;
        }
        var items = new List<JsonElement>();
        if (hasSingle)
        {
            items.Add(single!.Value);
        }
        else if (many!.Value.ValueKind != JsonValueKind.Array)
        {
            error = "destinations must be an array of destination objects.";
            return false;
        }
        else
        {
            items.AddRange(many.Value.EnumerateArray());
        }
        if (items.Count is 0 or > MaxPerJob)
        {
            error = $"A job may name 1-{MaxPerJob} destinations, not {items.Count}.";
            return false;
        }
        var parsed = new List<Destination>(items.Count);
        for (var i = 0; i < items.Count; i++)
        {
            if (!TryParse(items[i], i, out var destination, out var problem))
            {
                error = items.Count == 1 ? $"destination: {problem}" : $"destinations[{i}]: {problem}";
                return false;
            }
            foreach (var (name, value) in destination.Headers)
            {
                if (FirstPlaceholderNotIn(value, allowedSecrets) is { } variable)
                {
                    error = $"Header '{name}' refers to {{{{{variable}}}}}, which this server does not allow: list it in --delivery-secrets " +
                            "(CONVEYOR_DELIVERY_SECRETS) to let destinations use that environment variable.";
                    return false;
                }
            }
            parsed.Add(destination);
        }
        json = ToJson(parsed);
        return true;
    }

    /// <summary>Reads what <see cref="ToJson"/> wrote (job rows and queue defaults). Throws on text that is not ours.</summary>
    public static IReadOnlyList<Destination> FromStored(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var list = new List<Destination>();
        var i = 0;
        foreach (var item in doc.RootElement.EnumerateArray())
        {
            if (!TryParse(item, i++, out var destination, out var error)) throw new FormatException($"Stored destination {i - 1} is invalid: {error}");
            list.Add(destination);
        }
        return list;
    }

    public static string ToJson(IReadOnlyList<Destination> destinations)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartArray();
            foreach (var d in destinations)
            {
                w.WriteStartObject();
                switch (d)
                {
                    case HttpDestination http:
                        w.WriteString("type", "http");
                        w.WriteString("url", http.Url.ToString());
                        w.WriteString("method", http.Method);
                        break;
                    case AmqpDestination amqp:
                        w.WriteString("type", "amqp");
                        w.WriteString("exchange", amqp.Exchange);
                        w.WriteString("routing_key", amqp.RoutingKey);
                        break;
                }
                if (d.Headers.Count > 0)
                {
                    w.WriteStartObject("headers");
                    foreach (var (name, value) in d.Headers) w.WriteString(name, value);
                    w.WriteEndObject();
                }
                if (d.Timeout is { } timeout) w.WriteNumber("timeout_ms", (long)timeout.TotalMilliseconds);
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>The first <c>{{NAME}}</c> in <paramref name="value"/> that is not in <paramref name="allowed"/>, or null.</summary>
    public static string? FirstPlaceholderNotIn(string value, IReadOnlyCollection<string> allowed)
    {
        foreach (Match m in Placeholder().Matches(value))
        {
            if (!allowed.Contains(m.Groups[1].Value)) return m.Groups[1].Value;
        }
        return null;
    }

    /// <summary>Replaces each <c>{{NAME}}</c> with the server's environment variable; false (naming it) when one is not set.</summary>
    public static bool TryResolve(string value, out string resolved, out string? missing)
    {
        string? absent = null;
        resolved = Placeholder().Replace(value, m =>
        {
            var found = Environment.GetEnvironmentVariable(m.Groups[1].Value);
            if (found is null) absent ??= m.Groups[1].Value;
            return found ?? "";
        });
        missing = absent;
        return absent is null;
    }

    private static bool TryParse(JsonElement e, int index, out Destination destination, out string? error)
    {
        destination = null!;
        error = null;
        if (e.ValueKind != JsonValueKind.Object)
        {
            error = "must be an object such as {\"type\": \"http\", \"url\": \"https://example.com/hook\"}.";
            return false;
        }
        string? type = null, url = null, method = null, exchange = null, routingKey = null;
        long? timeoutMs = null;
        var headers = new List<KeyValuePair<string, string>>();
        foreach (var property in e.EnumerateObject())
        {
            switch (property.Name)
            {
                case "type": type = Text(property); break;
                case "url": url = Text(property); break;
                case "method": method = Text(property); break;
                case "exchange": exchange = Text(property); break;
                case "routing_key": routingKey = Text(property); break;
                case "timeout_ms":
                    if (property.Value.ValueKind != JsonValueKind.Number || !property.Value.TryGetInt64(out var ms))
                    {
                        error = "timeout_ms must be a whole number of milliseconds.";
                        return false;
                    }
                    timeoutMs = ms;
                    break;
                case "headers":
                    if (property.Value.ValueKind != JsonValueKind.Object)
                    {
                        error = "headers must be an object of header names to string values.";
                        return false;
                    }
                    foreach (var header in property.Value.EnumerateObject())
                    {
                        if (!HeaderName().IsMatch(header.Name))
                        {
                            error = $"'{Http.JobRequests.Truncate(header.Name)}' is not a valid header name.";
                            return false;
                        }
                        if (header.Value.ValueKind != JsonValueKind.String || header.Value.GetString()!.AsSpan().ContainsAny('\r', '\n'))
                        {
                            error = $"Header '{header.Name}' must have a one-line string value.";
                            return false;
                        }
                        headers.Add(new(header.Name, header.Value.GetString()!));
                    }
                    if (headers.Count > MaxHeaders)
                    {
                        error = $"At most {MaxHeaders} headers per destination, not {headers.Count}.";
                        return false;
                    }
                    break;
                default:
                    error = $"unknown field '{Http.JobRequests.Truncate(property.Name)}' (a destination has type, url, method, exchange, routing_key, headers, timeout_ms).";
                    return false;
            }
        }
        if (timeoutMs is { } t && (t < 1 || t > MaxTimeout.TotalMilliseconds))
        {
            error = $"timeout_ms must be between 1 and {(long)MaxTimeout.TotalMilliseconds}, not {t}.";
            return false;
        }
        var timeout = timeoutMs is { } tm ? TimeSpan.FromMilliseconds(tm) : (TimeSpan?)null;
        switch (type)
        {
            case "http":
                if (url is null || !Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
                {
                    error = "an http destination needs url, an absolute http:// or https:// address.";
                    return false;
                }
                method = (method ?? "POST").ToUpperInvariant();
                if (method is not ("POST" or "PUT" or "PATCH"))
                {
                    error = $"method must be POST, PUT or PATCH, not '{Http.JobRequests.Truncate(method)}'.";
                    return false;
                }
                if (exchange is not null || routingKey is not null)
                {
                    error = "exchange and routing_key belong to amqp destinations, not http ones.";
                    return false;
                }
                destination = new HttpDestination(index, uri, method, headers, timeout);
                return true;
            case "amqp":
                if (routingKey is null)
                {
                    error = "an amqp destination needs routing_key (and exchange; \"\" or none is the default exchange, which routes by queue name).";
                    return false;
                }
                if ((exchange?.Length ?? 0) > 255 || routingKey.Length > 255)
                {
                    error = "exchange and routing_key must be at most 255 characters.";
                    return false;
                }
                if (url is not null || method is not null)
                {
                    error = "url and method belong to http destinations, not amqp ones.";
                    return false;
                }
                destination = new AmqpDestination(index, exchange ?? "", routingKey, headers, timeout);
                return true;
            default:
                error = type is null ? "type is required: \"http\" or \"amqp\"." : $"type must be \"http\" or \"amqp\", not '{Http.JobRequests.Truncate(type)}'.";
                return false;
        }
    }

    private static string? Text(JsonProperty property) => property.Value.ValueKind == JsonValueKind.String ? property.Value.GetString() : property.Value.GetRawText();
}
