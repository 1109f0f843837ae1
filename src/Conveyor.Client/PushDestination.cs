namespace Conveyor.Client;

/// <summary>
/// Where the server delivers a push job's payload itself (docs/delivery.md): a webhook or a RabbitMQ exchange.
/// A job with destinations goes to a push queue; no worker leases it.
/// </summary>
public sealed record PushDestination
{
    /// <summary><c>http</c> or <c>amqp</c>.</summary>
    public required string Type { get; init; }

    /// <summary>http: the absolute http(s) address.</summary>
    public string? Url { get; init; }

    /// <summary>http: POST (default), PUT or PATCH.</summary>
    public string? Method { get; init; }

    /// <summary>Extra headers; a value may name a server environment variable the server allows as <c>{{NAME}}</c>.</summary>
    public IReadOnlyDictionary<string, string>? Headers { get; init; }

    /// <summary>amqp: the exchange (empty or null: the default exchange, which routes by queue name).</summary>
    public string? Exchange { get; init; }

    /// <summary>amqp: the routing key (with the default exchange, the queue name).</summary>
    public string? RoutingKey { get; init; }

    /// <summary>How long one delivery may take; null: the server's <c>--delivery-timeout</c>.</summary>
    public long? TimeoutMs { get; init; }

    public static PushDestination Http(Uri url, string method = "POST", IReadOnlyDictionary<string, string>? headers = null)
    {
        ArgumentNullException.ThrowIfNull(url);
        return new() { Type = "http", Url = url.ToString(), Method = method, Headers = headers };
    }

    public static PushDestination Amqp(string routingKey, string exchange = "", IReadOnlyDictionary<string, string>? headers = null) =>
        new() { Type = "amqp", RoutingKey = routingKey, Exchange = exchange, Headers = headers };
}
